"""The query server: an HTTP API over the memory and its reports.

``MemoriesServer(memory)`` serves, under ``/v1``, what the memory holds: the
catalog's assets, tiles and records (temporal queries over valid and transaction
time), features of the spatial memory near a point or in a box (GeoJSON), events
of the relationship memory (:mod:`memories.server.routes_memory`), the stored
reports as they stood at any transaction time, and the applications run on demand
(:mod:`memories.server.routes_reports`). ``/health`` and the OpenAPI docs
(``/docs``, ``/redoc``, ``/openapi.json``, their files served locally) are open; every other path needs
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

import ipaddress
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from memories.applications import APPLICATIONS
from memories.errors import ConfigError, MemoriesError, MissingDataError
from memories.memory.temporal import TemporalMemory
from memories.memory.view import MemoryView
from memories.server.admission import DEFAULT_MAX_WAITING, AnalysisQueue, MemoryBudget, worker_memory_bytes
from memories.server.docs import add_docs
from memories.server.guard import DEFAULT_MAX_BODY_BYTES, TOKEN_ENV, BodyTooLarge, RedactingFilter, RequestGuard
from memories.server.models import ERRORS, Health, ViewFactory
from memories.server.routes_memory import memory_routes
from memories.server.routes_reports import report_routes
from memories.server.serialize import PrivateLocations, error_response, validation_detail
from memories.server.workers import OPTIONS_ENV, WorkerPool

logger = logging.getLogger(__name__)

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
        max_body_bytes: largest request body accepted, bytes (1 MiB; 413 beyond).
        max_queued_analyses: on-demand analyses that may wait while one runs (4; 503
            with ``Retry-After`` beyond), per worker.
        workers: server worker processes (uvicorn's; 1: serve from this process). With more
            than one, :meth:`start` runs ``python -m memories.server --workers N`` in a process
            of its own (:mod:`memories.server.workers`) and ``memory`` must be the configured one
            or a :class:`TemporalMemory` (the workers open its catalog and storage root).
        max_memory_gb: memory the server may use, GiB, shared equally among the workers; an
            analysis whose estimate does not fit its worker's share is refused with 503 and
            ``Retry-After`` (:class:`~memories.server.admission.MemoryBudget`). None: no budget.

    Raises:
        ConfigError: a non-loopback host without a token, a port out of range, a limit below
            its minimum, or several workers over a memory they cannot open.
    """

    def __init__(
        self,
        memory: TemporalMemory | MemoryView | ViewFactory | None = None,
        *,
        token: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        applications: dict[str, str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_queued_analyses: int = DEFAULT_MAX_WAITING,
        workers: int = 1,
        max_memory_gb: float | None = None,
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
        if max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes={max_body_bytes} is under 1024; an analysis request needs about 100")
        if max_queued_analyses < 0:
            raise ConfigError(f"max_queued_analyses={max_queued_analyses} is negative; give 0 (none wait) or more")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers={workers!r}: give a whole number of server processes, at least 1")
        if max_memory_gb is not None and not max_memory_gb > 0:
            raise ConfigError(f"max_memory_gb={max_memory_gb!r}: give the server's memory in GiB, e.g. 16, or None")
        self.host, self.port = host, port
        self.workers, self.max_memory_gb = workers, max_memory_gb
        self.view_factory = _view_factory(memory)
        self.applications = dict(applications if applications is not None else APPLICATIONS)
        self._options = {"max_body_bytes": max_body_bytes, "max_queued_analyses": max_queued_analyses}
        self._pool: Any = None
        if workers > 1:
            self._pool = WorkerPool(memory, host=host, workers=workers, max_memory_gb=max_memory_gb, **self._options)
        self.app = create_app(
            self.view_factory,
            token=self._token,
            applications=self.applications,
            max_body_bytes=max_body_bytes,
            max_queued_analyses=max_queued_analyses,
            max_memory_bytes=worker_memory_bytes(max_memory_gb, workers),
        )
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

        if self._pool is not None:
            self.port = self._pool.start(self.port, self._token, timeout=max(timeout, 60.0))
            logger.info("serving the memory at %s with %d worker processes", self.url, self.workers)
            return self
        if self._thread is not None:
            return self
        self._server = uvicorn.Server(self._uvicorn_config(lifespan="off"))
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
        if self._pool is not None:
            self._pool.stop(timeout)
            return
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
        if self._pool is not None:
            self._pool.serve(self.port)
            return
        uvicorn.Server(self._uvicorn_config()).run()

    def _uvicorn_config(self, **options: Any) -> Any:
        """uvicorn's settings: the project's logging, the guard's access log (not uvicorn's), no token in a log."""
        import uvicorn

        for name in ("uvicorn.access", "uvicorn.error"):  # lines uvicorn writes itself never hold a token
            log = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) and f.token == self._token for f in log.filters):
                log.addFilter(RedactingFilter(self._token))
        return uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None, access_log=False, **options)

    def __enter__(self) -> "MemoriesServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_app(
    view_factory: ViewFactory,
    *,
    token: str | None,
    applications: dict[str, str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queued_analyses: int = DEFAULT_MAX_WAITING,
    max_memory_bytes: int | None = None,
) -> FastAPI:
    """The FastAPI application over the memory views ``view_factory`` makes.

    Args:
        view_factory: ``as_of -> MemoryView``.
        token: the bearer token every ``/v1`` path needs; ``None``: open.
        applications: report kind -> ``module:Class`` (default: all).
        max_body_bytes: largest request body accepted, bytes (413 beyond).
        max_queued_analyses: analyses that may wait while one runs (503 beyond).
        max_memory_bytes: this process's memory budget, bytes (503 for an analysis that would exceed it).
    """
    kinds_map = dict(applications if applications is not None else APPLICATIONS)
    app = FastAPI(
        title="Earth memory API",
        version="1",
        description=(
            "Temporal and spatial queries over the Earth memory, its stored reports, and analyses on demand. "
            f"Every /v1 path needs `Authorization: Bearer <token>` (the server's {TOKEN_ENV})."
        ),
        redirect_slashes=False,  # a redirect would repeat the client's Host header; a 404 says what to do
        docs_url=None,  # add_docs serves /docs and /redoc with local files, not a CDN's
        redoc_url=None,
    )
    add_docs(app)
    # The token is checked by RequestGuard from the headers, before any body is read;
    # the dependency declares the scheme in the OpenAPI document.
    bearer = HTTPBearer(
        auto_error=False, scheme_name="bearerAuth", description=f"the server's {TOKEN_ENV}, as a bearer token"
    )

    def documents_the_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        return None

    auth = [Depends(documents_the_token)]
    _error_handlers(app, PrivateLocations(view_factory))

    # -- open -----------------------------------------------------------------------------
    @app.get("/health", tags=["server"])
    async def health() -> Health:
        """The server answers (no token needed); it runs on the event loop, so busy workers never delay it."""
        return Health(time=datetime.now(UTC).isoformat(timespec="seconds"))

    budget = MemoryBudget(max_memory_bytes) if max_memory_bytes is not None else None
    queue = AnalysisQueue(max_queued_analyses, budget)
    app.include_router(memory_routes(view_factory), prefix="/v1", dependencies=auth, responses=ERRORS)
    app.include_router(report_routes(view_factory, kinds_map, queue), prefix="/v1", dependencies=auth, responses=ERRORS)
    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes)
    app.state.analysis_queue = queue
    return app


