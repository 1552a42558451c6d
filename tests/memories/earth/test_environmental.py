"""Weather harmonized to months and tiles: real TMY3 files, and Open-Meteo through a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod, Transformer

from memories.earth.weather import EnvironmentalData, OpenMeteoArchive, read_tmy3
from memories.errors import DataSourceError
from memories.grid import TileGrid
from tests.real_data import SHARED_DATA, needs_data

DATA = SHARED_DATA / "climate"
GREENSBORO = DATA / "723170TYA.CSV"
SAND_POINT = DATA / "703165TY.csv"
needs_climate = needs_data(GREENSBORO, SAND_POINT)


def _grid_at(lat: float, lon: float, tile_id: str, epsg: int) -> TileGrid:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return TileGrid(tile_id, epsg, x - 5000.0, y + 5000.0, 100, 100, resolution=100.0)


@needs_climate
def test_tmy3_monthly_values_match_the_raw_file() -> None:
    raw = pd.read_csv(GREENSBORO, skiprows=1)
    month = raw["Date (MM/DD/YYYY)"].str[:2].astype(int)
    grid = _grid_at(36.2, -79.9, "17SPV", 32617)
    env = EnvironmentalData.from_tmy3([GREENSBORO, SAND_POINT])
    frame = env.monthly_series(grid, ["2023-01", "2023-07", "2024-07"]).set_index("month")
    for key, m in (("2023-01", 1), ("2023-07", 7)):
        rows = raw[month == m]
        assert frame.loc[key, "temperature_mean_c"] == pytest.approx(rows["Dry-bulb (C)"].mean())
        assert frame.loc[key, "temperature_min_c"] == rows["Dry-bulb (C)"].min()
        assert frame.loc[key, "temperature_max_c"] == rows["Dry-bulb (C)"].max()
        assert frame.loc[key, "ghi_kwh_m2"] == pytest.approx(rows["GHI (W/m^2)"].sum() / 1000)
        assert frame.loc[key, "relative_humidity_pct"] == pytest.approx(rows["RHum (%)"].mean())
        assert frame.loc[key, "wind_m_s"] == pytest.approx(rows["Wspd (m/s)"].mean())
        rain = rows["Lprecip depth (mm)"]
        assert frame.loc[key, "precipitation_mm"] == pytest.approx(rain[rain > -9900].sum())
    assert frame.loc["2023-01", "hours"] == 744
    # A typical year is a climatology: every July is the TMY's July.
    assert frame.loc["2024-07", "temperature_mean_c"] == frame.loc["2023-07", "temperature_mean_c"]
    assert set(frame["station_id"]) == {"723170"} and set(frame["kind"]) == {"climatology"}


@needs_climate
def test_tile_gets_the_nearest_station_with_its_distance() -> None:
    env = EnvironmentalData.from_tmy3([GREENSBORO, SAND_POINT])
    grid = _grid_at(55.0, -160.0, "04UEA", 32604)
    frame = env.monthly_series(grid, ["2023-05"])
    assert frame["station_name"].iloc[0] == "SAND POINT"
    w, s, e, n = grid.bbox_wgs84
    _, _, metres = Geod(ellps="WGS84").inv((w + e) / 2, (s + n) / 2, -160.517, 55.317)
    assert frame["distance_km"].iloc[0] == pytest.approx(metres / 1000, rel=0.005)
    # Sand Point marks missing precipitation -9900: left out of the sum, never counted as rain.
    raw = pd.read_csv(SAND_POINT, skiprows=1)
    may = raw[raw["Date (MM/DD/YYYY)"].str[:2] == "05"]["Lprecip depth (mm)"]
    assert (may <= -9900).any()
    assert frame["precipitation_mm"].iloc[0] == pytest.approx(may[may > -9900].sum())


@needs_climate
def test_tmy3_local_time_becomes_utc() -> None:
    series = read_tmy3(GREENSBORO)
    assert series.station.utc_offset_h == -5.0 and series.station.lat == 36.1
    # 01/01 hour ending 01:00 local (UTC-5) starts at 05:00 UTC.
    first = series.hourly.index[0]
    assert (first.month, first.day, first.hour) == (1, 1, 5)
    assert len(series.hourly) == 8760


def test_a_file_that_is_not_tmy3_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataSourceError, match="not a TMY3 station line"):
        read_tmy3(bad)


# -- Open-Meteo through a local server -------------------------------------------
def _payload(start: str, hours: int) -> dict[str, object]:
    """An answer in Open-Meteo's archive format with known, varied values."""
    times = pd.date_range(start, periods=hours, freq="h")
    k = np.arange(hours)
    return {
        "latitude": 46.06,
        "longitude": 14.52,
        "generationtime_ms": 1.2,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 295.0,
        "hourly_units": {"time": "iso8601", "temperature_2m": "°C", "wind_speed_10m": "m/s"},
        "hourly": {
            "time": [t.strftime("%Y-%m-%dT%H:%M") for t in times],
            "temperature_2m": list(np.round(15 + 8 * np.sin(k / 24 * 2 * np.pi) + k / 500, 1)),
            "relative_humidity_2m": [int(60 + 30 * np.cos(i / 24 * 2 * np.pi)) for i in k],
            "precipitation": [0.4 if i % 37 == 0 else 0.0 for i in k],
            "shortwave_radiation": [float(max(0.0, 700 * np.sin((i % 24 - 6) / 12 * np.pi))) for i in k],
            "wind_speed_10m": [None if i == 5 else round(2 + (i % 7) * 0.3, 1) for i in k],
        },
    }


