"""What both benchmarks need: the `hub` command as a subprocess, waiting for a hub to be ready, and the
Markdown table they print (pasted into the README as it is)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import aiohttp

# Download links are signed with a key of their own, never the token key (see SECURITY.md).
LINK_SECRET = "bench-link-secret-that-signs-no-token-at-all"


def hub_command(*args: str) -> list[str]:
    """The `hub` command beside this Python, as the Procfile runs it (its script is the main module that
    the worker's part writers are started from)."""
    return [str(Path(sys.executable).with_name("hub")), *args]


async def wait_until_up(session: aiohttp.ClientSession, base: str, logs: str = "its output") -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the hub at {base} did not become ready; see {logs}")


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
