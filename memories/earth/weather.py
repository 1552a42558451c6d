"""Weather and climate series harmonized to the pipeline's months and tiles.

Two sources give the same hourly frame (UTC index; columns ``HOURLY_COLUMNS``):

- **TMY3 files** (NREL's typical meteorological year, the local source): a
  station line ``id,"NAME",ST,utc_offset_h,lat,lon,elevation_m``, a header row,
  then 8,760 hourly rows in local standard time, hour ending ``01:00``-``24:00``;
  ``-9900`` marks a missing value. A TMY is a *climatology*: each month is a
  typical one taken from some year, so pipeline month ``2023-05`` gets the TMY's May.
- **Open-Meteo's historical weather API** (``OpenMeteoArchive``, the online
  adapter): ERA5-based hourly values for real dates, so ``2023-05`` gets May 2023.

``EnvironmentalData`` assigns each tile the station nearest to its centre
(great-circle distance, kept in km as uncertainty metadata) and aggregates to
monthly rows: temperature mean/min/max (degC), precipitation (mm, NaN where the
source has none), global horizontal irradiation (kWh/m2), relative humidity
(%) and wind speed (m/s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from memories.errors import ConfigError, DataSourceError
from memories.grid import TileGrid
from memories.months import months_between

HOURLY_COLUMNS: tuple[str, ...] = ("temperature_c", "ghi_w_m2", "relative_humidity_pct", "wind_m_s", "precipitation_mm")
"""Hourly variables every source yields: degC, W/m2 (mean over the hour), %, m/s, mm in the hour."""

MONTHLY_COLUMNS: tuple[str, ...] = (
    "temperature_mean_c",
    "temperature_min_c",
    "temperature_max_c",
    "precipitation_mm",
    "ghi_kwh_m2",
    "relative_humidity_pct",
    "wind_m_s",
    "hours",
)
"""Monthly variables of ``monthly_summary``; ``hours`` counts the hours with a temperature."""

TMY3_COLUMNS: dict[str, str] = {
    "Dry-bulb (C)": "temperature_c",
    "GHI (W/m^2)": "ghi_w_m2",
    "RHum (%)": "relative_humidity_pct",
    "Wspd (m/s)": "wind_m_s",
    "Lprecip depth (mm)": "precipitation_mm",
}
"""TMY3 column names and ours."""

TMY3_MISSING = -9900.0
"""TMY3's marker of a missing value."""

EARTH_RADIUS_KM = 6371.0088

SeriesKind = Literal["climatology", "observed"]


@dataclass(frozen=True)
class Station:
    """A weather station or grid point.

    Attributes:
        station_id: the source's id (USAF number for TMY3, ``lat,lon`` for Open-Meteo).
        name: human-readable name.
        lat: latitude, degrees north.
        lon: longitude, degrees east.
        elevation_m: metres above sea level.
        utc_offset_h: hours the source's local standard time is ahead of UTC.
    """

    station_id: str
    name: str
    lat: float
    lon: float
    elevation_m: float
    utc_offset_h: float = 0.0


@dataclass(frozen=True)
class StationSeries:
    """A station and its hourly frame (UTC ``DatetimeIndex``, ``HOURLY_COLUMNS``).

    Attributes:
        kind: ``climatology`` (a typical year: months match by calendar month) or
            ``observed`` (real dates: months match by year and month).
        source: where the series came from (a path or URL).
    """

    station: Station
    hourly: Any
    kind: SeriesKind
    source: str