def _error_handlers(app: FastAPI, private: PrivateLocations) -> None:
    """The answers to errors: 404 missing data, 400 bad configuration, 500 the library's failures, 422/413."""

    @app.exception_handler(MissingDataError)
    def _missing(request: Request, exc: MissingDataError) -> JSONResponse:
        return error_response(404, exc, private)

    @app.exception_handler(ConfigError)
    def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return error_response(400, exc, private)

    @app.exception_handler(MemoriesError)
    def _memories(request: Request, exc: MemoriesError) -> JSONResponse:
        logger.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(500, exc, private)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(BodyTooLarge)
    def _too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "error": "RequestTooLarge"}, 413, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such path; the paths (without a trailing slash) are listed at /docs and /openapi.json"
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)


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


def app_from_env() -> Any:
    """uvicorn's app factory in a worker: the server app described by :data:`memories.server.workers.OPTIONS_ENV`."""
    from memories.logs import configure
    from memories.memory.catalog import MemoryCatalog, configured_location

    spec = json.loads(os.environ[OPTIONS_ENV])
    configure(spec.get("log_level") or "info")
    token = os.environ.get(TOKEN_ENV) or None
    for name in ("uvicorn.access", "uvicorn.error"):  # lines uvicorn writes itself never hold a token
        logging.getLogger(name).addFilter(RedactingFilter(token))
    catalog = MemoryCatalog.open(spec["catalog"] or configured_location())
    memory = TemporalMemory(catalog, spec["root"], s3_endpoint_url=spec["s3_endpoint_url"])
    budget = spec["max_memory_bytes"]
    server = MemoriesServer(
        memory,
        token=token,
        host="127.0.0.1",  # the host was checked by the process that started the workers
        max_body_bytes=spec["max_body_bytes"],
        max_queued_analyses=spec["max_queued_analyses"],
        max_memory_gb=None if budget is None else budget / 1024**3,  # this worker's share, already divided
    )
    return server.app


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "TOKEN_ENV",
    "MemoriesServer",
    "app_from_env",
    "create_app",
    "is_loopback",
    "worker_memory_bytes",
]
