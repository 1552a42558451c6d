"""Land cover on real data: the eo-learn Sentinel-2 patch south of Ljubljana, scored on real land use.

Data (``../shared/data/s2_slovenia``, see its README): five Sentinel-2 **Level-1C**
scenes of 2015-07-11 to 2015-09-09 (top-of-atmosphere reflectance, *not* the
surface reflectance the project's composites hold: no atmospheric correction, so
the model trained here is specific to TOA input), 101 x 100 pixels at 10 m in
EPSG:32633, and the 88 real land-use polygons (Slovenian RABA register, via the
eo-learn ``LULC`` classes) with their per-pixel raster ``LULC.npy``.

Bands: B02 B03 B04 B08 B11 B12 -> blue green red nir swir16 swir22 (the
project's :data:`~memories.earth.stac_profiles.COMMON_BANDS`).

Class mapping (eo-learn LULC id -> :mod:`memories.classes`), :data:`LULC_TO_CLASS`:

==========================  ===============  =====================================
LULC id / name              project class    why
==========================  ===============  =====================================
0 no data (RABA 1600)       0 (no label)     uncultivated farmland: no counterpart
1 cultivated land           3 cropland
2 forest                    2 forest
3 grassland                 4 grassland
4 shrubland                 4 grassland      low woody vegetation; the project has
                                             no shrub class, grassland is nearest
5 water                     1 water
6 wetland                   0 (no label)     no counterpart
7 tundra                    0 (no label)     no counterpart
8 artificial surface        5 built-up
9 bareland                  6 bare soil
10 snow and ice             0 (no label)     no counterpart
==========================  ===============  =====================================

Run ``python -m bench.slovenia`` to train with the seeded spatial split and
print per-class accuracy and IoU on the held-out blocks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memories.classes import CLASS_BY_CODE, NO_LABEL
from memories.config import ModelSettings
from memories.earth.stac_profiles import COMMON_BANDS
from memories.errors import DataSourceError

__all__ = [
    "LULC_TO_CLASS",
    "SLOVENIA_SETTINGS",
    "SloveniaData",
    "load_slovenia",
    "map_lulc",
    "rasterize_lulc",
    "train_slovenia",
]

LULC_TO_CLASS: dict[int, int] = {0: 0, 1: 3, 2: 2, 3: 4, 4: 4, 5: 1, 6: 0, 7: 0, 8: 5, 9: 6, 10: 0}
"""eo-learn LULC id -> project class code (see the module docstring for the reasons)."""

L1C_BANDS: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
"""Band order of ``REFERENCE_SCENES.npy``."""
BAND_OF_COMMON: dict[str, str] = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
}

SLOVENIA_SETTINGS = ModelSettings(width=16, max_epochs=10, patch_px=16, patches_per_scene=48, seed=7)
"""16 px patches in 32 px split blocks: 16 blocks, 4 held out (a quarter of the patch)."""


@dataclass(frozen=True)
class SloveniaData:
    """The five scenes, the labels and the grid of the Slovenian patch."""

    scenes: list[np.ndarray]
    """Per date, float32 ``(6, 101, 100)`` TOA reflectance 0–1 of :data:`COMMON_BANDS`, oldest first."""
    dates: list[str]
    """ISO acquisition dates, oldest first."""
    labels: np.ndarray
    """uint8 ``(101, 100)`` project class codes rasterized from ``LULC.gpkg``."""
    labels_from_npy: np.ndarray
    """uint8 ``(101, 100)`` project class codes of ``LULC.npy`` (the source's own raster)."""
    transform: Any
    """Affine transform of the grid (EPSG:32633, metres)."""


def default_data_dir() -> Path:
    """``../shared/data/s2_slovenia`` beside the project folder."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "s2_slovenia"


def map_lulc(lulc: np.ndarray) -> np.ndarray:
    """eo-learn LULC ids -> project class codes (uint8); unknown ids become 0 (no label)."""
    a = np.asarray(lulc).astype(np.int64)
    lut = np.zeros(max(max(LULC_TO_CLASS), int(a.max(initial=0))) + 1, dtype=np.uint8)
    for k, v in LULC_TO_CLASS.items():
        lut[k] = v
    return lut[np.clip(a, 0, len(lut) - 1)]


def rasterize_lulc(gpkg: str | Path, transform: Any, shape: tuple[int, int]) -> np.ndarray:
    """Project class codes (uint8) burned from the land-use polygons on the grid (pixel centres)."""
    import geopandas as gpd
    from rasterio.features import rasterize

    gdf = gpd.read_file(gpkg)
    codes = map_lulc(gdf["LULC_ID"].to_numpy())
    shapes = [(g, int(c)) for g, c in zip(gdf.geometry, codes, strict=True) if c != NO_LABEL]
    return np.asarray(rasterize(shapes, out_shape=shape, transform=transform, fill=NO_LABEL, dtype="uint8"))


def load_slovenia(data_dir: str | Path | None = None) -> SloveniaData:
    """Read the scenes, rasterize the land-use polygons and map both label sources to project classes.

    Raises:
        DataSourceError: the data folder is missing.
    """
    from rasterio.transform import from_bounds

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    scenes_path = root / "REFERENCE_SCENES.npy"
    if not scenes_path.exists():
        raise DataSourceError(f"{scenes_path} is missing; point data_dir at the s2_slovenia folder of shared/data")
    raw = np.load(scenes_path)  # (5, 101, 100, 13), README: scene i taken at timestamps[k[i]]
    stamps = json.loads((root / "eopatch" / "timestamps.json").read_text())
    order_k = [2, 1, 4, 3, 0]
    dates = [stamps[k][:10] for k in order_k]
    idx = [L1C_BANDS.index(BAND_OF_COMMON[b]) for b in COMMON_BANDS]
    by_date = sorted(range(len(dates)), key=lambda i: dates[i])
    scenes = [np.moveaxis(raw[i][:, :, idx], -1, 0).astype(np.float32) for i in by_date]
    bbox = json.loads((root / "eopatch" / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in bbox], [p[1] for p in bbox]
    rows, cols = raw.shape[1:3]
    transform = from_bounds(min(xs), min(ys), max(xs), max(ys), cols, rows)
    labels = rasterize_lulc(root / "eopatch" / "vector_timeless" / "LULC.gpkg", transform, (rows, cols))
    from_npy = map_lulc(np.load(root / "eopatch" / "mask_timeless" / "LULC.npy")[..., 0])
    return SloveniaData(scenes, sorted(dates), labels, from_npy, transform)


def train_slovenia(
    data: SloveniaData | None = None,
    *,
    settings: ModelSettings = SLOVENIA_SETTINGS,
    val_fraction: float = 0.25,
    accelerator: str = "auto",
) -> Any:
    """Train the land-cover U-Net on the five dates with the seeded spatial split.

    The five dates share one grid, so the held-out blocks are the same place in
    every date: no held-out pixel's label is trained on. Returns the
    :class:`~memories.ai.land_cover.TrainingResult`; its metrics are per-class
    accuracy and IoU over the held-out blocks of all five dates.
    """
    from memories.ai.land_cover import train_land_cover

    d = data or load_slovenia()
    return train_land_cover(
        [(s, d.labels) for s in d.scenes],
        band_names=COMMON_BANDS,
        settings=settings,
        val_fraction=val_fraction,
        accelerator=accelerator,
    )


def metrics_table(metrics: dict[str, float], classes: Sequence[int] | None = None) -> str:
    """A plain-text table of per-class accuracy and IoU, then overall accuracy and mean IoU."""
    lines = [f"{'class':<12} {'accuracy':>9} {'IoU':>7}"]
    for code in classes or sorted(CLASS_BY_CODE):
        name = CLASS_BY_CODE[code].name
        if f"val_accuracy/{name}" in metrics:
            lines.append(f"{name:<12} {metrics[f'val_accuracy/{name}']:>9.3f} {metrics[f'val_iou/{name}']:>7.3f}")
    lines.append(f"{'overall':<12} {metrics['val_accuracy']:>9.3f} {metrics['val_miou']:>7.3f}  (accuracy, mean IoU)")
    return "\n".join(lines)


def main() -> None:
    """Train on the Slovenian patch and print the held-out metrics."""
    data = load_slovenia()
    agree = float((data.labels == data.labels_from_npy).mean())
    print(f"polygons rasterized vs LULC.npy: {agree:.3f} of pixels agree")
    result = train_slovenia(data)
    m = result.metrics
    print(f"held-out labelled pixels: {int(m['n_val_pixels'])} (x5 dates), train pixels {int(m['n_train_pixels'])}")
    print(metrics_table(m))


if __name__ == "__main__":
    main()