def read_tmy3(path: str | Path) -> StationSeries:
    """Read a TMY3 CSV file: the station line, then hourly rows.

    Hour-ending local standard time is converted to the start of the hour in
    UTC (``24:00`` is the last hour of its day); ``-9900`` becomes NaN; columns
    the file lacks are NaN.

    Raises:
        DataSourceError: the file is missing or not TMY3.
    """
    import numpy as np
    import pandas as pd

    path = Path(path)
    try:
        with path.open(encoding="latin-1") as f:
            first = f.readline()
    except OSError as e:
        raise DataSourceError(f"cannot read TMY3 file {path}: {e}") from e
    station = _tmy3_station(first, path)
    try:
        raw = pd.read_csv(path, skiprows=1, encoding="latin-1", low_memory=False)
    except Exception as e:
        raise DataSourceError(f"{path}: cannot parse the hourly rows of a TMY3 file: {e}") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    date_col = _column(raw, "Date", path)
    time_col = _column(raw, "Time", path)
    day = pd.to_datetime(raw[date_col], format="%m/%d/%Y", errors="coerce")
    hour_ending = pd.to_numeric(raw[time_col].astype(str).str.split(":").str[0], errors="coerce")
    if day.isna().any() or hour_ending.isna().any():
        bad = int(day.isna().sum() + hour_ending.isna().sum())
        raise DataSourceError(f"{path}: {bad} rows have no readable date (MM/DD/YYYY) or time (HH:MM)")
    local_start = day + pd.to_timedelta(hour_ending - 1, unit="h")
    utc = (local_start - pd.Timedelta(hours=station.utc_offset_h)).dt.tz_localize("UTC")
    hourly = pd.DataFrame(index=pd.DatetimeIndex(utc, name="time"))
    for theirs, ours in TMY3_COLUMNS.items():
        if theirs in raw.columns:
            values = pd.to_numeric(raw[theirs], errors="coerce").to_numpy(dtype=float)
            hourly[ours] = np.where(values <= TMY3_MISSING, np.nan, values)
        else:
            hourly[ours] = np.nan
    # TMY months come from different years: keep the local calendar month for matching.
    hourly["local_month"] = local_start.dt.month.to_numpy()
    return StationSeries(station, hourly, "climatology", str(path))


