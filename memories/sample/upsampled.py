"""A bench world at a real tile size, cheaply: a small sample world's scenes upsampled k x k.

Rendering a 10980 x 10980 px tile pixel by pixel takes the generator tens of minutes;
a 1098 px world with each pixel repeated 10 x 10 (the same 10 m and 20 m pixels, a
tile 10 x wider, its landscape 10 x coarser) takes minutes and has the same
structure at the scale that memory and I/O see: the
same bands, dtypes, nodata, SCL classes and tiled layout (1024 px tiles, zstd;
no overviews, which the composite never reads) as real Sentinel-2 L2A files of a full tile. Only its STAC items and
COGs are written; ground truth stays the small world's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from memories.grid import TileGrid
from memories.sample.spec import SampleWorldSpec

__all__ = ["upsampled_items"]


def upsampled_items(
    spec: SampleWorldSpec, factor: int, root: str | Path, *, month: str, max_scenes: int | None = None
) -> tuple[TileGrid, list[dict[str, Any]]]:
    """(grid, item dicts of ``month``) of the first tile of ``spec``'s world, every COG upsampled ``factor`` x.

    Written once under ``root`` (a ``done.json`` marks a complete world); ``max_scenes`` keeps the
    first scenes of the month only (fewer files to write).
    """
    import rasterio

    from memories.sample import SampleWorld

    root = Path(root)
    done = root / "done.json"
    if done.exists():
        d = json.loads(done.read_text())
        return TileGrid.from_dict(d["grid"]), d["items"]
    world = SampleWorld.ensure(spec, root / "small")
    small = world.tiles[0]
    grid = TileGrid(
        small.tile_id,
        small.epsg,
        small.x_min,
        small.y_max,
        small.width * factor,
        small.height * factor,
        small.resolution,
    )
    items = [it for it in world.items(small.tile_id) if it["properties"]["datetime"].startswith(month)]
    items = items[:max_scenes] if max_scenes else items
    out = []
    for it in items:
        it = json.loads(json.dumps(it))
        for key, asset in it["assets"].items():
            src = asset.get("href", "")
            if not str(src).endswith(".tif"):
                continue
            dest = root / "cogs" / it["id"] / f"{key}.tif"
            dest.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(src) as ds:
                values = np.repeat(np.repeat(ds.read(1), factor, axis=0), factor, axis=1)
                t = ds.transform
                profile = {
                    "driver": "GTiff",  # tiled like a COG; no overviews (the COG driver's copy doubles the time)
                    "tiled": True,
                    "width": values.shape[1],
                    "height": values.shape[0],
                    "count": 1,
                    "dtype": values.dtype,
                    "crs": ds.crs,
                    "nodata": ds.nodata,
                    "blockxsize": 1024,
                    "blockysize": 1024,
                    "compress": "zstd",
                    "zstd_level": 1,
                    "num_threads": "ALL_CPUS",
                    "transform": t,  # same pixel size: the tile covers factor x the ground
                }
            with rasterio.open(dest, "w", **profile) as dst:
                dst.write(values, 1)
            del values
            asset["href"] = str(dest)
            if "proj:shape" in asset:
                asset["proj:shape"] = [s * factor for s in asset["proj:shape"]]
        out.append(it)
    done.write_text(json.dumps({"grid": grid.to_dict(), "items": out}))
    return grid, out
