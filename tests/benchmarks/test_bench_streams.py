"""Benchmark of many concurrent streams (``make bench``): first token, CPU and memory per stream.

N concurrent streamed answers (N from ``BENCH_STREAMS``, default 1, 50, 200, 1000) while the
emulator streams each answer as 20 chunks 0.1 s apart, as a model would:

- library mode: ``/v1/streaming_query`` on ``llama-entra serve`` (``BENCH_STREAMS_WORKERS``,
  default 1 and 2 workers);
- service mode: ``/v1/streaming_query`` on llama-entra in front of a Llama Stack server;
- the sidecar proxy: ``/chat/completions`` streamed through ``llama-entra proxy``.

Per N: first-token p50/p99 and stream-end p99 (ms, from the request's start), failures, the
CPU seconds of the service's processes (every worker, and the Llama Stack server in service
mode) against the emulator's CPU seconds for the same streams (the ratio), and the growth of
the service's resident memory per open stream. The load generator is this process (aiohttp,
cheaper per stream than httpx), on the same cores. Results go to
``bench-results/<backend>/streams.json`` (``BENCH_STREAMS_LABEL`` names the run, so a run of
an older checkout can be kept next to it); ``scripts/streams_chart.py`` draws them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from llama_entra.backends import active_backend
from support.bench import RESULTS, report
from support.emulator import EmulatorHandle, start_emulator
from support.proxy import proxy_process
from support.service import (
    ROOT,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

pytestmark = pytest.mark.timeout(3600)  # every mode at every N: minutes on a loaded machine

COUNTS = [int(n) for n in os.environ.get("BENCH_STREAMS", "1,50,200,1000").split(",")]
WORKERS = [int(n) for n in os.environ.get("BENCH_STREAMS_WORKERS", "1,2").split(",")]
MODES = os.environ.get("BENCH_STREAMS_MODES", "library,service,proxy").split(",")
LABEL = os.environ.get("BENCH_STREAMS_LABEL", "current")
# Service mode's own list (``BENCH_STREAMS_SERVICE``), as its 1,000 streams take minutes.
SERVICE_COUNTS = [
    int(n) for n in os.environ.get("BENCH_STREAMS_SERVICE", ",".join(map(str, COUNTS))).split(",")
]
STREAM_TIMEOUT_SECONDS = 120
CHUNK_GAP_SECONDS = 0.1
QUESTION = " ".join(f"w{n}" for n in range(17))  # the emulator answers "You said:" + 18 words
_QUIET = {"log_level": "warning"}


@dataclass
class Run:
    """What one batch of N concurrent streams measured."""

    mode: str
    streams: int
    first_token_p50_ms: float
    first_token_p99_ms: float
    end_p99_ms: float
    failures: int
    service_cpu_seconds: float
    emulator_cpu_seconds: float
    cpu_ratio: float
    service_cpu_ms_per_stream: float
    rss_growth_kb_per_stream: float
    rss_peak_mb: float


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        for process in _tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for process in _tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
    return total


@contextlib.contextmanager
def _rss_peak(pids: list[int]) -> Iterator[list[int]]:
    """Samples the processes' summed RSS every 20 ms; ``[peak]`` once the block ends."""
    peak = [_rss_bytes(pids)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_bytes(pids))

    thread = threading.Thread(target=sample, name="rss-sampler")
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _percentile(values: list[float], share: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]


async def _one_stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], is_token: Any
) -> tuple[float, float] | None:
    """(first token, end) seconds of one stream, or None if it failed."""
    # A question of its own: the emulator derives the completion's id from it, and Llama
    # Stack's inference store turns a repeated id into an insert that fails, then an update.
    body = _with_question(body, f"{QUESTION} {uuid.uuid4().hex}")
    started = time.perf_counter()
    first: float | None = None
    ended = False
    try:
        async with session.post(url, json=body) as response:
            if response.status != 200:
                return None
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if first is None and is_token(payload):
                    first = time.perf_counter() - started
                ended = ended or payload == b"[DONE]" or b'"end"' in payload[:20]
    except (aiohttp.ClientError, TimeoutError):  # a stream over the timeout counts as failed
        return None
    if first is None or not ended:
        return None
    return first, time.perf_counter() - started