def monthly_summary(hourly: Any, by: Literal["calendar_month", "month"] = "month") -> Any:
    """Monthly aggregates (``MONTHLY_COLUMNS``) of an hourly frame.

    Args:
        hourly: frame with ``HOURLY_COLUMNS`` and a UTC ``DatetimeIndex``.
        by: ``month`` groups by ``YYYY-MM`` of the UTC time; ``calendar_month``
            by the month number (1-12) of the local time (``local_month``), for
            typical years.
    """
    import pandas as pd

    if by == "month":
        key = hourly.index.strftime("%Y-%m")
    else:
        key = hourly["local_month"] if "local_month" in hourly else hourly.index.month
    g = hourly.groupby(key)
    out = pd.DataFrame(
        {
            "temperature_mean_c": g["temperature_c"].mean(),
            "temperature_min_c": g["temperature_c"].min(),
            "temperature_max_c": g["temperature_c"].max(),
            "precipitation_mm": g["precipitation_mm"].sum(min_count=1),
            "ghi_kwh_m2": g["ghi_w_m2"].sum(min_count=1) / 1000.0,
            "relative_humidity_pct": g["relative_humidity_pct"].mean(),
            "wind_m_s": g["wind_m_s"].mean(),
            "hours": g["temperature_c"].count(),
        }
    )
    out.index.name = "month" if by == "month" else "calendar_month"
    return out


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance between two points in degrees, kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class EnvironmentalData:
    """Weather series of several stations, harmonized to months and tiles (the seed's name).

    Example::

        env = EnvironmentalData.from_tmy3(["703165TY.csv", "723170TYA.CSV"])
        frame = env.monthly_series(grid, ["2023-05", "2023-06"])
    """

    def __init__(self, series: Sequence[StationSeries]) -> None:
        if not series:
            raise ConfigError("EnvironmentalData needs at least one station series; pass TMY3 files or fetch some")
        self.series = list(series)

    @classmethod
    def from_tmy3(cls, paths: Sequence[str | Path]) -> EnvironmentalData:
        """Stations from TMY3 files."""
        return cls([read_tmy3(p) for p in paths])

    def nearest(self, lat: float, lon: float) -> tuple[StationSeries, float]:
        """The series nearest to a point (degrees) and its distance in km."""
        dists = [distance_km(lat, lon, s.station.lat, s.station.lon) for s in self.series]
        k = min(range(len(dists)), key=dists.__getitem__)
        return self.series[k], dists[k]

    def monthly_series(self, grid: TileGrid, months: Sequence[str]) -> Any:
        """One row per month for a tile, from the station nearest to the tile centre.

        Columns: ``month``, ``tile_id``, ``station_id``, ``station_name``,
        ``distance_km`` (station to tile centre: the spatial uncertainty),
        ``kind`` (climatology or observed), ``MONTHLY_COLUMNS``. A month the
        series does not cover has NaN values and ``hours`` 0.
        """
        w, s, e, n = grid.bbox_wgs84
        return self.monthly_series_at((s + n) / 2, (w + e) / 2, months, tile_id=grid.tile_id)

    def monthly_series_at(self, lat: float, lon: float, months: Sequence[str], *, tile_id: str | None = None) -> Any:
        """One row per month (``YYYY-MM``) at a point (degrees), from the station nearest to it.

        The columns of ``monthly_series``; ``tile_id`` is the given one (None for a bare point) and
        ``distance_km`` the station's distance to the point.
        """
        import pandas as pd

        chosen, dist = self.nearest(lat, lon)
        if chosen.kind == "climatology":
            summary = monthly_summary(chosen.hourly, by="calendar_month")
            keys: list[Any] = [int(m[5:7]) for m in months]
        else:
            summary = monthly_summary(chosen.hourly, by="month")
            keys = list(months)
        rows = summary.reindex(keys)
        rows["hours"] = rows["hours"].fillna(0).astype(int)
        frame = pd.DataFrame(
            {
                "month": list(months),
                "tile_id": tile_id,
                "station_id": chosen.station.station_id,
                "station_name": chosen.station.name,
                "distance_km": round(dist, 3),
                "kind": chosen.kind,
            }
        )
        for col in MONTHLY_COLUMNS:
            frame[col] = rows[col].to_numpy()
        return frame


