"""A small report beside big ones: the seed's promise is per batch size, so a batch under 10,000 must be
ready in under 10 s whatever else the workers are making.

Seeds a 2,000-participant batch and two batches of a million into SQLite, starts a real `hub serve`,
`hub worker` and Valkey, and times the small report's click to "ready" first alone (the reference), then
while both big reports are being made. Prints a table with the ratio of the two.

    .venv/bin/python -m bench.beside                       # about two minutes of seeding, then the runs
    .venv/bin/python -m bench.beside --big 300000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.harness import LINK_SECRET, hub_command, table, wait_until_up
from bench.report import MENTOR, SECRET, click_to_ready, processes
from hub.embedded import embedded_redis, free_port
from hub.identity import mint_token

SMALL = 2_000
REQUIRED_SECONDS = 10.0


def seed(env: dict[str, str], batch_id: str, size: int) -> None:
    print(f"  {batch_id}:", file=sys.stderr)
    command = hub_command("seed", "--participants", str(size), "--batch-id", batch_id, "--mentor", MENTOR)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


async def small_reports(session: aiohttp.ClientSession, base: str, token: str, repeat: int) -> list[float]:
    return [await click_to_ready(session, base, token, "bench-small") for _ in range(repeat)]


async def measure(base: str, repeat: int) -> tuple[list[float], list[float], list[float], bool]:
    """The small report alone, the small report beside two big ones, the big ones' own times, and whether
    both big reports were still being made when the last small one was ready."""
    token = mint_token(MENTOR, ["COURSE_MENTOR"], 3600, SECRET)
    async with aiohttp.ClientSession() as session:
        await wait_until_up(session, base)
        alone = await small_reports(session, base, token, repeat)
        bigs = [asyncio.create_task(click_to_ready(session, base, token, f"bench-big-{i}")) for i in (1, 2)]
        await asyncio.sleep(0.5)  # both big reports are being made
        beside = await small_reports(session, base, token, repeat)
        overlapped = not any(big.done() for big in bigs)
        big_times = await asyncio.gather(*bigs)
    return alone, beside, list(big_times), overlapped


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=1_000_000, help="participants in each big batch")
    parser.add_argument("--repeat", type=int, default=3, help="small reports in each scenario")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-beside-") as tmp, embedded_redis() as redis_url:
        folder = Path(tmp)
        port = free_port()
        env = {**os.environ, "REDIS_URL": redis_url, "JWT_SECRET": SECRET, "LINK_SECRET": LINK_SECRET,
               "PORT": str(port), "PUBLIC_URL": f"http://127.0.0.1:{port}", "REPORT_TIMEOUT": "600",
               "STORAGE_URL": f"file://{folder / 'reports'}",
               "SOURCE_URL": f"sqlite:///{folder / 'bench.db'}"}  # fmt: skip
        print("seeding:", file=sys.stderr)
        seed(env, "bench-small", SMALL)
        for i in (1, 2):
            seed(env, f"bench-big-{i}", args.big)
        with processes(env) as (base, _):
            began = time.perf_counter()
            alone, beside, bigs, overlapped = await measure(base, args.repeat)
            print(f"  measured in {time.perf_counter() - began:.0f}s", file=sys.stderr)
    header = ["small report (2,000)", "median s", "max s", "required s", "x alone", "big reports s",
              "bigs still running", "meets requirement"]  # fmt: skip
    reference = statistics.median(alone)
    rows = [
        ["alone", f"{reference:.2f}", f"{max(alone):.2f}", f"{REQUIRED_SECONDS:g}", "1.0", "", "", ""],
        [f"beside two of {args.big:,}", f"{statistics.median(beside):.2f}", f"{max(beside):.2f}",
         f"{REQUIRED_SECONDS:g}", f"{statistics.median(beside) / reference:.1f}",
         " / ".join(f"{big:.1f}" for big in bigs), "yes" if overlapped else "NO",
         "yes" if max(beside) < REQUIRED_SECONDS and overlapped else "NO"],
    ]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    asyncio.run(main())
