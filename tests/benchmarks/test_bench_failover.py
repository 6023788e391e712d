"""Benchmark of one model on several Azure OpenAI resources (``make bench``).

Each emulated resource admits ``RPM`` requests per minute. Load arrives at 1.8 x ``RPM`` per
minute, once against one resource (the baseline) and once against two, both through a
library-mode service with the retry policy off (``max_retries: 0``), so every 429 Azure gives
reaches the caller and the ratio shows what failover alone does. The load lasts one whole
rate-limit window (60 s, Azure's and the emulator's), in which a resource admits at most
``RPM`` calls: with one resource at least 1 - 1/1.8 = 44 % of the requests must be refused, with
two none need be. (Counting a later part of a run alone would mislead: calls admitted in a
burst leave the sliding window in a burst too.)
Then the cost of choosing a resource: ``DeploymentPool.call`` against a no-op call.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from llama_entra.azure import DeploymentPool
from support.bench import report, summarize
from support.emulator import EmulatorHandle
from support.service import ServiceHandle, service_config, stack_environment, start_service

RPM = int(os.environ.get("BENCH_FAILOVER_RPM", "120"))
LOAD = 1.8
WINDOW_SECONDS = 60.0
PICKS = 20_000


def _resource(emulator: EmulatorHandle, name: str) -> str:
    return emulator.azure_base_url.replace("/openai/v1", f"/{name}/openai/v1")


@contextmanager
def _service(
    emulator: EmulatorHandle, directory: Path, base_urls: list[str]
) -> Iterator[ServiceHandle]:
    entra = {
        "endpoints": {"azure": {"strategy": "priority", "base_urls": base_urls}},
        "retries": {"max_retries": 0},
    }
    path = service_config(directory, emulator, entra=entra)
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle


async def _load(url: str) -> list[int]:
    """Statuses of the requests sent for one window at ``LOAD`` x ``RPM``."""
    interval = 60.0 / (RPM * LOAD)
    body = {"query": "load", "generate_topic_summary": False}
    async with httpx.AsyncClient(timeout=60) as client:

        async def send() -> int:
            return (await client.post(f"{url}/v1/query", json=body)).status_code

        started = time.monotonic()
        tasks: list[asyncio.Task[int]] = []
        tick = 0
        while time.monotonic() - started < WINDOW_SECONDS:
            tasks.append(asyncio.create_task(send()))
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * interval - time.monotonic()))
        return list(await asyncio.gather(*tasks))


def _pick_seconds() -> list[float]:
    pool = DeploymentPool(["https://a/openai/v1", "https://b/openai/v1"], "round_robin")

    async def send(base_url: str) -> str:
        return base_url

    async def picks() -> list[float]:
        samples = []
        for _ in range(PICKS):
            started = time.perf_counter()
            await pool.call(send)
            samples.append(time.perf_counter() - started)
        return samples

    return asyncio.run(picks())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_failover_two_resources_absorb_load_one_cannot(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator, model = fresh_emulator, fresh_emulator.model
    second = _resource(emulator, "sweden")
    throttled: dict[str, float] = {}
    configurations = {
        "one resource": [emulator.azure_base_url],
        "two resources": [emulator.azure_base_url, second],
    }
    for name, urls in configurations.items():
        emulator.reset()
        emulator.set_limits(model, rpm=RPM)
        emulator.set_limits(f"sweden/{model}", rpm=RPM)
        directory = tmp_path / name.replace(" ", "-")
        directory.mkdir()
        with _service(emulator, directory, urls) as service:
            statuses = asyncio.run(_load(service.url))
        assert set(statuses) <= {200, 429}, statuses
        throttled[name] = statuses.count(429) / len(statuses)
    emulator.reset()
    picks = _pick_seconds()
    series = [summarize("choosing a resource (DeploymentPool.call, no-op call)", picks)]
    pick_ms = statistics.median(picks) * 1000
    report(
        "failover",
        series,
        {
            "rpm_per_resource": RPM,
            "load_per_minute": RPM * LOAD,
            "measured_seconds": WINDOW_SECONDS,
            "caller_429_share_one_resource": round(throttled["one resource"], 3),
            "caller_429_share_two_resources": round(throttled["two resources"], 3),
            "pick_median_ms": round(pick_ms, 4),
            "goal": "two resources: close to 0 caller 429s where one gives about 45 %; "
            "choosing a resource < 0.2 ms median",
            "goal_met": throttled["two resources"] < 0.02
            and throttled["one resource"] > 0.3
            and pick_ms < 0.2,
        },
    )
