"""A real Prometheus scraping a live `hub serve` and `hub worker` (each on its METRICS_PORT) while reports
are made: every query of the Grafana dashboard and every series the alert rules read returns data, and
Prometheus evaluates every rule without error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.embedded import free_port
from tests.helpers import next_event, start_hub_process, stop_process, wait_until_ready
from tests.prometheus import (
    DASHBOARDS,
    api,
    dashboard_expressions,
    query,
    rule_expressions,
    running_prometheus,
    selectors,
)

BATCH = "batch-0001"
REPORTS = 2


@pytest.fixture
async def deployment(env: dict[str, str], tmp_path: Path, batch: dict[str, Any]) -> AsyncIterator[dict[str, str]]:
    """A hub and a worker, each its own process with its own metrics port, as two pods would run."""
    port, hub_metrics, worker_metrics = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": base}
    hub = await start_hub_process("serve", env={**env, "METRICS_PORT": str(hub_metrics)}, log=tmp_path / "hub.log")
    worker = await start_hub_process("worker", env={**env, "METRICS_PORT": str(worker_metrics)},
                                     log=tmp_path / "worker.log")  # fmt: skip
    try:
        await wait_until_ready(base)
        yield {"base": base, "hub": f"127.0.0.1:{hub_metrics}", "worker": f"127.0.0.1:{worker_metrics}"}
    finally:
        await stop_process(worker)
        await stop_process(hub)


async def make_reports(base: str, token: Callable[..., str], count: int) -> None:
    headers = {"Authorization": f"Bearer {token()}"}
    async with aiohttp.ClientSession(base_url=base) as session:
        async with session.post("/v1/notifications/ticket", headers=headers) as response:
            ticket = (await response.json())["result"]["ticket"]
        async with session.ws_connect(f"/v1/notifications/ws?ticket={ticket}") as ws:
            for _ in range(count):
                async with session.post("/v1/reports/course-progress", json={"batchId": BATCH}, headers=headers) as r:
                    assert r.status == 202
                await next_event(ws, "report.completed")
        async with session.get("/metrics") as public:
            assert public.status == 404  # metrics are on their own port only


async def until_scraped(base: str, expression: str, within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not await query(base, expression):  # noqa: ASYNC110 - the state is in Prometheus, read over HTTP
            await asyncio.sleep(0.2)


async def test_prometheus_scraping_a_live_hub_and_worker_has_data_for_every_dashboard_query_and_rule(
    deployment: dict[str, str], token: Callable[..., str], tmp_path: Path
) -> None:
    async with running_prometheus([deployment["hub"], deployment["worker"]], tmp_path) as prometheus:
        await until_scraped(prometheus, "count(up == 1) == 2")
        await make_reports(deployment["base"], token, REPORTS)
        # Every report counted, and that seen two seconds (two scrapes) ago already, so every rate() has data.
        await until_scraped(prometheus, f'sum(hub_reports_ended_total{{outcome="success"}}) >= {REPORTS}')
        await until_scraped(prometheus, f'sum(hub_reports_ended_total{{outcome="success"}} offset 2s) >= {REPORTS}')
        await until_scraped(prometheus, "max(hub_workers_alive) >= 1")
        empty_queries = [
            e for path in DASHBOARDS for e in dashboard_expressions(path) if not await query(prometheus, e)
        ]
        rule_selectors = sorted({s for expression in rule_expressions() for s in selectors(expression)})
        empty_selectors = [s for s in rule_selectors if not await query(prometheus, s)]
        ready = await query(
            prometheus,
            'histogram_quantile(1, sum by (le) (hub_report_click_to_ready_seconds_bucket{size_class="under_10k"}))',
        )
        rules = [rule for group in (await api(prometheus, "/api/v1/rules"))["groups"] for rule in group["rules"]]
        sources = {sample["metric"]["instance"] for sample in await query(prometheus, "hub_dependency_up")}
    assert DASHBOARDS, "deploy/grafana holds the dashboard"
    assert empty_queries == []
    assert empty_selectors == []
    assert 0 < float(ready[0]["value"][1]) <= 10  # the seed's promise for a small batch, as Prometheus sees it
    assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
    assert len(rules) >= 8
    assert sources == {deployment["hub"], deployment["worker"]}
