"""The code location loads, and its graph, jobs and automation are what the project promises."""

from __future__ import annotations

import subprocess
import sys

from dagster import AssetKey, build_schedule_context, instance_for_test
from dagster._core.definitions.definitions_class import Definitions

from assets.partitions import TILES, month_tile_partitions, split_key
from dagster_project.definitions import defs
from dagster_project.defs.schedules import monthly_schedule


def test_definitions_validate_and_keep_heavy_imports_out():
    Definitions.validate_loadable(defs)
    code = (
        "import sys, dagster_project.definitions as d; "
        "print(','.join(m for m in ('torch', 'rasterio', 'stackstac', 'pytorch_lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_asset_graph_lineage():
    graph = defs.resolve_asset_graph()
    deps = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert deps["surface_reflectance"] == {"stac_items"}
    assert deps["spectral_indices"] == {"surface_reflectance"}
    assert deps["land_cover_model"] == {"surface_reflectance", "gis_layers"}
    assert deps["land_cover"] == {"land_cover_model", "surface_reflectance"}
    assert deps["environmental_report"] == {"spectral_indices", "land_cover"}
    assert graph.get(AssetKey("surface_reflectance")).partitions_def == month_tile_partitions


def test_monthly_schedule_runs_every_tile_for_the_month_that_ended():
    from datetime import UTC, datetime

    repo = defs.get_repository_def()
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(TILES, ["33TVM", "31UDQ"])
        # the test world covers 2023-05..2023-08; on 3 August 2023 the schedule runs July
        ctx = build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2023, 8, 3, 6, tzinfo=UTC), repository_def=repo
        )
        requests = list(monthly_schedule.evaluate_tick(ctx).run_requests or [])
        assert sorted(split_key(r.partition_key) for r in requests) == [("2023-07", "31UDQ"), ("2023-07", "33TVM")]
        late = build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2030, 1, 3, tzinfo=UTC), repository_def=repo
        )
        assert not monthly_schedule.evaluate_tick(late).run_requests
