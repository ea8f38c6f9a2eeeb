"""`web/hub-client.js` as the portal and the app install it, checked by Node's test runner (`tests/node/`):
the syntax old Android WebViews parse, the npm package's contents, its ESM import by name, and its
hand-written types under `tsc --strict`."""

from __future__ import annotations

from pathlib import Path

from tests.node_tools import run_node_tests


def test_every_script_the_package_ships_or_the_page_loads_parses_as_es2017(node_tools: Path) -> None:
    run = run_node_tests("syntax.test.mjs", node_tools)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_npm_package_holds_only_the_client_and_installs_imports_and_type_checks(node_tools: Path) -> None:
    run = run_node_tests("package.test.mjs", node_tools)
    assert run.returncode == 0, run.stdout + run.stderr