def _with_question(body: dict[str, Any], question: str) -> dict[str, Any]:
    if "messages" in body:
        return {**body, "messages": [{"role": "user", "content": question}]}
    return {**body, "query": question}


def _lightspeed_token(payload: bytes) -> bool:
    return bool(json.loads(payload).get("event") == "token")


def _openai_token(payload: bytes) -> bool:
    if payload == b"[DONE]":
        return False
    choices = json.loads(payload).get("choices") or []
    return any((choice.get("delta") or {}).get("content") for choice in choices)


async def _streams(
    count: int, url: str, body: dict[str, Any], is_token: Any
) -> list[tuple[float, float] | None]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=STREAM_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await asyncio.gather(
            *(_one_stream(session, url, body, is_token) for _ in range(count))
        )


def _measure(
    mode: str,
    count: int,
    target: tuple[str, dict[str, Any], Any],
    service_pids: list[int],
    emulator: EmulatorHandle,
) -> Run:
    url, body, is_token = target
    asyncio.run(_streams(min(count, 20), url, body, is_token))  # warm pools and imports
    service_before = _cpu_seconds(service_pids)
    emulator_before = _cpu_seconds([emulator.process.pid])
    rss_before = _rss_bytes(service_pids)
    with _rss_peak(service_pids) as peak:
        results = asyncio.run(_streams(count, url, body, is_token))
    service_cpu = _cpu_seconds(service_pids) - service_before
    emulator_cpu = _cpu_seconds([emulator.process.pid]) - emulator_before
    done = [result for result in results if result is not None]
    firsts = [first for first, _ in done] or [float("nan")]
    ends = [end for _, end in done] or [float("nan")]
    return Run(
        mode=mode,
        streams=count,
        first_token_p50_ms=round(_percentile(firsts, 0.5) * 1000, 1),
        first_token_p99_ms=round(_percentile(firsts, 0.99) * 1000, 1),
        end_p99_ms=round(_percentile(ends, 0.99) * 1000, 1),
        failures=count - len(done),
        service_cpu_seconds=round(service_cpu, 3),
        emulator_cpu_seconds=round(emulator_cpu, 3),
        cpu_ratio=round(service_cpu / emulator_cpu, 2) if emulator_cpu else float("nan"),
        service_cpu_ms_per_stream=round(service_cpu / count * 1000, 2),
        rss_growth_kb_per_stream=round(max(peak[0] - rss_before, 0) / count / 1024, 1),
        rss_peak_mb=round(peak[0] / 2**20, 1),
    )


def _query_target(base: str) -> tuple[str, dict[str, Any], Any]:
    body = {"query": QUESTION, "generate_topic_summary": False}
    return f"{base}/v1/streaming_query", body, _lightspeed_token


@contextlib.contextmanager
def _library(
    emulator: EmulatorHandle, directory: Path, workers: int
) -> Iterator[tuple[str, list[int]]]:
    directory.mkdir(parents=True)
    service = {**_QUIET, "state_dir": str(directory / "state"), "workers": workers}
    path = service_config(directory, emulator, extra={"service": service})
    with start_service(path, stack_environment(emulator, directory / "state")) as handle:
        yield handle.url, [handle.process.pid]


