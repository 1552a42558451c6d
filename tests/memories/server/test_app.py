"""The query server over real HTTP on 127.0.0.1: auth, validation, temporal, spatial and event queries, reports."""

from __future__ import annotations

import base64
import logging
from datetime import UTC

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import Point, box, shape

from memories.errors import ConfigError
from memories.memory.catalog import MemoryCatalog
from memories.memory.temporal import TemporalMemory
from memories.months import month_range
from memories.server import TOKEN_ENV, MemoriesServer
from memories.store.paths import StorageRoot

DISTANCE_TOL_KM = 1e-9
"""The server's distances equal the spatial memory's (one computation, a JSON round trip)."""
UTM_TOL = 1e-3
"""Relative difference allowed between geodesic distances and planar distances in the tile's UTM zone."""
CENTRE = (60.1700, 24.9410)  # lat, lon: central Helsinki, inside the real OSM extract
RADIUS_KM = 0.3


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_and_docs_are_open_and_every_v1_path_needs_the_bearer_token(server, served_memory):
    base, token = server.url, served_memory.token
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert httpx.get(f"{base}/openapi.json").status_code == 200
    assert httpx.get(f"{base}/docs").status_code == 200

    missing = httpx.get(f"{base}/v1/tiles")
    assert missing.status_code == 401
    assert "Authorization: Bearer <token>" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    for wrong in ("nope", token[:-1], token + "0", "x" + token[1:]):
        answer = httpx.get(f"{base}/v1/tiles", headers=_auth(wrong))
        assert answer.status_code == 401 and "invalid bearer token" in answer.json()["detail"]
    assert httpx.get(f"{base}/v1/tiles", headers={"Authorization": f"Basic {token}"}).status_code == 401
    # Authentication comes before validation: a bad body without a token says nothing about the body.
    assert httpx.post(f"{base}/v1/analyses/historical", json={"tile": "bad"}).status_code == 401

    right = httpx.get(f"{base}/v1/tiles", headers=_auth(token))
    assert right.status_code == 200
    [tile] = right.json()["tiles"]
    assert tile["tile"] == served_memory.tile and tile["crs"] == "EPSG:32635"
    assert tile["bbox_wgs84"] == pytest.approx(list(served_memory.grid.bbox_wgs84))
    assert tile["assets"] == ["environmental_report", "spectral_indices"]
    for answer in (missing, right):
        assert token not in answer.text


