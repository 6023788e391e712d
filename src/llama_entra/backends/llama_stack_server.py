"""llama-stack 0.7.3 as a server: ``llama stack run`` with library mode's per-call fixes.

``python -m llama_entra.backends.llama_stack_server RUN.yaml [options]`` is ``llama stack run
RUN.yaml [options]`` (the same command line, app, logging and shutdown) whose app gets, once
its stack is up, both backends' fixes (``server_fixes``: queued chat-completion records,
conversation writes through the store lane) and two of this version's own (profiled under
200 concurrent streams, with the records' writes these were about a fifth of the server's CPU
per streamed answer):

- **Pooled HTTP clients** for each OpenAI-compatible provider (``llama_stack_http``): that
  version builds an ``AsyncOpenAI`` and an ``httpx.AsyncClient`` for every call (the key comes
  per call), with an SSL context that loads the CA bundle again, and a new TLS connection.
- **Remembered model misses** (``model_lookups``): the OpenAI mixin asks the model registry
  whether the provider's own model name (``gpt-4o-mini``) is a registered model id
  (``azure/gpt-4o-mini``) on every call; the miss skips the registry's in-memory cache and
  opens a new SQLite connection, with a thread of its own, per call.

The OpenAI SDK's own retries stay as they are: in service mode the server's provider applies
them (README, "Azure's answers").
"""

from __future__ import annotations

import sys
from typing import Any

from llama_entra.backends.llama_stack_http import share_http_clients
from llama_entra.backends.model_lookups import remember_missing_models
from llama_entra.backends.server_fixes import ServerFixes, common_fixes, install

__all__ = ["fixes", "main"]


def fixes(impls: Any) -> ServerFixes:
    """This version's fixes for the stack's implementations (see the module docstring)."""
    from llama_stack_api import Api

    inference = impls.get(Api.inference)
    found = common_fixes(inference, impls.get(Api.conversations))
    pools = share_http_clients(inference) if inference is not None else None
    if pools is not None and pools.clients:
        found.applied.insert(0, "pooled HTTP clients")
        found.closers.append(pools.aclose)  # after the queued records are written
    if inference is not None and remember_missing_models(inference):
        found.applied.append("remembered model misses")
    return found


def main(argv: list[str]) -> None:
    """``llama stack run`` with ``argv`` (the run config, then its options), with the fixes."""
    from llama_stack.cli.llama import main as llama
    from llama_stack.core.server import server

    install(server, fixes)
    sys.argv = ["llama", "stack", "run", *argv]
    llama()


if __name__ == "__mp_main__":  # a uvicorn worker that main() spawned: the same fixes
    from llama_stack.core.server import server as _server

    install(_server, fixes)

if __name__ == "__main__":
    main(sys.argv[1:])
