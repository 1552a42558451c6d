"""The pipeline's products carry their CF attributes into the store: units, long names, the DN scaling."""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest

from memories.earth.imagery import load_scenes, monthly_composite
from memories.earth.indices import compute_indices
from memories.earth.stac_profiles import COMMON_BANDS, get_profile
from memories.sample import SampleWorld, SampleWorldSpec
from memories.store import StorageRoot
from memories.store.raster import MonthlyRasterStore


@pytest.fixture(scope="module")
def composite_and_grid(tmp_path_factory):
    spec = SampleWorldSpec(seed=3, n_tiles=1, start_month="2023-06", n_months=1, size_px=64)
    world = SampleWorld.ensure(spec, tmp_path_factory.mktemp("world"))
    grid = world.tiles[0]
    items = [pystac.Item.from_dict(f) for f in json.loads(world.items_path.read_text())["features"]]
    items = items[:4]
    stack = load_scenes(items, get_profile("embedded"), grid, COMMON_BANDS, chunk_px=64)
    return monthly_composite(stack).compute(), grid


def test_stored_composite_and_indices_keep_units_long_names_and_the_dn_scaling(composite_and_grid, tmp_path):
    composite, grid = composite_and_grid
    root = StorageRoot(tmp_path.as_uri())
    sr = MonthlyRasterStore(root, "surface_reflectance", grid, "2023-06", chunk_px=64)
    sr.write_month("2023-06", composite)
    back = sr.read_month("2023-06")
    refl = back["reflectance"].attrs
    assert refl["units"] == "1" and "median" in refl["long_name"]
    # The sample world's raster:bands: scale 1e-4, offset -0.1 on every band (the composite was made from them).
    np.testing.assert_allclose(refl["dn_scale"], [1e-4] * len(COMMON_BANDS), rtol=1e-6)
    np.testing.assert_allclose(refl["dn_offset"], [-0.1] * len(COMMON_BANDS), rtol=1e-6)
    assert "scale_factor" not in refl  # the values are reflectance already: no CF reader may rescale them
    assert back["clear_count"].attrs["long_name"].startswith("clear observations")

    indices = compute_indices(back["reflectance"])
    ix = MonthlyRasterStore(root, "spectral_indices", grid, "2023-06", chunk_px=64)
    ix.write_month("2023-06", indices)
    stored = ix.read_month("2023-06")
    assert stored["ndvi"].attrs["long_name"] == "Normalized Difference Vegetation Index"
    assert stored["ndvi"].attrs["formula"] == "(NIR - red) / (NIR + red)"
    assert stored["evi"].attrs["bands"] == ["nir", "red", "blue"]
    assert all(stored[v].attrs["units"] == "1" and stored[v].attrs["grid_mapping"] == "spatial_ref" for v in indices)
