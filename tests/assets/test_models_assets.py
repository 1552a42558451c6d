"""Model assets over the embedded world: land cover with MC-dropout variance, the change model and map.

Upstream ``surface_reflectance`` is seeded directly: each month's composite is the
sample world's clear-sky reflectance at mid-month plus seeded noise (sigma 0.01),
written through ``MonthlyRasterStore`` and recorded in the memory catalog, as the
imagery asset would. The assets under test then run for real through ``materialize``
with the real STAC server resource of the embedded world.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from dagster import DagsterInstance, materialize

from assets.models import change_map, change_model, land_cover
from assets.partitions import FIRST_MONTH, TILES, partition_key
from dagster_project.definitions import defs
from memories.earth.catalogs import COMMON_BANDS
from memories.earth.gis import read_geoparquet
from memories.months import month_mid, month_range
from memories.sample.landscape import build_landscape
from memories.sample.scenes import clear_sky, repeat_to_10m
from memories.sample.spectra import BAND_INFO
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, ModelRuntimeResource, StorageResource

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("model_assets")
    stac = defs.resources["stac"]
    world = stac.sample_world.ensure()
    storage = StorageResource(root=(tmp / "store").as_uri())
    memory = MemoryCatalogResource(path=str(tmp / "catalog.sqlite"))
    root, catalog = storage.storage_root(), memory.catalog()
    months = world.months()
    for grid in world.tiles:
        landscape = build_landscape(world.spec, grid.tile_id)
        store = MonthlyRasterStore(root, "surface_reflectance", grid, FIRST_MONTH)
        for i, month in enumerate(months):
            rng = np.random.default_rng(i)
            bands = []
            for b in COMMON_BANDS:
                r = clear_sky(landscape, month_mid(month), b)
                bands.append(repeat_to_10m(r) if BAND_INFO[b].resolution == 20 else r)
            refl = (np.stack(bands) + rng.normal(0, 0.01, (6, *grid.shape))).astype(np.float32)
            ds = xr.Dataset({"reflectance": (("band", "y", "x"), refl)}, coords={"band": list(COMMON_BANDS)})
            store.write_month(month, ds)
            valid_from, valid_to = month_range(month)
            catalog.record(
                asset="surface_reflectance",
                uri=store.uri,
                tile=grid.tile_id,
                partition=month,
                valid_from=valid_from,
                valid_to=valid_to,
                crs=grid.crs,
                stats={},
            )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES, [g.tile_id for g in world.tiles])
    resources = {
        "stac": stac,
        "storage": storage,
        "memory": memory,
        "model_runtime": ModelRuntimeResource(accelerator="cpu", change_steps=40, change_width=8, mc_passes=4),
    }
    return {"world": world, "root": root, "instance": instance, "resources": resources, "months": months}


def test_change_model_then_change_map_find_the_events_on_the_held_out_tile(env) -> None:
    trained = materialize([change_model], resources=env["resources"], instance=env["instance"])
    assert trained.success
    meta = trained.asset_materializations_for_node("change_model")[0].metadata
    assert meta["held_out_tile"].value == "31UDQ"
    # August vs July on the held-out tile: the flood (1-22 August) is the change.
    month = env["months"][-1]
    result = materialize(
        [change_map],
        partition_key=partition_key(month, "31UDQ"),
        resources=env["resources"],
        instance=env["instance"],
        selection=[change_map],
    )
    assert result.success
    m = result.asset_materializations_for_node("change_map")[0].metadata
    assert m["reference_month"].value == env["months"][-2]
    iou_diff, iou_learned = m["iou_difference"].value, m["iou_learned"].value
    assert set(iou_diff) >= {"flood", "all"}
    # Measured: learned 0.81, difference rule 0.10 (it also flags the July-August harvest, ~190 ha).
    assert iou_learned["flood"] > 0.7
    assert iou_learned["flood"] > iou_diff["flood"] + 0.3
    flood_ha = env["world"].event_mask("31UDQ", "flood").sum() * 0.01
    assert m["changed_ha_learned"].value == pytest.approx(flood_ha, rel=0.3)
    grid = env["world"].tile("31UDQ")
    ds = MonthlyRasterStore(env["root"], "change_map", grid, FIRST_MONTH).read_month(month)
    assert set(ds.data_vars) == {"change_baseline", "change_learned", "change_probability", "difference_score"}
    assert int(ds["change_baseline"].sum()) * 0.01 == pytest.approx(m["changed_ha_difference"].value)
    gdf = read_geoparquet(env["root"], m["polygons_uri"].value)
    assert gdf.crs.to_epsg() == 32631
    assert set(gdf["method"]) <= {"difference", "learned"}
    diff = gdf[gdf["method"] == "difference"]
    assert len(diff) == m["polygons_difference"].value
    assert diff["area_m2"].sum() / 10_000 == pytest.approx(m["changed_ha_difference"].value)


def test_land_cover_writes_mc_dropout_variance_next_to_the_class_map(env) -> None:
    from memories.ai.land_cover import train_land_cover
    from memories.ai.registry import ModelRegistry
    from memories.config import ModelSettings

    world, grid = env["world"], env["world"].tile("33TVM")
    month = env["months"][0]
    refl = MonthlyRasterStore(env["root"], "surface_reflectance", grid, FIRST_MONTH).read_month(month)
    x = refl["reflectance"].values
    truth = world.landcover_truth("33TVM", month_mid(month))
    settings = ModelSettings(width=8, max_epochs=2, patch_px=64, patches_per_scene=16, seed=7)
    trained = train_land_cover([(x, truth)], band_names=COMMON_BANDS, settings=settings, accelerator="cpu")
    ModelRegistry(env["root"]).register("land_cover", trained.model, trained.metrics, training_data={"test": 1})
    result = materialize(
        [land_cover],
        partition_key=partition_key(month, "33TVM"),
        resources=env["resources"],
        instance=env["instance"],
    )
    assert result.success
    meta = result.asset_materializations_for_node("land_cover")[0].metadata
    assert meta["mc_passes"].value == 4 and meta["mean_variance"].value > 0
    ds = MonthlyRasterStore(env["root"], "land_cover", grid, FIRST_MONTH).read_month(month)
    assert {"land_cover", "confidence", "variance", "entropy"} <= set(ds.data_vars)
    variance = ds["variance"].values
    assert (variance >= 0).all() and variance.mean() == pytest.approx(meta["mean_variance"].value, rel=1e-4)
