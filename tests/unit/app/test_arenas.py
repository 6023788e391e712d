"""``limit_malloc_arenas``: two glibc arenas for ``serve`` and its workers, unless the operator
set ``MALLOC_ARENA_MAX``."""

from __future__ import annotations

from typing import Any

from llama_entra.app import arenas
from llama_entra.app.arenas import ARENAS, ENV, limit_malloc_arenas


class _Libc:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_limit_malloc_arenas_sets_the_process_and_the_workers_environment() -> None:
    environ: dict[str, str] = {}
    libc = _Libc()
    assert limit_malloc_arenas(environ, libc) == ARENAS
    assert environ == {ENV: str(ARENAS)}
    assert libc.calls == [(-8, ARENAS)]  # M_ARENA_MAX


def test_limit_malloc_arenas_leaves_the_operators_value() -> None:
    environ = {ENV: "8"}
    libc = _Libc()
    assert limit_malloc_arenas(environ, libc) is None
    assert environ == {ENV: "8"}
    assert libc.calls == []


def test_limit_malloc_arenas_does_nothing_without_glibc(monkeypatch: Any) -> None:
    def refuse(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(arenas.os, "confstr", refuse)
    environ: dict[str, str] = {}
    libc = _Libc()
    assert limit_malloc_arenas(environ, libc) is None
    assert environ == {}
    assert libc.calls == []


def test_limit_malloc_arenas_reports_a_refusal() -> None:
    assert limit_malloc_arenas({}, _Libc(answer=0)) is None


def test_limit_malloc_arenas_on_this_glibc_is_accepted() -> None:
    """The real ``mallopt`` of the test process (CI runs on glibc) takes the parameter."""
    environ: dict[str, str] = {}
    assert limit_malloc_arenas(environ) == ARENAS