@pytest.mark.parametrize(
    ("method", "path", "payload", "where"),
    [
        ("GET", "/v1/records", {"tile": "35vlg"}, ("query", "tile")),
        ("GET", "/v1/records", {"time_point": "2023-13"}, ("query", "time_point")),
        ("GET", "/v1/records", {"as_of": "yesterday"}, ("query", "as_of")),
        ("GET", "/v1/records", {"start": "2023-05"}, ("query", "end")),
        (
            "GET",
            "/v1/records",
            {"time_point": "2023-05", "start": "2023-05", "end": "2023-06"},
            ("query", "time_point"),
        ),
        ("GET", "/v1/features", {"lat": 91, "lon": 24.9, "radius_km": 1}, ("query", "lat")),
        ("GET", "/v1/features", {"lat": 60.1, "lon": 181, "radius_km": 1}, ("query", "lon")),
        ("GET", "/v1/features", {"lat": 60.1, "lon": 24.9, "radius_km": 0}, ("query", "radius_km")),
        ("GET", "/v1/features", {"lat": 60.1, "lon": 24.9}, ("query", "radius_km")),
        ("GET", "/v1/features", {"bbox": "24.96,60.16,24.93,60.18"}, ("query", "bbox")),
        ("GET", "/v1/features", {"bbox": "24.93,60.18,24.96,60.16"}, ("query", "bbox")),
        ("GET", "/v1/features", {"bbox": "a,b,c,d"}, ("query", "bbox")),
        ("GET", "/v1/features", {"bbox": "24.93,60.16,24.96"}, ("query", "bbox")),
        ("GET", "/v1/features", {"bbox": "24.93,60.16,24.96,60.18", "lat": 60.1}, ("query", "bbox")),
        ("GET", "/v1/events", {"start": "2023-07", "end": "2023-06"}, ("query", "end")),
        ("GET", "/v1/reports/environmental/35VLG/2023-6", None, ("path", "month")),
        ("GET", "/v1/reports/environmental/VLG35/2023-06", None, ("path", "tile")),
        ("GET", "/v1/reports/environmental/35VLG/2023-06", {"format": "pdf"}, ("query", "format")),
        ("POST", "/v1/analyses/historical", {"tile": "35VLG", "month": "June"}, ("body", "month")),
        ("POST", "/v1/analyses/historical", {"tile": "35VLG", "month": "2023-06", "x": 1}, ("body", "x")),
        ("POST", "/v1/property", {"address": "Mannerheimintie 22", "time_range": ["2023-08", "2023-01"]}, ("body",)),
        ("POST", "/v1/property", {"address": "  ", "time_range": ["2023-01", "2023-08"]}, ("body", "address")),
    ],
)
def test_invalid_input_is_a_422_naming_it(client, method, path, payload, where):
    if method == "GET":
        answer = client.get(path, params=payload)
    else:
        answer = client.post(path, json=payload)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, list) and detail
    assert any(tuple(d["loc"][: len(where)]) == where for d in detail), detail
    assert all(d["msg"] for d in detail)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"asset": "spectral_indices"},
        {"asset": "spectral_indices", "tile": "35VLG", "time_point": "2023-06"},
        {"time_point": "2023-06-15T12:00:00Z"},
        {"start": "2023-06", "end": "2023-07"},
        {"start": "2023-05-31", "end": "2023-06-01"},
    ],
)
def test_records_equal_the_catalogs_temporal_query(client, served_memory, params):
    answer = client.get("/v1/records", params=params)
    assert answer.status_code == 200, answer.text
    time_range = (params["start"], params["end"]) if "start" in params else None
    expected = served_memory.memory.query(
        asset=params.get("asset"), tile=params.get("tile"), time_point=params.get("time_point"), time_range=time_range
    )
    got = answer.json()
    assert got["count"] == len(expected) > 0
    for row, rec in zip(got["records"], expected, strict=True):
        assert row["id"] == rec.id and row["version"] == rec.version and row["version_id"] == rec.version_id
        assert (row["valid_from"], row["valid_to"]) == (rec.valid_from, rec.valid_to)
        assert (row["transaction_from"], row["transaction_to"]) == (rec.transaction_from, rec.transaction_to)
        assert row["transaction_to"] is None  # now: only versions in force
        assert row["stats"] == rec.stats and row["uri"] == rec.uri


def test_as_of_before_the_rematerialization_answers_the_older_versions(client, served_memory):
    month = served_memory.report_month
    query = {"asset": "spectral_indices", "tile": served_memory.tile, "time_point": month}
    [now] = client.get("/v1/records", params=query).json()["records"]
    assert (now["version"], now["version_id"], now["stats"]) == (2, f"snapshot-{month}-2", {"ndvi_mean": 0.42})
    naive_utc = served_memory.between.astimezone(UTC).replace(tzinfo=None).isoformat()
    [then] = client.get("/v1/records", params={**query, "as_of": naive_utc}).json()["records"]
    assert (then["version"], then["version_id"], then["stats"]) == (1, f"snapshot-{month}-1", {"ndvi_mean": 0.5})
    assert then["transaction_to"] == now["transaction_from"]  # closed when the new version was recorded

    first, second = served_memory.reports
    path = f"/v1/reports/environmental/{served_memory.tile}/{month}"
    assert client.get(path).json()["ndvi_mean"] == 0.42
    old = client.get(path, params={"as_of": served_memory.between.isoformat()}).json()
    assert (old["ndvi_mean"], old["version"]) == (0.61, first.version)
    figure = client.get(f"{path}/files/ndvi.png", params={"as_of": served_memory.between.isoformat()})
    assert figure.content == first.figures["ndvi"] != second.figures["ndvi"]

    long_ago = {"as_of": "2000-01-01"}
    assert client.get("/v1/records", params={**query, **long_ago}).json()["count"] == 0
    missing = client.get(path, params=long_ago)
    assert missing.status_code == 404 and "environmental_report" in missing.json()["detail"]


