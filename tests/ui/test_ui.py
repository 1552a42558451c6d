"""Seen as a user sees it: each report asset in the Dagster UI, and its HTML report, in headless Chromium.

For every report asset of the code location (``*_report`` in ``dagster_project.definitions.defs``):
one ``dagster asset materialize`` run makes them all for one tile-month on a real instance, ``dagster-webserver``
serves that instance on 127.0.0.1, and Chromium opens the asset's page: the materialization is
there, its Markdown preview opens and shows the recorded numbers and figures (every inline PNG
decoded, naturalWidth > 0). Then Chromium opens the report's HTML from the storage root: every
figure loads, and each quantity of ``summary.json`` is in the page with its value and unit.
Screenshots go to ``test-artifacts/ui/``.

Then, with the network blocked (an offline browser context that also aborts every http(s) request), each
report's interactive map: Leaflet draws the composite and the masks as images loaded from the report's own
folder and the vector layers as SVG paths, the layer switch turns a layer off; and ``reports/index.html``
lists every report the catalog holds. Screenshots of the maps and the index go to ``test-artifacts/ui/`` too.

Run: ``.venv/bin/pytest tests/ui -m ui -s`` (needs /usr/bin/chromium; a few minutes: the memory is
built first, and the real-estate report takes most of the run).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install the apt package chromium"),
]

VIEWPORT = {"width": 1400, "height": 1000}
UI_TIMEOUT_MS = 60_000
"""How long the UI may take to show the asset page on a loaded machine, milliseconds."""


def test_report_asset_preview_and_report_html_render(
    report_asset, webserver, ui_env, ui_partition, materialized, browser, artifacts
):
    from dagster import AssetKey, DagsterInstance

    asset = report_asset
    with DagsterInstance.from_config(str(ui_env.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey(asset))
    assert event is not None and event.asset_materialization is not None, (
        f"dagster asset materialize did not materialize {asset} (exit {materialized.returncode}):\n"
        f"{_failure_of(asset, materialized.stderr)}"
    )
    assert event.asset_materialization.partition == ui_partition
    metadata = event.asset_materialization.metadata
    preview = metadata["summary"].value
    title = preview.splitlines()[0].removeprefix("###").strip()
    rows = _markdown_rows(preview)
    n_inline = preview.count("](data:image/png;base64,")
    assert title and n_inline >= 1, "the preview should have a title and at least one inline figure"

    webserver.wait_ready()
    t1 = time.perf_counter()
    page = browser.new_page(viewport=VIEWPORT)
    try:
        # The asset's page: the latest materialization, and the metadata table with the Markdown summary.
        page.goto(f"{webserver.url}/assets/{asset}")
        summary_row = page.locator("tr").filter(has=page.get_by_text("summary", exact=True))
        show = summary_row.get_by_text("[Show Markdown]")
        show.wait_for(timeout=UI_TIMEOUT_MS)
        _dismiss_community_modal(page)
        assert ui_partition in page.inner_text("body"), "the asset page should name the materialized partition"
        page.screenshot(path=artifacts / f"{asset}-asset-page.png", full_page=True)

        show.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=UI_TIMEOUT_MS)
        text = _squash(dialog.inner_text())
        assert title in text
        for name, value in rows:
            assert _squash(f"{name} {value}") in text, f"preview row {name!r} = {value!r} is not shown"
        widths = _image_widths(page, dialog.locator("img"))
        assert len(widths) == n_inline and all(w > 0 for w in widths), f"preview images {widths}"
        # Each figure fits the dialog's width: nothing is cut at its right edge.
        overflow = dialog.locator("img").evaluate_all(
            """(imgs) => imgs.map(i => { const box = i.closest('[role=dialog]').getBoundingClientRect();
                const r = i.getBoundingClientRect(); return Math.max(0, r.right - box.right); })"""
        )
        assert all(px < 1 for px in overflow), f"preview figures wider than the dialog by {overflow} px"
        page.screenshot(path=artifacts / f"{asset}-preview.png")
        page.keyboard.press("Escape")

        # The report itself, as written to the storage root.
        page.goto(metadata["report"].value)
        page.wait_for_load_state("load")
        widths = _image_widths(page, page.locator("img"))
        assert widths and all(w > 0 for w in widths), f"report figures not loaded: naturalWidth {widths}"
        summary = json.loads(Path(unquote(urlparse(metadata["summary_json"].value).path)).read_text())
        assert summary["title"] in page.inner_text("h1")
        cells = page.locator("tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")
        checked = _check_quantities(summary, cells)
        page.screenshot(path=artifacts / f"{asset}-report.png", full_page=True)
    finally:
        page.close()
    print(
        f"{asset}: UI checks {time.perf_counter() - t1:.1f} s "
        f"(all reports materialized in {materialized.seconds:.1f} s); preview: {len(rows)} rows, "
        f"{n_inline} figures; report: {len(widths)} figures, "
        f"{checked} quantities with value and unit"
    )
    assert checked >= 1, "the report should hold at least one quantity"


def _failure_of(asset: str, stderr: str) -> str:
    """The part of the run's log about ``asset`` failing (or its tail)."""
    lines = [line for line in stderr.splitlines() if asset in line and ("FAILURE" in line or "Error" in line)]
    return "\n".join(lines[-5:]) or stderr[-4000:]


