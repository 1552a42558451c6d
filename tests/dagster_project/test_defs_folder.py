"""The code location is ``dg``'s defs folder: ``dagster_project/defs/`` loaded by ``load_from_defs_folder``.

``dg check defs`` loads it as Dagster's tools do, ``dg scaffold defs`` adds a module the loader picks
up, and the merged ``Definitions`` hold exactly what the single ``Definitions`` of before held.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from dagster import PreviewWarning, load_definitions_from_module

REPO = Path(__file__).resolve().parents[2]
DG = Path(sys.executable).parent / "dg"

EXPECTED_ASSETS = [
    "change_map",
    "change_model",
    "change_trend",
    "climate_series",
    "disaster_report",
    "environmental_report",
    "event_hypergraph",
    "gis_layers",
    "historical_map",
    "historical_report",
    "knowledge_graph",
    "land_cover",
    "land_cover_model",
    "multimodal_land_use",
    "multimodal_model",
    "ndvi_forecast",
    "raster_garbage_collection",
    "real_estate_report",
    "socioeconomic_regions",
    "spatial_index",
    "spectral_indices",
    "stac_items",
    "storage_tiering",
    "surface_reflectance",
    "terrain",
    "urban_report",
]
"""Every asset of the code location (a new asset module registered in ``defs/assets.py`` adds here)."""

EXPECTED_JOBS = {
    "analysis_job": ["change_map", "environmental_report", "land_cover"],
    "ingest_job": ["climate_series", "gis_layers", "spectral_indices", "stac_items", "surface_reflectance"],
    "maintenance_job": ["raster_garbage_collection"],
    "memory_job": ["event_hypergraph", "knowledge_graph", "spatial_index", "storage_tiering"],
    "model_pipeline_job": ["change_trend"],
    "monthly_job": [
        "change_map",
        "climate_series",
        "disaster_report",
        "environmental_report",
        "gis_layers",
        "historical_report",
        "land_cover",
        "multimodal_land_use",
        "real_estate_report",
        "spectral_indices",
        "stac_items",
        "surface_reflectance",
        "urban_report",
    ],
    "report_job": ["disaster_report", "historical_report", "multimodal_land_use", "real_estate_report", "urban_report"],
    "tile_job": ["historical_map", "ndvi_forecast", "socioeconomic_regions", "terrain"],
    "train_job": ["change_model", "land_cover_model", "multimodal_model"],
}


def _dg_env() -> dict[str, str]:
    """This interpreter's venv as dg's active one, the checkout first on the path."""
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = sys.prefix
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def test_defs_folder_keeps_every_asset_check_job_schedule_sensor_resource_and_the_executor() -> None:
    from dagster_project.definitions import defs

    repo = defs.get_repository_def()
    assert sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()) == EXPECTED_ASSETS
    assert sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in repo.asset_graph.asset_check_keys) == [
        "gis_layers:vector_quality",
        "stac_items:scene_table_quality",
        "surface_reflectance:clear_coverage",
    ]
    jobs = {j.name: j for j in repo.get_all_jobs() if not j.name.startswith("__")}
    selections = {n: sorted(k.to_user_string() for k in j.asset_layer.executable_asset_keys) for n, j in jobs.items()}
    assert selections == EXPECTED_JOBS
    assert {s.name: (s.cron_schedule, s.job_name) for s in repo.schedule_defs} == {
        "monthly_schedule": ("0 6 3 * *", "monthly_job")
    }
    assert {s.name: type(s).__name__ for s in repo.sensor_defs} == {
        "new_scenes_sensor": "SensorDefinition",
        "scenes_to_reports": "AutomationConditionSensorDefinition",
    }
    assert sorted(repo.get_top_level_resources()) == [
        "dask_cluster",
        "gis",
        "memory",
        "model_runtime",
        "stac",
        "storage",
        "tiers",
    ]
    assert {j.executor_def.name for j in repo.get_all_jobs()} == {"in_process"}


def test_dg_check_defs_loads_the_code_location() -> None:
    """``dg check defs`` (the project's pyproject ``[tool.dg]``) loads every definition without error."""
    out = subprocess.run(
        [str(DG), "check", "defs", "--use-active-venv"],
        cwd=REPO,
        env=_dg_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "All definitions loaded successfully." in out.stdout


def test_dg_scaffold_asset_writes_a_module_the_defs_folder_loads(tmp_path: Path) -> None:
    """``dg scaffold defs dagster.asset x.py`` writes ``dagster_project/defs/x.py`` (in a copy of the
    project), and that module is one the defs folder loads: its asset ``x``."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(REPO / "dagster_project", copy / "dagster_project", ignore=shutil.ignore_patterns("__pycache__"))
    env = _dg_env()
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env["PYTHONPATH"]])
    out = subprocess.run(
        [str(DG), "scaffold", "defs", "dagster.asset", "x.py"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    scaffolded = copy / "dagster_project" / "defs" / "x.py"
    assert scaffolded.is_file(), sorted(p.name for p in scaffolded.parent.iterdir())
    spec = importlib.util.spec_from_file_location("scaffolded_x", scaffolded)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)  # the loader dg itself uses for a defs module
        loaded = load_definitions_from_module(module)
    assert [k.to_user_string() for k in loaded.get_repository_def().asset_graph.get_all_asset_keys()] == ["x"]
    assert not (REPO / "dagster_project" / "defs" / "x.py").exists()
