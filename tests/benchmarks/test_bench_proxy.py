"""Benchmark of the sidecar proxy (``make bench``): added latency and time to first streamed
byte, through ``llama-entra proxy`` vs straight to the emulator, measured in the same run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from support.bench import report, summarize, timed
from support.emulator import EmulatorHandle
from support.proxy import proxy_process

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
# Far below what Azure OpenAI models take to their first token (hundreds of ms), on purpose:
# the lower it is, the more the proxy's own cost shows in the ratio.
MODEL_FIRST_TOKEN_SECONDS = 0.05


@contextmanager
def _proxy(emulator: EmulatorHandle, directory: Path) -> Iterator[str]:
    with proxy_process(emulator, directory) as handle:
        yield handle.url


def _first_byte_seconds(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)
        elapsed = time.perf_counter() - started
        for _ in chunks:
            pass
    return elapsed


def _post_seconds(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    return timed(lambda: client.post(url, json=body).raise_for_status())


def test_bench_proxy_added_latency_and_time_to_first_byte(
    fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    token = fresh_emulator.access_token()
    body: dict[str, object] = {
        "model": fresh_emulator.model,
        "messages": [{"role": "user", "content": "benchmark me"}],
    }
    streamed = {**body, "stream": True}
    fresh_emulator.set_stream_delay(0.002)  # chunks spread out, as a model produces them
    direct_headers = {"Authorization": f"Bearer {token}"}
    with (
        _proxy(fresh_emulator, tmp_path) as proxy_url,
        httpx.Client(verify=str(fresh_emulator.ca_path), headers=direct_headers) as direct,
        httpx.Client() as proxied,
    ):
        targets = [
            (direct, f"{fresh_emulator.azure_base_url}/chat/completions"),
            (proxied, f"{proxy_url}/chat/completions"),
        ]
        for client, url in targets * 30:  # warm pools and the proxy's token
            assert client.post(url, json=body).status_code == 200
        latency: dict[int, list[float]] = {0: [], 1: []}
        first_byte: dict[int, list[float]] = {0: [], 1: []}
        for n in range(ROUNDS):
            for index in (0, 1) if n % 2 else (1, 0):
                client, url = targets[index]
                latency[index].append(_post_seconds(client, url, body))
                first_byte[index].append(_first_byte_seconds(client, url, streamed))
        # The same with a model's time to first token: what a caller of Azure sees.
        fresh_emulator.set_first_chunk_delay(MODEL_FIRST_TOKEN_SECONDS)
        model_first_byte: dict[int, list[float]] = {0: [], 1: []}
        for n in range(max(ROUNDS // 5, 10)):
            for index in (0, 1) if n % 2 else (1, 0):
                client, url = targets[index]
                model_first_byte[index].append(_first_byte_seconds(client, url, streamed))
    delay_ms = round(MODEL_FIRST_TOKEN_SECONDS * 1000)
    series = [
        summarize("chat completion, direct (baseline)", latency[0]),
        summarize("chat completion, through the proxy", latency[1]),
        summarize("first streamed byte, direct (baseline)", first_byte[0]),
        summarize("first streamed byte, through the proxy", first_byte[1]),
        summarize(f"first byte, {delay_ms} ms model, direct (baseline)", model_first_byte[0]),
        summarize(f"first byte, {delay_ms} ms model, through the proxy", model_first_byte[1]),
    ]
    added = series[1].median_ms - series[0].median_ms
    added_first_byte = series[3].median_ms - series[2].median_ms
    ttfb_ratio = series[5].median_ms / series[4].median_ms
    report(
        "proxy-overhead",
        series,
        {
            "added_median_ms": round(added, 3),
            "added_first_byte_median_ms": round(added_first_byte, 3),
            "instant_upstream_ttfb_median_ratio": round(
                series[3].median_ms / series[2].median_ms, 3
            ),
            "model_first_token_ms": delay_ms,
            "ttfb_median_ratio": round(ttfb_ratio, 3),
            "goal": "added median < 1 ms (whole call and first byte); TTFB ratio <= 1.1 with a "
            f"{delay_ms} ms model",
            "goal_met": added < 1 and added_first_byte < 1 and ttfb_ratio <= 1.1,
            "token_requests_by_proxy": fresh_emulator.counters()["token_requests"] - 1,
        },
    )
    assert fresh_emulator.counters()["token_requests"] == 2  # ours above, and the proxy's one
