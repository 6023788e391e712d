"""Replace this process with the installed backend's server: ``python -m llama_entra.stack
RUN.yaml [server options...]`` (``llama stack run``, through ``llama_stack_server``, or ``ogx run
--insecure``, JSON logs).

The container entrypoint calls it after enriching the run config, so the script itself never
needs to know which backend is installed. On a PostgreSQL run config it first creates the
stores' tables under the database's start-up lock (see ``create_server_tables``). With an
``OTEL_EXPORTER_OTLP_*ENDPOINT`` set the server runs under ``opentelemetry-instrument``, so its
spans join llama-entra's traces (``llama_entra.telemetry.server``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from llama_entra.backends import active_backend
from llama_entra.errors import LlamaEntraError
from llama_entra.stack.build import create_server_tables
from llama_entra.telemetry.server import traced_server


def main(argv: list[str]) -> None:
    """Exec the server for ``argv[0]`` with the remaining arguments passed through."""
    if not argv:
        print("usage: python -m llama_entra.stack RUN_CONFIG [server options...]", file=sys.stderr)
        raise SystemExit(2)
    run_config = Path(argv[0])
    try:
        asyncio.run(create_server_tables(run_config))
    except LlamaEntraError as exc:
        print(f"llama-entra: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    backend = active_backend()
    command, environment = traced_server(
        [*backend.server_command(run_config), *argv[1:]],
        {**os.environ, **backend.server_environment},
        service_name=backend.name,
    )
    os.execvpe(command[0], command, environment)  # noqa: S606 - our own server, argv as given


if __name__ == "__main__":
    main(sys.argv[1:])
