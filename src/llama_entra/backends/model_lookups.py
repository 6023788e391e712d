"""llama-stack 0.7.3, library mode: a provider's per-call model lookup, its misses remembered.

The inference router resolves a call's model from the registry's in-memory cache and hands the
provider the model's provider resource id (``gpt-4o-mini`` for the registered
``azure/gpt-4o-mini``). That version's OpenAI mixin then asks its model store
``has_model(<that id>)`` to map the id once more. The id is not a registered identifier, so the
registry's cache misses and every call reads the key-value store: on SQLite a new aiosqlite
connection, and with it a new thread, per call. Profiled under 200 concurrent streams, that
was about a sixth of the service's CPU. OGX's mixin takes the router's id as it is.

``remember_missing_models(inference)`` wraps each adapter's model store so that a miss is
remembered for ``MISS_SECONDS``, the interval at which the registry's own cache re-reads the
store for objects other workers registered: a model registered later under that very id is
seen as soon as the registry would see it. Hits are asked every time (the registry answers
them from memory). The remembered misses are bounded (``MAX_MISSES``), since an id of the form
``provider/anything`` reaches the provider as the caller wrote it.

Concurrent calls asking about the same id share one lookup: when a remembered miss expires
under load, every call arriving before the store has answered would otherwise read it on a
thread and SQLite connection of its own (seen: about 65 threads at once in a burst of 200
streams, each holding its connection's and thread's memory while the burst lasts).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_MISSES", "MISS_SECONDS", "RememberedMisses", "remember_missing_models"]

MISS_SECONDS = 5.0
MAX_MISSES = 1024


class RememberedMisses:
    """A model store whose ``has_model`` misses are remembered for a few seconds."""

    def __init__(self, store: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._misses: dict[str, float] = {}
        self._asking: dict[str, asyncio.Future[bool]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def has_model(self, model_id: str) -> bool:
        """Whether a model is registered under ``model_id``; a recent miss is not asked again."""
        now = self._clock()
        if self._misses.get(model_id, 0.0) > now:
            return False
        asking = self._asking.get(model_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(model_id, now))
            self._asking[model_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(model_id, None))
        # Shielded: one caller going away does not cancel the answer the others wait for.
        return await asyncio.shield(asking)

    async def _ask(self, model_id: str, now: float) -> bool:
        found = bool(await self._store.has_model(model_id))
        if found:
            self._misses.pop(model_id, None)
        else:
            self._remember(model_id, now)
        return found

    def _remember(self, model_id: str, now: float) -> None:
        if len(self._misses) >= MAX_MISSES:
            self._misses = {key: until for key, until in self._misses.items() if until > now}
            if len(self._misses) >= MAX_MISSES:
                self._misses.clear()
        self._misses[model_id] = now + MISS_SECONDS


def remember_missing_models(inference: object) -> int:
    """Wrap the model store of each adapter behind ``inference``; returns how many were."""
    table = getattr(inference, "routing_table", None)
    adapters: dict[str, Any] = getattr(table, "impls_by_provider_id", None) or {}
    wrapped: dict[int, RememberedMisses] = {}
    count = 0
    for adapter in adapters.values():
        store = getattr(adapter, "model_store", None)
        if store is None or isinstance(store, RememberedMisses):
            continue
        shared = wrapped.get(id(store)) or wrapped.setdefault(id(store), RememberedMisses(store))
        # Adapters may be pydantic models, which refuse attributes their class does not declare.
        object.__setattr__(adapter, "model_store", shared)
        count += 1
    return count
