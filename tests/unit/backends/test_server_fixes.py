"""``server_fixes``: the app factory wrapper and the lifespan that applies a server's fixes.

``install`` makes the backend's app factory build apps whose lifespan applies the fixes once
the stack is up and closes them before the stack shuts down (a second install keeps the
first); ``common_fixes`` leaves alone what it does not recognise.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from llama_entra.backends.server_fixes import ServerFixes, common_fixes, install


def _server(events: list[str]) -> Any:
    def create_app() -> Any:
        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> AsyncIterator[None]:
            app.stack.impls = {"inference": "router"}  # OGX starts its stack here
            events.append("stack up")
            yield
            events.append("stack down")

        return SimpleNamespace(
            stack=SimpleNamespace(impls=None), router=SimpleNamespace(lifespan_context=lifespan)
        )

    return SimpleNamespace(create_app=create_app)


async def test_the_lifespan_applies_the_fixes_once_the_stack_is_up_and_closes_them_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    events: list[str] = []

    async def close() -> None:
        events.append("fixes closed")

    def fixes(impls: Any) -> ServerFixes:
        events.append(f"fixes for {impls['inference']}")
        return ServerFixes(applied=["one", "two"], closers=[close])

    server = _server(events)
    install(server, fixes)
    factory = server.create_app
    install(server, fixes)
    assert server.create_app is factory
    app = server.create_app()
    async with app.router.lifespan_context(app):
        events.append("serving")
    assert events == ["stack up", "fixes for router", "serving", "fixes closed", "stack down"]
    assert "llama-entra server: one, two" in capsys.readouterr().err


def test_common_fixes_leave_unknown_parts_alone() -> None:
    found = common_fixes(object(), SimpleNamespace(sql_store=object()))
    assert (found.applied, found.closers) == ([], [])
