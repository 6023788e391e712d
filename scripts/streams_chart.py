"""Draw the concurrent-streams benchmark as a PNG: first token and CPU per stream against N.

Reads the JSON files ``tests/benchmarks/test_bench_streams.py`` writes (one per labelled run,
for example ``streams-before.json`` from an older checkout and ``streams.json`` from this
one) and draws three panels, one line per mode and run: first-token p50, first-token p99
and the service's CPU milliseconds per stream, each against the number of concurrent
streams. Usage::

    python scripts/streams_chart.py -o docs/deployment/streams.png \\
        bench-results/llama-stack/streams-before.json bench-results/llama-stack/streams.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

_PANELS = (
    ("first_token_p50_ms", "first token p50 (ms)"),
    ("first_token_p99_ms", "first token p99 (ms)"),
    ("service_cpu_ms_per_stream", "service CPU per stream (ms)"),
)


def _series(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    label = document["results"]["label"]
    lines: dict[str, list[dict[str, Any]]] = {}
    for run in document["results"]["runs"]:
        lines.setdefault(f"{run['mode']} ({label})", []).append(run)
    return lines


def draw(documents: list[dict[str, Any]], output: Path) -> None:
    """One figure of ``_PANELS`` with a line per mode and labelled run."""
    figure, axes = plt.subplots(1, len(_PANELS), figsize=(16, 5), constrained_layout=True)
    for document in documents:
        style = "--" if document["results"]["label"] == "before" else "-"
        for name, runs in _series(document).items():
            runs = sorted(runs, key=lambda run: run["streams"])
            counts = [run["streams"] for run in runs]
            for axis, (key, _) in zip(axes, _PANELS, strict=True):
                axis.plot(counts, [run[key] for run in runs], style, marker="o", label=name)
    for axis, (_, title) in zip(axes, _PANELS, strict=True):
        axis.set_xscale("symlog", linthresh=10)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent streams")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    machine = documents[-1]["machine"]
    figure.suptitle(
        f"{machine['backend']}, {machine['cpus']} CPUs (shared), 20 chunks 0.1 s apart; "
        f"{documents[-1]['when']}"
    )
    figure.savefig(output, dpi=90)


def main() -> None:
    """Command line: JSON files in, one PNG out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="streams*.json files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    draw([json.loads(path.read_text()) for path in args.results], args.output)


if __name__ == "__main__":
    main()
