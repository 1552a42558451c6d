"""The query server's answers as JSON: catalog records, GeoJSON features and events, strict JSON of anything, errors.

Strict JSON has no NaN or infinities: :func:`json_response` writes them as ``null``
(a month without a clear pixel has a NaN mean), and numpy scalars and arrays,
datetimes, tuples and sets as their plain JSON counterparts.

Errors tell the client what to fix, not where the server keeps its files: the
storage root and the catalog's location become ``<storage root>`` and ``<memory
catalog>`` in their messages (:class:`PrivateLocations`), and a 422 repeats at most
:data:`ECHO_CHARS` characters of each rejected input (:func:`validation_detail`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse, Response

from memories.json_values import dumps, json_default_or_str
from memories.memory.catalog import Materialization

__all__ = [
    "ECHO_CHARS",
    "PrivateLocations",
    "error_response",
    "event_feature",
    "geojson_features",
    "iso",
    "json_response",
    "record_dict",
    "validation_detail",
]

logger = logging.getLogger(__name__)

ECHO_CHARS = 200
"""Most characters of a rejected input (its JSON) a 422 repeats; longer ones are cut and their length said."""
MESSAGE_CHARS = 1000
"""Most characters of one error message."""
_FILE_URI = re.compile(r"file://[^\s'\"<>]*?([^/\s'\"<>]+)(?=[\s'\",;:)<>]|$)")


def record_dict(rec: Materialization) -> dict[str, Any]:
    """A catalog record as JSON-able dict (bbox as a list)."""
    d = asdict(rec)
    d["bbox_wgs84"] = list(rec.bbox_wgs84) if rec.bbox_wgs84 else None
    return d


def geojson_features(frame: Any) -> list[dict[str, Any]]:
    """GeoJSON features of a GeoDataFrame in EPSG:4326 (missing values dropped, dates as ISO strings)."""
    if not len(frame):
        return []
    frame = frame.copy()
    for col in frame.columns:
        if col != frame.geometry.name and str(frame[col].dtype).startswith("datetime"):
            frame[col] = frame[col].map(lambda t: None if t is None or t != t else t.isoformat())
    return list(json.loads(frame.to_json(na="drop", drop_id=True))["features"])


def event_feature(edge: Any) -> dict[str, Any]:
    """A GeoJSON feature of one hyperedge (event); its footprint as geometry."""
    import shapely
    from shapely.geometry import mapping

    d = edge.to_dict()
    wkt = d.pop("geometry_wkt", None)
    geometry = mapping(shapely.from_wkt(wkt)) if wkt else None
    return {"type": "Feature", "id": edge.id, "geometry": geometry, "properties": d}


def json_response(payload: Any) -> Response:
    """A JSON answer of anything the applications return (numpy scalars and arrays, datetimes, tuples);
    NaN and infinities become ``null`` (strict JSON has no such numbers)."""
    text = dumps(payload, nan="null")
    return Response(text, media_type="application/json")


def error_response(status: int, exc: Exception, private: PrivateLocations | None = None) -> JSONResponse:
    """The answer of a failed request: ``{"detail": message, "error": class name}`` with HTTP ``status``.

    With ``private``, the server's own locations in the message are written as names (see the module).
    """
    message = private.hide(str(exc)) if private is not None else str(exc)
    return JSONResponse({"detail": _cut(message, MESSAGE_CHARS), "error": type(exc).__name__}, status_code=status)


class PrivateLocations:
    """The server's storage root and catalog location, to keep out of error messages.

    Args:
        view_factory: ``as_of -> MemoryView``; its view of now names the root and the
            catalog (asked on the first error, once).
    """

    def __init__(self, view_factory: Callable[[Any], Any]) -> None:
        self._view_factory = view_factory
        self._names: list[tuple[str, str]] | None = None

    def hide(self, message: str) -> str:
        """``message`` with the storage root as ``<storage root>``, the catalog as ``<memory catalog>`` and any
        other ``file://`` URI as its last segment."""
        for location, name in self._locations():
            message = message.replace(location, name)
        return _FILE_URI.sub(lambda m: m.group(1), message)

    def _locations(self) -> list[tuple[str, str]]:
        if self._names is None:
            names: list[tuple[str, str]] = []
            try:
                view = self._view_factory(None)
                root, catalog = view.root, view.memory.catalog
                names += [(root.uri, "<storage root>"), (root.path(root.uri).rstrip("/"), "<storage root>")]
                names += [(catalog.url, "<memory catalog>"), (catalog.display, "<memory catalog>")]
            except Exception as e:  # an error message must not fail for it
                logger.warning("cannot tell the server's locations to hide from error messages: %s", e)
            # Longest first, so a root inside another location's text is replaced whole.
            self._names = sorted({(k, v) for k, v in names if k}, key=lambda kv: -len(kv[0]))
        return self._names


def validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's 422 ``detail`` with each rejected ``input`` (and message) cut to :data:`ECHO_CHARS` characters.

    A client that sent 200 MB in one field gets back its first characters and its length,
    not the 200 MB.
    """
    from fastapi.encoders import jsonable_encoder

    out = []
    for error in jsonable_encoder(list(errors)):
        error = dict(error)
        if "input" in error:
            text = json.dumps(error["input"], default=json_default_or_str)
            if len(text) > ECHO_CHARS:
                error["input"] = _cut(text, ECHO_CHARS)
        if isinstance(error.get("msg"), str):
            error["msg"] = _cut(error["msg"], MESSAGE_CHARS)
        ctx = error.get("ctx")
        if isinstance(ctx, dict):
            error["ctx"] = {
                k: v for k, v in ctx.items() if len(json.dumps(v, default=json_default_or_str)) <= ECHO_CHARS
            }
        out.append(error)
    return out


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def iso(t: datetime | None) -> str | None:
    """ISO 8601 of a datetime, ``None`` stays ``None``."""
    return t.isoformat() if t else None