def test_assets_list_what_the_memory_holds_at_a_transaction_time(client, served_memory):
    assets = {a["asset"]: a for a in client.get("/v1/assets").json()["assets"]}
    assert sorted(assets) == ["environmental_report", "spectral_indices"]
    indices = assets["spectral_indices"]
    assert (indices["records"], indices["first"], indices["last"]) == (3, "2023-05", "2023-07")
    assert indices["tiles"] == [served_memory.tile]
    before = client.get("/v1/assets", params={"as_of": "2000-01-01T00:00:00Z"}).json()
    assert before["assets"] == [] and before["as_of"].startswith("2000-01-01T00:00:00")


def test_features_within_a_radius_equal_the_spatial_memorys_query(client, served_memory):
    lat, lon = CENTRE
    answer = client.get("/v1/features", params={"lat": lat, "lon": lon, "radius_km": RADIUS_KM, "layer": "buildings"})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    expected = served_memory.spatial.query(location=CENTRE, radius_km=RADIUS_KM, filter={"layer": "buildings"})
    assert got["type"] == "FeatureCollection"
    assert got["numberMatched"] == got["numberReturned"] == len(expected) > 10
    props = [f["properties"] for f in got["features"]]
    assert [p["feature_id"] for p in props] == expected["feature_id"].tolist()
    assert all(p["layer"] == "buildings" for p in props)
    for p, d in zip(props, expected["distance_km"], strict=True):
        assert abs(p["distance_km"] - d) <= DISTANCE_TOL_KM

    # Independently: planar distances in the tile's UTM zone from the real buildings as read.
    buildings = served_memory.layers["buildings"]
    centre = gpd.GeoSeries([Point(lon, lat)], crs="EPSG:4326").to_crs(buildings.crs).iloc[0]
    dist_km = buildings.distance(centre) / 1000.0
    got_ids = {int(p["feature_id"].split(":")[1]) for p in props}
    surely_in = set(buildings.loc[dist_km <= RADIUS_KM * (1 - UTM_TOL), "osm_id"])
    maybe_in = set(buildings.loc[dist_km <= RADIUS_KM * (1 + UTM_TOL), "osm_id"])
    assert surely_in <= got_ids <= maybe_in
    print(f"\n{len(got_ids)} buildings within {RADIUS_KM} km of {CENTRE}; {len(maybe_in) - len(surely_in)} at the edge")

    nearest = client.get(
        "/v1/features", params={"lat": lat, "lon": lon, "radius_km": RADIUS_KM, "layer": "buildings", "limit": 5}
    ).json()
    assert (nearest["numberMatched"], nearest["numberReturned"]) == (len(expected), 5)
    assert [f["properties"]["feature_id"] for f in nearest["features"]] == expected["feature_id"].tolist()[:5]


def test_features_in_a_bbox_equal_the_spatial_memorys_query(client, served_memory):
    bbox = (24.940, 60.168, 24.945, 60.171)
    got = client.get("/v1/features", params={"bbox": ",".join(map(str, bbox))}).json()
    expected = served_memory.spatial.query(bbox=bbox)
    assert [f["properties"]["feature_id"] for f in got["features"]] == expected["feature_id"].tolist()
    assert {f["properties"]["layer"] for f in got["features"]} == {"buildings", "roads"}
    area = box(*bbox)
    assert all(shape(f["geometry"]).intersects(area) for f in got["features"])
    roads = client.get("/v1/features", params={"bbox": ",".join(map(str, bbox)), "layer": "roads"}).json()
    assert roads["numberMatched"] == int((expected["layer"] == "roads").sum()) > 0


