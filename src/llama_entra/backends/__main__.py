"""Replace this process with the installed backend's server: ``python -m llama_entra.backends
RUN.yaml [server options...]`` (``llama stack run`` or ``ogx run --insecure``, JSON logs).

The container entrypoint calls it after enriching the run config, so the script itself never
needs to know which backend is installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llama_entra.backends import active_backend


def main(argv: list[str]) -> None:
    """Exec the server for ``argv[0]`` with the remaining arguments passed through."""
    if not argv:
        print(
            "usage: python -m llama_entra.backends RUN_CONFIG [server options...]", file=sys.stderr
        )
        raise SystemExit(2)
    backend = active_backend()
    command = [*backend.server_command(Path(argv[0])), *argv[1:]]
    environment = {**os.environ, **backend.server_environment}
    os.execvpe(command[0], command, environment)  # noqa: S606 - our own server, argv as given


if __name__ == "__main__":
    main(sys.argv[1:])
