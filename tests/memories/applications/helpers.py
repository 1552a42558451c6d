"""Setup the application tests share: materializing a report asset on the ``app_memory`` world.

Imported by the test modules as ``tests.memories.applications.helpers`` (no fixtures here: the
``app_memory`` fixture stays in this folder's ``conftest.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FLOOD_AREA_REL_TOLERANCE = 0.02
"""|flood area found - truth area| / truth on ``app_memory`` (truth 19.66 ha = 1,966 pixels of 10 m). Measured
-0.25 % (19.61 ha; deterministic: the same on every run here). 2 % is 39 pixels, under a tenth of the ~450 on the
footprint's 4.5 km outline: room for float order to flip edge pixels, while a 10 %-off area fails (it was 15 %)."""

STAC_URL = "http://127.0.0.1:9"
"""A STAC URL the report assets never contact (they read the memory only): set, it keeps the run from
serving the embedded world."""


def materialize_report(
    app_memory: Any,
    asset: Any,
    month: str,
    *,
    catalog_path: Path | None = None,
    run_config: dict[str, Any] | None = None,
) -> Any:
    """Materialize one report asset for ``month|tile`` of ``app_memory`` on an ephemeral Dagster instance.

    Args:
        app_memory: the ``app_memory`` fixture (its world, storage root and catalog).
        asset: the report asset (``disaster_report``, ...).
        month: ``YYYY-MM`` of the partition.
        catalog_path: the catalog the run records in; None: ``app_memory``'s own.
        run_config: Dagster run config (e.g. the asset's config).

    Returns:
        The ``ExecuteInProcessResult`` (its ``success`` is asserted by the caller).
    """
    from dagster import DagsterInstance, materialize

    from assets.partitions import partition_key
    from resources import MemoryCatalogResource, SampleWorldResource, StacCatalogResource, StorageResource

    spec = app_memory.world.spec
    world = SampleWorldResource(
        root=str(app_memory.world.root),
        seed=spec.seed,
        n_tiles=spec.n_tiles,
        start_month=spec.start_month,
        n_months=spec.n_months,
        size_px=spec.size_px,
        revisit_days=spec.revisit_days,
    )
    stac = StacCatalogResource(profile="embedded", url=STAC_URL, sample_world=world)
    assert stac.tile(app_memory.tile) == app_memory.grid, "the test world's grid differs from the memory's"
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tiles", [app_memory.tile])
    return materialize(
        [asset],
        partition_key=partition_key(month, app_memory.tile),
        instance=instance,
        resources={
            "stac": stac,
            "storage": StorageResource(root=app_memory.root.uri),
            "memory": MemoryCatalogResource(path=str(catalog_path or app_memory.path / "catalog.sqlite")),
        },
        run_config=run_config,
    )
