"""Logs a machine can read: `hub serve` and `hub worker` write one JSON object a line with the time, the
level, the message and what is known of the line's context (request id, user id, job id); people get text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from hub.embedded import free_port
from tests.helpers import MENTOR, start_hub_process, stop_process, wait_until_ready

SUBMIT = "/v1/reports/course-progress"


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be a JSON object."""
    return [orjson.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def run_hub(env: dict[str, str], tmp_path: Path, token: str, batch_id: str) -> tuple[str, str]:
    """A `hub serve` and a `hub worker`, one click with a request id of ours; the request id and job id."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "PORT": str(port), "PUBLIC_URL": base}
    server = await start_hub_process("serve", env=env, log=tmp_path / "serve.log")
    worker = await start_hub_process("worker", env=env, log=tmp_path / "worker.log")
    try:
        await wait_until_ready(base)
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "portal-trace-42"}
        async with aiohttp.ClientSession(base_url=base) as http:
            async with http.post(SUBMIT, json={"batchId": batch_id}, headers=headers) as response:
                echoed = response.headers["X-Request-ID"]
                job_id = (await response.json())["result"]["jobId"]
            async with asyncio.timeout(30):
                while True:
                    if f"report {job_id} made" in (tmp_path / "worker.log").read_text():
                        break
                    await asyncio.sleep(0.2)
    finally:
        await stop_process(server)
        await stop_process(worker)
    return echoed, job_id


async def test_serve_and_worker_log_one_json_object_a_line_with_its_context(
    env: dict[str, str], tmp_path: Path, token, batch: dict[str, Any]
) -> None:
    echoed, job_id = await run_hub({k: v for k, v in env.items() if k != "LOG_FORMAT"}, tmp_path, token(), "batch-0001")
    served = json_lines(tmp_path / "serve.log")
    worked = json_lines(tmp_path / "worker.log")
    assert all({"time", "level", "message"} <= set(line) for line in served + worked)
    click = next(line for line in served if f"POST {SUBMIT}" in line["message"])
    assert (click["requestId"], click["userId"]) == ("portal-trace-42", MENTOR)
    assert echoed == "portal-trace-42"
    made = next(line for line in worked if "made" in line["message"])
    assert made["jobId"] == job_id and made["level"] == "INFO"


async def test_log_format_text_is_for_people(env: dict[str, str], tmp_path: Path, token, batch: dict[str, Any]) -> None:
    await run_hub({**env, "LOG_FORMAT": "text"}, tmp_path, token(), "batch-0001")
    lines = (tmp_path / "serve.log").read_text().splitlines()
    assert lines and not any(line.startswith("{") for line in lines)
    assert any("requestId=portal-trace-42" in line and f"userId={MENTOR}" in line for line in lines)
