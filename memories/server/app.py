"""The query server: an HTTP API over the memory and its reports.

``MemoriesServer(memory)`` serves, under ``/v1``, what the memory holds: the
catalog's assets, tiles and records (temporal queries over valid and transaction
time), features of the spatial memory near a point or in a box (GeoJSON), events
of the relationship memory (:mod:`memories.server.routes_memory`), the stored
reports as they stood at any transaction time, and the applications run on demand
(:mod:`memories.server.routes_reports`). ``/health`` and the OpenAPI docs
(``/docs``, ``/openapi.json``) are open; every other path needs
``Authorization: Bearer <token>``, the token of ``MEMORIES_API_TOKEN``.

    with MemoriesServer(port=0) as server:          # uvicorn in a thread, a free port
        httpx.get(f"{server.url}/v1/tiles", headers={"Authorization": f"Bearer {token}"})

From a shell: ``python -m memories.server --port 8765`` (or ``scripts/serve.sh``).

This module holds the server, the app factory, the bearer-token check, the error
handlers and the access log. Blocking work (catalog queries, loads, analyses)
runs in FastAPI's thread pool (the endpoints are plain ``def``).

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations at runtime, and some name objects local to :func:`create_app`.
"""

import hmac
import ipaddress
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from memories.applications import APPLICATIONS
from memories.applications.memory_view import MemoryView
from memories.errors import ConfigError, MemoriesError, MissingDataError
from memories.memory.temporal import TemporalMemory
from memories.server.models import ERRORS, Health, ViewFactory
from memories.server.routes_memory import memory_routes
from memories.server.routes_reports import report_routes
from memories.server.serialize import error_response

logger = logging.getLogger(__name__)

