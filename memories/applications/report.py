"""The one home of application reports: quantities, figures, HTML, versioned writes, previews.

A report is keyed by ``(kind, tile, month)`` (``kind`` names the application:
``environmental``, ``disaster``, ...). Every number in it is a *quantity*, a dict
``{"value", "unit", "period", "uncertainty", "note"}`` made by :func:`quantity`, so
the JSON summary, the HTML table and the Markdown preview all show unit, period
and uncertainty the same way. Figures are PNG bytes rendered with matplotlib's
Agg backend (:func:`png`); the data behind each figure is kept in the summary
under ``figure_data`` so the JSON holds every number a figure shows.

``Report.write(root)`` writes the whole set of files as one immutable version
(``StorageRoot.report_version_uri``, ``summary.json`` last), replaces the
version pointer atomically (the commit point), then switches the plain files
users open to it (``StorageRoot.publish_report``: on a local root all at once).
A write killed at any point leaves the previous version current.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from markupsafe import Markup

from memories.applications.png import PIL_KWARGS, png_bytes
from memories.applications.render import TEMPLATES, fmt, render_html
from memories.applications.report_index import write_index
from memories.applications.webmap import WebMap, inline_webmap
from memories.json_values import json_default
from memories.store.paths import StorageRoot, new_version_id

__all__ = [
    "PREVIEW_WIDTH_PX",
    "TEMPLATES",
    "Report",
    "fit_width",
    "fmt",
    "km_extent",
    "png",
    "pyplot",
    "quantity",
    "render_html",
]

PREVIEW_WIDTH_PX = 560
"""Widest figure of the Markdown preview, pixels: the Dagster UI's Markdown dialog shows images at their own
size and cuts what is wider than its body (its sanitizer drops ``style`` and sizing attributes), so the
preview's figures are scaled down to fit it."""


def quantity(
    value: float | int | None,
    unit: str,
    *,
    period: str | None = None,
    uncertainty: float | None = None,
    note: str | None = None,
    digits: int = 3,
) -> dict[str, Any]:
    """A number with its unit, the period it describes and its uncertainty (± in the same unit).

    ``value`` None (or NaN) means "not available"; ``uncertainty`` None means none is
    known (not zero). Values are rounded to ``digits`` significant decimals for display
    only in renderers; the JSON keeps full precision.
    """
    v = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    if isinstance(v, np.generic):
        v = v.item()
    u = None if uncertainty is None or (isinstance(uncertainty, float) and math.isnan(uncertainty)) else uncertainty
    if isinstance(u, np.generic):
        u = u.item()
    out: dict[str, Any] = {"value": v, "unit": unit, "period": period, "uncertainty": u}
    if note:
        out["note"] = note
    out["digits"] = digits
    return out


