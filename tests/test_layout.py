"""The shape of the code, held: no module imports one that imports it back, `hub/` never reaches into
`jobs/` (but for the `hub` command, which starts workers), and no module but `hub.keys` spells a key."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hub", "jobs")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        for target in edges[name]:
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in done:
                visit(target, [*trail, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_hub_does_not_depend_on_the_worker_but_to_start_it() -> None:
    reaching = {name for name, targets in graph().items() if name.startswith("hub") and any(
        target.startswith("jobs") for target in targets)}  # fmt: skip
    assert reaching == {"hub.cli"}


@pytest.mark.parametrize("path", sorted(modules().values()), ids=lambda path: module_name(path))
def test_only_the_keys_module_spells_a_redis_key(path: Path) -> None:
    if module_name(path) == "hub.keys":
        return
    assert not re.search(r"""["']hub:""", path.read_text())