def test_events_are_filtered_by_period_kind_and_bbox(client, served_memory):
    def ids(**params: str) -> list[str]:
        answer = client.get("/v1/events", params=params)
        assert answer.status_code == 200, answer.text
        return [f["id"] for f in answer.json()["features"]]

    tile = served_memory.tile
    flood, clear_cut, district = (f"event:{k}/{tile}/{m}" for k, m in [("flood", "2023-07"),
                                  ("clear_cut", "2023-04"), ("new_district", "2023-05")])  # fmt: skip
    assert ids(start="2023-07", end="2023-07") == [clear_cut, district, flood]  # lasting changes go on
    assert ids(start="2023-04", end="2023-04") == [clear_cut]
    assert ids(start="2023-01", end="2023-03") == []
    assert ids(start="2023-07-24", end="2023-08") == [clear_cut, district]  # the flood ended on 07-23
    assert ids(kind="flood") == [flood]
    lo, hi = month_range("2023-07")
    assert ids(start="2023-07", end="2023-07") == [e.id for e in served_memory.relationship.events_in(lo, hi)]

    edge = served_memory.relationship.event(flood)
    footprint = gpd.GeoSeries.from_wkt([edge.geometry_wkt], crs="EPSG:4326")
    assert ids(bbox=",".join(map(str, footprint.total_bounds))) == [flood]

    [feature] = client.get("/v1/events", params={"kind": "flood"}).json()["features"]
    assert shape(feature["geometry"]).equals_exact(footprint.iloc[0], 1e-9)
    props = feature["properties"]
    assert (props["start"], props["end"]) == ("2023-07-02T00:00:00+00:00", "2023-07-23T00:00:00+00:00")
    # The affected buildings are those whose footprint meets the flood's, computed here from the layer.
    buildings = served_memory.layers["buildings"]
    hit = buildings[buildings.intersects(footprint.to_crs(buildings.crs).iloc[0])]
    affected = sorted(m["entity"] for m in props["members"] if m["entity"].startswith("building:"))
    assert affected == sorted(f"building:{i}" for i in hit["osm_id"]) and len(affected) > 0


def test_a_stored_report_is_served_as_json_html_and_files(client, served_memory):
    second = served_memory.reports[1]
    path = f"/v1/reports/environmental/{served_memory.tile}/{served_memory.report_month}"
    summary = client.get(path).json()
    assert summary["version"] == second.version
    assert summary["sections"] == second.summary["sections"]
    assert summary["figure_data"]["ndvi"]["y"][:3] == second.summary["figure_data"]["ndvi"]["y"][:3]
    assert summary["figure_data"]["ndvi"]["y"][3] is None  # NaN stored, strict JSON served
    assert '"y": [0.5, 0.42, 0.6, null]' in client.get(path).text
    assert summary["files"] == ["ndvi.png", "report.html", "summary.json"]
    assert summary["record"]["asset"] == "environmental_report" and summary["record"]["version_id"] == second.version

    page = client.get(path, params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "data:image/png;base64," + base64.b64encode(second.figures["ndvi"]).decode() in page.text
    assert 'src="ndvi.png"' not in page.text and "mean NDVI" in page.text

    png = client.get(f"{path}/files/ndvi.png")
    assert png.headers["content-type"] == "image/png" and png.content == second.figures["ndvi"]
    assert client.get(f"{path}/files/report.html").text == second.html
    gone = client.get(f"{path}/files/other.png")
    assert gone.status_code == 404 and "ndvi.png" in gone.json()["detail"]
    assert client.get(f"{path}/files/.current.json").status_code == 422

    unknown = client.get(f"/v1/reports/weather/{served_memory.tile}/{served_memory.report_month}")
    assert unknown.status_code == 404 and "environmental" in unknown.json()["detail"]
    absent = client.get(f"/v1/reports/disaster/{served_memory.tile}/{served_memory.report_month}")
    assert absent.status_code == 404 and "materialize disaster_report" in absent.json()["detail"]
    assert absent.json()["error"] == "MissingDataError"


def test_memory_errors_map_to_http_statuses_without_tracebacks(tmp_path, served_memory):
    root = StorageRoot((tmp_path / "store").as_uri())
    catalog = MemoryCatalog.open(tmp_path / "catalog.sqlite")
    first, last = month_range("2023-06")
    # A report record whose version the store does not hold (a store restored from an older backup).
    catalog.record(
        asset="environmental_report",
        uri=root.report_uri("environmental", "35VLG", "2023-06", "report.html"),
        tile="35VLG",
        partition="2023-06",
        valid_from=first,
        valid_to=last,
        version_id="20230701T000000000000Z-deadbeef",
    )
    token = served_memory.token
    with MemoriesServer(TemporalMemory(catalog, root), token=token, port=0) as server:
        c = httpx.Client(base_url=server.url, headers=_auth(token))
        features = c.get("/v1/features", params={"lat": 60.17, "lon": 24.94, "radius_km": 1})
        assert features.status_code == 404 and "materialize the spatial_index asset" in features.json()["detail"]
        events = c.get("/v1/events")
        assert events.status_code == 404 and "materialize the event_hypergraph asset" in events.json()["detail"]
        broken = c.get("/v1/reports/environmental/35VLG/2023-06")
        assert broken.status_code == 500 and broken.json()["error"] == "StorageError"
        assert "has no version '20230701T000000000000Z-deadbeef'" in broken.json()["detail"]
        assert "Traceback" not in broken.text
        reversed_range = c.get("/v1/records", params={"start": "2023-07", "end": "2023-05"})
        assert reversed_range.status_code == 400 and reversed_range.json()["error"] == "ConfigError"
        assert "ends before it starts" in reversed_range.json()["detail"]


def test_openapi_documents_every_endpoint_with_the_bearer_scheme(client, server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths) >= {
        "/health",
        "/v1/assets",
        "/v1/tiles",
        "/v1/records",
        "/v1/features",
        "/v1/events",
        "/v1/reports/{kind}/{tile}/{month}",
        "/v1/reports/{kind}/{tile}/{month}/files/{name}",
        "/v1/analyses",
        "/v1/analyses/{kind}",
        "/v1/property",
    }
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the server's MEMORIES_API_TOKEN, as a bearer token",
    }
    for path, ops in paths.items():
        for op in ops.values():
            assert op.get("summary") and op.get("description"), (path, op)
            if path.startswith("/v1/"):
                assert op["security"] == [{"bearerAuth": []}], path
            else:
                assert "security" not in op
    records = {p["name"]: p for p in paths["/v1/records"]["get"]["parameters"]}
    assert set(records) == {"asset", "tile", "time_point", "start", "end", "as_of"}
    assert "MGRS" in records["tile"]["description"]


