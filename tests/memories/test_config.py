"""The settings tree: validated dotted updates, one live object, reset, and files loaded with their keys checked."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import yaml

import memories.config as cfg
from memories.config import config, load_settings, reset_config, update_config
from memories.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_config():
    """Each test starts and ends with the session's configuration (the test world's file)."""
    reset_config()
    yield
    reset_config()


def test_update_sets_a_value_by_dotted_key_validated_and_coerced():
    out = update_config("catalog.max_cloud_cover", "35.5")
    assert out is config and config.catalog.max_cloud_cover == 35.5  # a string coerced like a YAML value would be
    update_config("compute.dask_scheduler", "tcp://127.0.0.1:8786")
    assert config.compute.dask_scheduler == "tcp://127.0.0.1:8786"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("storag.root", r"unknown config key 'storag.root'; keys at the top level are \['aoi', 'catalog', 'compute'"),
        ("storage.rot", r"keys at storage are \['cache_size_gb', 'catalog_path', 'root', 's3_endpoint_url'\]"),
        ("storage.root.scheme", r"'storage.root' is a value, not a section"),
        ("model.lr", r"keys at model are \[.*'max_epochs'.*\]"),
    ],
)
def test_unknown_key_names_the_valid_keys_at_that_level(key, message):
    before = config.model_dump()
    with pytest.raises(ConfigError, match=message):
        update_config(key, 1)
    assert config.model_dump() == before


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("sample.n_tiles", 9, "less than or equal to 4"),
        ("catalog.max_cloud_cover", -1, "greater than or equal to 0"),
        ("catalog.profile", "earth-serch", "'embedded', 'earth-search'"),
        ("sample.size_px", "big", "valid integer"),
    ],
)
def test_invalid_value_is_rejected_and_leaves_config_unchanged(key, value, message):
    before = config.model_dump()
    with pytest.raises(ConfigError, match=f"invalid value .* for '{key}'.*{message}"):
        update_config(key, value)
    assert config.model_dump() == before


def test_modules_that_imported_config_see_updates_and_resets(tmp_path):
    # A module of someone else's, written the usual way: it binds ``config`` and a section at import.
    src = tmp_path / "consumer_mod.py"
    src.write_text(
        "from memories.config import config\nstorage = config.storage\ndef root():\n    return config.storage.root\n"
    )
    spec = importlib.util.spec_from_file_location("consumer_mod", src)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["consumer_mod"] = mod
    try:
        spec.loader.exec_module(mod)
        original = config.storage.root
        update_config("storage.root", (tmp_path / "store").as_uri())
        assert mod.config is cfg.config is config
        assert mod.root() == (tmp_path / "store").as_uri()
        assert mod.storage.root == (tmp_path / "store").as_uri()  # even the section it held is live
        reset_config()
        assert mod.root() == original and mod.storage.root == original and mod.config is cfg.config
    finally:
        del sys.modules["consumer_mod"]


def test_library_defaults_read_the_updated_config(tmp_path):
    from memories.memory.temporal import TemporalMemory

    update_config("storage.root", (tmp_path / "store").as_uri())
    update_config("storage.catalog_path", str(tmp_path / "catalog.sqlite"))
    memory = TemporalMemory()
    assert memory.root.uri.rstrip("/") == (tmp_path / "store").as_uri()
    assert (tmp_path / "catalog.sqlite").exists()


def test_reset_config_undoes_every_update_and_reads_the_configured_file():
    from_file = load_settings()
    update_config("sample.seed", 1234)
    update_config("model.max_epochs", 99)
    assert reset_config() is config
    assert config.model_dump() == from_file.model_dump()
    assert config.sample.size_px == 256  # the test world of tests/conftest.py, not the 512 px default


def test_reset_config_with_a_path_loads_that_file(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({"sample": {"n_months": 3}, "catalog": {"max_cloud_cover": 10}}))
    reset_config(path)
    assert config.sample.n_months == 3 and config.catalog.max_cloud_cover == 10
    assert config.sample.size_px == 512  # keys the file does not name keep their defaults


def test_load_settings_reads_a_file_without_touching_the_live_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"compute": {"chunk_px": 256}, "sample": {"seed": 5}}))
    before = config.model_dump()
    s = load_settings(path)
    assert s.compute.chunk_px == 256 and s.sample.seed == 5 and s.catalog.profile == "embedded"
    assert s is not config and config.model_dump() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sampel:\n  seed: 1\n", r"unknown config key 'sampel'; keys here are \['aoi', 'catalog'"),
        ("sample:\n  sead: 1\n", r"unknown config key 'sample.sead'; keys here are \[.*'seed'"),
        ("sample:\n  n_tiles: 0\n", r"invalid value for 'sample.n_tiles': Input should be greater than or equal to 1"),
        ("- a\n- b\n", "must hold a mapping of sections, got list"),
        ("sample: [\n", "is not valid YAML"),
    ],
)
def test_bad_config_file_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
    before = config.model_dump()
    with pytest.raises(ConfigError):
        reset_config(path)
    assert config.model_dump() == before


def test_missing_config_file_names_the_path_and_the_fix(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"config file names '.*nowhere.yaml', which does not exist; fix the path"):
        load_settings(tmp_path / "nowhere.yaml")
    monkeypatch.setenv("MEMORIES_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match=r"MEMORIES_CONFIG names '.*gone.yaml', which does not exist"):
        load_settings()
    monkeypatch.delenv("MEMORIES_CONFIG")
    assert load_settings().sample.size_px == 512  # no file: the defaults


TILE = {"tile_id": "33TVM", "epsg": 32633, "x_min": 460000, "y_max": 5100000, "width": 128, "height": 128}


def _aoi_file(tmp_path, aoi: dict) -> str:
    path = tmp_path / "aoi.yaml"
    path.write_text(yaml.safe_dump({"catalog": {"profile": "earth-search"}, "aoi": aoi}))
    return str(path)


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        (
            {"tiles": [{**TILE, "widht": 5}]},
            r"invalid value for 'aoi.tiles': aoi.tiles\[0\]: unknown key 'widht' \(value 5\); did you mean 'width'\? "
            r"a tile's keys are tile_id, epsg, x_min, y_max, width, height, resolution",
        ),
        (
            {"tiles": [{**TILE, "epsg": "WGS84"}]},
            r"aoi.tiles\[0\].epsg: 'WGS84' is not an EPSG code; write the number, e.g. 32633, or 'EPSG:32633'",
        ),
        (
            {"tiles": [{**TILE, "width": 128.7}]},
            r"aoi.tiles\[0\].width: 128.7 is not a whole number of pixels; a tile has whole pixels: use 128 or 129",
        ),
        (
            {"tiles": [TILE, {**TILE, "tile_id": "33UVP", "epsg": "EPSG:32632"}]},
            r"aoi.tiles\[1\]: tile 33UVP lies in UTM zone 33N, so its CRS is EPSG:32633, but EPSG:32632 was declared",
        ),
        (
            {"start_month": "2024-13"},
            r"invalid value for 'aoi.start_month': aoi.start_month: '2024-13' has month 13, not 01..12; "
            r"write e.g. '2024-12'",
        ),
        (
            {"end_month": "2024/06"},
            r"aoi.end_month: '2024/06' is not a month of the form YYYY-MM; write e.g. '2024-01'",
        ),
        (
            {"start_month": "2024-06", "end_month": "2023-01"},
            r"aoi.end_month '2023-01' is before aoi.start_month '2024-06', which leaves no month to partition; "
            r"swap them or fix one",
        ),
    ],
)
def test_bad_aoi_in_the_config_file_is_refused_at_load_naming_key_value_and_fix(tmp_path, aoi, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(_aoi_file(tmp_path, aoi))


def test_epsg_may_be_written_as_a_crs_string_and_whole_floats_are_pixels(tmp_path):
    from memories.aoi import aoi_tiles

    settings = load_settings(_aoi_file(tmp_path, {"tiles": [{**TILE, "epsg": "EPSG:32633", "width": 128.0}]}))
    assert settings.aoi.tiles[0]["epsg"] == 32633 and settings.aoi.tiles[0]["width"] == 128
    [grid] = aoi_tiles(settings)
    assert (grid.epsg, grid.width, grid.crs) == (32633, 128, "EPSG:32633")


def test_update_config_refuses_unknown_keys_in_a_section_and_bad_aoi_values():
    before = config.model_dump()
    with pytest.raises(
        ConfigError,
        match=r"update_config\('storage', \.\.\.\): unknown config key 'storage.rooot'; "
        r"keys here are \['cache_size_gb', 'catalog_path', 'root', 's3_endpoint_url'\]",
    ):
        update_config("storage", {"rooot": "x"})
    with pytest.raises(ConfigError, match=r"for 'aoi.tiles': aoi.tiles\[0\]: unknown key 'widht'"):
        update_config("aoi.tiles", [{**TILE, "widht": 5}])
    with pytest.raises(ConfigError, match=r"for 'aoi.start_month': aoi.start_month: '2024-13' has month 13"):
        update_config("aoi.start_month", "2024-13")
    assert config.model_dump() == before
    update_config("aoi.tiles", [{**TILE, "epsg": "epsg:32633"}])
    assert config.aoi.tiles[0]["epsg"] == 32633


def test_a_start_month_after_the_sample_worlds_last_month_is_an_error_not_zero_partitions():
    from memories.aoi import aoi_months

    settings = cfg.Settings()  # the defaults: the embedded profile, no end month
    settings.sample.start_month, settings.sample.n_months = "2023-01", 24
    settings.aoi.start_month = "2026-01"
    with pytest.raises(
        ConfigError,
        match=r"the sample world's last month \(sample.start_month \+ sample.n_months - 1\) is '2024-12', "
        r"before aoi.start_month '2026-01'",
    ):
        aoi_months(settings)


# -- lazy loading and the seed's keys ------------------------------------------------------------


def test_importing_the_project_reads_no_configuration_first_use_does(tmp_path):
    """MEMORIES_CONFIG names a missing file: every import passes (the library's and the Dagster resources',
    whose field defaults are read when a resource is made), the first read of ``config`` says so."""
    script = (
        "import memories.config as c, memories.cache, memories.concurrency, memories.logging, resources\n"
        "import memories.memory.temporal, memories.memory.catalog, memories.server.app, memories.earth.satellite\n"
        "from memories.applications import RealEstateAgent, UrbanPlanner, EnvironmentalMonitor\n"
        "from memories.applications import HistoricalReconstructor, DisasterAnalyzer\n"
        "assert not c.is_loaded(), 'an import read the configuration'\n"
        "try:\n"
        "    resources.StorageResource()\n"
        "except c.ConfigError as e:\n"
        "    print('first use:', e)\n"
    )
    missing = tmp_path / "missing.yaml"
    env = {**os.environ, "MEMORIES_CONFIG": str(missing)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"first use: MEMORIES_CONFIG names {str(missing)!r}, which does not exist" in out.stdout


def test_update_config_with_a_mapping_sets_every_key_or_none():
    out = update_config({"processing.use_gpu": False, "storage.cache_size_gb": 5, "catalog.max_cloud_cover": 30})
    assert out is config
    assert (config.processing.use_gpu, config.storage.cache_size_gb, config.catalog.max_cloud_cover) == (False, 5, 30)
    before = config.model_dump()
    with pytest.raises(ConfigError, match=r"invalid value -2 for 'storage.cache_size_gb'.*greater than 0"):
        update_config({"processing.use_gpu": True, "storage.cache_size_gb": -2})
    with pytest.raises(ConfigError, match=r"unknown config key 'processing.use_gpus'; keys at processing are"):
        update_config({"storage.cache_size_gb": 1, "processing.use_gpus": True})
    assert config.model_dump() == before


def test_default_provider_switches_the_catalog_to_that_satellite_family():
    from memories.earth import SatelliteImagery

    assert config.data_sources.satellite.default_provider == "sentinel"  # the embedded world is Sentinel-2
    update_config({"data_sources.satellite.default_provider": "sentinel"})
    assert config.catalog.profile == "embedded"
    with pytest.raises(ConfigError, match=r"catalog profile 'embedded' has no landsat collection; set catalog.profile"):
        update_config({"data_sources.satellite.default_provider": "landsat"})
    update_config("catalog.profile", "earth-search")
    update_config({"data_sources.satellite.default_provider": "landsat"})
    assert config.catalog.profile == "earth-search-landsat"
    assert SatelliteImagery().profile.collection == "landsat-c2-l2"
    update_config("catalog.profile", "planetary-computer")  # the profile brings its family along
    assert config.data_sources.satellite.default_provider == "sentinel"
    with pytest.raises(ConfigError, match="serves sentinel"):
        update_config({"catalog.profile": "earth-search", "data_sources.satellite.default_provider": "landsat"})


def test_use_gpu_decides_where_models_train_and_load():
    from pytorch_lightning.accelerators import CPUAccelerator

    from memories.ai.devices import accelerator_for, default_device, pick_device
    from memories.ai.training import trainer

    assert (pick_device(True, True), pick_device(False, True), pick_device(True, False)) == ("cuda", "cpu", "cpu")
    update_config({"processing.use_gpu": False})
    assert accelerator_for("auto") == "cpu" and accelerator_for("gpu") == "gpu"
    assert default_device() == "cpu"
    assert isinstance(trainer("auto", max_epochs=1).accelerator, CPUAccelerator)
    update_config({"processing.use_gpu": True})
    assert accelerator_for("auto") == "auto"


def test_cache_size_gb_is_the_cap_of_caches_given_none(tmp_path):
    from memories.cache import Cache

    update_config({"storage.cache_size_gb": 0.5, "storage.root": (tmp_path / "store").as_uri()})
    named = Cache(name="imagery_cache")
    assert named.max_bytes == 2**29
    assert named.root == tmp_path / "store" / "cache" / "imagery_cache"
    assert Cache(tmp_path / "c").max_bytes == 2**29
    assert Cache(tmp_path / "d", max_size_gb=2).max_bytes == 2 * 2**30
