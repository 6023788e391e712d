"""llama-stack 0.7.3 as a server: ``llama stack run`` with library mode's per-call fixes.

``python -m llama_entra.backends.llama_stack_server RUN.yaml [options]`` is ``llama stack run
RUN.yaml [options]`` (the same command line, app, logging and shutdown) whose app gets, once
its stack is up, what library mode does in-process (profiled under 200 concurrent streams,
these were about a fifth of the server's CPU per streamed answer):

- **Pooled HTTP clients** for each OpenAI-compatible provider (``llama_stack_http``): that
  version builds an ``AsyncOpenAI`` and an ``httpx.AsyncClient`` for every call (the key comes
  per call), with an SSL context that loads the CA bundle again, and a new TLS connection.
- **Queued chat-completion records** on SQLite (``inference_writes``): one writer task, many
  rows to a transaction, instead of one transaction per answer; drained at shutdown before
  the stack stops.
- **Conversation writes on the event loop** on SQLite (``StoreLane.take_statements``): each of
  the conversation store's statements commits at once, or waits in the lane's thread, instead
  of keeping SQLite's write lock across several turns of a busy event loop (under 1,000
  concurrent streams, conversations failed to be created with "database is locked").
- **Remembered model misses** (``ModelMisses``): the OpenAI mixin asks the model registry
  whether the provider's own model name (``gpt-4o-mini``) is a registered model id
  (``azure/gpt-4o-mini``) on every call. It is not, and a miss skips the registry's
  in-memory cache: it opens a new SQLite connection, with a thread of its own, per call. A
  miss is remembered for ``MISS_SECONDS`` (forgotten when a model is registered or
  unregistered here; another replica's registration is seen after that time at most).

The OpenAI SDK's own retries stay as they are: in service mode the server's provider applies
them (README, "Azure's answers"). With ``server.workers`` above 1 uvicorn spawns workers that
import this module as their main module again, and get the same fixes.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from llama_entra.backends.inference_writes import queue_inference_writes
from llama_entra.backends.llama_stack_http import share_http_clients
from llama_entra.backends.store_lane import StoreLane

__all__ = [
    "MAX_MISSES",
    "MISS_SECONDS",
    "ModelMisses",
    "install",
    "main",
    "remember_model_misses",
    "tune",
]

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

    async def has_model(self, model_id: str) -> bool:
        """Whether ``model_id`` is registered; a recent "no" without asking the registry."""
        now = self._clock()
        until = self._misses.get(model_id)
        if until is not None and now < until:
            return False
        if await self._has_model(model_id):
            self._misses.pop(model_id, None)
            return True
        if len(self._misses) >= MAX_MISSES:
            self._misses.clear()
        self._misses[model_id] = now + MISS_SECONDS
        return False

    def forget(self) -> None:
        """Forget every miss (a model was registered or unregistered)."""
        self._misses.clear()


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


def _conversation_lane(conversations: object) -> StoreLane | None:
    """The conversation service's store, its statements through a ``StoreLane``."""
    store = getattr(conversations, "sql_store", None)
    if not hasattr(getattr(store, "sql_store", None), "async_session"):
        return None
    lane = StoreLane(store)
    lane.take_statements()
    return lane


def tune(app: Any) -> list[str]:
    """Apply the module's fixes to the inference router of ``app`` (llama-stack's
    ``StackApp``); close what they opened when the app's lifespan ends. Returns what applied."""
    from llama_stack_api import Api

    inference = (app.stack.impls or {}).get(Api.inference)
    if inference is None:
        return []
    applied: list[str] = []
    pools = share_http_clients(inference)
    if pools.clients:
        applied.append("pooled HTTP clients")
    writes = queue_inference_writes(inference)
    if writes is not None:
        applied.append("queued chat-completion records")
    if remember_model_misses(getattr(inference, "routing_table", None)) is not None:
        applied.append("remembered model misses")
    lane = _conversation_lane(app.stack.impls.get(Api.conversations))
    if lane is not None:
        applied.append("conversation writes through the store lane")
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def closing(served: Any) -> AsyncIterator[None]:
        async with lifespan(served):
            try:
                yield
            finally:  # before the stack (and its stores) shut down
                if writes is not None:
                    await writes.aclose()
                if lane is not None:
                    await lane.aclose()
                await pools.aclose()

    app.router.lifespan_context = closing
    return applied


def install(server: Any) -> None:
    """Make ``server.create_app`` (llama-stack's app factory, which uvicorn imports by name)
    build a tuned app."""
    create_app = server.create_app
    if getattr(create_app, "llama_entra_tuned", False):
        return

    def tuned_create_app() -> Any:
        app = create_app()
        applied = tune(app)
        # Next to the entrypoint's enrich lines (the server's own logging is set up for its
        # own loggers only).
        print(
            f"llama-entra server: {', '.join(applied) or 'no per-call fixes apply'}",
            file=sys.stderr,
        )
        return app

    tuned_create_app.llama_entra_tuned = True  # type: ignore[attr-defined]
    server.create_app = tuned_create_app


def main(argv: list[str]) -> None:
    """``llama stack run`` with ``argv`` (the run config, then its options), tuned."""
    from llama_stack.cli.llama import main as llama
    from llama_stack.core.server import server

    install(server)
    sys.argv = ["llama", "stack", "run", *argv]
    llama()


if __name__ == "__mp_main__":  # a uvicorn worker that main() spawned: the same fixes
    from llama_stack.core.server import server as _server

    install(_server)

if __name__ == "__main__":
    main(sys.argv[1:])