def test_a_non_loopback_host_is_refused_without_a_token(monkeypatch, served_memory):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.org"):
        with pytest.raises(ConfigError, match=TOKEN_ENV):
            MemoriesServer(served_memory.memory, host=host)
    MemoriesServer(served_memory.memory, host="localhost")  # loopback: allowed, open
    assert "***" in repr(MemoriesServer(served_memory.memory, host="0.0.0.0", token="t0ken"))
    assert "t0ken" not in repr(MemoriesServer(served_memory.memory, host="0.0.0.0", token="t0ken"))

    monkeypatch.setenv(TOKEN_ENV, "token-from-the-environment")
    MemoriesServer(served_memory.memory, host="0.0.0.0")  # the environment's token counts
    with MemoriesServer(served_memory.memory, port=0) as server:
        assert httpx.get(f"{server.url}/v1/tiles").status_code == 401
        assert httpx.get(f"{server.url}/v1/tiles", headers=_auth("token-from-the-environment")).status_code == 200


def test_the_access_log_has_one_line_per_request_and_never_the_token(client, served_memory, caplog):
    caplog.set_level(logging.INFO, logger="memories.server.app")
    wrong = "wrong-secret-0123456789"
    client.get("/v1/tiles")
    client.get("/v1/tiles", headers=_auth(wrong))
    client.get("/v1/records", params={"tile": "bad"})
    lines = [r.getMessage() for r in caplog.records if r.name == "memories.server.app" and '"GET ' in r.getMessage()]
    assert len(lines) == 3, lines
    assert '"GET /v1/tiles" 200' in lines[0] and '"GET /v1/tiles" 401' in lines[1]
    assert '"GET /v1/records?tile=bad" 422' in lines[2]
    assert not any(served_memory.token in m or wrong in m for m in (r.getMessage() for r in caplog.records))


def test_a_server_on_a_taken_port_says_so(served_memory):
    with MemoriesServer(served_memory.memory, port=0) as first:
        with pytest.raises(ConfigError, match="in use"):
            MemoriesServer(served_memory.memory, port=first.port).start()
        assert httpx.get(f"{first.url}/health").status_code == 200