class OpenMeteoArchive:
    """Adapter for Open-Meteo's historical weather API (ERA5 reanalysis, no key needed).

    ``GET {base_url}?latitude=..&longitude=..&start_date=YYYY-MM-DD&end_date=YYYY-MM-DD
    &hourly=temperature_2m,relative_humidity_2m,precipitation,shortwave_radiation,wind_speed_10m
    &timezone=UTC&wind_speed_unit=ms`` answers JSON with ``latitude``,
    ``longitude``, ``elevation``, ``utc_offset_seconds`` and ``hourly``: a
    ``time`` list (``YYYY-MM-DDTHH:MM``, start of the hour) and one list per
    variable (``shortwave_radiation`` is the mean W/m2 of the preceding hour; we
    key it by the hour's start). Retries follow ``memories.earth.http``.
    See https://open-meteo.com/en/docs/historical-weather-api.
    """

    BASE_URL = "https://archive-api.open-meteo.com/v1/archive"
    HOURLY: dict[str, str] = {
        "temperature_2m": "temperature_c",
        "relative_humidity_2m": "relative_humidity_pct",
        "precipitation": "precipitation_mm",
        "shortwave_radiation": "ghi_w_m2",
        "wind_speed_10m": "wind_m_s",
    }
    """Open-Meteo hourly variables and ours."""

    def __init__(self, base_url: str = BASE_URL, *, retries: int = 5, backoff_s: float = 0.5) -> None:
        self.base_url = base_url
        self.retries = retries
        self.backoff_s = backoff_s

    def params(self, lat: float, lon: float, start: date, end: date) -> dict[str, str]:
        """The query parameters of one request (dates inclusive)."""
        if end < start:
            raise ConfigError(f"Open-Meteo request from {start} to {end}: end_date must not be before start_date")
        return {
            "latitude": f"{lat:.4f}",
            "longitude": f"{lon:.4f}",
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "hourly": ",".join(self.HOURLY),
            "timezone": "UTC",
            "wind_speed_unit": "ms",
        }

    def fetch(self, lat: float, lon: float, start: date, end: date) -> StationSeries:
        """Hourly series of the grid point nearest to (lat, lon) degrees."""
        from memories.earth.http import session

        params = self.params(lat, lon, start, end)
        with session(retries=self.retries, backoff_s=self.backoff_s) as http:
            try:
                response = http.get(self.base_url, params=params)
            except Exception as e:
                raise DataSourceError(f"Open-Meteo archive at {self.base_url} did not answer: {e}") from e
        if response.status_code != 200:
            raise DataSourceError(
                f"Open-Meteo archive answered HTTP {response.status_code} for {response.url}: {response.text[:300]}"
            )
        return self.parse(response.json(), source=str(response.url))

    def fetch_months(self, lat: float, lon: float, first: str, last: str) -> StationSeries:
        """Hourly series covering the months ``first`` to ``last`` (``YYYY-MM``)."""
        import pandas as pd

        months = months_between(first, last)
        start = date.fromisoformat(months[0] + "-01")
        end = (pd.Timestamp(months[-1] + "-01") + pd.offsets.MonthEnd(1)).date()
        return self.fetch(lat, lon, start, end)

    def parse(self, payload: dict[str, Any], *, source: str = "open-meteo") -> StationSeries:
        """An Open-Meteo JSON answer as a station series (``observed``)."""
        import numpy as np
        import pandas as pd

        try:
            hourly_in = payload["hourly"]
            times = pd.to_datetime(hourly_in["time"], format="%Y-%m-%dT%H:%M")
            lat, lon = float(payload["latitude"]), float(payload["longitude"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataSourceError(
                f"{source}: not an Open-Meteo archive answer (needs latitude, longitude, hourly.time): {e}"
            ) from e
        offset = float(payload.get("utc_offset_seconds", 0)) / 3600
        index = pd.DatetimeIndex(times - pd.Timedelta(hours=offset), name="time").tz_localize("UTC")
        hourly = pd.DataFrame(index=index)
        for theirs, ours in self.HOURLY.items():
            values = hourly_in.get(theirs)
            if values is not None and len(values) != len(index):
                raise DataSourceError(f"{source}: hourly.{theirs} has {len(values)} values for {len(index)} times")
            hourly[ours] = np.nan if values is None else np.array([np.nan if v is None else v for v in values], float)
        station = Station(
            station_id=f"{lat:.4f},{lon:.4f}",
            name=f"Open-Meteo ERA5 {lat:.3f},{lon:.3f}",
            lat=lat,
            lon=lon,
            elevation_m=float(payload.get("elevation", float("nan"))),
            utc_offset_h=offset,
        )
        return StationSeries(station, hourly, "observed", source)


def _tmy3_station(line: str, path: Path) -> Station:
    import csv

    fields = next(csv.reader([line]))
    try:
        return Station(
            station_id=fields[0].strip(),
            name=fields[1].strip(),
            utc_offset_h=float(fields[3]),
            lat=float(fields[4]),
            lon=float(fields[5]),
            elevation_m=float(fields[6]),
        )
    except (IndexError, ValueError):
        raise DataSourceError(
            f"{path}: the first line {line.strip()[:80]!r} is not a TMY3 station line "
            '(id,"NAME",ST,utc_offset_h,lat,lon,elevation_m)'
        ) from None


def _column(frame: Any, prefix: str, path: Path) -> str:
    for c in frame.columns:
        if c.startswith(prefix):
            return str(c)
    raise DataSourceError(f"{path}: no column starting with {prefix!r}; is this a TMY3 file?")
