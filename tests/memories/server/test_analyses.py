"""Analyses on demand over HTTP: the server answers what the application computes, and stores nothing."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import pytest

from memories.applications import application
from memories.memory.temporal import TemporalMemory
from memories.server import MemoriesServer
from tests.memories.applications.helpers import FLOOD_AREA_REL_TOLERANCE

KIND = "historical"
"""The application run on demand here (the quickest of the five on this memory)."""
HEALTH_DURING_ANALYSIS_S = 1.0
"""Most seconds ``/health`` may take while an analysis runs (the analysis itself takes seconds)."""
VOLATILE = ("generated",)
"""Keys of a report that differ between two runs (the build time)."""


@pytest.fixture(scope="module")
def app_server(app_memory: Any, served_memory: Any) -> Iterator[tuple[MemoriesServer, httpx.Client]]:
    with MemoriesServer(TemporalMemory(app_memory.catalog, app_memory.root), token=served_memory.token, port=0) as s:
        with httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {served_memory.token}"}, timeout=300) as c:
            yield s, c


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    """The report as strict JSON reads it back (numpy as plain numbers, NaN and infinities as null, tuples as
    lists, keys as strings), without the keys that differ between two runs."""
    plain = json.loads(json.dumps(_plain(report), allow_nan=False))
    return {k: v for k, v in plain.items() if k not in VOLATILE}


def _plain(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        o = o.tolist()
    elif isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_plain(v) for v in o]
    if isinstance(o, set | frozenset):
        return [_plain(v) for v in sorted(o, key=str)]
    if isinstance(o, datetime):
        return o.isoformat()
    return o


def test_an_analysis_on_demand_answers_the_applications_report_without_storing_it(app_memory, app_server):
    server, client = app_server
    month = app_memory.months[-1]
    reports_before = app_memory.root.exists(app_memory.root.uri + "/reports")
    records_before = len(app_memory.catalog.query(f"{KIND}_report"))

    answer = client.post(f"/v1/analyses/{KIND}", json={"tile": app_memory.tile, "month": month})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    expected = application(KIND, app_memory.view).report(app_memory.tile, month)
    assert (got["kind"], got["tile"], got["month"]) == (KIND, app_memory.tile, month)
    assert _stable(got) == _stable(expected.json())
    assert got["sections"] and got["figure_data"]

    # The analysis runs in the thread pool: the server answers other requests meanwhile.
    pages: list[httpx.Response] = []
    body = {"tile": app_memory.tile, "month": month, "format": "html"}
    worker = threading.Thread(target=lambda: pages.append(client.post(f"/v1/analyses/{KIND}", json=body)))
    worker.start()
    time.sleep(0.3)
    started = time.perf_counter()
    assert httpx.get(f"{server.url}/health").status_code == 200
    health_s = time.perf_counter() - started
    in_flight = worker.is_alive()
    worker.join()
    print(f"\n/health answered in {health_s * 1000:.0f} ms while the {KIND} analysis ran")
    assert in_flight and health_s < HEALTH_DURING_ANALYSIS_S
    [page] = pages
    assert page.headers["content-type"].startswith("text/html")
    assert page.text.count('<img src="data:image/png;base64,') == len(expected.figures) > 0
    assert expected.title in page.text

    # Nothing was written: no report files, no catalog record.
    assert app_memory.root.exists(app_memory.root.uri + "/reports") == reports_before
    assert len(app_memory.catalog.query(f"{KIND}_report")) == records_before


def test_an_analysis_as_of_before_the_memory_existed_is_a_404_naming_the_missing_input(app_memory, app_server):
    _, client = app_server
    body = {"tile": app_memory.tile, "month": app_memory.months[-1], "as_of": "2000-01-01T00:00:00Z"}
    answer = client.post(f"/v1/analyses/{KIND}", json=body)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "MissingDataError" and "materialize" in answer.json()["detail"]
    unknown = client.post("/v1/analyses/weather", json={"tile": app_memory.tile, "month": app_memory.months[-1]})
    assert unknown.status_code == 404 and "real_estate" in unknown.json()["detail"]
    kinds = client.get("/v1/analyses").json()["kinds"]
    assert kinds == ["disaster", "environmental", "historical", "real_estate", "urban"]


def test_a_property_is_analysed_at_an_address_the_memory_knows(app_memory, app_server):
    _, client = app_server
    month = app_memory.months[-1]
    buildings = app_memory.view.layers(app_memory.tile, month, ["buildings"])["buildings"]
    addressed = buildings[buildings["addr:street"].notna() & buildings["addr:housenumber"].notna()]
    row = addressed.iloc[0]
    address = f"{row['addr:street']} {row['addr:housenumber']}"
    first = app_memory.months[-3]  # a short period keeps the analysis quick: June (before) to August (after the flood)
    body = {"address": address, "time_range": [first, month], "include_neighborhood": False}
    answer = client.post("/v1/property", json=body)
    assert answer.status_code == 200, answer.text
    expected = application("real_estate", app_memory.view).analyze_property_sync(
        address=address, time_range=(first, month), include_neighborhood=False
    )
    assert _stable(answer.json()) == _stable(expected.to_dict())

    nowhere = client.post("/v1/property", json={**body, "address": "Nowhere Street 999"})
    assert nowhere.status_code == 404 and "Nowhere Street 999" in nowhere.json()["detail"]


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("environmental", "forest_loss"),
        ("disaster", "disaster"),
        ("urban", "urban"),
        ("historical", "historical"),
        ("real_estate", "real_estate"),
    ],
)
def test_every_application_is_reachable_over_http_with_its_numbers(app_memory, app_server, kind, key):
    """Each of the five analyses answers over HTTP for the flood month what the application's own report
    says, value for value (strict JSON: NaN as null), with titled sections of quantities (each with a unit)."""
    _, client = app_server
    answer = client.post(f"/v1/analyses/{kind}", json={"tile": app_memory.tile, "month": "2023-07"})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    expected = application(kind, app_memory.view).report(app_memory.tile, "2023-07")
    assert got["kind"] == kind and got["month"] == "2023-07" and key in got
    assert _stable(got) == _stable(expected.json())
    quantities = [q for s in got["sections"] for q in (s.get("quantities") or {}).values()]
    assert quantities and all(q["unit"] for q in quantities)
    assert got["figure_data"]
    if kind == "disaster":  # the flood of this world, found from the memory over HTTP
        flood = app_memory.events("flood")[0]
        assert got["disaster"]["event_month"] == "2023-07"
        assert got["disaster"]["during"]["area_ha"] == pytest.approx(
            flood.geometry.area / 1e4, rel=FLOOD_AREA_REL_TOLERANCE
        )
