"""Maps with a place (memories.applications.maps) and the interactive map (memories.applications.webmap).

Fast: a synthetic 120 x 80 px grid of tile 33TVM (EPSG:32633) and a fake memory view, no app memory.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from memories.applications.maps import STRETCH, Basemap, basemap, class_overlay, draw_map, stretch
from memories.applications.webmap import WebMap, inline_webmap
from memories.errors import MissingDataError
from memories.grid import TileGrid

GRID = TileGrid("33TVM", 32633, 500_000.0, 5_100_000.0, 120, 80, 10.0)


def test_the_stretch_is_one_fixed_reflectance_range_not_a_per_image_percentile():
    dark = np.full((3, 2, 2), 0.05, dtype=np.float32)
    bright = np.full((3, 2, 2), 0.25, dtype=np.float32)
    bright[:, 0, 0] = 0.15
    dark[0, 1, 1] = np.nan
    a, b = stretch(dark), stretch(bright)
    lo, hi = STRETCH
    assert a[0, 0, :3] == pytest.approx([(0.05 - lo) / (hi - lo)] * 3)  # the same reflectance ...
    assert b[0, 0, :3] == pytest.approx([(0.15 - lo) / (hi - lo)] * 3)  # ... is the same colour on any page
    assert stretch(np.full((3, 1, 1), 0.6))[0, 0, :3] == pytest.approx([1.0] * 3)  # clipped above the range
    assert a[1, 1, 3] == 0.0 and a[0, 0, 3] == 1.0  # unobserved pixels are transparent


class _View:
    """The two calls basemap makes of a MemoryView, over one in-memory composite."""

    def __init__(self, months: dict[str, float]) -> None:
        self._months = months

    def months(self, asset: str, tile: str) -> list[str]:
        if asset != "surface_reflectance":
            raise MissingDataError(asset)
        return sorted(self._months)

    def raster(self, asset: str, tile: str, month: str):
        import xarray as xr

        value = self._months[month]
        refl = np.full((4, *GRID.shape), value, dtype=np.float32)
        refl[2] = value / 2  # blue at half
        return xr.Dataset({"reflectance": (("band", "y", "x"), refl)}, coords={"band": ["red", "green", "blue", "nir"]})


def test_basemap_takes_the_months_composite_or_the_latest_before_it():
    view = _View({"2023-06": 0.06, "2023-08": 0.12})
    base = basemap(view, "33TVM", "2023-07", GRID)
    assert base.month == "2023-06"
    assert base.rgba[0, 0].tolist() == pytest.approx([51, 51, 25.5, 255], abs=0.5)  # 0.06/0.3 of 255; blue half
    assert basemap(view, "33TVM", "2023-08", GRID).month == "2023-08"
    grey = basemap(view, "33TVM", "2023-01", GRID)
    assert grey.month is None and "no true-colour composite" in grey.label


def test_map_axes_are_labelled_in_degrees_where_the_meridians_cross_the_edges():
    from matplotlib.figure import Figure
    from pyproj import Transformer

    base = Basemap(np.full((*GRID.shape, 4), 255, dtype=np.uint8), GRID, "2023-08")
    fig = Figure()
    ax = fig.subplots()
    draw_map(ax, base, overlays=[class_overlay(np.ones(GRID.shape, dtype=np.uint8), {1: "red"})])
    to_geo = Transformer.from_crs(32633, 4326, always_xy=True)
    x0, y0, x1, y1 = GRID.bounds
    xticks, labels = ax.get_xticks(), [t.get_text() for t in ax.get_xticklabels()]
    assert len(xticks) >= 2
    for x, label in zip(xticks, labels, strict=True):
        lon, _ = to_geo.transform(x, y0)
        assert label.endswith("°E") and float(label[:-2]) == pytest.approx(lon, abs=2e-6)
    for y, label in zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True):
        _, lat = to_geo.transform(x0, y)
        assert label.endswith("°N") and float(label[:-2]) == pytest.approx(lat, abs=2e-6)
    texts = [t.get_text() for t in ax.findobj(match=lambda a: hasattr(a, "get_text"))]
    assert "N" in texts  # the north arrow
    assert any(t in ("200 m", "100 m") for t in texts)  # a scale bar of a round length, <= 1/4 of 1.2 km
    assert "EPSG:32633 (WGS 84 / UTM zone 33N)" in ax.get_xlabel()


def test_web_map_layers_are_files_in_the_report_folder_and_the_page_loads_nothing_from_the_network():
    import geopandas as gpd
    from PIL import Image
    from shapely.geometry import LineString

    web = WebMap(GRID)
    mask = np.zeros(GRID.shape, dtype=np.uint8)
    mask[:, :60] = 1  # west half
    web.add_raster("flood", "flood", class_overlay(mask, {1: "#ff0000"}, 1.0))
    road = LineString([(500_100.0, 5_099_500.0), (501_100.0, 5_099_500.0)])
    web.add_vectors("roads", "roads", gpd.GeoSeries([road]), style={"color": "#000"})
    files = web.files()
    assert {"leaflet.js", "leaflet.css", "map_flood.png", "map_roads.geojson"} <= set(files)
    img = np.asarray(Image.open(io.BytesIO(files["map_flood.png"])).convert("RGBA"))
    h, w = img.shape[:2]
    assert tuple(img[h // 2, w // 4]) == (255, 0, 0, 255) and img[h // 2, 3 * w // 4, 3] == 0  # warped, not moved
    (south, west), (north, east) = web.rasters[0]["bounds"]
    bw, bs, be, bn = web.bounds_wgs84
    assert (west, south, east, north) == pytest.approx((bw, bs, be, bn), abs=1e-4)
    [feature] = json.loads(files["map_roads.geojson"])["features"]
    (lon0, lat0), _ = feature["geometry"]["coordinates"]
    assert bw < lon0 < be and bs < lat0 < bn  # WGS 84 degrees, not metres
    html = web.html()
    assert 'src="leaflet.js"' in html and 'href="leaflet.css"' in html
    loads = re.findall(r'(?:src|href)="([^"]+)"|url\(([^)]+)\)', html + files["leaflet.css"].decode())
    assert all(not (a or b).startswith(("http:", "https:", "//")) for a, b in loads), loads
    inline = inline_webmap(html, files.__getitem__)
    assert (
        'src="leaflet.js"' not in inline
        and "sourceMappingURL" not in inline
        and '"url": "data:image/png;base64,' in inline
    )


def test_a_whole_sentinel2_tile_becomes_a_web_layer_of_bounded_size():
    from PIL import Image

    from memories.applications.webmap import MAX_WEB_PX

    grid = TileGrid("33TVM", 32633, 500_000.0, 5_100_000.0, 2400, 2000, 10.0)  # 3450 px wide in Web Mercator
    web = WebMap(grid)
    mask = np.zeros(grid.shape, dtype=np.uint8)
    mask[:, :1200] = 1
    web.add_raster("half", "west half", class_overlay(mask, {1: "#00ff00"}, 1.0))
    img = Image.open(io.BytesIO(web.files()["map_half.png"]))
    assert max(img.size) == MAX_WEB_PX
    (south, west), (north, east) = web.rasters[0]["bounds"]
    assert (west, south, east, north) == pytest.approx(web.bounds_wgs84, abs=1e-3)  # the same place, coarser
