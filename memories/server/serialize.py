"""The query server's answers as JSON: catalog records, GeoJSON features and events, strict JSON of anything.

Strict JSON has no NaN or infinities: :func:`json_response` writes them as ``null``
(a month without a clear pixel has a NaN mean), and numpy scalars and arrays,
datetimes, tuples and sets as their plain JSON counterparts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse, Response

from memories.memory.catalog import Materialization

__all__ = ["error_response", "event_feature", "geojson_features", "iso", "json_response", "record_dict"]


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
    text = json.dumps(_finite(payload), default=_json_default, allow_nan=False)
    return Response(text, media_type="application/json")


def error_response(status: int, exc: Exception) -> JSONResponse:
    """The answer of a failed request: ``{"detail": message, "error": class name}`` with HTTP ``status``."""
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)


def iso(t: datetime | None) -> str | None:
    """ISO 8601 of a datetime, ``None`` stays ``None``."""
    return t.isoformat() if t else None


def _finite(o: Any) -> Any:
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, set | frozenset):
        return sorted(o, key=str)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