def _dismiss_community_modal(page: Any) -> None:
    """Skip the "Join the Dagster community" dialog the UI shows on a fresh instance, if it is there."""
    skip = page.get_by_role("dialog").filter(has_text="Join the Dagster community").get_by_role("button", name="Skip")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        skip.wait_for(timeout=3_000)
    except PlaywrightTimeout:  # no modal this time
        return
    skip.click()
    skip.wait_for(state="detached", timeout=10_000)


def _image_widths(page: Any, images: Any) -> list[int]:
    """naturalWidth of each image once every one of them has finished loading (0: broken)."""
    page.wait_for_function("els => els.every(e => e.complete)", arg=images.element_handles(), timeout=UI_TIMEOUT_MS)
    return images.evaluate_all("els => els.map(e => e.naturalWidth)")


def _markdown_rows(md: str) -> list[tuple[str, str]]:
    """(name, value) of the preview's quantity table."""
    rows = []
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2 and cells != ["quantity", "value"] and set(cells[0]) != {"-"}:
            rows.append((cells[0], cells[1]))
    return rows


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _check_quantities(summary: dict[str, Any], cells: list[list[str]]) -> int:
    """Each quantity of each section is a table row: name, value as the report formats it, ±, unit."""
    n = 0
    for section in summary.get("sections", []):
        for name, q in (section.get("quantities") or {}).items():
            value, digits = q.get("value"), q.get("digits")
            d = 3 if digits is None else int(digits)
            if value is None:
                shown = "n/a"
            elif isinstance(value, int | float) and not isinstance(value, bool):
                shown = f"{value:.{d}f}"
            else:
                shown = str(value)
            matches = [r for r in cells if len(r) >= 4 and r[0] == name and r[1] == shown]
            assert matches, f"{section['title']}: {name} = {shown} is not in the report's tables"
            assert any(r[3] == str(q.get("unit") or "") for r in matches), f"{name}: unit {q.get('unit')!r} missing"
            if q.get("uncertainty") is not None:
                assert any(r[2] == f"{q['uncertainty']:.{d}f}" for r in matches), f"{name}: uncertainty missing"
            n += 1
    return n


def _offline_page(browser: Any) -> tuple[Any, Any, list[str]]:
    """A page of a context with the network off: offline, and every http(s) request aborted and listed."""
    context = browser.new_context(viewport=VIEWPORT, offline=True)
    blocked: list[str] = []

    def block(route: Any) -> None:
        blocked.append(route.request.url)
        route.abort()

    context.route(re.compile(r"^https?://"), block)
    page = context.new_page()
    return context, page, blocked


