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
from memories.earth.gis import read_geoparquet
from memories.earth.stac_profiles import COMMON_BANDS
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


def test_change_trend_chains_land_cover_change_and_trend_and_carries_the_uncertainty(env) -> None:
    """The seed's model pipeline as an asset, on 31UDQ: the August flood is the last change, and is water."""
    import pandas as pd

    from assets.model_pipeline import change_trend
    from memories.ai.land_cover import train_land_cover
    from memories.ai.registry import ModelRegistry
    from memories.config import ModelSettings
    from memories.memory.catalog import MemoryCatalog

    registry = ModelRegistry(env["root"])
    if registry.latest("change") is None:
        assert materialize([change_model], resources=env["resources"], instance=env["instance"]).success
    # A land-cover model that has seen the flood's water (trained on this tile's August): what the chain
    # carries is the classifier's probabilities, so the test needs one that knows water.
    world, grid = env["world"], env["world"].tile("31UDQ")
    month = env["months"][-1]
    x = MonthlyRasterStore(env["root"], "surface_reflectance", grid, FIRST_MONTH).read_month(month)
    truth = world.landcover_truth("31UDQ", month_mid(month))
    settings = ModelSettings(width=8, max_epochs=6, patch_px=64, patches_per_scene=32, seed=7)
    trained = train_land_cover(
        [(x["reflectance"].values, truth)], band_names=COMMON_BANDS, settings=settings, accelerator="cpu"
    )
    version = registry.register("land_cover", trained.model, trained.metrics, training_data={"test": "flood"})
    chosen = f"land_cover:{version.version}"
    runtime = ModelRuntimeResource(
        accelerator="cpu", change_steps=40, change_width=8, mc_passes=4, land_cover_model=chosen
    )
    result = materialize(
        [change_trend],
        partition_key="31UDQ",
        resources={**env["resources"], "model_runtime": runtime},
        instance=env["instance"],
        run_config={"ops": {"change_trend": {"config": {"samples": 3}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("change_trend")[0].metadata
    table = pd.read_parquet(env["root"].local_path(meta["uri"].value))
    observed = table[table["kind"] == "observed"]
    forecast = table[table["kind"] == "forecast"]
    assert len(observed) == len(env["months"]) - 1 and len(forecast) == 6
    # The last change (July -> August) is the flood; its area is within 30 % of the flood's.
    flood_m2 = float(env["world"].event_mask("31UDQ", "flood").sum()) * 100.0
    last = observed.iloc[-1]
    assert last["area_m2"] == pytest.approx(flood_m2, rel=0.3)
    assert last["lower_m2"] <= last["area_m2"] <= last["upper_m2"]
    # Most of what changed in August became water, by the land-cover step's probabilities.
    by_class = meta["change_by_class"].value
    rows = MemoryCatalog(env["resources"]["memory"].path).current("change_trend", tile="31UDQ")
    assert len(rows) == 1 and rows[0].partition == env["months"][-1]
    ha = rows[0].stats["last_change_ha_by_class"]
    # Summed over the classes it is the changed area, less where the dropout samples disagree; this small
    # land-cover model (6 epochs on one scene) is unsure, but water is still the most likely class.
    # Measured: 22.4 ha in all against 22.4 ha changed; water 5.1 ha, the next class 4.1 ha.
    assert 0.5 * last["area_m2"] <= sum(ha.values()) * 10_000 <= last["area_m2"] * 1.001, by_class
    assert ha["water"] == max(ha.values()), by_class
    # The change's spread is carried into the trend: every interval at least the trend model's own.
    width = forecast["upper_m2"] - forecast["lower_m2"]
    assert (width >= forecast["model_upper_m2"] - forecast["model_lower_m2"]).all()
    assert meta["interval_widening"].value >= 1.0
    assert set(rows[0].stats["models"]) == {"land_cover", "changes", "changed_into", "trends"}
