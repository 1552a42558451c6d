"""What the UI tests stand on: a real memory, a Dagster instance, the webserver on 127.0.0.1, headless Chromium.

The memory is built with the application tests' builder
(``tests/memories/applications/conftest.py::build_app_memory``, the library's own
ingest code over the sample world) at 128 px to keep it quick. The webserver and the
``dagster asset materialize`` runs read a configuration of their own, derived from the
session's test configuration: its storage root and catalog are this memory's (so the
session's store, which the pipeline tests count rows in, is left alone) and its sample
world is the memory's world (so the code location's partitions are 2023-01..2023-08).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
BUILDER = REPO / "tests" / "memories" / "applications" / "conftest.py"
TILE = "33TVM"
START = "2023-01"
N_MONTHS = 8
SIZE_PX = 128
MONTH = "2023-08"
"""The partition the UI tests materialize and look at: after the flood, with every event behind it."""
WEBSERVER_START_S = 120.0
"""Seconds the webserver may take to serve and load the code location (the machine is shared and loaded)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ui: drives headless Chromium against the Dagster UI and the reports")


@dataclass
class UiEnv:
    """The folder, configuration file and Dagster home the UI tests share."""

    folder: Path
    config_path: Path
    dagster_home: Path

    def environ(self) -> dict[str, str]:
        """The environment of the webserver and the CLI runs."""
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "MEMORIES_CONFIG": str(self.config_path),
            "PYTHONUNBUFFERED": "1",
        }


@pytest.fixture(scope="session")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> UiEnv:
    """A configuration pointing at the UI memory's folder, and a Dagster home with the tile partition."""
    from dagster import DagsterInstance

    from memories.config import load_settings

    folder = tmp_path_factory.mktemp("ui")
    base = yaml.safe_load(Path(os.environ["MEMORIES_CONFIG"]).read_text()) or {}
    base["storage"] = {"root": (folder / "store").as_uri(), "catalog_path": str(folder / "catalog.sqlite")}
    base["sample"] = {
        "seed": 42,
        "n_tiles": 1,
        "start_month": START,
        "n_months": N_MONTHS,
        "size_px": SIZE_PX,
        "revisit_days": 5,
        "root": str(folder / "world"),
    }
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(base))
    load_settings(config_path)  # fails here, naming the key, if the derived file is not a valid configuration
    home = folder / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tiles", [TILE])
    return UiEnv(folder, config_path, home)


@pytest.fixture(scope="session")
def ui_partition() -> str:
    """The month x tile partition key the UI tests materialize and look at."""
    return f"{MONTH}|{TILE}"


@pytest.fixture(scope="session")
def ui_memory(ui_env: UiEnv) -> Any:
    """The memory of tile 33TVM, 2023-01..2023-08 at 128 px, built under the UI folder."""
    spec = importlib.util.spec_from_file_location("_ui_app_memory_builder", BUILDER)
    if spec is None or spec.loader is None or not BUILDER.exists():
        pytest.fail(f"the memory builder {BUILDER} is missing; the UI tests build their memory with it")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    # This private copy of the builder's module is ours: a smaller world than the application tests'.
    for name, value in {"TILE": TILE, "START": START, "N_MONTHS": N_MONTHS, "SIZE_PX": SIZE_PX}.items():
        setattr(module, name, value)
    t0 = time.perf_counter()
    memory = module.build_app_memory(ui_env.folder)
    print(f"UI memory built in {time.perf_counter() - t0:.1f} s")
    assert memory.root.uri.rstrip("/") == (ui_env.folder / "store").as_uri()
    return memory


class Webserver:
    """``dagster-webserver`` over the UI's Dagster home and workspace.yaml, on a free port of 127.0.0.1."""

    def __init__(self, env: UiEnv) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = env.folder / "webserver.log"
        exe = Path(sys.executable).parent / "dagster-webserver"
        # A new session: SIGTERM to its group stops the webserver and its code server together.
        self.process = subprocess.Popen(
            [str(exe), "-h", "127.0.0.1", "-p", str(self.port), "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env.environ(),
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._ready = False

    def wait_ready(self, timeout_s: float = WEBSERVER_START_S) -> None:
        """Wait until the webserver answers and has loaded the code location; fail with its log otherwise."""
        if self._ready:
            return
        import httpx

        query = (
            "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        with httpx.Client(base_url=self.url, timeout=5.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"dagster-webserver exited with {self.process.returncode}:\n{self._log_tail()}")
                try:
                    entries = client.post("/graphql", json={"query": query}).json()["data"]["workspaceOrError"]
                    for entry in entries.get("locationEntries", []):
                        loaded = entry["locationOrLoadError"] or {}
                        if loaded.get("__typename") == "PythonError":
                            pytest.fail(f"the code location failed to load: {loaded['message']}")
                        if entry["loadStatus"] == "LOADED" and loaded.get("__typename") == "RepositoryLocation":
                            self._ready = True
                            return
                    last = str(entries)
                except (httpx.HTTPError, KeyError, ValueError, TypeError) as e:
                    last = repr(e)
                time.sleep(0.5)
        pytest.fail(f"dagster-webserver not ready after {timeout_s} s ({last}):\n{self._log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def _log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="session")
def webserver(ui_env: UiEnv) -> Iterator[Webserver]:
    """The webserver, started at once (it loads while the memory is built); call ``wait_ready()`` before use."""
    server = Webserver(ui_env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the apt build at /usr/bin/chromium) through Playwright's sync API.

    Module-scoped: while Playwright's sync API is open, its event loop counts as running in this thread, and
    every later ``asyncio.run`` of the process fails ("cannot be called from a running event loop"). With
    the suite on two workers, other files run after this one in the same process.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/ui/`` under the repository root (git-ignored): the screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def report_assets() -> list[str]:
    """The report assets of the code location: every ``*_report`` asset in ``dagster_project.definitions.defs``."""
    from dagster_project.definitions import defs

    return sorted(k.to_user_string() for k in defs.resolve_all_asset_keys() if k.path[-1].endswith("_report"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "report_asset" in metafunc.fixturenames:
        metafunc.parametrize("report_asset", report_assets())


@dataclass
class Materialized:
    """One ``dagster asset materialize`` run of every report asset, and its timing."""

    returncode: int
    stderr: str
    seconds: float


@pytest.fixture(scope="session")
def materialized(ui_env: UiEnv, ui_memory: Any, ui_partition: str) -> Materialized:
    """``dagster asset materialize --select <every report asset> --partition <ui_partition>``, as a user runs it.

    One run for all reports (one code-location load instead of five); each test then
    checks its own asset's materialization, so one failing report fails only its test.
    """
    exe = Path(sys.executable).parent / "dagster"
    t0 = time.perf_counter()
    run = subprocess.run(
        [str(exe), "asset", "materialize", "-m", "dagster_project.definitions"]
        + ["--select", ",".join(report_assets()), "--partition", ui_partition],
        cwd=REPO,
        env=ui_env.environ(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Materialized(run.returncode, run.stderr, time.perf_counter() - t0)