@contextlib.contextmanager
def _service_mode(emulator: EmulatorHandle, directory: Path) -> Iterator[tuple[str, list[int]]]:
    env = stack_environment(emulator, directory / "stack-state")
    (directory / "stack").mkdir(parents=True)
    quiet = {"service": {**_QUIET, "state_dir": str(directory / "stack" / "state")}}
    stack_config = service_config(directory / "stack", emulator, extra=quiet)
    with start_llama_stack(stack_config, env) as stack:
        (directory / "service").mkdir()
        quiet = {"service": {**_QUIET, "state_dir": str(directory / "service" / "state")}}
        path = service_config(
            directory / "service", emulator, mode="service", llama_stack_url=stack.url, extra=quiet
        )
        with start_service(path, env) as handle:
            yield handle.url, [handle.process.pid, stack.process.pid]


@contextlib.contextmanager
def _proxy(emulator: EmulatorHandle, directory: Path) -> Iterator[tuple[str, list[int]]]:
    directory.mkdir(parents=True)
    with proxy_process(emulator, directory) as handle:
        yield handle.url, [handle.process.pid]


def _series(
    mode: str,
    server: contextlib.AbstractContextManager[tuple[str, list[int]]],
    emulator: EmulatorHandle,
    counts: list[int] = COUNTS,
) -> list[Run]:
    with server as (base, pids):
        if mode == "proxy":
            body = {
                "model": emulator.model,
                "messages": [{"role": "user", "content": QUESTION}],
                "stream": True,
            }
            target: tuple[str, dict[str, Any], Any] = (
                f"{base}/chat/completions",
                body,
                _openai_token,
            )
        else:
            target = _query_target(base)
        return [_measure(mode, count, target, pids, emulator) for count in counts]


def test_bench_concurrent_streams(tmp_path: Path) -> None:
    """Every mode at every N; goals: CPU within 2x the emulator's, 200 streams' p99 first
    token under 1 s with one worker, 1,000 streams all complete under 100 KB each."""
    runs: list[Run] = []
    with start_emulator(tmp_path / "emulator") as emulator:
        emulator.set_stream_delay(CHUNK_GAP_SECONDS)
        for mode in MODES:
            if mode == "library":
                for workers in WORKERS:
                    server = _library(emulator, tmp_path / f"library-{workers}", workers)
                    runs += _series(f"library, {workers} worker(s)", server, emulator)
            elif mode == "service":
                server = _service_mode(emulator, tmp_path / "service")
                runs += _series("service", server, emulator, SERVICE_COUNTS)
            else:
                runs += _series("proxy", _proxy(emulator, tmp_path / "proxy"), emulator)
            _report(runs)  # after each mode, so a later mode's trouble loses nothing
    _draw()
    assert all(run.failures == 0 for run in runs), [run for run in runs if run.failures]


def _report(runs: list[Run]) -> None:
    for run in runs:
        print(run)
    library = [run for run in runs if run.mode == "library, 1 worker(s)"]
    at_200 = next((run for run in library if run.streams == 200), None)
    at_1000 = next((run for run in library if run.streams == 1000), None)
    report(
        "streams" if LABEL == "current" else f"streams-{LABEL}",
        [],
        {
            "label": LABEL,
            "chunks": 20,
            "chunk_gap_seconds": CHUNK_GAP_SECONDS,
            "runs": [run.__dict__ for run in runs],
            "goal_cpu_within_2x": all(run.cpu_ratio <= 2 for run in library if run.streams >= 50),
            "goal_200_first_token_p99_under_1s": at_200 is not None
            and at_200.first_token_p99_ms < 1000,
            "goal_1000_complete_under_100kb": at_1000 is not None
            and at_1000.failures == 0
            and at_1000.rss_growth_kb_per_stream < 100,
        },
    )


def _draw() -> None:
    """``streams.png`` next to the JSON, from every labelled run there (``streams_chart.py``)."""
    directory = RESULTS / active_backend().name
    documents = sorted(directory.glob("streams*.json"))
    script = ROOT / "scripts" / "streams_chart.py"
    output = directory / "streams.png"
    command = [sys.executable, str(script), "-o", str(output), *map(str, documents)]
    subprocess.run(command, check=True)
