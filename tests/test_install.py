"""The install: Python 3.11-3.13, ranges in pyproject.toml, exact versions in requirements.lock, no unused
dependency, and a set-up script that says which Pythons it found and refuses one it does not support."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SUPPORTED = ("3.11", "3.12", "3.13")

NOT_IMPORTED = {
    "dagster-webserver": "the dagster-webserver command (scripts/ui.sh, tests/ui)",
    "dagster-dg-cli": "the dg command (dg check defs, tests/dagster_project/test_defs_folder.py)",
    "dagster-postgres": "named in the instance config (deploy/dagster.yaml), loaded by Dagster",
    "s3fs": "fsspec's s3:// protocol (memories.store.paths)",
    "rustac": "the rustac serve command (memories.sample.server)",
    "fastapi-offline": "its static files, by package name (memories.server.docs)",
    "pytest-timeout": "a pytest plugin (timeout in pyproject.toml)",
    "moto": "imported as moto.server; the [server] extra brings its server",
    "ruff": "the ruff command",
    "mypy": "the mypy command",
    "uv": "the uv command (scripts/setup.sh, scripts/lock.sh)",
}
"""Dependencies used without an ``import`` of their own name, and where they are used."""

IMPORT_NAME = {
    "pyyaml": "yaml",
    "pytorch-lightning": "pytorch_lightning",
    "great-expectations": "great_expectations",
    "psycopg": "psycopg",
    "fastapi-offline": "fastapi_offline",
    "pystac-client": "pystac_client",
    "kubernetes-validate": "kubernetes_validate",
    "dask": "dask",
    "pytest-xdist": "xdist",
}


LINUX_X86_64 = {
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "platform_system": "Linux",
    "platform_python_implementation": "CPython",
}
"""The platform of these machines and CI, for the lock's markers."""


def _requirements(group: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    deps = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(d) for d in deps]


def _locked() -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, marker)] of requirements.lock (a name appears once per marker fork, as torch does)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)\s*(?:;\s*(.*))?$", line)
        if m:
            name = canonicalize_name(m.group(1).split("[")[0])
            out.setdefault(name, []).append((m.group(2), m.group(3) or ""))
    return out


def test_requires_python_admits_311_312_313_and_nothing_older() -> None:
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert all(spec.contains(f"{v}.0") for v in SUPPORTED)
    assert not spec.contains("3.10.13")


def test_dependencies_are_ranges_not_pins() -> None:
    pinned = [str(r) for r in _requirements() + _requirements("dev") if any(s.operator == "==" for s in r.specifier)]
    assert pinned == []


def test_lock_pins_every_package_within_the_ranges_for_every_supported_python() -> None:
    locked = _locked()
    for req in _requirements() + _requirements("dev"):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in requirements.lock: run scripts/lock.sh"
        for py in SUPPORTED:
            env = dict(LINUX_X86_64, python_version=py, python_full_version=f"{py}.0")
            chosen = [v for v, marker in locked[name] if not marker or Marker(marker).evaluate(env)]
            assert len(chosen) == 1, f"{req.name} on Python {py}: {chosen}"
            assert req.specifier.contains(chosen[0], prereleases=True), f"{req.name}=={chosen[0]} outside {req}"


def _imported_top_level() -> set[str]:
    names: set[str] = set()
    for folder in ("memories", "resources", "assets", "dagster_project", "tests", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return names


def test_every_dependency_is_imported_or_named_where_it_is_used() -> None:
    imported = _imported_top_level()
    unused = []
    for req in _requirements() + _requirements("dev"):
        name = canonicalize_name(req.name)
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        if module not in imported and name not in NOT_IMPORTED:
            unused.append(req.name)
    assert unused == [], f"never imported: {unused} (drop them, or say in NOT_IMPORTED where they are used)"


def _setup_copy(tmp_path: Path) -> Path:
    """A copy of the set-up script with the files it reads, so a test never touches the checkout's venv."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def test_setup_refuses_an_unsupported_python_and_lists_those_found(tmp_path: Path) -> None:
    root = _setup_copy(tmp_path)
    env = dict(os.environ, PYTHON="3.9", VENV=str(tmp_path / "venv"))
    out = subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    assert "PYTHON=3.9: no such interpreter that runs" in out.stderr
    assert "supported Pythons found:" in out.stderr
    assert re.search(r"3\.11=\S+python3\.11", out.stderr), out.stderr
    assert not (tmp_path / "venv").exists()
