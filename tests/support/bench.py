"""Benchmark helpers: percentiles, a printed table and JSON results under ``bench-results/``.

Each benchmark measures its baseline in the same run and reports ratios against it, so the
numbers mean something on any machine; the JSON records which machine produced them.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llama_entra.backends import active_backend, package_version
from support.service import ROOT

__all__ = ["RESULTS", "Summary", "machine", "report", "summarize", "timed"]

RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", ROOT / "bench-results"))


@dataclass(frozen=True)
class Summary:
    """Latency percentiles of one series, in milliseconds."""

    name: str
    count: int
    median_ms: float
    p95_ms: float
    p99_ms: float


def summarize(name: str, seconds: Sequence[float]) -> Summary:
    """Median, p95 and p99 of ``seconds`` (at least two samples), in ms."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return Summary(
        name,
        len(seconds),
        round(statistics.median(seconds) * 1000, 3),
        round(cuts[94] * 1000, 3),
        round(cuts[98] * 1000, 3),
    )


def timed(call: Callable[[], object]) -> float:
    """Seconds one ``call()`` took."""
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def machine() -> dict[str, Any]:
    """Where the numbers come from (the backend included)."""
    backend = active_backend()
    return {
        "backend": f"{backend.name} {package_version(backend.package)}",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def report(benchmark: str, series: Sequence[Summary], results: dict[str, Any]) -> dict[str, Any]:
    """Print a table of ``series`` and ``results``; write ``bench-results/BACKEND/NAME.json``."""
    document = {
        "benchmark": benchmark,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "series": [asdict(s) for s in series],
        "results": results,
    }
    directory = RESULTS / active_backend().name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{benchmark}.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [f"\n== {benchmark} ({document['machine']['backend']}) =="]
    if series:
        lines.append(f"{'series':<48} {'n':>6} {'median ms':>10} {'p95 ms':>10} {'p99 ms':>10}")
        lines += [
            f"{s.name:<48} {s.count:>6} {s.median_ms:>10.3f} {s.p95_ms:>10.3f} {s.p99_ms:>10.3f}"
            for s in series
        ]
    lines += [f"{key}: {value}" for key, value in results.items()]
    print("\n".join(lines))
    return document
