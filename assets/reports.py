"""Application reports: the environmental report of each tile-month.

An HTML page with PNG figures (NDVI over time per land-cover class, a map of
vegetation loss, the band importance of the land-cover model version that
classified the tile-month) and a JSON summary of every number in it, written
under the storage root and previewed in the Dagster UI. Each run writes a new
version of the whole set of files (the catalog records its id; the temporal
memory loads that version's summary); the plain ``report.html`` shows the current one.
"""

import base64

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from assets._partition import record, tile_month
from dagster_project.partitions import FIRST_MONTH, month_tile_partitions
from memories.ai.registry import ModelNotFoundError
from memories.applications.environmental import EnvironmentalMonitor
from resources import MemoryCatalogResource, StacCatalogResource, StorageResource

from .imagery import spectral_indices
from .models import MODEL_NAME, land_cover


@asset(
    partitions_def=month_tile_partitions,
    deps=[spectral_indices, land_cover],
    group_name="applications",
    kinds={"html", "matplotlib"},
    description="Environmental report per tile-month: NDVI over time, forest and vegetation loss with alert.",
)
def environmental_report(
    context: AssetExecutionContext,
    stac: StacCatalogResource,
    storage: StorageResource,
    memory: MemoryCatalogResource,
) -> MaterializeResult:
    month, grid = tile_month(context, stac)
    tile = grid.tile_id
    root = storage.storage_root()
    catalog = memory.catalog()
    lc_rows = [m for m in catalog.current("land_cover", tile=tile) if m.partition == month]
    stats = lc_rows[0].stats if lc_rows else {}
    # The version that classified this tile-month; rows written before model ids were recorded carry the number.
    model_id = stats.get("model_id") or (
        f"{MODEL_NAME}:{stats['model_version']}" if stats.get("model_version") is not None else None
    )
    try:
        report = EnvironmentalMonitor(root, FIRST_MONTH).report(grid, month, model_id=model_id)
    except ModelNotFoundError as e:
        raise Failure(
            description=f"the land cover of {month}|{tile} was made by {model_id}, which the registry lacks: {e}; "
            "re-materialize land_cover for this partition"
        ) from e
    files = report.write(root)
    s = report.summary
    record(context, catalog, uri=files["report.html"], stats=_flat(s), grid=grid, month=month, version=report.version)
    figure = base64.b64encode(report.figures["vegetation_loss"]).decode()
    series = base64.b64encode(report.figures["ndvi_timeseries"]).decode()
    loss = s["forest_loss"]["area_ha"]
    md = (
        f"### Tile {tile}, {month}\n\n"
        f"- forest loss since {s['reference_month'] or '—'}: "
        f"**{'n/a' if loss is None else f'{loss:.2f} ha'}** in {s['forest_loss']['patches']} patch(es)"
        f"{' — ALERT' if s['alert'] else ''}\n"
        f"- mean NDVI: {s['ndvi_mean'] if s['ndvi_mean'] is None else round(s['ndvi_mean'], 3)}; "
        f"clear-sky coverage {100 * s['valid_fraction']:.1f} %\n\n"
        f"![vegetation loss](data:image/png;base64,{figure})\n\n"
        f"![NDVI over time](data:image/png;base64,{series})\n"
    )
    if "band_importance" in report.figures:
        chart = base64.b64encode(report.figures["band_importance"]).decode()
        md += (
            f"\n**What {s['model_id']} looks at** (permutation importance)\n\n"
            f"![band importance](data:image/png;base64,{chart})\n"
        )
    return MaterializeResult(
        metadata={
            "summary": MetadataValue.md(md),
            "forest_loss_ha": loss,
            "alert": s["alert"],
            "reference_month": s["reference_month"] or "",
            "report": MetadataValue.url(files["report.html"]),
            "summary_json": MetadataValue.url(files["summary.json"]),
            "version": MetadataValue.text(str(report.version)),
            "version_report": MetadataValue.url(report.version_files["report.html"]),
            "model": MetadataValue.text(str(s["model_id"])),
            "model_id": MetadataValue.text(str(s["model_id"])),
            "band_importance": MetadataValue.json(s["band_importance"] or {}),
        }
    )


def _flat(s: dict[str, object]) -> dict[str, object]:
    keep = (
        "reference_month",
        "ndvi_mean",
        "valid_fraction",
        "alert",
        "forest_loss",
        "vegetation_loss",
        "model_id",
        "band_importance",
    )
    return {k: s[k] for k in keep}
