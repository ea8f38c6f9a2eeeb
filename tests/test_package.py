"""The hub as an operator installs it: a wheel (not the checkout, not an editable install) in a fresh
virtual environment serves the dashboard page and its scripts.

The fresh environment borrows this one's dependencies through a `.pth` line rather than downloading
them again; the hub itself, its page and its Lua scripts come only from the wheel.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "hub", "jobs", "web")


def build_wheel(into: Path) -> Path:
    """Builds from a copy of the sources, so the checkout gets no `build/` or `.egg-info` folders."""
    tree = into / "src"
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            tree.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, tree / name)
    wheels = into / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(tree)]
    subprocess.run(command, check=True, capture_output=True)
    (wheel,) = wheels.glob("course_report_hub-*.whl")
    return wheel


def fresh_venv(folder: Path, wheel: Path) -> Path:
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "borrowed-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)  # fmt: skip
    return folder / "bin"


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """The `bin` folder of a fresh venv with the wheel installed, checked to import the hub from there."""
    bin_dir = fresh_venv(tmp_path / "venv", build_wheel(tmp_path))
    where = subprocess.run([bin_dir / "python", "-c", "import hub; print(hub.__file__)"], cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(str(tmp_path / "venv"))
    return bin_dir


async def test_a_wheel_installed_in_a_fresh_venv_serves_the_page(
    installed: Path, tmp_path: Path, env: dict[str, str], batch: dict[str, Any]
) -> None:
    bin_dir = installed
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        bin_dir / "hub", "serve", cwd=tmp_path, env={**os.environ, **env, "PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            async with asyncio.timeout(30):
                while True:
                    try:
                        async with http.get("/healthz") as health:
                            if health.status == 200:
                                break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.2)
            async with http.get("/") as page:
                html = await page.text()
            async with http.get("/web/hub-client.js") as client:
                script = await client.text()
    finally:
        server.terminate()
        await server.wait()
    assert page.status == 200 and "<html" in html.lower()
    assert client.status == 200 and "class HubClient" in script
