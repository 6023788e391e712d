"""Shared pytest set-up: fixture plugins live in tests/support/, one module per part."""

from collections.abc import Iterator

import pytest

from llama_entra.logs import preserved_logging

pytest_plugins: list[str] = [
    "support.emulator",
    "support.service",
    "support.postgres",
    "support.proxy",
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo logging set-up done by code under test (llama-stack configures it on import).

    Otherwise a handler bound to one test's captured stderr outlives it, and later log
    records fail with "I/O operation on closed file".
    """
    with preserved_logging():
        yield
