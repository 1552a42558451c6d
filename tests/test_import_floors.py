"""The house's floors only look down: each layer imports only the layers below it (DESIGN.md).

Imports are read from the source with ``ast`` (every ``import`` and ``from`` statement, also inside
functions and ``TYPE_CHECKING`` blocks, relative ones resolved, and ``importlib.import_module("...")``
with a literal name), so a lazy import inside a function breaks a floor as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FLOORS = [
    ("memories", ("dagster", "dagster_*", "assets", "resources", "dagster_project")),
    ("memories.memory", ("memories.applications",)),
    ("resources", ("assets", "dagster_project")),
    ("assets", ("dagster_project",)),
]
"""(package, modules it never imports): a name ending in ``_*`` stands for every module with that prefix."""


def module_name(path: Path) -> str:
    """The dotted module name of a file under the repository root."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) of every module the file imports, relative imports resolved against ``package`` (the
    package the file is in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            # ``from memories import applications`` imports the subpackage.
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def breaks(module: str, forbidden: str) -> bool:
    """Whether importing ``module`` reaches into ``forbidden`` (a module, a package, or a ``prefix_*``)."""
    if forbidden.endswith("_*"):
        return module.split(".")[0].startswith(forbidden[:-1])
    return module == forbidden or module.startswith(forbidden + ".")


def floor_violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file:line imports module`` for every import in ``package`` of a module it must not import."""
    folder = REPO.joinpath(*package.split("."))
    found = []
    for path in sorted(folder.rglob("*.py")):
        package_of_file = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
        for line, module in imported_modules(path, package_of_file):
            if any(breaks(module, f) for f in forbidden):
                found.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return found


@pytest.mark.parametrize(("package", "forbidden"), FLOORS, ids=[p for p, _ in FLOORS])
def test_layer_imports_only_layers_below(package: str, forbidden: tuple[str, ...]) -> None:
    assert floor_violations(package, forbidden) == [], f"{package} must not import {', '.join(forbidden)}"


def test_floor_check_sees_lazy_relative_and_dynamic_imports(tmp_path: Path) -> None:
    """The reader catches the imports a floor breaks through: inside a function, relative, by name."""
    src = tmp_path / "probe.py"
    src.write_text(
        "import importlib\n"
        "def f():\n"
        "    from ..applications import environmental\n"
        "    from memories import applications\n"
        "    import dagster_shared\n"
        "    return importlib.import_module('assets.partitions')\n",
        encoding="utf-8",
    )
    found = {m for _, m in imported_modules(src, "memories.memory")}
    assert {"memories.applications", "memories.applications.environmental", "dagster_shared"} <= found
    assert "assets.partitions" in found
    assert breaks("dagster_shared.check", "dagster_*") and breaks("memories.applications", "memories.applications")
    assert not breaks("memories.applications_x", "memories.applications") and not breaks("dagsterx", "dagster")


def test_memory_names_the_environmental_report_as_event_evidence() -> None:
    """The relationship memory names the evidence report's kind itself (it cannot import the application)."""
    from memories.applications.environmental_report import REPORT_KIND
    from memories.memory.relationship import EVIDENCE_REPORT_KIND

    assert EVIDENCE_REPORT_KIND == REPORT_KIND