TOKEN_ENV = "MEMORIES_API_TOKEN"
"""Environment variable holding the API token."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class MemoriesServer:
    """The HTTP API over a memory, and a uvicorn server for it.

    Args:
        memory: what to serve: a :class:`TemporalMemory`, a :class:`MemoryView` (its
            memory), or a factory ``as_of -> MemoryView``; default: the configured memory.
        token: the bearer token clients must send; default: ``$MEMORIES_API_TOKEN``.
            Without one the API is open, which is refused on any host but loopback.
        host: address to listen on (``127.0.0.1``; ``0.0.0.0`` for every interface).
        port: TCP port; ``0`` picks a free one (see :attr:`port` after :meth:`start`).
        applications: report kind -> ``module:Class``; default: every application
            of :data:`memories.applications.APPLICATIONS`.

    Raises:
        ConfigError: a non-loopback host without a token, or a port out of range.
    """

    def __init__(
        self,
        memory: TemporalMemory | MemoryView | ViewFactory | None = None,
        *,
        token: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        applications: dict[str, str] | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        self._token = token or None
        if self._token is None and not is_loopback(host):
            raise ConfigError(
                f"refusing to serve the memory on {host!r} without a token; set {TOKEN_ENV} "
                "(e.g. export MEMORIES_API_TOKEN=$(openssl rand -hex 32)) or listen on 127.0.0.1"
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range; choose 1..65535 (0: any free port)")
        self.host, self.port = host, port
        self.view_factory = _view_factory(memory)
        self.applications = dict(applications if applications is not None else APPLICATIONS)
        self.app = create_app(self.view_factory, token=self._token, applications=self.applications)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"MemoriesServer({self.url}, token={'***' if self._token else None})"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "MemoriesServer":
        """Serve in a background thread (tests, notebooks); returns when the socket listens.

        Raises:
            ConfigError: the address could not be bound (port in use, host not of this machine).
        """
        import uvicorn

        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"memories-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._thread.join(5)
                self._thread = self._server = None
                raise ConfigError(
                    f"could not serve on {self.host}:{self.port}: the port is in use or the host is not an "
                    "address of this machine; choose another --port / --host"
                )
            time.sleep(0.02)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        logger.info("serving the memory at %s (token %s)", self.url, "required" if self._token else "not set")
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except SystemExit:  # uvicorn exits when it cannot bind; start() reports it
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start` (waits for open requests up to ``timeout`` s)."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._thread = self._server = None

    def serve(self) -> None:
        """Serve in this thread until SIGINT / SIGTERM (the command line)."""
        import uvicorn

        if self._token is None:
            logger.warning("no %s set: the API is open to anyone who can reach %s", TOKEN_ENV, self.host)
        logger.info("serving the memory at %s (docs at %s/docs)", self.url, self.url)
        uvicorn.Server(
            uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None, access_log=False)
        ).run()

    def __enter__(self) -> "MemoriesServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_app(view_factory: ViewFactory, *, token: str | None, applications: dict[str, str] | None = None) -> FastAPI:
    """The FastAPI application over the memory views ``view_factory`` makes.

    Args:
        view_factory: ``as_of -> MemoryView``.
        token: the bearer token every ``/v1`` path needs; ``None``: open.
        applications: report kind -> ``module:Class`` (default: all).
    """
    kinds_map = dict(applications if applications is not None else APPLICATIONS)
    app = FastAPI(
        title="Earth memory API",
        version="1",
        description=(
            "Temporal and spatial queries over the Earth memory, its stored reports, and analyses on demand. "
            f"Every /v1 path needs `Authorization: Bearer <token>` (the server's {TOKEN_ENV})."
        ),
    )
    bearer = HTTPBearer(
        auto_error=False, scheme_name="bearerAuth", description=f"the server's {TOKEN_ENV}, as a bearer token"
    )
    expected = token.encode() if token else None

    def require_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if expected is None:
            return
        if creds is None:
            raise HTTPException(
                401,
                f"missing bearer token: send the header 'Authorization: Bearer <token>' with the server's {TOKEN_ENV}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(creds.credentials.encode(), expected):
            raise HTTPException(
                401,
                f"invalid bearer token: it is not the server's {TOKEN_ENV}",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )

    auth = [Depends(require_token)]

    # -- errors and access log -----------------------------------------------------------
    @app.exception_handler(MissingDataError)
    def _missing(request: Request, exc: MissingDataError) -> JSONResponse:
        return error_response(404, exc)

    @app.exception_handler(ConfigError)
    def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return error_response(400, exc)

    @app.exception_handler(MemoriesError)
    def _memories(request: Request, exc: MemoriesError) -> JSONResponse:
        logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(500, exc)

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # the traceback goes to the log, never to the client
            logger.exception("%s %s failed", request.method, request.url.path)
            response = JSONResponse(
                {"detail": "internal error; the server log has the details", "error": type(exc).__name__},
                status_code=500,
            )
        query = f"?{request.url.query}" if request.url.query else ""
        client = request.client.host if request.client else "-"
        logger.info(
            '%s "%s %s%s" %d %.1f ms',
            client,
            request.method,
            request.url.path,
            query,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    # -- open -----------------------------------------------------------------------------
    @app.get("/health", tags=["server"])
    def health() -> Health:
        """The server answers (no token needed)."""
        return Health(time=datetime.now(UTC).isoformat(timespec="seconds"))

    app.include_router(memory_routes(view_factory), prefix="/v1", dependencies=auth, responses=ERRORS)
    app.include_router(report_routes(view_factory, kinds_map), prefix="/v1", dependencies=auth, responses=ERRORS)
    return app


# -- helpers ---------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _view_factory(memory: TemporalMemory | MemoryView | ViewFactory | None) -> ViewFactory:
    if isinstance(memory, MemoryView):
        memory = memory.memory
    if memory is None:
        memory = TemporalMemory()
    if isinstance(memory, TemporalMemory):
        mem = memory
        return lambda as_of: MemoryView(mem, as_of=as_of)
    if callable(memory):
        return memory
    raise ConfigError(
        f"MemoriesServer needs a TemporalMemory, a MemoryView or a factory as_of -> MemoryView, "
        f"got {type(memory).__name__}"
    )


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOKEN_ENV", "MemoriesServer", "create_app", "is_loopback"]
