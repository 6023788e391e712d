"""A Llama Stack server (either backend) with library mode's per-call fixes applied to its app.

The container entrypoint runs the backend's own server command line (``llama stack run`` or
``ogx run``) through a small module per backend (``llama_stack_server``, ``ogx_server``) that
first ``install``s a wrapper around the server's app factory, which uvicorn imports by name.
The wrapped app's lifespan, once the stack is up (OGX starts it in the lifespan), applies the
backend's fixes to the stack's implementations and, when the lifespan ends, closes what they
opened before the stack shuts down. Both backends get:

- **Queued chat-completion records** on SQLite (``inference_writes``): one writer task, many
  rows to a transaction, instead of one transaction per answer.
- **Conversation writes on the event loop** on SQLite (``StoreLane.take_statements``): each
  of the conversation store's statements commits at once, or waits in the lane's thread,
  instead of keeping SQLite's write lock across several turns of a busy event loop. Under 200
  to 1,000 concurrent streams, conversations failed to be created with "database is locked"
  (the 5-second busy timeout of the writers queued behind it).

The server prints what it applied (``llama-entra server: ...``) next to the entrypoint's
enrichment lines. With ``server.workers`` above 1 uvicorn spawns workers that import the
backend's module as their main module again, and get the same fixes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from llama_entra.backends.inference_writes import queue_inference_writes
from llama_entra.backends.store_lane import StoreLane

__all__ = ["ServerFixes", "common_fixes", "install"]


@dataclass
class ServerFixes:
    """What was applied (names, for the log) and what to close when the server stops."""

    applied: list[str] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        """Run the closers in order (queued records are written before pools close)."""
        for close in self.closers:
            await close()


def common_fixes(inference: object, conversations: object) -> ServerFixes:
    """The fixes both backends' servers get (see the module docstring)."""
    fixes = ServerFixes()
    writes = queue_inference_writes(inference) if inference is not None else None
    if writes is not None:
        fixes.applied.append("queued chat-completion records")
        fixes.closers.append(writes.aclose)
    lane = _conversation_lane(conversations)
    if lane is not None:
        fixes.applied.append("conversation writes through the store lane")
        fixes.closers.append(lane.aclose)
    return fixes


def _conversation_lane(conversations: object) -> StoreLane | None:
    """The conversation service's store, its statements through a ``StoreLane``."""
    store = getattr(conversations, "sql_store", None)
    inner = getattr(store, "sql_store", None)
    if not hasattr(inner, "async_session") or not hasattr(inner, "_ensure_engine"):
        return None
    lane = StoreLane(store)
    lane.take_statements()
    return lane


def install(server: Any, fixes: Callable[[Any], ServerFixes]) -> None:
    """Make ``server.create_app`` (the backend's app factory) build apps whose lifespan applies
    ``fixes(app.stack.impls)`` once the stack is up. A second install keeps the first."""
    create_app = server.create_app
    if getattr(create_app, "llama_entra_fixes", False):
        return

    def create_fixed_app() -> Any:
        app = create_app()
        with_fixes(app, fixes)
        return app

    create_fixed_app.llama_entra_fixes = True  # type: ignore[attr-defined]
    server.create_app = create_fixed_app


def with_fixes(app: Any, fixes: Callable[[Any], ServerFixes]) -> None:
    """Wrap ``app``'s lifespan: ``fixes`` after its start-up, their closers before its end."""
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def fixed(served: Any) -> AsyncIterator[None]:
        async with lifespan(served):
            applied = fixes(served.stack.impls or {})
            # The server's own logging is set up for its own loggers only.
            names = ", ".join(applied.applied) or "no per-call fixes apply"
            print(f"llama-entra server: {names}", file=sys.stderr, flush=True)
            try:
                yield
            finally:  # before the stack (and its stores) shut down
                await applied.aclose()

    app.router.lifespan_context = fixed
