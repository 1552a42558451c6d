"""``reports/index.html``: every report of a storage root by tile, month and kind, alerts first, tiles on a map.

:func:`write_index` scans the current ``summary.json`` of every report folder
(``reports/<kind>/<tile>/<month>/``), so the index holds exactly the reports the
root holds, and writes the page with :meth:`StorageRoot.write_bytes` (one atomic
rename on a local root: a reader sees the old page or the new). ``Report.write``
calls it after each report; two writers at once each write a complete page, and
the later one also lists the other's report unless both scanned before either
published (the next write repairs that). The page is plain HTML with an inline SVG
map of the tiles' footprints (WGS 84): it needs no script and no network.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from memories.applications.render import render_html
from memories.store.paths import StorageRoot

__all__ = ["IndexEntry", "index_entries", "render_index", "write_index"]


@dataclass(frozen=True)
class IndexEntry:
    """One report of the index: its key, title, alerts and footprint (west, south, east, north degrees)."""

    kind: str
    tile: str
    month: str
    title: str
    alerts: tuple[str, ...] = ()
    bbox_wgs84: tuple[float, float, float, float] | None = None
    generated: str | None = None

    @property
    def href(self) -> str:
        """The report's page relative to ``reports/``."""
        return f"{self.kind}/{self.tile}/{self.month}/report.html"


def index_entries(root: StorageRoot) -> list[IndexEntry]:
    """Every report under ``root`` with a current ``summary.json``, by tile, month and kind."""
    pattern = root.path(f"{root.uri}/reports/*/*/*/summary.json")
    out = []
    for path in root.fs.glob(pattern):
        kind, tile, month = path.rstrip("/").split("/")[-4:-1]
        try:
            s = json.loads(root.fs.cat_file(path))
        except (OSError, ValueError):  # a dangling link of an interrupted first write: not a report yet
            continue
        bbox = (s.get("map") or {}).get("bbox_wgs84") or (s.get("grid") or {}).get("bbox_wgs84")
        out.append(
            IndexEntry(
                kind=kind,
                tile=tile,
                month=month,
                title=str(s.get("title") or f"{kind} {tile} {month}"),
                alerts=tuple(str(a) for a in s.get("alerts") or []),
                bbox_wgs84=tuple(float(v) for v in bbox) if bbox else None,  # type: ignore[arg-type]
                generated=s.get("generated"),
            )
        )
    return sorted(out, key=lambda e: (e.tile, e.month, e.kind))


def write_index(root: StorageRoot) -> str:
    """Rewrite ``reports/index.html`` from the reports ``root`` holds (atomically); returns its URI."""
    uri = root.report_index_uri()
    root.write_bytes(uri, render_index(index_entries(root)).encode())
    return uri


def render_index(entries: list[IndexEntry]) -> str:
    """The index page of ``entries``."""
    kinds = sorted({e.kind for e in entries})
    tiles: dict[str, _Tile] = {}
    for e in entries:
        t = tiles.setdefault(e.tile, _Tile(e.tile))
        t.cells.setdefault(e.month, {})[e.kind] = e
        if e.bbox_wgs84:
            t.bbox = e.bbox_wgs84
        t.alerts += len(e.alerts)
    return render_html(
        "index.html.j2",
        entries=entries,
        alerts=[e for e in entries if e.alerts],
        kinds=kinds,
        tiles=sorted(tiles.values(), key=lambda t: t.tile),
        svg=_tile_map(list(tiles.values())),
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


@dataclass
class _Tile:
    tile: str
    bbox: tuple[float, float, float, float] | None = None
    cells: dict[str, dict[str, IndexEntry]] = field(default_factory=dict)
    alerts: int = 0

    @property
    def months(self) -> list[str]:
        return sorted(self.cells)


SVG_WIDTH = 420
SVG_HEIGHT = 260


def _tile_map(tiles: list[_Tile]) -> dict[str, Any]:
    """Rectangles (SVG pixels) of the tiles' footprints, longitude scaled by cos(latitude) so shapes keep."""
    placed = [t for t in tiles if t.bbox]
    if not placed:
        return {"width": SVG_WIDTH, "height": SVG_HEIGHT, "rects": []}
    w = min(t.bbox[0] for t in placed if t.bbox)
    s = min(t.bbox[1] for t in placed if t.bbox)
    e = max(t.bbox[2] for t in placed if t.bbox)
    n = max(t.bbox[3] for t in placed if t.bbox)
    k = math.cos(math.radians((s + n) / 2))
    pad = 0.15 * max((e - w) * k, n - s, 1e-3)
    span_x, span_y = (e - w) * k + 2 * pad, (n - s) + 2 * pad
    scale = min((SVG_WIDTH - 20) / span_x, (SVG_HEIGHT - 20) / span_y)
    ox, oy = (SVG_WIDTH - span_x * scale) / 2, (SVG_HEIGHT - span_y * scale) / 2  # centred
    rects = []
    for t in placed:
        assert t.bbox is not None
        x = ox + ((t.bbox[0] - w) * k + pad) * scale
        y = oy + (n + pad - t.bbox[3]) * scale
        rects.append(
            {
                "tile": t.tile,
                "x": round(x, 1),
                "y": round(y, 1),
                "w": round(max(2.0, (t.bbox[2] - t.bbox[0]) * k * scale), 1),
                "h": round(max(2.0, (t.bbox[3] - t.bbox[1]) * scale), 1),
                "alert": t.alerts > 0,
                "bbox": t.bbox,
            }
        )
    return {"width": SVG_WIDTH, "height": SVG_HEIGHT, "rects": rects}
