"""Benchmark of tracing's cost (``make bench``): /v1/query with tracing off and on.

Two library-mode services in one run, identical but for OpenTelemetry's variables: one with
none (tracing off: no SDK, no instrumentation installed), one exporting every span to a local
OTLP/HTTP receiver (``support.otlp``) with the SDK's default batch processor. Queries are
interleaved in alternating order so drift hits both alike. What is left of tracing when it is
off (the hand-made spans' check for an SDK around the token manager and the Llama Stack call)
is timed in-process and reported as a share of one query.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from opentelemetry import trace

from llama_entra.telemetry import spans
from support.bench import report, summarize, timed
from support.emulator import EmulatorHandle
from support.otlp import otlp_receiver
from support.service import service_config, stack_environment, start_service

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
NOOP_SPANS_PER_QUERY = 3  # llama_stack.chat_completions, entra.token (+1 to spare)


def _query(client: httpx.Client, url: str, text: str) -> float:
    def one() -> None:
        response = client.post(
            f"{url}/v1/query", json={"query": text, "generate_topic_summary": False}
        )
        assert response.status_code == 200, response.text

    return timed(one)


def _noop_span_seconds(count: int = 100_000) -> float:
    """Seconds one hand-made span costs with no SDK installed (tracing off)."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    started = time.perf_counter()
    for _ in range(count):
        with spans.span("entra.token", {"entra.identity": "x"}) as current:
            current.set_attribute("entra.token.source", "cache")
    return (time.perf_counter() - started) / count


def test_bench_tracing_off_vs_on(emulator: EmulatorHandle, tmp_path: Path) -> None:
    quiet = {"service": {"log_level": "warning"}}
    with otlp_receiver() as receiver:
        services = {}
        for name in ("off", "on"):
            directory = tmp_path / name
            directory.mkdir()
            path = service_config(directory, emulator, extra=quiet)
            env = stack_environment(emulator, directory / "state")
            if name == "on":
                env |= {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                    "OTEL_SERVICE_NAME": "llama-entra-bench",
                }
            services[name] = start_service(path, env)
        with (
            services["off"] as off,
            services["on"] as on,
            httpx.Client(timeout=30) as client,
        ):
            for _ in range(20):  # warm both: imports, pools, the token
                _query(client, off.url, "warm")
                _query(client, on.url, "warm")
            samples: dict[str, list[float]] = {"off": [], "on": []}
            for n in range(ROUNDS):
                pairs = [("off", off.url), ("on", on.url)]
                for name, url in pairs if n % 2 else reversed(pairs):
                    samples[name].append(_query(client, url, f"round {n}"))
            exported = receiver.wait_for(
                lambda got: sum(s.name == "POST /v1/query" for s in got) >= ROUNDS,
                deadline_seconds=30,
            )
        assert all(s.service == "llama-entra-bench" for s in exported)  # only "on" traces
    off_summary = summarize("/v1/query, tracing off", samples["off"])
    on_summary = summarize("/v1/query, tracing on (OTLP/HTTP to a local receiver)", samples["on"])
    ratio = on_summary.median_ms / off_summary.median_ms
    noop = _noop_span_seconds()
    off_share = NOOP_SPANS_PER_QUERY * noop * 1000 / off_summary.median_ms
    report(
        "tracing-cost",
        [off_summary, on_summary],
        {
            "on_vs_off_median_ratio": round(ratio, 3),
            "on_vs_off_p95_ratio": round(on_summary.p95_ms / off_summary.p95_ms, 3),
            "spans_exported": len(exported),
            "off_noop_span_us": round(noop * 1e6, 2),
            "off_noop_spans_share_of_query": round(off_share, 5),
            "goal": "off: < 0.1% of a query (nothing installed); on: median ratio <= 1.10",
            "goal_met": off_share < 0.001 and ratio <= 1.10,
        },
    )
