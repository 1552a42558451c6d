"""NDVI forecast per tile: ARIMA on the tile's monthly mean NDVI, with 95 % intervals and anomaly flags.

Partitioned by **tile** only (the ``tiles`` dynamic partitions): a forecast
reads every month of its tile, so a month x tile partition would recompute the
same series once per month. Each tile's upstream months map to it through
``MultiToSingleDimensionPartitionMapping`` on the tile dimension (Dagster's default here). The table is
written under ``StorageRoot.table_uri("ndvi_forecast", tile, <last observed month>)``:
one file per forecast origin, so the memory keeps what was forecast when.
"""

from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets._partition import record
from assets.partitions import FIRST_MONTH, tiles_partitions
from memories.products import NDVI_FORECAST, SPECTRAL_INDICES
from memories.store.raster import MonthlyRasterStore
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .imagery import spectral_indices

PRODUCT = NDVI_FORECAST


class ForecastConfig(Config):  # type: ignore[misc]
    """Run configuration of ``ndvi_forecast``."""

    horizon_months: int = 6
    alpha: float = 0.05
    """1 - interval coverage (0.05: 95 %)."""
    anomaly_alpha: float = 0.01
    """1 - coverage of the one-step interval outside which an observed month is an anomaly."""


@asset(
    partitions_def=tiles_partitions,
    # Dagster maps every month x tile partition of spectral_indices to its tile here by default
    # (MultiToSingleDimensionPartitionMapping on the tile dimension, inferred: it is still beta to name).
    deps=[spectral_indices],
    group_name="models",
    kinds={"statsmodels", "parquet"},
    description="Monthly mean NDVI of a tile forecast with ARIMA (annual harmonics), 95 % intervals, anomaly flags.",
)
def ndvi_forecast(
    context: AssetExecutionContext,
    config: ForecastConfig,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    from memories.ai.forecast import detect_anomalies, forecast_series, tile_index_series
    from memories.ai.registry import ModelRegistry
    from memories.ai.trend import TREND_MODEL, TrendAnalyzer, register_trend_model
    from memories.errors import ProcessingError

    tile = context.partition_key
    grid = stac.tile(tile)
    root = storage.storage_root()
    store = MonthlyRasterStore(root, SPECTRAL_INDICES, grid, FIRST_MONTH)
    series = tile_index_series(store, "ndvi")["all"]
    try:
        result = forecast_series(series, config.horizon_months, step="MS", alpha=config.alpha)
        flags = detect_anomalies(series, step="MS", order=result.order, alpha=config.anomaly_alpha)
    except ProcessingError as e:
        raise Failure(description=f"tile {tile}: {e}") from e
    table = _table(series, result.forecast, flags.table)
    last_month = series.dropna().index[-1].strftime("%Y-%m")
    uri = root.table_uri(PRODUCT, tile, last_month)
    root.write_bytes(uri, table.to_parquet(index=False))
    n_anomalies = int(flags.table["anomaly"].sum())
    # The settings of this forecast are a version of the trend model (the seed's time_series_trend_analyzer).
    settings = TrendAnalyzer(1.0 - config.alpha, config.horizon_months, "MS", max(result.harmonics, 1))
    trend_model = register_trend_model(ModelRegistry(root), settings)
    stats: dict[str, Any] = {
        "model_id": f"{TREND_MODEL}:{trend_model.version}",
        "order": list(result.order),
        "harmonics": result.harmonics,
        "aic": result.aic,
        "n_observed": result.history.n_observed,
        "n_filled": result.history.n_filled,
        "n_anomalies": n_anomalies,
        "forecast_origin": last_month,
    }
    record(context, memory.catalog(), uri=uri, stats=stats, grid=grid, month=last_month)
    return MaterializeResult(
        metadata={
            "model_id": f"{TREND_MODEL}:{trend_model.version}",
            "order": MetadataValue.text(str(result.order)),
            "n_observed_months": result.history.n_observed,
            "n_filled_months": result.history.n_filled,
            "n_anomalies": n_anomalies,
            "forecast": MetadataValue.md(_markdown(result.forecast, config.alpha)),
            "uri": uri,
        }
    )


def _table(series: pd.Series, forecast: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """One row per month: observed NDVI and anomaly flag, or forecast mean and interval."""
    obs = pd.DataFrame({"time": series.index, "kind": "observed", "ndvi": series.to_numpy()})
    obs["anomaly"] = obs["time"].map(flags["anomaly"]).eq(True)
    obs["lower"] = obs["time"].map(flags["lower"]).astype(float)
    obs["upper"] = obs["time"].map(flags["upper"]).astype(float)
    fc = pd.DataFrame(
        {
            "time": forecast.index,
            "kind": "forecast",
            "ndvi": forecast["mean"].to_numpy(),
            "anomaly": False,
            "lower": forecast["lower"].to_numpy(),
            "upper": forecast["upper"].to_numpy(),
        }
    )
    return pd.concat([obs, fc], ignore_index=True)


def _markdown(forecast: pd.DataFrame, alpha: float) -> str:
    pct = round(100 * (1 - alpha))
    lines = [f"| month | NDVI | {pct} % interval |", "| --- | --- | --- |"]
    for t, row in forecast.iterrows():
        lo, hi = np.round([row["lower"], row["upper"]], 3)
        lines.append(f"| {pd.Timestamp(t).strftime('%Y-%m')} | {row['mean']:.3f} | {lo} – {hi} |")
    return "\n".join(lines)
