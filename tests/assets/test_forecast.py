"""ndvi_forecast materialized on 30 months of seasonal NDVI written into a spectral_indices store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dagster import DagsterInstance, materialize

from assets.forecast import ndvi_forecast
from assets.partitions import FIRST_MONTH
from memories.memory.catalog import MemoryCatalog
from memories.months import add_months, month_key, parse_month
from memories.store.paths import StorageRoot
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, SampleWorldResource, StacCatalogResource, StorageResource

N_MONTHS = 30
FLOOD = 14  # month index with a flood: NDVI of water


def _truth(k: int) -> float:
    """Mean NDVI of month k after FIRST_MONTH: an annual cycle peaking in July."""
    month = parse_month(FIRST_MONTH).month + k
    return 0.45 + 0.25 * np.cos(2 * np.pi * (month - 7) / 12)


def test_forecast_follows_the_season_and_flags_the_flood(tmp_path: Path) -> None:
    stac = StacCatalogResource(url="http://127.0.0.1:9", sample_world=SampleWorldResource(size_px=64))
    grid = stac.tile("33TVM")
    root = StorageRoot((tmp_path / "store").as_uri())
    store = MonthlyRasterStore(root, "spectral_indices", grid, FIRST_MONTH)
    rng = np.random.default_rng(0)
    for k in range(N_MONTHS):
        level = 0.05 if k == FLOOD else _truth(k) + rng.normal(0, 0.01)
        ndvi = np.full(grid.shape, level, np.float32) + rng.normal(0, 0.02, grid.shape).astype(np.float32)
        store.write_month(month_key(add_months(parse_month(FIRST_MONTH), k)), xr.Dataset({"ndvi": (("y", "x"), ndvi)}))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tiles", ["33TVM"])
    catalog_path = tmp_path / "catalog.sqlite"
    result = materialize(
        [ndvi_forecast],
        partition_key="33TVM",
        instance=instance,
        resources={
            "stac": stac,
            "storage": StorageResource(root=root.uri),
            "memory": MemoryCatalogResource(path=str(catalog_path)),
        },
        run_config={"ops": {"ndvi_forecast": {"config": {"horizon_months": 6}}}},
    )
    assert result.success
    rows = MemoryCatalog(catalog_path).current("ndvi_forecast", tile="33TVM")
    last = month_key(add_months(parse_month(FIRST_MONTH), N_MONTHS - 1))
    assert (
        len(rows) == 1 and rows[0].partition == last and rows[0].uri == root.table_uri("ndvi_forecast", "33TVM", last)
    )
    table = pd.read_parquet(root.local_path(rows[0].uri))
    fc = table[table["kind"] == "forecast"]
    assert len(fc) == 6 and len(table) == N_MONTHS + 6
    truth = np.array([_truth(N_MONTHS + h) for h in range(6)])
    assert np.abs(fc["ndvi"].to_numpy() - truth).max() < 0.05
    assert ((fc["lower"].to_numpy() <= truth) & (truth <= fc["upper"].to_numpy())).all()
    flagged = table[table["anomaly"]]
    assert list(flagged["time"].dt.strftime("%Y-%m")) == [month_key(add_months(parse_month(FIRST_MONTH), FLOOD))]
    meta = result.asset_materializations_for_node("ndvi_forecast")[0].metadata
    assert meta["n_observed_months"].value == N_MONTHS and meta["n_anomalies"].value == 1
    assert "95 % interval" in meta["forecast"].value
    # The forecast's settings are version 1 of the trend model, the seed's time_series_trend_analyzer_v1.
    from memories.ai.manager import ModelManager

    assert rows[0].stats["model_id"] == meta["model_id"].value == "ndvi_trend:1"
    trend = ModelManager(root).load_model("time_series_trend_analyzer_v1")
    assert trend.id == "ndvi_trend:1" and trend.model.hparams["confidence_level"] == pytest.approx(0.95)
    assert trend.model.hparams["horizon"] == 6


def test_too_few_months_fail_with_the_reason(tmp_path: Path) -> None:
    stac = StacCatalogResource(url="http://127.0.0.1:9", sample_world=SampleWorldResource(size_px=64))
    grid = stac.tile("33TVM")
    root = StorageRoot((tmp_path / "store").as_uri())
    store = MonthlyRasterStore(root, "spectral_indices", grid, FIRST_MONTH)
    store.write_month(FIRST_MONTH, xr.Dataset({"ndvi": (("y", "x"), np.full(grid.shape, 0.5, np.float32))}))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tiles", ["33TVM"])
    with pytest.raises(Exception, match="at least 8"):
        materialize(
            [ndvi_forecast],
            partition_key="33TVM",
            instance=instance,
            resources={
                "stac": stac,
                "storage": StorageResource(root=root.uri),
                "memory": MemoryCatalogResource(path=str(tmp_path / "c.sqlite")),
            },
        )
