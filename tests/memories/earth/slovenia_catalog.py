"""A STAC catalog of the real Sentinel-2 Level-1C scenes of ``../shared/data/s2_slovenia``, served on 127.0.0.1.

The five dated scenes (``cogs/S2_L1C_<date>_<band>.tif``, reflectance x 10000) become
items of a ``sentinel-2-l1c`` collection with the common asset keys of Earth Search
(``blue``, ``red``, ...), ``s2:product_type`` ``S2MSI1C`` and the source's cloud
coverage; the patch's 100 x 101 pixel box becomes the declared tile ``33TVL``
(its MGRS square: UTM 33, easting 4xx km, northing row L) on a 10 m grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from memories.grid import TileGrid
from tests.real_data import SHARED_DATA

DATA = SHARED_DATA / "s2_slovenia"
DATES = ("2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09")
"""The scenes' dates; ``REFERENCE_SCENES.npy`` index i is ``eopatch/timestamps.json[k]`` with k = [2, 1, 4, 3, 0][i]."""
BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}
"""Common name -> the band of the cog files."""
COLLECTION = "sentinel-2-l1c"


def slovenia_grid() -> TileGrid:
    """The patch as a declared tile: its exact UTM box' north-west corner, 100 x 101 px at 10 m."""
    import rasterio

    with rasterio.open(cog("2015-07-11", "B02")) as ds:
        b = ds.bounds
    return TileGrid("33TVL", 32633, float(b.left), float(b.top), 100, 101, 10.0)


def cog(date: str, band: str) -> Path:
    """The cog of one date and Sentinel-2 band (``B02``)."""
    return DATA / "cogs" / f"S2_L1C_{date}_{band}.tif"


def write_catalog(folder: Path) -> list[Path]:
    """collection.json and items.json of the five scenes under ``folder``; returns their paths."""
    import rasterio
    from pyproj import Transformer

    stamps = json.loads((DATA / "eopatch" / "timestamps.json").read_text())
    cover = np.load(DATA / "eopatch" / "scalar" / "CLOUD_COVERAGE.npy").reshape(-1)
    to_wgs84 = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    features: list[dict[str, Any]] = []
    for date in DATES:
        k = next(i for i, s in enumerate(stamps) if s.startswith(date))
        assets = {}
        for name, band in BANDS.items():
            with rasterio.open(cog(date, band)) as ds:
                t, b, shape = ds.transform, ds.bounds, ds.shape
            assets[name] = {
                "href": str(cog(date, band)),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data", "reflectance"],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": 0.0}],
                "proj:shape": list(shape),
                "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
            }
        west, south = to_wgs84.transform(b.left, b.bottom)
        east, north = to_wgs84.transform(b.right, b.top)
        features.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": [],
                "id": f"S2A_33TVL_{date.replace('-', '')}_0_L1C",
                "collection": COLLECTION,
                "bbox": [west, south, east, north],
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
                },
                "properties": {
                    "datetime": stamps[k] + "Z",
                    "platform": "sentinel-2a",
                    "eo:cloud_cover": round(float(cover[k]) * 100, 3),
                    "proj:epsg": 32633,
                    "grid:code": "MGRS-33TVL",
                    "s2:product_type": "S2MSI1C",
                },
                "links": [],
                "assets": assets,
            }
        )
    collection = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "description": "Sentinel-2 L1C scenes of the eo-learn example patch south of Ljubljana",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [features[0]["bbox"]]},
            "temporal": {"interval": [["2015-07-01T00:00:00Z", "2015-10-01T00:00:00Z"]]},
        },
        "links": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "collection.json", folder / "items.json"]
    paths[0].write_text(json.dumps(collection))
    paths[1].write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return paths


def centre_lat_lon(grid: TileGrid) -> tuple[float, float]:
    """The (lat, lon) of the grid's centre."""
    from pyproj import Transformer

    x0, y0, x1, y1 = grid.bounds
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    return lat, lon
