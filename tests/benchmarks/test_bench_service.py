"""Benchmarks of the service (``make bench``): auth cost per request, cold start, start-up with
Entra down, memory. Real subprocesses against the emulator; baselines measured in the same run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from support.bench import report, summarize, timed
from support.emulator import EmulatorHandle
from support.service import ServiceHandle, service_config, stack_environment, start_service

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
# Llama Stack's native caches (below Python: its Python heap stays flat, tracemalloc shows)
# fill over the first ~8,000 requests; the second half shows whether anything still grows.
MEMORY_REQUESTS = int(os.environ.get("BENCH_MEMORY_REQUESTS", "20000"))


@contextmanager
def _service(
    emulator: EmulatorHandle, directory: Path, *, static_key: bool = False, **changes: Any
) -> Iterator[ServiceHandle]:
    """A library-mode service; ``static_key``: the run config's API key instead of Entra."""
    directory.mkdir(parents=True, exist_ok=True)
    quiet = {"service": {"state_dir": str(directory / "state"), "log_level": "warning"}}
    path = service_config(directory, emulator, with_entra=not static_key, extra=quiet, **changes)
    env = stack_environment(emulator, directory / "state")
    if static_key:
        env["AZURE_API_KEY"] = emulator.static_api_key
    with start_service(path, env) as handle:
        yield handle


def _query(client: httpx.Client, service: ServiceHandle, text: str) -> None:
    response = client.post(f"{service.url}/v1/query", json={"query": text})
    assert response.status_code == 200, response.text


def _timed_query(client: httpx.Client, service: ServiceHandle, text: str) -> float:
    return timed(lambda: _query(client, service, text))


def test_bench_entra_auth_per_request_cost(emulator: EmulatorHandle, tmp_path: Path) -> None:
    """/v1/query with a cached Entra token vs the same service with a static API key."""
    with (
        _service(emulator, tmp_path / "entra") as entra,
        _service(emulator, tmp_path / "static", static_key=True) as static,
        httpx.Client(timeout=30) as client,
    ):
        for _ in range(20):  # warm both: imports, pools, the token
            _query(client, entra, "warm")
            _query(client, static, "warm")
        with_entra: list[float] = []
        with_key: list[float] = []
        for n in range(ROUNDS):  # interleaved, alternating order, so drift hits both alike
            pairs = [(with_entra, entra), (with_key, static)]
            for samples, service in pairs if n % 2 else reversed(pairs):
                samples.append(_timed_query(client, service, f"round {n}"))
    entra_summary = summarize("/v1/query, Entra ID token", with_entra)
    key_summary = summarize("/v1/query, static API key (baseline)", with_key)
    ratio = entra_summary.median_ms / key_summary.median_ms
    report(
        "entra-per-request-cost",
        [entra_summary, key_summary],
        {"median_ratio": round(ratio, 3), "goal": "<= 1.05", "goal_met": ratio <= 1.05},
    )


def test_bench_cold_start_200_concurrent_requests_one_token(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """200 first requests at once on a cold service: one token request, every answer 200."""
    with _service(fresh_emulator, tmp_path / "cold") as service:
        assert fresh_emulator.counters()["token_requests"] == 0

        async def burst() -> tuple[list[int], list[float], float]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:

                async def one(n: int) -> tuple[int, float]:
                    started = time.perf_counter()
                    response = await client.post(
                        f"{service.url}/v1/query", json={"query": f"cold {n}"}
                    )
                    return response.status_code, time.perf_counter() - started

                started = time.perf_counter()
                results = await asyncio.gather(*(one(n) for n in range(200)))
                return [s for s, _ in results], [t for _, t in results], started

        statuses, latencies, started = asyncio.run(burst())
        wall = time.perf_counter() - started
    token_requests = fresh_emulator.counters()["token_requests"]
    report(
        "cold-start-200-concurrent",
        [summarize("first requests (200 at once)", latencies)],
        {
            "token_requests": token_requests,
            "non_200": sum(1 for s in statuses if s != 200),
            "wall_seconds": round(wall, 3),
            "goal": "1 token request, all 200",
            "goal_met": token_requests == 1 and set(statuses) == {200},
        },
    )
    assert token_requests == 1
    assert set(statuses) == {200}


def _seconds_to_ready(emulator: EmulatorHandle, directory: Path, **changes: Any) -> float:
    started = time.perf_counter()
    with _service(emulator, directory, **changes) as service:
        while httpx.get(f"{service.url}/readiness", timeout=5).status_code != 200:
            time.sleep(0.02)
        return time.perf_counter() - started


def test_bench_start_up_with_entra_unreachable_vs_reachable(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Start-up never waits for Entra: time to /readiness 200 both ways."""
    unreachable = {"authority_host": "https://127.0.0.1:9", "timeout_seconds": 2}
    reachable_runs: list[float] = []
    unreachable_runs: list[float] = []
    for n in range(3):
        reachable_runs.append(_seconds_to_ready(emulator, tmp_path / f"up-{n}"))
        unreachable_runs.append(
            _seconds_to_ready(emulator, tmp_path / f"down-{n}", entra=unreachable)
        )
    up = summarize("start-up to ready, Entra reachable", reachable_runs)
    down = summarize("start-up to ready, Entra unreachable", unreachable_runs)
    ratio = down.median_ms / up.median_ms
    report(
        "start-up-entra-unreachable",
        [down, up],
        {"median_ratio": round(ratio, 3), "goal": "~1 (0.9-1.1)", "goal_met": 0.9 <= ratio <= 1.1},
    )


def test_bench_memory_idle_and_after_many_requests(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """RSS of the service idle and every tenth of the requests; growth over the second half."""
    body = {"model": f"azure/{emulator.model}", "messages": [{"role": "user", "content": "m"}]}
    with _service(emulator, tmp_path / "memory") as service:
        process = psutil.Process(service.process.pid)

        async def load(count: int) -> int:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                queue = iter(range(count))
                failures = 0

                async def worker() -> None:
                    nonlocal failures
                    for _ in queue:
                        response = await client.post(
                            f"{service.url}/v1/chat/completions", json=body
                        )
                        failures += response.status_code != 200

                await asyncio.gather(*(worker() for _ in range(16)))
                return failures

        assert asyncio.run(load(200)) == 0  # warm: every code path and pool in use
        idle = process.memory_info().rss
        step = MEMORY_REQUESTS // 10
        checkpoints: list[int] = []
        for _ in range(10):
            assert asyncio.run(load(step)) == 0
            checkpoints.append(process.memory_info().rss)
    mib = 1024 * 1024
    half = MEMORY_REQUESTS // 2
    growth = (checkpoints[-1] - checkpoints[4]) / mib
    report(
        "memory",
        [],
        {
            "requests": MEMORY_REQUESTS,
            "rss_idle_mib": round(idle / mib, 1),
            f"rss_every_{step}_mib": [round(rss / mib, 1) for rss in checkpoints],
            f"rss_after_{half}_mib": round(checkpoints[4] / mib, 1),
            f"rss_after_{MEMORY_REQUESTS}_mib": round(checkpoints[-1] / mib, 1),
            "growth_over_second_half_mib": round(growth, 1),
            "goal": "no growth beyond noise once warm (< 5 MiB over the second half)",
            "goal_met": growth < 5,
        },
    )
