"""Weather stations of the sample world: one TMY3-format file per tile.

A typical meteorological year (TMY3, as NREL publishes it) is 8,760 hourly rows
in local standard time (hour ending ``01:00`` to ``24:00``) after a station line
``id,"NAME",ST,utc_offset_h,lat,lon,elevation_m``. Like a real TMY, each month
comes from another calendar year (``TMY_YEARS``). The weather is a smooth
climate plus seeded noise: temperature with a seasonal and a daily cycle,
global horizontal irradiance from the sun's elevation times a daily clearness,
relative humidity, wind and showers.

On disk: ``climate/<tile>.csv``; ``climate/stations.json`` lists id, tile,
position and the station's distance from the tile centre in km.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from memories.grid import TileGrid
from memories.sample.spec import SampleWorldSpec

STATION_OFFSET_M = (4000.0, 3000.0)
"""East and north offset of a tile's station from the tile centre, metres (5 km away)."""
TMY_YEARS: tuple[int, ...] = (2005, 2009, 2011, 2004, 2013, 2007, 2010, 2008, 2012, 2006, 2014, 2003)
"""The calendar year each month (January first) is taken from."""
COLUMNS: tuple[str, ...] = (
    "Date (MM/DD/YYYY)",
    "Time (HH:MM)",
    "GHI (W/m^2)",
    "Dry-bulb (C)",
    "RHum (%)",
    "Pressure (mbar)",
    "Wspd (m/s)",
    "Lprecip depth (mm)",
    "Lprecip quantity (hr)",
)
_CLIMATE_KEY = 7  # random-stream key of the weather


def station_for(tile: TileGrid, tile_index: int) -> dict[str, Any]:
    """Id, name, position (degrees) and distance from the tile centre (km) of a tile's station."""
    from pyproj import Transformer

    x0, y0, x1, y1 = tile.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx, sy = cx + STATION_OFFSET_M[0], cy + STATION_OFFSET_M[1]
    lon, lat = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(sx, sy)
    return {
        "station_id": f"99{tile_index:02d}{ord(tile.tile_id[-1]) % 100:02d}",
        "name": f"SAMPLE {tile.tile_id}",
        "tile_id": tile.tile_id,
        "utc_offset_h": 1.0,
        "lat": round(float(lat), 3),
        "lon": round(float(lon), 3),
        "elevation_m": 300 + 50 * tile_index,
        "distance_km": float(np.hypot(*STATION_OFFSET_M) / 1000),
    }


def hourly_weather(spec: SampleWorldSpec, tile_index: int, lat: float) -> dict[str, np.ndarray]:
    """8,760 hours of weather, January 1st 01:00 to December 31st 24:00 local standard time."""
    rng = spec.rng(tile_index, _CLIMATE_KEY)
    hours = np.arange(8760)
    doy = hours // 24 + 1
    hour = hours % 24 + 1  # hour ending
    season = np.cos(2 * np.pi * (doy - 200) / 365)
    daily_noise = np.repeat(rng.normal(0, 2.5, 365), 24)
    temp = 11.0 - 0.6 * (lat - 45) + 10.0 * season + 4.0 * np.cos(2 * np.pi * (hour - 15) / 24) + daily_noise
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365)
    hour_angle = np.deg2rad(15 * (hour - 0.5 - 12))
    phi = np.deg2rad(lat)
    sin_elev = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    clearness = np.repeat(rng.uniform(0.35, 0.85, 365), 24)
    ghi = np.clip(1000.0 * sin_elev, 0, None) * clearness
    rhum = np.clip(72 - 12 * season - 12 * np.cos(2 * np.pi * (hour - 15) / 24) + rng.normal(0, 5, 8760), 15, 100)
    wind = rng.gamma(2.0, 1.6, 8760)
    rainy = np.repeat(rng.random(365) < 0.3, 24) & (rng.random(8760) < 0.25)
    precip = np.where(rainy, rng.gamma(1.5, 1.2, 8760), 0.0)
    return {
        "doy": doy,
        "hour": hour,
        "GHI (W/m^2)": np.round(ghi).astype(int),
        "Dry-bulb (C)": np.round(temp, 1),
        "RHum (%)": np.round(rhum).astype(int),
        "Pressure (mbar)": np.full(8760, 980),
        "Wspd (m/s)": np.round(wind, 1),
        "Lprecip depth (mm)": np.round(precip, 1),
    }


def write_stations(folder: Path, spec: SampleWorldSpec, tiles: list[TileGrid]) -> list[dict[str, Any]]:
    """Write ``<tile>.csv`` (TMY3) per tile and ``stations.json`` under ``folder``; returns the stations."""
    from datetime import date, timedelta

    folder.mkdir(parents=True, exist_ok=True)
    stations = []
    for tile_index, tile in enumerate(tiles):
        station = station_for(tile, tile_index)
        w = hourly_weather(spec, tile_index, station["lat"])
        lines = [
            f'{station["station_id"]},"{station["name"]}",--,{station["utc_offset_h"]:.1f},'
            f"{station['lat']:.3f},{station['lon']:.3f},{station['elevation_m']}",
            ",".join(COLUMNS),
        ]
        for i in range(8760):
            d = date(2001, 1, 1) + timedelta(days=int(w["doy"][i]) - 1)  # 2001: not a leap year
            d = d.replace(year=TMY_YEARS[d.month - 1])
            values = [w[c][i] for c in COLUMNS[2:-1]]
            lines.append(f"{d:%m/%d/%Y},{int(w['hour'][i]):02d}:00," + ",".join(str(v) for v in values) + ",1")
        (folder / f"{tile.tile_id}.csv").write_text("\n".join(lines) + "\n")
        stations.append(station)
    (folder / "stations.json").write_text(json.dumps(stations, indent=1))
    return stations
