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
- **Remembered model misses** (``ModelMisses``): the OpenAI mixin asks the model registry
  whether the provider's own model name (``gpt-4o-mini``) is a registered model id
  (``azure/gpt-4o-mini``) on every call. It is not, and a miss skips the registry's
  in-memory cache: it opens a new SQLite connection, with a thread of its own, per call. A
  miss is remembered for ``MISS_SECONDS`` (forgotten when a model is registered or
  unregistered here; another replica's registration is seen after that time at most).

The OpenAI SDK's own retries stay as they are: in service mode the server's provider applies
them (README, "Azure's answers").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from llama_entra.backends.llama_stack_http import share_http_clients
from llama_entra.backends.server_fixes import ServerFixes, common_fixes, install

__all__ = ["MAX_MISSES", "MISS_SECONDS", "ModelMisses", "fixes", "main", "remember_model_misses"]

MISS_SECONDS = 30.0
MAX_MISSES = 1_024  # model names asked for; a registered model's own names, in practice


class ModelMisses:
    """``has_model`` of a model routing table, with its "no" answers remembered for a while."""

    def __init__(
        self,
        has_model: Callable[[str], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._has_model = has_model
        self._clock = clock
        self._misses: dict[str, float] = {}  # model id -> until when it is known missing
        self._generation = 0  # moves on each forget: an answer from before it is not kept

    async def has_model(self, model_id: str) -> bool:
        """Whether ``model_id`` is registered; a recent "no" without asking the registry."""
        now = self._clock()
        until = self._misses.get(model_id)
        if until is not None and now < until:
            return False
        generation = self._generation
        if await self._has_model(model_id):
            self._misses.pop(model_id, None)
            return True
        if generation == self._generation:
            if len(self._misses) >= MAX_MISSES:
                self._misses.clear()
            self._misses[model_id] = now + MISS_SECONDS
        return False

    def forget(self) -> None:
        """Forget every miss (a model was registered or unregistered)."""
        self._misses.clear()
        self._generation += 1


def remember_model_misses(table: object) -> ModelMisses | None:
    """Make ``table`` (a ``ModelsRoutingTable``) remember its misses; None if it has no
    ``has_model``. Registering or unregistering a model through it forgets them."""
    has_model = getattr(table, "has_model", None)
    if not callable(has_model):
        return None
    misses = ModelMisses(has_model)
    object.__setattr__(table, "has_model", misses.has_model)
    for name in ("register_model", "unregister_model"):
        method = getattr(table, name, None)
        if callable(method):
            object.__setattr__(table, name, _forgetting(method, misses))
    return misses


def _forgetting(
    method: Callable[..., Awaitable[Any]], misses: ModelMisses
) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        finally:
            misses.forget()

    return call


def fixes(impls: Any) -> ServerFixes:
    """This version's fixes for the stack's implementations (see the module docstring)."""
    from llama_stack_api import Api

    inference = impls.get(Api.inference)
    found = common_fixes(inference, impls.get(Api.conversations))
    pools = share_http_clients(inference) if inference is not None else None
    if pools is not None and pools.clients:
        found.applied.insert(0, "pooled HTTP clients")
        found.closers.append(pools.aclose)  # after the queued records are written
    if remember_model_misses(getattr(inference, "routing_table", None)) is not None:
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
