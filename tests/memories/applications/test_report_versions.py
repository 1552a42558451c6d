"""Versioned reports: each write is a new immutable set of files, committed by replacing a pointer.

The temporal memory loads the summary of exactly the version the catalog recorded,
after the report was rewritten; a write that dies before its pointer leaves the
previous version current.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memories.applications.environmental import REPORT_KIND
from memories.applications.report import Report
from memories.errors import StorageError
from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory, load_report_version
from memories.months import month_range
from memories.store import StorageRoot

TILE, MONTH = "33TVM", "2023-06"
ASSET = "environmental_report"


def _report(ndvi_mean: float, figures: dict[str, bytes]) -> Report:
    summary = {"ndvi_mean": ndvi_mean, "forest_loss": {"area_ha": 2.5, "unit": "ha"}}
    return Report(REPORT_KIND, TILE, MONTH, f"NDVI {ndvi_mean}", summary, figures)


def _record(cat: MemoryCatalog, report: Report):
    start, end = month_range(MONTH)
    return cat.record(
        asset=ASSET,
        uri=report.files["report.html"],
        tile=TILE,
        partition=MONTH,
        valid_from=start,
        valid_to=end,
        stats={"ndvi_mean": report.summary["ndvi_mean"]},
        version_id=report.version,
    )


def test_as_of_before_a_rewrite_loads_the_first_reports_summary_and_files(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    cat = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    memory = TemporalMemory(cat, root)
    first = _report(0.61, {"ndvi_timeseries": b"png-series-1", "band_importance": b"png-importance-1"})
    first.write(root)
    r1 = _record(cat, first)
    between = datetime.now(UTC)
    second = _report(0.42, {"ndvi_timeseries": b"png-series-2"})
    second.write(root)
    r2 = _record(cat, second)

    assert first.version and second.version and first.version < second.version
    assert (r1.version_id, r2.version_id) == (first.version, second.version)
    html_uri = root.report_uri(REPORT_KIND, TILE, MONTH, "report.html")
    assert root.current_version(html_uri) == second.version  # the pointer names the second
    assert root.report_versions(REPORT_KIND, TILE, MONTH) == [first.version, second.version]

    [then] = memory.query(tile=TILE, asset=ASSET, time_point=MONTH, as_of=between)
    assert then.id == r1.id
    old = memory.load(then)
    assert old["ndvi_mean"] == 0.61 and old["forest_loss"] == {"area_ha": 2.5, "unit": "ha"}
    assert old["version"] == first.version
    assert sorted(old["files"]) == ["band_importance.png", "ndvi_timeseries.png", "report.html", "summary.json"]
    # The first version's files are still there, byte for byte, after the rewrite.
    assert root.read_bytes(old["files"]["ndvi_timeseries.png"]) == b"png-series-1"
    assert root.read_bytes(old["files"]["band_importance.png"]) == b"png-importance-1"
    assert root.read_bytes(old["files"]["report.html"]).decode() == first.html
    assert json.loads(root.read_bytes(old["files"]["summary.json"])) == first.json()

    [now] = memory.query(tile=TILE, asset=ASSET, time_point=MONTH)
    new = memory.load(now)
    assert new["ndvi_mean"] == 0.42 and new["version"] == second.version
    assert sorted(new["files"]) == ["ndvi_timeseries.png", "report.html", "summary.json"]
    # The plain files users open show the current version.
    assert root.read_bytes(html_uri).decode() == second.html
    assert root.read_bytes(root.report_uri(REPORT_KIND, TILE, MONTH, "ndvi_timeseries.png")) == b"png-series-2"
    assert second.files["summary.json"] == root.report_uri(REPORT_KIND, TILE, MONTH, "summary.json")
    assert json.loads(root.read_bytes(second.files["summary.json"])) == second.json()


class _Killed(BaseException):
    """The process dies here (raised instead of SIGKILL at the commit point)."""


class _DiesAtPointer(StorageRoot):
    """A storage root whose process dies just before the pointer of a version is replaced."""

    def write_bytes(self, uri: str, data: bytes) -> None:
        if uri.endswith(".current.json"):
            raise _Killed(uri)
        super().write_bytes(uri, data)


def test_write_killed_before_the_pointer_leaves_the_previous_version_current(tmp_path):
    uri = (tmp_path / "store").as_uri()
    root = StorageRoot(uri)
    first = _report(0.61, {"ndvi_timeseries": b"png-series-1"})
    first.write(root)
    second = _report(0.42, {"ndvi_timeseries": b"png-series-2"})
    with pytest.raises(_Killed):
        second.write(_DiesAtPointer(uri))

    html_uri = root.report_uri(REPORT_KIND, TILE, MONTH, "report.html")
    assert root.current_version(html_uri) == first.version
    assert root.read_bytes(html_uri).decode() == first.html
    assert root.read_bytes(root.report_uri(REPORT_KIND, TILE, MONTH, "ndvi_timeseries.png")) == b"png-series-1"
    current = load_report_version(root, REPORT_KIND, TILE, MONTH)
    assert current["ndvi_mean"] == 0.61 and current["version"] == first.version


def test_unknown_report_version_is_an_error_naming_the_stored_ones(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    with pytest.raises(StorageError, match="no versioned report"):
        load_report_version(root, REPORT_KIND, TILE, MONTH)
    report = _report(0.5, {"ndvi_timeseries": b"png"})
    report.write(root)
    with pytest.raises(StorageError, match=report.version or "?"):
        load_report_version(root, REPORT_KIND, TILE, MONTH, "20000101T000000000000Z-deadbeef")
    assert root.report_parts(report.files["report.html"]) == (REPORT_KIND, TILE, MONTH, "report.html")
    assert root.report_parts(root.vector_uri("roads", TILE, MONTH)) is None


KILLED_REFRESH = textwrap.dedent(
    """
    import os, signal, sys
    from memories.applications.report import Report
    from memories.store import StorageRoot

    root_uri, kill_at = sys.argv[1], int(sys.argv[2])
    steps = [0]

    def dying(real):
        def step(*args, **kwargs):
            steps[0] += 1
            if steps[0] == kill_at:  # SIGKILL before the kill_at-th rename or removal of the write
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return step

    os.replace, os.unlink = dying(os.replace), dying(os.unlink)
    figures = {"ndvi_timeseries": b"png-series-2", "change_map": b"png-change-2"}
    summary = {"ndvi_mean": 0.42, "sections": [{"title": "Figures", "figures": list(figures)}]}
    Report("environmental", "33TVM", "2023-06", "NDVI 0.42", summary, figures).write(StorageRoot(root_uri))
    """
)


def _shown(ndvi_mean: float, figures: dict[str, bytes]) -> Report:
    """A report whose page shows every figure (as ``KILLED_REFRESH`` builds it)."""
    summary = {"ndvi_mean": ndvi_mean, "sections": [{"title": "Figures", "figures": list(figures)}]}
    return Report(REPORT_KIND, TILE, MONTH, f"NDVI {ndvi_mean}", summary, figures)


def _plain_view(root: StorageRoot) -> tuple[str, dict[str, bytes], dict]:
    """What a browser opening the plain report.html sees: the page, the figures it references, and summary.json."""
    html = root.read_bytes(root.report_uri(REPORT_KIND, TILE, MONTH, "report.html")).decode()
    names = re.findall(r'src="([^"/]+\.png)"', html)
    figures = {n: root.read_bytes(root.report_uri(REPORT_KIND, TILE, MONTH, n)) for n in names}
    summary = json.loads(root.read_bytes(root.report_uri(REPORT_KIND, TILE, MONTH, "summary.json")))
    return html, figures, summary


def test_report_refresh_killed_at_any_rename_never_shows_a_mix_of_versions(tmp_path):
    root = StorageRoot((tmp_path / "store").as_uri())
    first = _shown(0.61, {"ndvi_timeseries": b"png-series-1", "band_importance": b"png-importance-1"})
    first.write(root)
    second = _shown(0.42, {"ndvi_timeseries": b"png-series-2", "change_map": b"png-change-2"})
    assert 'src="change_map.png"' in second.html and 'src="band_importance.png"' in first.html
    expected = {
        "first": (first.html, {f"{k}.png": v for k, v in first.figures.items()}, first.json()),
        "second": (second.html, {f"{k}.png": v for k, v in second.figures.items()}, second.json()),
    }
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    seen = []
    for kill_at in range(1, 30):
        child = subprocess.run(
            [sys.executable, "-c", KILLED_REFRESH, root.uri, str(kill_at)], env=env, capture_output=True, timeout=120
        )
        if child.returncode == 0:
            break  # the write has fewer renames than kill_at: it completed
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()
        view = _plain_view(root)
        matches = [name for name, want in expected.items() if view == want]
        assert matches, f"killed before rename {kill_at}: the plain files mix versions"
        seen.append(matches[0])
        # The first version stays readable by its id, whatever the kill left.
        assert load_report_version(root, REPORT_KIND, TILE, MONTH, first.version)["ndvi_mean"] == 0.61
        first.write(root)  # back to the first version for the next kill point
        assert _plain_view(root) == expected["first"]
    # Killed before the switch the plain files show the first version, after it the second; never a mix.
    assert len(seen) >= 6 and seen[0] == "first" and seen[-1] == "second", seen
    assert _plain_view(root) == expected["second"]
    folder = Path(root.local_path(root.report_uri(REPORT_KIND, TILE, MONTH, "report.html"))).parent
    # No temporary left beside the plain files or the pointer (the killed writes' incomplete version
    # folders, without summary.json, are never listed as versions).
    left = [p.name for d in (folder, folder / "_versions") for p in d.iterdir() if ".tmp-" in p.name]
    assert left == [], "the writes after the kills left temporaries"
    assert root.report_versions(REPORT_KIND, TILE, MONTH)[-1] == root.current_version(
        root.report_uri(REPORT_KIND, TILE, MONTH, "report.html")
    )
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("_")) == [
        "change_map.png",
        "ndvi_timeseries.png",
        "report.html",
        "summary.json",
    ]  # the first version's band_importance.png is gone from the plain view
