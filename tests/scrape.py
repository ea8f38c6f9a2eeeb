"""Reading a process's Prometheus text as a test needs it: one sample by name and labels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, f"{url} answered {response.status}"
        return parse(await response.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 for one not exported yet (a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def until(url: str, holds: Callable[[Samples], bool], within: float = 10) -> Samples:
    """Scrapes until `holds` is true of the samples (a worker counts a report just after announcing it; its
    metrics port opens as it starts)."""
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(aiohttp.ClientConnectionError):
                if holds(samples := await scrape(url)):
                    return samples
            await asyncio.sleep(0.05)
