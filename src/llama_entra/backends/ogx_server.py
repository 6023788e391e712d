"""OGX as a server: ``ogx run`` with both backends' per-call fixes (``server_fixes``).

``python -m llama_entra.backends.ogx_server RUN.yaml [options]`` is ``ogx run RUN.yaml
[options]`` whose app, once OGX has started its stack in the lifespan, queues its
chat-completion records and sends its conversation store's statements through the store lane
on SQLite, and whose OpenAI-compatible providers validate streamed chunks instead of building
them field by field (``openai_chunks``). OGX already keeps one HTTP client per key and base
URL, and resolves models without the registry misses llama-stack 0.7.3 has.
"""

from __future__ import annotations

import sys
from typing import Any

from llama_entra.backends.openai_chunks import validate_chunks_of
from llama_entra.backends.server_fixes import ServerFixes, common_fixes, install

__all__ = ["fixes", "main"]


def fixes(impls: Any) -> ServerFixes:
    """OGX's fixes for the stack's implementations."""
    from ogx.providers.utils.inference import openai_mixin
    from ogx_api import Api

    found = common_fixes(impls.get(Api.inference), impls.get(Api.conversations))
    if validate_chunks_of(openai_mixin):
        found.applied.append("validated chat-completion chunks")
    return found


def main(argv: list[str]) -> None:
    """``ogx run`` with ``argv`` (the run config, then its options), with the fixes."""
    from ogx.cli.ogx import main as ogx
    from ogx.core.server import server

    install(server, fixes)
    sys.argv = ["ogx", "run", *argv]
    ogx()


if __name__ == "__mp_main__":  # a uvicorn worker that main() spawned: the same fixes
    from ogx.core.server import server as _server

    install(_server, fixes)

if __name__ == "__main__":
    main(sys.argv[1:])
