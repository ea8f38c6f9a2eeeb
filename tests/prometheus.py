"""A real Prometheus (Debian's `prometheus` package) for a test: scraping the targets it is given every
second, evaluating the alert rules in deploy/prometheus/, answering queries over its HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from hub.embedded import free_port
from tests.helpers import wait_until_ready

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
# A metric name with its label matchers, as it appears in an expression.
SELECTOR = re.compile(r"\b(hub_[a-z0-9_]+)(\{[^}]*\})?")


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "Debian's prometheus package must be installed (.ci/run installs it)"
    return found


def selectors(expression: str) -> Iterator[str]:
    """Every series selector of a PromQL expression (`hub_x{a="b"}`), without range or offset."""
    for match in SELECTOR.finditer(expression):
        yield match.group(1) + (match.group(2) or "")


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions(path: Path) -> list[str]:
    """Every query of a Grafana dashboard, with Grafana's own variables given the values a short run needs."""
    dashboard = orjson.loads(path.read_bytes())
    return [target["expr"].replace("$__rate_interval", "1m")
            for panel in dashboard["panels"] for target in panel.get("targets", [])]  # fmt: skip


@contextlib.asynccontextmanager
async def running_prometheus(targets: list[str], folder: Path) -> AsyncIterator[str]:
    """Prometheus scraping `targets` (host:port) every second; yields its base URL."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "course-report-hub", "static_configs": [{"targets": targets}]}],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (folder / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            prometheus_binary(), f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}", stdout=log, stderr=log,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(base, probe="/-/ready")
        yield base
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def query(base: str, expression: str) -> list[dict[str, Any]]:
    """The instant query's result vector (an error from Prometheus fails the test, naming the expression)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/api/v1/query", params={"query": expression}) as response:
            body = await response.json()
    assert body["status"] == "success", f"{expression}: {body.get('error')}"
    return body["data"]["result"]


async def api(base: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{base}{path}") as response:
        return (await response.json())["data"]
