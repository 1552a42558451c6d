"""Scored on real Sentinel-2: the spectral cloud test against the source's cloud mask, NDVI against its NDVI.

Data: ``../shared/data/s2_slovenia`` (eo-learn example patch, 100 x 101 px at 10 m):
five Level-1C top-of-atmosphere scenes as single-band uint16 COGs (reflectance x
10000, nodata 0), the source's cloud mask ``CLM`` and ``NDVI`` for 68 dates.

Thresholds, chosen from what the test reaches (measured, textbook Fmask
thresholds, nothing tuned to this patch):

| date       | CLM cloud | agreement | F1        |
| 2015-08-20 | 100 %     | 0.9992    | 0.9996    |
| 2015-07-31 | 100 %     | 0.8575    | 0.9233    |  thin, hazy cloud: B02 0.15, B04 0.12
| 2015-09-09 | 0 %       | 0.9975    | undefined |
| 2015-08-30 | 0 %       | 0.9995    | undefined |
| 2015-07-11 | 0 %       | 1.0000    | undefined |

F1 is undefined where CLM has no cloud (no positives: precision and recall are
0/0 or 0); those dates are scored by agreement alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from memories.earth.indices import ndvi
from memories.earth.quality import spectral_clear_mask

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "s2_slovenia"
SCENE_INDEX = [2, 1, 4, 3, 0]
"""Scene i of REFERENCE_SCENES / the COGs is timestamps[SCENE_INDEX[i]]."""
BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12", "cirrus": "B10"}

MIN_AGREEMENT = 0.85
"""Every date: share of pixels where the spectral mask and CLM agree."""
MIN_MEAN_AGREEMENT = 0.96
"""Mean agreement over the five dates."""
MIN_F1 = 0.90
"""F1 of the cloud class on every date where CLM has cloud."""
MAX_NDVI_DIFF = 1e-6
"""NDVI from the COGs' B08 and B04 against the source's NDVI.npy (float32 rounding)."""


def _dates() -> list[str]:
    stamps = json.loads((DATA / "eopatch" / "timestamps.json").read_text())
    return [stamps[k][:10] for k in SCENE_INDEX]


def _read(date: str, band: str) -> np.ndarray:
    """Reflectance 0-1 (float32, NaN at nodata) of one COG."""
    import rasterio

    with rasterio.open(DATA / "cogs" / f"S2_L1C_{date}_{band}.tif") as ds:
        dn = ds.read(1)
        nodata = ds.nodata
    refl = dn.astype(np.float32) / np.float32(10000)
    return np.where(dn == nodata, np.float32(np.nan), refl) if nodata is not None else refl


def _scores(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(agreement, F1 of the cloud class; NaN where truth has no cloud)."""
    agreement = float((pred == truth).mean())
    if not truth.any():
        return agreement, math.nan
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    return agreement, 2 * tp / (2 * tp + fp + fn)


def test_spectral_cloud_mask_agrees_with_the_source_cloud_mask():
    clm = np.load(DATA / "eopatch" / "mask" / "CLM.npy")[..., 0].astype(bool)
    rows = []
    for k, date in zip(SCENE_INDEX, _dates()):
        bands = {name: _read(date, code) for name, code in BANDS.items()}
        cloud = ~spectral_clear_mask(bands)
        agreement, f1 = _scores(cloud, clm[k])
        rows.append((date, float(clm[k].mean()), float(cloud.mean()), agreement, f1))
    print("\ndate        CLM cloud  ours cloud  agreement  F1")
    for date, truth, ours, agreement, f1 in rows:
        f1_text = "undefined (no cloud in CLM)" if math.isnan(f1) else f"{f1:.4f}"
        print(f"{date}  {truth:9.3f}  {ours:10.4f}  {agreement:9.4f}  {f1_text}")
    for date, _, _, agreement, f1 in rows:
        assert agreement >= MIN_AGREEMENT, f"{date}: agreement {agreement:.4f} < {MIN_AGREEMENT}"
        if not math.isnan(f1):
            assert f1 >= MIN_F1, f"{date}: F1 {f1:.4f} < {MIN_F1}"
    assert np.mean([r[3] for r in rows]) >= MIN_MEAN_AGREEMENT
    assert sum(not math.isnan(r[4]) for r in rows) == 2  # two cloudy dates scored by F1, three clear ones not


def test_ndvi_from_the_real_bands_equals_the_source_ndvi():
    source = np.load(DATA / "eopatch" / "data" / "NDVI.npy")[..., 0]
    worst = 0.0
    for k, date in zip(SCENE_INDEX, _dates()):
        ours = ndvi(_read(date, "B08"), _read(date, "B04"))
        assert np.isfinite(ours).all()
        worst = max(worst, float(np.max(np.abs(ours - source[k]))))
    print(f"\nmax |NDVI ours - NDVI.npy| over 5 dates: {worst:.2e}")
    assert worst <= MAX_NDVI_DIFF


def test_source_ndvi_cog_matches_the_npy_on_every_date():
    import rasterio

    source = np.load(DATA / "eopatch" / "data" / "NDVI.npy")[..., 0]
    stamps = json.loads((DATA / "eopatch" / "timestamps.json").read_text())
    with rasterio.open(DATA / "cogs" / "NDVI_68dates.tif") as ds:
        cog = ds.read()
        assert list(ds.descriptions) == stamps
    np.testing.assert_allclose(cog, source, atol=MAX_NDVI_DIFF)
