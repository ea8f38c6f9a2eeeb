"""Small reports never wait behind big ones, and a killed worker's spool does not outlive it.

A worker writes batches under `SMALL_BATCH` participants with a part writer kept for them, and bigger
ones with the `REPORT_PARTS` others, so the two never queue for the same process. Real Valkey, real
arq worker, real part-writer processes; the big batch is big enough to keep both of its reports busy
for a few seconds, not the million rows of the benchmark.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hub.config import Settings
from hub.source import Source
from hub.source.seed import seed
from tests.helpers import MENTOR, Call, next_event, running_worker

SUBMIT = "/v1/reports/course-progress"
BIG, SMALL = "batch-big", "batch-small"
OTHER_MENTOR = "mentor-0002"
BIG_ROWS = 150_000


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """Two part writers for big batches, as on this two-core machine, and time for two big reports."""
    return {**env, "REPORT_PARTS": "2", "REPORT_TIMEOUT": "120"}


async def test_a_small_batch_report_is_ready_while_two_big_ones_are_still_being_made(
    call: Call, http, socket_url, settings: Settings, source: Source
) -> None:
    await seed(source, BIG_ROWS, batch_id=BIG, course_id="do_course_big", mentor_id=MENTOR, progress=None)
    await source.insert("batch_mentors", ("batch_id", "user_id"), [(BIG, OTHER_MENTOR)])
    await seed(source, 2_000, batch_id=SMALL, course_id="do_course_small", mentor_id=MENTOR, progress=None)
    async with running_worker(settings), http.ws_connect(await socket_url()) as ws:
        for mentor in (MENTOR, OTHER_MENTOR):  # two reports of the big batch, one per mentor
            status, _ = await call("POST", SUBMIT, json={"batchId": BIG}, user=mentor)
            assert status == 202
        await next_event(ws, "report.progress", within=30)  # the big reports are being written
        status, body = await call("POST", SUBMIT, json={"batchId": SMALL})
        assert status == 202
        small_job = body["result"]["jobId"]
        finished = []
        async with asyncio.timeout(10):  # the seed's promise for a batch under 10,000
            while small_job not in finished:
                frame = await ws.receive_json()
                if frame["type"] in ("report.completed", "report.failed"):
                    finished.append(frame["jobId"])
        big = await next_event(ws, "report.completed", within=60)
    assert finished == [small_job], "the small report was ready before the big one"
    assert big["rows"] == BIG_ROWS


def spool_holder(base: Path) -> subprocess.Popen[str]:
    """A process that makes a spool the way a worker does and holds it until it is killed."""
    code = (
        "import sys, time; from jobs.spool import Spool; print(Spool(sys.argv[1]).folder, flush=True); time.sleep(60)"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(base)], stdout=subprocess.PIPE, text=True)


def spools(base: Path) -> set[Path]:
    """The spool folders and lock files in `base`."""
    return set(base.glob("report-parts-*"))


async def test_a_killed_worker_spool_is_removed_at_the_next_start_and_a_live_one_kept(
    settings: Settings, redis, batch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    killed, live = spool_holder(base), spool_holder(base)
    try:
        killed_folder = Path(killed.stdout.readline().strip())
        live_folder = Path(live.stdout.readline().strip())
        (killed_folder / "part").mkdir()
        (killed_folder / "part" / "0.csv").write_text("a half-written part\r\n")
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        before = spools(base)
        async with running_worker(settings) as worker:
            async with asyncio.timeout(20):
                while "services" not in worker.ctx:  # noqa: ASYNC110 (arq tells no one it has started)
                    await asyncio.sleep(0.05)
            after = spools(base)
    finally:
        for process in (killed, live):
            process.kill()
            process.wait()
    assert {killed_folder, killed_folder.with_suffix(".lock")} <= before
    kept = {live_folder, live_folder.with_suffix(".lock")}
    assert kept <= after
    assert not {killed_folder, killed_folder.with_suffix(".lock")} & after
    assert len(after - kept) == 2  # the new worker's own folder and lock
