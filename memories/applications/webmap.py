"""The interactive map of a report page: Leaflet, bundled with the report, working with the network off.

A :class:`WebMap` holds the layers of one report's map: rasters (the true-colour
composite of :func:`memories.applications.maps.basemap`, change and flood masks) and
vector layers (buildings, roads, districts, points). :meth:`WebMap.files` gives the
files written next to ``report.html``: Leaflet's script and stylesheet (vendored in
this package, :data:`LEAFLET_VERSION`; its icons inlined into the stylesheet), each
raster as a PNG warped to Web Mercator (EPSG:3857, nearest neighbour, so a mask stays
a mask), each vector layer as GeoJSON (WGS 84). :meth:`WebMap.html` is the block the
page embeds: a ``<div>``, ``<script src="leaflet.js">`` and the layer list with the
GeoJSON inline (a page opened from ``file://`` may load scripts and images from its
folder but not fetch JSON). Nothing is loaded from the internet: there is no tile
layer, the composite is the base.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import numpy as np

from memories.applications.png import png_bytes
from memories.grid import TileGrid

__all__ = [
    "GIS_STYLES",
    "LEAFLET_FILES",
    "LEAFLET_VERSION",
    "WebMap",
    "add_gis_layers",
    "add_layers",
    "inline_webmap",
    "read_gis_layers",
]

LEAFLET_VERSION = "1.9.4"
"""The vendored Leaflet (``npm pack leaflet@1.9.4``, BSD-2-Clause; ``static/leaflet/LICENSE``)."""
LEAFLET_FILES = ("leaflet.js", "leaflet.css")
"""Files of Leaflet written next to every report page that has a map."""
WEB_MERCATOR = "EPSG:3857"
MAX_WEB_PX = 2048
"""Largest side of a raster layer's PNG, pixels: a whole Sentinel-2 tile (10 980 px) is resampled (nearest) to
this, about 54 m pixels, so a page stays a few MB; zoomed-in detail is in the static figures and the stores."""
COORD_DECIMALS = 6
"""Decimals of the GeoJSON coordinates (degrees; 1e-6 deg is about 0.1 m)."""


@dataclass
class WebMap:
    """The layers of a report's interactive map over ``grid`` (or its ``window``, x0, y0, x1, y1 metres)."""

    grid: TileGrid
    window: tuple[float, float, float, float] | None = None
    rasters: list[dict[str, Any]] = field(default_factory=list)
    vectors: list[dict[str, Any]] = field(default_factory=list)
    _pngs: dict[str, bytes] = field(default_factory=dict, repr=False)

    def add_raster(self, key: str, label: str, rgba: np.ndarray, *, visible: bool = True) -> None:
        """A raster layer ``map_<key>.png`` from an (H, W, 4) RGBA array on the grid (float 0–1 or uint8)."""
        img = np.asarray(rgba)
        if img.dtype != np.uint8:
            img = np.asarray(np.round(np.clip(img, 0, 1) * 255), dtype=np.uint8)
        png, bounds = self._warp_png(img)
        name = f"map_{key}.png"
        self._pngs[name] = png
        self.rasters.append({"key": key, "label": label, "url": name, "bounds": bounds, "visible": visible})

    def add_vectors(
        self, key: str, label: str, geoms: Any, *, style: dict[str, Any], visible: bool = True, props: Any = None
    ) -> None:
        """A vector layer ``map_<key>.geojson`` from a GeoSeries/GeoDataFrame in the tile CRS.

        ``style`` is Leaflet's path style (``color``, ``weight``, ``fillColor``, ``fillOpacity``, ``radius``
        for points); ``props`` a DataFrame of the same rows whose columns become the features' popups.
        """
        import geopandas as gpd

        gs = geoms.geometry if hasattr(geoms, "geometry") else geoms
        frame = gpd.GeoDataFrame(
            props.reset_index(drop=True) if props is not None else None,
            geometry=gpd.GeoSeries(list(gs), crs=self.grid.crs),
        )
        frame = frame[~frame.geometry.is_empty & frame.geometry.notna()].to_crs(4326)
        data = json.loads(frame.to_json(drop_id=True, to_wgs84=False))
        _round_coords(data)
        self.vectors.append({"key": key, "label": label, "data": data, "style": style, "visible": visible})

    @property
    def bounds_wgs84(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) degrees of the map's window."""
        from pyproj import Transformer

        x0, y0, x1, y1 = self.window or self.grid.bounds
        t = Transformer.from_crs(self.grid.crs, 4326, always_xy=True)
        w, s, e, n = t.transform_bounds(x0, y0, x1, y1)
        return (float(w), float(s), float(e), float(n))

    def files(self) -> dict[str, bytes]:
        """File name -> bytes of everything the map loads, to write next to ``report.html``."""
        # The source-map comment would send devtools after a file that is not shipped.
        script = _leaflet("leaflet.js").replace(b"//# sourceMappingURL=leaflet.js.map", b"")
        out = {"leaflet.js": script, "leaflet.css": _leaflet_css()}
        out.update(self._pngs)
        for v in self.vectors:
            out[f"map_{v['key']}.geojson"] = json.dumps(v["data"]).encode()
        return out

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` records of the map: its bounds and its layers with their files."""
        return {
            "bbox_wgs84": list(self.bounds_wgs84),
            "library": f"Leaflet {LEAFLET_VERSION}",
            "layers": [{"key": r["key"], "label": r["label"], "file": r["url"]} for r in self.rasters]
            + [
                {
                    "key": v["key"],
                    "label": v["label"],
                    "file": f"map_{v['key']}.geojson",
                    "features": len(v["data"]["features"]),
                }
                for v in self.vectors
            ],
        }

    def html(self) -> str:
        """The page's block: the map's ``<div>``, Leaflet from the report's folder and the layers."""
        w, s, e, n = self.bounds_wgs84
        config = {
            "bounds": [[s, w], [n, e]],
            "rasters": self.rasters,
            "vectors": self.vectors,
        }
        return _TEMPLATE.replace("__CONFIG__", json.dumps(config).replace("</", "<\\/"))

    # -- rasters in Web Mercator -----------------------------------------------------------------
    def _warp_png(self, img: np.ndarray) -> tuple[bytes, list[list[float]]]:
        from PIL import Image
        from pyproj import Transformer
        from rasterio.transform import from_bounds
        from rasterio.warp import Resampling, calculate_default_transform, reproject

        grid = self.grid
        x0, y0, x1, y1 = self.window or grid.bounds
        res = grid.resolution
        c0, c1 = int(max(0, (x0 - grid.x_min) // res)), int(min(grid.width, -(-(x1 - grid.x_min) // res)))
        r0, r1 = int(max(0, (grid.y_max - y1) // res)), int(min(grid.height, -(-(grid.y_max - y0) // res)))
        src = np.moveaxis(img[r0:r1, c0:c1], -1, 0)
        sx0, sy1 = grid.x_min + c0 * res, grid.y_max - r0 * res
        sx1, sy0 = grid.x_min + c1 * res, grid.y_max - r1 * res
        src_transform = from_bounds(sx0, sy0, sx1, sy1, src.shape[2], src.shape[1])
        dst_transform, width, height = calculate_default_transform(
            grid.crs, WEB_MERCATOR, src.shape[2], src.shape[1], sx0, sy0, sx1, sy1
        )
        if max(width, height) > MAX_WEB_PX:  # a whole 10 980 px tile: coarser pixels, same bounds
            k = max(width, height) / MAX_WEB_PX
            dst_transform, width, height = calculate_default_transform(
                grid.crs,
                WEB_MERCATOR,
                src.shape[2],
                src.shape[1],
                sx0,
                sy0,
                sx1,
                sy1,
                dst_width=max(1, round(width / k)),
                dst_height=max(1, round(height / k)),
            )
        dst = np.zeros((4, height, width), dtype=np.uint8)
        reproject(
            src,
            dst,
            src_transform=src_transform,
            src_crs=grid.crs,
            dst_transform=dst_transform,
            dst_crs=WEB_MERCATOR,
            resampling=Resampling.nearest,
            src_nodata=None,
            dst_nodata=0,
        )
        encoded = png_bytes(Image.fromarray(np.ascontiguousarray(np.moveaxis(dst, 0, -1))))
        mx0, my1 = dst_transform @ (0, 0)
        mx1, my0 = dst_transform @ (width, height)
        lon0, lat0 = Transformer.from_crs(WEB_MERCATOR, 4326, always_xy=True).transform(mx0, my0)
        lon1, lat1 = Transformer.from_crs(WEB_MERCATOR, 4326, always_xy=True).transform(mx1, my1)
        return encoded, [[float(lat0), float(lon0)], [float(lat1), float(lon1)]]


GIS_STYLES: dict[str, dict[str, Any]] = {
    "buildings": {"color": "#222", "weight": 1, "fillColor": "#ffffff", "fillOpacity": 0.5},
    "roads": {"color": "#f1c40f", "weight": 2},
}
"""Leaflet style of each GIS layer :func:`add_gis_layers` draws."""


def add_gis_layers(
    web: WebMap, view: Any, tile: str, month: str, names: tuple[str, ...] = ("buildings", "roads")
) -> str | None:
    """Add the GIS layers ``names`` of the latest ``gis_layers`` month up to ``month`` to ``web`` (clipped to
    its window); returns that month, None when the memory holds none or they cannot be read (nothing added: the
    layers decorate the map, no number of the report depends on them)."""
    held = read_gis_layers(view, tile, month, names)
    if held is None:
        return None
    add_layers(web, *held, names=names)
    return held[0]


def read_gis_layers(
    view: Any, tile: str, month: str, names: tuple[str, ...] = ("buildings", "roads")
) -> tuple[str, dict[str, Any]] | None:
    """The month and the layers ``names`` (name -> GeoDataFrame) of the latest ``gis_layers`` month up to
    ``month``; None when the memory holds none or they cannot be read (the read half of :func:`add_gis_layers`)."""
    from memories.errors import MissingDataError, StorageError

    try:
        held = [m for m in view.months("gis_layers", tile) if m <= month]
        if not held:
            return None
        return str(held[-1]), view.layers(tile, held[-1], list(names))
    except (MissingDataError, StorageError):
        return None


def add_layers(
    web: WebMap, month: str, layers: dict[str, Any], names: tuple[str, ...] = ("buildings", "roads")
) -> None:
    """Add the layers ``names`` of ``layers`` (read for ``month``) to ``web``, clipped to its window (the drawing
    half of :func:`add_gis_layers`)."""
    from shapely.geometry import box

    frame = box(*(web.window or web.grid.bounds))
    for name in names:
        gdf = layers.get(name)
        if gdf is None or not len(gdf):
            continue
        gdf = gdf[gdf.intersects(frame)]
        cols = [c for c in ("osm_id", "name", "building", "highway", "start_date") if c in gdf.columns]
        props = gdf[cols].astype(str).where(gdf[cols].notna(), None) if cols else None
        web.add_vectors(name, f"{name} ({month})", gdf.geometry, style=GIS_STYLES.get(name, {}), props=props)


def inline_webmap(html: str, read: Any) -> str:
    """``html`` with the map's sibling files inlined (one self-contained page): Leaflet's script and stylesheet
    as inline blocks, each raster URL as a data URI. ``read(name)`` returns a sibling file's bytes."""
    if 'src="leaflet.js"' not in html:
        return html
    html = html.replace('<link rel="stylesheet" href="leaflet.css">', f"<style>{read('leaflet.css').decode()}</style>")
    html = html.replace('<script src="leaflet.js"></script>', f"<script>{read('leaflet.js').decode()}</script>")

    def uri(m: re.Match[str]) -> str:
        return f'"url": "data:image/png;base64,{base64.b64encode(read(m.group(1))).decode()}"'

    return re.sub(r'"url": "(map_[A-Za-z0-9_]+\.png)"', uri, html)


def _leaflet(name: str) -> bytes:
    return (files("memories.applications") / "static" / "leaflet" / name).read_bytes()


def _leaflet_css() -> bytes:
    """Leaflet's stylesheet with its icons as data URIs (no ``images/`` folder beside every report)."""
    css = _leaflet("leaflet.css").decode()

    def inline(m: re.Match[str]) -> str:
        data = base64.b64encode(_leaflet(f"images/{m.group(1)}")).decode()
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\(images/([A-Za-z0-9_-]+\.png)\)", inline, css).encode()


def _round_coords(obj: Any) -> None:
    """Round every coordinate of a GeoJSON object in place to :data:`COORD_DECIMALS`."""
    if isinstance(obj, dict):
        if "coordinates" in obj:
            obj["coordinates"] = _round(obj["coordinates"])
        for v in obj.values():
            if isinstance(v, dict | list):
                _round_coords(v)
    elif isinstance(obj, list):
        for v in obj:
            _round_coords(v)


def _round(c: Any) -> Any:
    return round(c, COORD_DECIMALS) if isinstance(c, float) else [_round(v) for v in c]


_TEMPLATE = """<link rel="stylesheet" href="leaflet.css">
<div id="webmap" class="webmap" style="height: 560px; border: 1px solid #ccc; background: #d9d9d9;"></div>
<script src="leaflet.js"></script>
<script>
(function () {
  var cfg = __CONFIG__;
  var map = L.map("webmap", {zoomSnap: 0.25, preferCanvas: false});
  var overlays = {};
  cfg.rasters.forEach(function (r) {
    var layer = L.imageOverlay(r.url, r.bounds, {alt: r.label, className: "webmap-raster webmap-" + r.key});
    overlays[r.label] = layer;
    if (r.visible) { layer.addTo(map); }
  });
  cfg.vectors.forEach(function (v) {
    var layer = L.geoJSON(v.data, {
      style: function () { return v.style; },
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, v.style); },
      onEachFeature: function (f, l) {
        var p = f.properties || {};
        var keys = Object.keys(p).filter(function (k) { return p[k] !== null && p[k] !== ""; });
        if (keys.length) {
          l.bindPopup(keys.map(function (k) { return "<b>" + k + "</b>: " + String(p[k]); }).join("<br>"));
        }
      }
    });
    overlays[v.label] = layer;
    if (v.visible) { layer.addTo(map); }
  });
  L.control.layers(null, overlays, {collapsed: false}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  map.fitBounds(cfg.bounds);
  window.reportMap = map;
  window.reportMapLayers = overlays;
})();
</script>
<style>.webmap-raster { image-rendering: pixelated; }</style>
"""
