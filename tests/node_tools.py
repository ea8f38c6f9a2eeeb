"""Node and the npm tools the client's tests use (acorn, typescript), installed into a folder of their own
(`.node-tools/`, ignored by git) the first time they are needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".node-tools"
PACKAGES = {"acorn": "acorn@8", "typescript": "typescript@5"}


def node_tools() -> Path:
    """The folder whose `node_modules` holds the tools; skips (fails on CI) without Node and npm."""
    missing = [program for program in ("node", "npm") if not shutil.which(program)]
    if missing:
        message = f"{' and '.join(missing)} not installed: apt-get install nodejs npm"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must install them)")
        pytest.skip(message)
    if not all((TOOLS / "node_modules" / name / "package.json").exists() for name in PACKAGES):
        TOOLS.mkdir(exist_ok=True)
        (TOOLS / "package.json").write_text('{"private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", *PACKAGES.values()],
            cwd=TOOLS,
            check=True,
            capture_output=True,
        )
    return TOOLS


def run_node_tests(test_file: str, tools: Path) -> subprocess.CompletedProcess[str]:
    """Runs one file of `tests/node/` with Node's test runner."""
    return subprocess.run(
        ["node", "--test", "--test-reporter=spec", str(ROOT / "tests" / "node" / test_file)],
        cwd=ROOT,
        env={**os.environ, "HUB_NODE_TOOLS": str(tools)},
        capture_output=True,
        text=True,
        timeout=300,
    )
