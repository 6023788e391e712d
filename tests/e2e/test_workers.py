"""End-to-end: ``llama-entra serve`` with two worker processes, on the active backend.

A real library-mode service started with ``LLAMA_ENTRA_WORKERS=2`` against the emulator: no
token request at start-up; under concurrent queries both workers answer and each fetches one
token at most (two in all); ``/metrics`` counts every worker's requests whichever worker
answers the scrape; the metrics directory ``serve`` made is gone once it stops. A bad worker
count is one line and exit code 2.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.emulator import EmulatorHandle
from support.service import ServiceHandle, service_config, stack_environment, start_service

pytestmark = pytest.mark.slow

_BURST = 40
_BOTH_WORKERS_SECONDS = 90


async def _burst(service: ServiceHandle, first: int) -> list[int]:
    """``_BURST`` queries at once, each on a connection of its own (so both workers accept)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{service.url}/v1/query",
                    json={"query": f"worker query {n}", "generate_topic_summary": False},
                )
                for n in range(first, first + _BURST)
            )
        )
    return [response.status_code for response in responses]


def _answered_queries(service: ServiceHandle) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "llama_entra_requests"
        for sample in family.samples
        if sample.name == "llama_entra_requests_total"
        and sample.labels.get("route") == "/v1/query"
        and sample.labels.get("status") == "200"
    )


def test_two_workers_share_the_load_one_token_each_and_one_metrics_view(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = service_config(tmp_path, fresh_emulator)
    env = stack_environment(fresh_emulator, tmp_path / "state")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env |= {"LLAMA_ENTRA_WORKERS": "2", "TMPDIR": str(temp)}
    with start_service(path, env) as service:
        assert fresh_emulator.counters()["token_requests"] == 0
        statuses: list[int] = []
        # Which worker accepts a connection is the kernel's choice, and the workers start one
        # after the other (a lock on the state directory): bursts of separate connections until
        # both have answered, within a bound.
        deadline = time.monotonic() + _BOTH_WORKERS_SECONDS
        while time.monotonic() < deadline:
            statuses += asyncio.run(_burst(service, len(statuses)))
            if fresh_emulator.counters()["token_requests"] >= 2:
                break
        assert set(statuses) == {200}
        assert fresh_emulator.counters()["token_requests"] == 2  # one per worker, both served
        assert len(list(temp.glob("llama-entra-metrics-*"))) == 1
        # Each scrape lands on either worker; each must count both workers' answers.
        for _ in range(4):
            assert _answered_queries(service) == len(statuses)
    assert list(temp.glob("llama-entra-metrics-*")) == []


def test_bad_worker_count_is_one_line_and_exit_2(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = service_config(tmp_path, fresh_emulator)
    env = stack_environment(fresh_emulator, tmp_path / "state") | {"LLAMA_ENTRA_WORKERS": "0"}
    command = [str(Path(sys.executable).parent / "llama-entra"), "serve", "-c", str(path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "--workers (or $LLAMA_ENTRA_WORKERS)" in done.stderr
    assert "Traceback" not in done.stderr
