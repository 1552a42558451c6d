import numpy as np
import pytest
import xarray as xr

from memories.earth.bands import band_info, to_reflectance
from memories.earth.imagery import scl_clear_mask
from memories.earth.indices import compute_indices, evi, index_stats, nbr, ndvi, ndwi


def test_indices_of_known_spectra():
    # dense vegetation: red 0.03, nir 0.40 -> NDVI 0.860; water: green 0.05, nir 0.015 -> NDWI 0.538
    assert np.isclose(ndvi(np.float32(0.40), np.float32(0.03)), 0.37 / 0.43)
    assert np.isclose(ndwi(0.05, 0.015), 0.035 / 0.065)
    assert np.isclose(evi(0.40, 0.03, 0.03), 2.5 * 0.37 / (0.40 + 0.18 - 0.225 + 1))
    assert np.isclose(nbr(0.40, 0.08), 0.32 / 0.48)
    assert np.isnan(ndvi(np.array([0.0]), np.array([0.0])))[0]


def test_compute_indices_on_a_band_dataarray():
    refl = xr.DataArray(
        np.array([[[0.03]], [[0.07]], [[0.03]], [[0.40]], [[0.18]], [[0.08]]], dtype=np.float32),
        dims=("band", "y", "x"),
        coords={"band": ["blue", "green", "red", "nir", "swir16", "swir22"]},
    )
    ds = compute_indices(refl)
    assert set(ds.data_vars) == {"ndvi", "ndwi", "evi", "nbr"}
    assert ds["ndvi"].dtype == np.float32
    assert np.isclose(ds["ndvi"].values.item(), 0.37 / 0.43, rtol=1e-6)


def test_earth_search_dn_to_reflectance_with_nodata():
    item = {"id": "x", "assets": {"red": {"raster:bands": [{"nodata": 0, "scale": 0.0001, "offset": -0.1}]}}}
    info = band_info(item, "red")
    dn = np.array([0, 1000, 5000], dtype=np.uint16)
    r = to_reflectance(dn, info.scale, info.offset, info.nodata)
    assert np.isnan(r[0]) and np.allclose(r[1:], [0.0, 0.4])


def test_scl_mask_keeps_only_clear_classes():
    scl = np.arange(12, dtype=np.uint8)
    assert list(np.flatnonzero(scl_clear_mask(scl))) == [4, 5, 6, 7, 11]


def test_fast_nanmedian_equals_numpy():
    import numpy as np

    from memories.earth.imagery import nanmedian_first_axis

    rng = np.random.default_rng(3)
    a = rng.random((7, 40, 30)).astype(np.float32)
    a[rng.random(a.shape) < 0.4] = np.nan
    a[:, 0, 0] = np.nan  # never observed
    for axis in (0, -1):
        b = np.moveaxis(a, 0, axis)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = np.nanmedian(b, axis=axis)
        got = nanmedian_first_axis(b, axis=axis)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_moisture_and_modified_water_indices_of_known_spectra():
    from memories.earth.indices import mndwi, ndmi

    # water: green 0.05, swir16 0.01 -> MNDWI 0.667; moist canopy: nir 0.40, swir16 0.18 -> NDMI 0.379
    assert np.isclose(mndwi(0.05, 0.01), 0.04 / 0.06)
    assert np.isclose(ndmi(0.40, 0.18), 0.22 / 0.58)
    # built-up is bright in SWIR1: MNDWI separates it from water where McFeeters NDWI does not
    assert mndwi(0.10, 0.20) < 0 < mndwi(0.05, 0.01)


def test_compute_indices_rejects_unknown_names_and_missing_bands():
    import pytest

    from memories.errors import ProcessingError

    refl = xr.DataArray(np.full((2, 1, 1), 0.2, np.float32), dims=("band", "y", "x"), coords={"band": ["red", "nir"]})
    assert set(compute_indices(refl, ("ndvi",)).data_vars) == {"ndvi"}
    with pytest.raises(ProcessingError, match="needs bands"):
        compute_indices(refl, ("ndwi",))
    with pytest.raises(ProcessingError, match="unknown index"):
        compute_indices(refl, ("savi",))


def test_normalized_differences_stay_in_range_on_dark_and_negative_reflectance():
    """Dark pixels the -0.1 offset made negative gave NBR of -1e6 in a real run: now NaN or clipped."""
    import xarray as xr

    from memories.earth.indices import MIN_SUM, nbr, ndwi

    nir = np.array([0.3, -0.01, 0.00004, -0.02, 0.0])
    swir22 = np.array([0.1, 0.0100001, 0.00004, 0.01, 0.0])
    out = nbr(nir, swir22)
    assert out[0] == pytest.approx(0.5)
    assert np.isnan(out[1]) and np.isnan(out[2]) and np.isnan(out[3]) and np.isnan(out[4])  # sums < MIN_SUM
    # Water with a slightly negative NIR keeps being water (clipped to 1), not 2.
    assert ndwi(np.array([0.03]), np.array([-0.01]))[0] == 1.0
    lazy = nbr(xr.DataArray(nir), xr.DataArray(swir22)).values
    np.testing.assert_array_equal(np.isnan(lazy), np.isnan(out))
    assert np.nanmax(np.abs(lazy)) <= 1.0
    assert MIN_SUM > 0


def test_index_stats_are_mean_and_percentiles_of_finite_pixels_none_when_unseen():
    values = np.array([[0.1, 0.2], [0.3, np.nan]], dtype=np.float32)
    ds = xr.Dataset({"ndvi": (("y", "x"), values), "nbr": (("y", "x"), np.full((2, 2), np.nan, np.float32))})
    got = index_stats(ds)
    assert got["ndvi"]["mean"] == pytest.approx(0.2)
    assert got["ndvi"]["p10"] == pytest.approx(np.nanpercentile(values, 10))
    assert got["ndvi"]["p90"] == pytest.approx(0.28)
    assert got["nbr"] == {"mean": None, "p10": None, "p90": None}
    assert list(got) == ["ndvi", "nbr"]
