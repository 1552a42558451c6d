"""Seen as a user sees it: each report asset in the Dagster UI, and its HTML report, in headless Chromium.

For every report asset of the code location (``*_report`` in ``dagster_project.definitions.defs``):
one ``dagster asset materialize`` run makes them all for one tile-month on a real instance, ``dagster-webserver``
serves that instance on 127.0.0.1, and Chromium opens the asset's page: the materialization is
there, its Markdown preview opens and shows the recorded numbers and figures (every inline PNG
decoded, naturalWidth > 0). Then Chromium opens the report's HTML from the storage root: every
figure loads, and each quantity of ``summary.json`` is in the page with its value and unit.
Screenshots go to ``test-artifacts/ui/``.

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
