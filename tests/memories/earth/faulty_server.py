"""A real HTTP server on 127.0.0.1 that misbehaves on cue, for the acquisition tests.

``FaultyServer`` serves files (with byte ranges, as GDAL reads COGs), a small
paged STAC API (``/``, ``/conformance``, ``/collections/<id>``, ``/search`` with
``limit`` and a ``token`` for the next page) and a Planetary Computer-like SAS
token API (``/api/sas/v1/token/<collection>``). Faults are scripted per path and
consumed one per request, after which the path answers normally:

- ``("429", retry_after)``: 429 with ``Retry-After`` (seconds, or an HTTP date string)
- ``("500",)``: an internal server error
- ``("delay", seconds)``: wait before answering (beyond the client's read timeout)
- ``("truncate",)``: announce the full ``Content-Length``, send half, close
- ``("corrupt",)``: the full length, with the last 256 bytes garbled (the
  ``Content-MD5`` header, sent unless ``content_md5`` is False, stays the true one)
- ``("404",)``: not found

``forever(path, fault)`` makes a fault permanent. Every request is logged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FaultyServer:
    """A ThreadingHTTPServer on 127.0.0.1 with scripted faults (context manager)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.items: list[dict[str, Any]] = []
        self.collection: dict[str, Any] = {
            "type": "Collection",
            "id": "sentinel-2-l2a",
            "stac_version": "1.0.0",
            "description": "test",
            "license": "proprietary",
            "links": [],
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        }
        self.token_lifetime_s = 3600.0
        self.content_md5 = True
        self.log: list[tuple[float, str, str, dict[str, str]]] = []
        self._faults: dict[str, deque[tuple[Any, ...]]] = defaultdict(deque)
        self._forever: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._tokens_issued = 0
        self._httpd: ThreadingHTTPServer | None = None

    # -- scripting ------------------------------------------------------------
    def script(self, path: str, *faults: tuple[Any, ...]) -> None:
        """Queue faults for the next requests of ``path``."""
        with self._lock:
            self._faults[path].extend(faults)

    def forever(self, path: str, fault: tuple[Any, ...]) -> None:
        """Answer every request of ``path`` with ``fault``."""
        with self._lock:
            self._forever[path] = fault

    def requests_to(self, path: str) -> list[float]:
        """Monotonic times of the requests of ``path``."""
        return [t for t, _, p, _ in self.log if p == path]

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- lifecycle ------------------------------------------------------------
    def __enter__(self) -> FaultyServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_HEAD(self) -> None:
                server._handle(self, "HEAD")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- answering ------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(h.path)
        path = parsed.path
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        with self._lock:
            self.log.append((time.monotonic(), method, path, dict(h.headers)))
            fault = self._faults[path].popleft() if self._faults[path] else self._forever.get(path)
        kind = fault[0] if fault else None
        if kind == "delay":
            time.sleep(float(fault[1]))  # type: ignore[index]
        elif kind == "429":
            return self._send(h, 429, b"slow down", "text/plain", {"Retry-After": str(fault[1])})  # type: ignore[index]
        elif kind in ("500", "404"):
            return self._send(h, int(kind), b"fault", "text/plain")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        if method == "POST" and body:
            query.update({k: v for k, v in json.loads(body).items() if v is not None})
        try:
            if path in self.files:
                return self._send_file(h, method, self.files[path], kind)
            if path in ("", "/"):
                return self._json(h, self._landing())
            if path == "/conformance":
                return self._json(h, {"conformsTo": self._landing()["conformsTo"]})
            if path == f"/collections/{self.collection['id']}":
                return self._json(h, self.collection)
            if path == "/search":
                return self._json(h, self._search(query, method))
            if path.startswith("/api/sas/v1/token/"):
                return self._json(h, self._token(path.rsplit("/", 1)[1]))
        except (BrokenPipeError, ConnectionResetError):
            return None
        return self._send(h, 404, b"not found", "text/plain")

    def _send_file(self, h: BaseHTTPRequestHandler, method: str, data: bytes, kind: str | None) -> None:
        status, headers = 200, {"Accept-Ranges": "bytes"}
        if self.content_md5:  # as Azure Blob Storage does for whole blobs
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[6:].partition("-")
            start = int(start_s) if start_s else max(len(data) - int(end_s), 0)
            end = min(int(end_s), len(data) - 1) if end_s and start_s else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            headers.pop("Content-MD5", None)
            data, status = data[start : end + 1], 206
        if kind == "corrupt":
            data = data[:-256] + bytes((b ^ 0x5A) for b in data[-256:])
        h.send_response(status)
        h.send_header("Content-Type", "image/tiff")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method == "HEAD":
            return
        try:
            if kind == "truncate":
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                h.close_connection = True
                return
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "faulty",
            "stac_version": "1.0.0",
            "description": "fault-injecting STAC API",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
            "links": [
                {"rel": "self", "href": self.url + "/"},
                {"rel": "root", "href": self.url + "/"},
                {"rel": "search", "href": self.url + "/search", "method": "POST"},
                {"rel": "search", "href": self.url + "/search", "method": "GET"},
            ],
        }

    def _search(self, q: dict[str, Any], method: str) -> dict[str, Any]:
        limit = int(q.get("limit", 10))
        start = int(q.get("token", 0))
        page = self.items[start : start + limit]
        links: list[dict[str, Any]] = []
        if start + limit < len(self.items):
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": self.url + "/search",
                        "method": "POST",
                        "body": {"token": start + limit},
                        "merge": True,
                    }
                )
            else:
                links.append({"rel": "next", "href": f"{self.url}/search?limit={limit}&token={start + limit}"})
        return {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberMatched": len(self.items),
            "numberReturned": len(page),
        }

    def _token(self, collection: str) -> dict[str, Any]:
        with self._lock:
            self._tokens_issued += 1
            n = self._tokens_issued
        expiry = datetime.now(UTC) + timedelta(seconds=self.token_lifetime_s)
        return {
            "msft:expiry": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "token": f"st=2024&se=2099&sp=rl&sv=2021-06-08&sr=c&skoid={collection}&sig=tok{n}",
        }

    def _json(self, h: BaseHTTPRequestHandler, obj: Any) -> None:
        self._send(h, 200, json.dumps(obj).encode(), "application/json")

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