@pytest.fixture
def open_meteo() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    seen: list[dict[str, list[str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            if parsed.path != "/v1/archive":
                self.send_error(404, "no such endpoint")
                return
            q = parse_qs(parsed.query)
            seen.append(q)
            start, end = pd.Timestamp(q["start_date"][0]), pd.Timestamp(q["end_date"][0])
            body = json.dumps(_payload(q["start_date"][0], int((end - start).days + 1) * 24)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/archive", seen
    finally:
        server.shutdown()
        server.server_close()


def test_open_meteo_answer_becomes_the_same_monthly_frame(open_meteo) -> None:  # type: ignore[no-untyped-def]
    url, seen = open_meteo
    series = OpenMeteoArchive(url, retries=0).fetch_months(46.06, 14.52, "2023-05", "2023-06")
    assert seen[0]["start_date"] == ["2023-05-01"] and seen[0]["end_date"] == ["2023-06-30"]
    assert seen[0]["wind_speed_unit"] == ["ms"] and seen[0]["timezone"] == ["UTC"]
    assert set(seen[0]["hourly"][0].split(",")) == set(OpenMeteoArchive.HOURLY)
    grid = _grid_at(46.05, 14.5, "33TVM", 32633)
    frame = EnvironmentalData([series]).monthly_series(grid, ["2023-05", "2023-06", "2023-07"]).set_index("month")
    hourly = _payload("2023-05-01", 61 * 24)["hourly"]
    may = slice(0, 31 * 24)
    temp = np.array(hourly["temperature_2m"])[may]  # type: ignore[index]
    assert frame.loc["2023-05", "temperature_mean_c"] == pytest.approx(temp.mean())
    assert frame.loc["2023-05", "temperature_max_c"] == pytest.approx(temp.max())
    ghi = np.array(hourly["shortwave_radiation"])[may]  # type: ignore[index]
    assert frame.loc["2023-05", "ghi_kwh_m2"] == pytest.approx(ghi.sum() / 1000)
    rain = np.array(hourly["precipitation"])[may]  # type: ignore[index]
    assert frame.loc["2023-05", "precipitation_mm"] == pytest.approx(rain.sum())
    wind = np.array([np.nan if v is None else v for v in hourly["wind_speed_10m"]], float)[may]  # type: ignore[union-attr]
    assert frame.loc["2023-05", "wind_m_s"] == pytest.approx(np.nanmean(wind))
    assert frame.loc["2023-06", "hours"] == 720
    # A month the answer does not cover is there, empty, not invented.
    assert frame.loc["2023-07", "hours"] == 0 and np.isnan(frame.loc["2023-07", "temperature_mean_c"])
    assert set(frame["kind"]) == {"observed"}


def test_open_meteo_error_answer_names_the_url(open_meteo) -> None:  # type: ignore[no-untyped-def]
    url, _ = open_meteo
    with pytest.raises(DataSourceError, match="HTTP 404"):
        OpenMeteoArchive(url.replace("/v1/archive", "/nothing"), retries=0).fetch(
            46.0, 14.5, date(2023, 5, 1), date(2023, 5, 2)
        )