def test_report_interactive_map_draws_its_layers_with_the_network_off(
    report_asset, ui_env, materialized, browser, artifacts
):
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(ui_env.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey(report_asset))
    assert event is not None and event.asset_materialization is not None, _failure_of(report_asset, materialized.stderr)
    metadata = event.asset_materialization.metadata
    report_url = metadata["report"].value
    folder = report_url.rsplit("/", 1)[0] + "/"
    summary = json.loads(Path(unquote(urlparse(metadata["summary_json"].value).path)).read_text())
    layers = summary["map"]["layers"]
    rasters = [x for x in layers if x["file"].endswith(".png")]
    vectors = [x for x in layers if x["file"].endswith(".geojson") and x["features"]]
    context, page, blocked = _offline_page(browser)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(report_url)
        page.wait_for_load_state("load")
        webmap = page.locator("#webmap")
        webmap.scroll_into_view_if_needed()
        images = webmap.locator("img.leaflet-image-layer")
        images.first.wait_for(timeout=UI_TIMEOUT_MS)
        widths = _image_widths(page, images)
        srcs = images.evaluate_all("els => els.map(e => e.src)")
        assert widths and all(w > 0 for w in widths), f"map layers not drawn: naturalWidth {widths}"
        assert all(src.startswith(folder) for src in srcs), f"map layers not from {folder}: {srcs}"
        assert any(src.endswith("/map_composite.png") for src in srcs), "the composite is not drawn"
        labels = webmap.locator(".leaflet-control-layers-overlays label").all_inner_texts()
        assert [x.strip() for x in labels] == [x["label"] for x in layers], "the layer switch lists every layer"
        n_paths = webmap.locator("svg path").count()
        if vectors:
            visible = [v for v in summary["map"]["layers"] if v in vectors]
            assert n_paths > 0, f"vector layers {[v['key'] for v in visible]} drew no SVG path"
        page.wait_for_timeout(300)  # let the fitted zoom settle before the picture
        webmap.screenshot(path=artifacts / f"{report_asset}-map.png")
        # Switching the composite off removes its image; on again brings it back.
        composite = webmap.locator(".leaflet-control-layers-overlays label").filter(has_text=rasters[0]["label"])
        drawn = webmap.locator("img.leaflet-image-layer[src='map_composite.png']")
        assert drawn.count() == 1
        composite.locator("input").uncheck()
        assert drawn.count() == 0
        composite.locator("input").check()
        assert drawn.count() == 1
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"
    assert not blocked, f"the page asked the network for {blocked}"
    assert all(u.startswith(("file://", "data:")) for u in requests), [u for u in requests if "://" in u][:5]
    print(
        f"{report_asset}: map of {len(rasters)} image layers ({', '.join(x['key'] for x in rasters)}), "
        f"{len(vectors)} vector layers with features, {n_paths} SVG paths, {len(requests)} requests, all local"
    )


def test_report_index_lists_every_report_the_catalog_holds(ui_env, materialized, browser, artifacts):
    from dagster import AssetKey, DagsterInstance

    from memories.memory.catalog import MemoryCatalog

    from .conftest import report_assets

    catalog = MemoryCatalog.open(ui_env.folder / "catalog.sqlite")
    held = {
        (asset.removesuffix("_report"), r.tile, r.partition) for asset in report_assets() for r in catalog.query(asset)
    }
    assert len(held) == len(report_assets()), f"the run should have recorded one report per asset: {held}"
    with DagsterInstance.from_config(str(ui_env.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey(report_assets()[0]))
    assert event is not None and event.asset_materialization is not None
    index_url = event.asset_materialization.metadata["report_index"].value
    context, page, blocked = _offline_page(browser)
    try:
        page.goto(index_url)
        page.wait_for_load_state("load")
        listed = page.locator("a.report").evaluate_all(
            "els => els.map(e => [e.dataset.kind, e.dataset.tile, e.dataset.month, e.dataset.alert])"
        )
        assert {(k, t, m) for k, t, m, _ in listed} == held and len(listed) == len(held)
        alerts = {(k, t, m) for k, t, m, a in listed if a == "yes"}
        for kind, tile, month in held:
            summary = json.loads(
                (ui_env.folder / "store" / "reports" / kind / tile / month / "summary.json").read_text()
            )
            assert ((kind, tile, month) in alerts) == bool(summary.get("alerts")), f"{kind}: alert flag"
        assert page.locator("#tile-map rect").count() == len({t for _, t, _ in held})
        page.screenshot(path=artifacts / "reports-index.png", full_page=True)
        page.locator("a.report").first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("/report.html") and page.locator("#webmap").count() == 1
    finally:
        context.close()
    assert not blocked, f"the index asked the network for {blocked}"
    print(f"index: {len(listed)} reports listed ({len(alerts)} with alerts), as the catalog holds")