@dataclass
class Report:
    """A built report: a summary (JSON-able, quantities inside), PNG figures and the HTML page.

    Args:
        kind: application name, the first part of the report's key and folder.
        tile: MGRS tile id.
        month: ``YYYY-MM`` the report is about (its period ends there).
        title: heading of the page and of the preview.
        summary: everything the report states; must be JSON-serializable.
        figures: figure name -> PNG bytes.
        captions: figure name -> caption (units, period, what is shown).
        headline: figure names (at most two) shown in the Markdown preview.
    """

    kind: str
    tile: str
    month: str
    title: str
    summary: dict[str, Any]
    figures: dict[str, bytes] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    template: str = "report.html.j2"
    files: dict[str, str] = field(default_factory=dict)
    """File name -> URI of the plain (current) file, once written."""
    version: str | None = None
    version_files: dict[str, str] = field(default_factory=dict)
    webmap: WebMap | None = None
    """The page's interactive map (:mod:`memories.applications.webmap`); its files are written with the page."""

    @property
    def html(self) -> str:
        """The page, figures referenced as sibling PNG files."""
        figures = {k: f"{k}.png" for k in self.figures}
        return render_html(self.template, report=self, s=self.summary, figures=figures, webmap=self._webmap_html())

    def html_inline(self) -> str:
        """The page with figures embedded as data URIs (one self-contained file, e.g. for an HTTP answer)."""
        figures = {k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in self.figures.items()}
        html = render_html(self.template, report=self, s=self.summary, figures=figures, webmap=self._webmap_html())
        if self.webmap is None:
            return html
        map_files = self.webmap.files()
        return inline_webmap(html, map_files.__getitem__)

    def _webmap_html(self) -> Markup:
        """The interactive map's block of the page (empty without a map); trusted HTML built by WebMap."""
        return Markup(self.webmap.html()) if self.webmap is not None else Markup("")

    @property
    def quantities(self) -> dict[str, dict[str, Any]]:
        """Every quantity of the report's sections by its label (a later section's label wins)."""
        return {
            name: q for section in self.summary.get("sections", []) for name, q in section.get("quantities", {}).items()
        }

    def json(self) -> dict[str, Any]:
        """The summary with the report's key and title (what ``summary.json`` holds)."""
        out = {"kind": self.kind, "tile": self.tile, "month": self.month, "title": self.title, **self.summary}
        if self.webmap is not None:
            out["map"] = self.webmap.summary()
        return out

    def write(self, root: StorageRoot) -> dict[str, str]:
        """Write the report as a new version; returns file name -> URI of the plain files."""
        payload = {f"{k}.png": v for k, v in self.figures.items()}
        if self.webmap is not None:
            payload.update(self.webmap.files())
        payload["report.html"] = self.html.encode()
        payload["summary.json"] = json.dumps(self.json(), indent=2, default=json_default).encode()
        now = datetime.now(UTC)
        version = new_version_id(now)
        version_files = {}
        for name, data in payload.items():  # summary.json last: its presence marks the version complete
            uri = root.report_version_uri(self.kind, self.tile, self.month, version, name)
            root.write_bytes(uri, data)
            version_files[name] = uri
        html_uri = root.report_uri(self.kind, self.tile, self.month, "report.html")
        pointer = {
            "version": version,
            "written_at": now.isoformat(),
            "files": {name: len(data) for name, data in payload.items()},
        }
        root.write_bytes(root.version_pointer_uri(html_uri), json.dumps(pointer).encode())
        files = root.publish_report(self.kind, self.tile, self.month, version, payload)
        self.version, self.version_files, self.files = version, version_files, files
        write_index(root)
        return files

    def markdown(self, rows: list[tuple[str, dict[str, Any] | str]] | None = None, *, alert: str | None = None) -> str:
        """A Markdown preview for the Dagster UI: title, alert, a table of quantities, headline figures inline."""
        lines = [f"### {self.title}", ""]
        if alert:
            lines += [f"> **ALERT** {alert}", ""]
        if rows:
            lines += ["| quantity | value |", "| --- | --- |"]
            lines += [f"| {name} | {v if isinstance(v, str) else fmt(v)} |" for name, v in rows]
            lines.append("")
        for name in self.headline[:2]:
            if name in self.figures:
                data = base64.b64encode(fit_width(self.figures[name], PREVIEW_WIDTH_PX)).decode()
                lines += [f"![{name}](data:image/png;base64,{data})", ""]
        return "\n".join(lines)


def fit_width(data: bytes, width_px: int) -> bytes:
    """PNG ``data`` scaled down (Lanczos, aspect kept) to at most ``width_px`` pixels wide; unchanged if narrower."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    if img.width <= width_px:
        return data
    small = img.resize((width_px, max(1, round(img.height * width_px / img.width))), Image.Resampling.LANCZOS)
    return png_bytes(small)


def png(fig: Any) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    # bbox_inches="tight": legends placed outside the axes stay in the picture
    fig.savefig(buf, format="png", bbox_inches="tight", pil_kwargs=PIL_KWARGS)
    plt.close(fig)
    return buf.getvalue()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def km_extent(grid: Any) -> tuple[float, float, float, float]:
    """``imshow`` extent of a tile in km from its south-west corner."""
    x0, y0, x1, y1 = grid.bounds
    return (0.0, (x1 - x0) / 1000, 0.0, (y1 - y0) / 1000)
