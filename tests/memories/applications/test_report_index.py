"""reports/index.html (memories.applications.report_index) and the preview's figure width (Report.markdown)."""

from __future__ import annotations

import base64
import io
import os
import re

import numpy as np

from memories.applications.report import PREVIEW_WIDTH_PX, Report, png, pyplot
from memories.store.paths import StorageRoot


def _report(kind: str, tile: str, month: str, alerts: list[str]) -> Report:
    summary = {"alerts": alerts, "sections": [], "grid": {"bbox_wgs84": [14.48, 46.04, 14.50, 46.05]}}
    return Report(kind, tile, month, f"{kind} of {tile}, {month}", summary)


def test_every_written_report_is_in_the_index_with_its_alerts_highlighted(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    written = [
        _report("disaster", "33TVM", "2023-07", ["420.0 ha under water"]),
        _report("disaster", "33TVM", "2023-08", []),
        _report("urban", "34TDS", "2023-08", []),
    ]
    for r in written:
        r.write(root)
    index = tmp_path / "store" / "reports" / "index.html"
    html = index.read_text()
    links = re.findall(
        r'data-kind="([^"]+)" data-tile="([^"]+)" data-month="([^"]+)" data-alert="(yes|no)" href="([^"]+)"', html
    )
    assert sorted(links) == sorted(
        (r.kind, r.tile, r.month, "yes" if r.summary["alerts"] else "no", f"{r.kind}/{r.tile}/{r.month}/report.html")
        for r in written
    )
    for *_, href in links:
        assert (index.parent / href).is_file()  # every link opens a report
    assert "420.0 ha under water" in html.split('id="alerts"')[1].split("</div>")[0]
    assert html.count("<rect") == 2  # the tile map: one footprint per tile
    assert not [n for n in os.listdir(index.parent) if n.startswith(".")]  # written by rename, no temporary left


def test_preview_figures_are_scaled_to_the_dagster_dialogs_width():
    from PIL import Image

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(16, 4), dpi=100)  # 1600 px wide, as a three-panel map
    ax.plot(np.arange(100), np.arange(100) % 7)
    wide = png(fig)
    report = Report("disaster", "33TVM", "2023-07", "t", {}, figures={"maps": wide}, headline=["maps"])
    [data] = re.findall(r"\(data:image/png;base64,([^)]+)\)", report.markdown())
    small, big = Image.open(io.BytesIO(base64.b64decode(data))), Image.open(io.BytesIO(wide))
    assert big.width > PREVIEW_WIDTH_PX and small.width == PREVIEW_WIDTH_PX
    assert abs(small.height / small.width - big.height / big.width) < 0.01  # aspect kept
    assert report.figures["maps"] == wide  # the page keeps the full-size figure


def test_report_and_index_render_through_one_template_module():
    """The report index renders with the reports' templates without importing the report module back (no cycle)."""
    import ast
    import inspect

    import memories.applications.render as render
    import memories.applications.report as report
    import memories.applications.report_index as report_index

    assert report.render_html is render.render_html and report.fmt is render.fmt
    assert report_index.render_html is render.render_html
    tree = ast.parse(inspect.getsource(report_index))  # imports anywhere in the module, inside functions too
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "memories.applications.report" not in imported
