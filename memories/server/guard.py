"""The query server's front door: the bearer token and the body size, checked before a route runs, and the access log.

:class:`RequestGuard` is a plain ASGI middleware around the FastAPI app, so it acts
on a request's headers before any route reads or parses its body:

- a ``/v1`` request without the server's token (``Authorization: Bearer <token>``)
  is answered 401 from its headers alone; its body is never read;
- a body larger than ``max_body_bytes`` is answered 413: at once when its
  ``Content-Length`` says so, and as soon as the bytes read pass the limit when it
  comes chunked (no ``Content-Length``), so no more than the limit is ever held;
- every request is logged as one line, ``client "METHOD /path?query" status ms``,
  with the values of credential-like query parameters (:data:`SECRET_PARAMS`) and
  the server's token, wherever it appears, written as ``***``;
- an exception no handler took becomes a 500 that names the error class only (the
  traceback goes to the log, never to the client).

A refusal that leaves a body unread closes the connection (``Connection: close``),
so the server does not go on receiving an upload it will not use.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from urllib.parse import quote, unquote

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "SECRET_PARAMS",
    "TOKEN_ENV",
    "BodyTooLarge",
    "RedactingFilter",
    "RequestGuard",
    "bearer_refusal",
    "redact",
]

logger = logging.getLogger("memories.server.app")
"""The access log: the server's own logger, one line per request."""

TOKEN_ENV = "MEMORIES_API_TOKEN"
"""Environment variable holding the API token (read by the server and by each of its worker processes)."""

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted, bytes (1 MiB: an analysis request is under 1 kB)."""
PROTECTED_PREFIX = "/v1"
"""Paths under this prefix need the token; ``/health`` and the docs are open."""
SECRET_PARAMS = ("token", "access_token", "api_key", "apikey", "key", "password", "secret", "auth", "authorization")
"""Query parameters whose values never reach the log (matched without regard to case)."""
MASK = "***"

_SECRET_QUERY = re.compile(r"(?i)(^|[?&;])((?:" + "|".join(map(re.escape, SECRET_PARAMS)) + r")=)[^&;#]*")


class BodyTooLarge(HTTPException):
    """A request body over the server's limit (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit), headers={"Connection": "close"})


class RequestGuard:
    """ASGI middleware: token and body size before any route, one redacted access-log line per request.

    Args:
        app: the FastAPI application.
        token: the bearer token every ``/v1`` path needs; ``None``: open.
        max_body_bytes: largest request body accepted, bytes.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent: dict[str, int] = {}

        def log() -> None:
            if "logged" not in sent:  # once, before the last byte leaves: a client that got its answer finds it logged
                sent["logged"] = 1
                self._log(scope, sent.get("status", 0), (time.perf_counter() - started) * 1000)

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                log()
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_logged)
            else:
                await self.app(scope, self._capped(receive), send_logged)
        except Exception as exc:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if "status" in sent:
                raise  # the answer has begun: the server closes the connection
            failed = JSONResponse(
                {"detail": "internal error; the server log has the details", "error": type(exc).__name__},
                status_code=500,
            )
            await failed(scope, receive, send_logged)
        finally:
            log()

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The 401 or 413 answer a request gets from its headers, or ``None`` to let it in."""
        headers = _headers(scope)
        body_coming = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        close = {"Connection": "close"} if body_coming else {}
        path = str(scope.get("path", ""))
        if self.token is not None and (path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")):
            refused = bearer_refusal(headers.get("authorization"), self.token)
            if refused is not None:
                message, challenge = refused
                return _error(401, message, "AuthenticationError", {"WWW-Authenticate": challenge, **close})
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return _error(413, _too_large(self.max_body_bytes), "RequestTooLarge", {"Connection": "close"})
        return None

    def _capped(self, receive: Receive) -> Receive:
        """``receive`` that raises :class:`BodyTooLarge` once the body read passes the limit (chunked bodies)."""
        limit, read = self.max_body_bytes, 0

        async def capped() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge(limit)
            return message

        return capped

    def _log(self, scope: Scope, status: int, ms: float) -> None:
        client = scope.get("client")
        query = scope.get("query_string", b"").decode("latin-1")
        target = str(scope.get("path", "")) + (f"?{query}" if query else "")
        host = client[0] if client else "-"
        logger.info('%s "%s %s" %d %.1f ms', host, scope.get("method"), redact(target, self.token), status, ms)


def bearer_refusal(authorization: str | None, token: str) -> tuple[str, str] | None:
    """Why an ``Authorization`` header value lacks ``token``: (message, ``WWW-Authenticate``); None: it has it."""
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return (
            "missing bearer token: send the header 'Authorization: Bearer <token>' with the server's "
            "MEMORIES_API_TOKEN",
            "Bearer",
        )
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return "invalid bearer token: it is not the server's MEMORIES_API_TOKEN", 'Bearer error="invalid_token"'
    return None


def redact(text: str, token: str | None = None) -> str:
    """``text`` (a request target, a log line) with credential values and ``token`` written as ``***``.

    The values of the query parameters :data:`SECRET_PARAMS` go whatever they hold;
    the server's token goes wherever it appears, as sent or percent-encoded.
    """
    out = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if token:
        for form in {token, quote(token, safe=""), quote(token)}:
            out = out.replace(form, MASK)
        if token in unquote(out):  # an encoding other than the two above
            out = unquote(out).replace(token, MASK)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record with its credentials written as ``***`` (:func:`redact`).

    Installed on uvicorn's loggers, so a request line uvicorn writes itself (its access
    log, when someone turns it on) never holds a token either.
    """

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a, self.token) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg, self.token)
        return True


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _error(status: int, message: str, error: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"detail": message, "error": error}, status_code=status, headers=headers)


def _too_large(limit: int) -> str:
    return (
        f"request body over the server's limit of {limit} bytes; send a smaller body "
        "(the server's --max-body-bytes sets the limit)"
    )
