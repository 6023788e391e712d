"""The error boundary both backends' client adapters share.

An adapter wraps every call to its client in ``translated()``: whatever the client raises
leaves as a llama-entra error (the backend's own ``translate``), with the original as its
cause, and passes the optional ``error_hook`` (the client holder uses it to turn a lost
database into a 503 naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llama_entra.backends.base import Backend, ErrorHook
from llama_entra.errors import LlamaEntraError

__all__ = ["ErrorBoundary"]


class ErrorBoundary:
    """Base of a ``StackClient`` adapter: its backend, mode and error translation."""

    def __init__(
        self,
        backend: Backend,
        translate: Callable[[BaseException], LlamaEntraError],
        *,
        library: bool,
    ) -> None:
        self._backend = backend
        self._translate = translate
        self._library = library
        self.error_hook: ErrorHook | None = None

    @property
    def backend(self) -> Backend:
        """The backend this client belongs to."""
        return self._backend

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Every exception leaves as a llama-entra error, seen by ``error_hook``."""
        try:
            yield
        except Exception as exc:
            error = exc if isinstance(exc, LlamaEntraError) else self._translate(exc)
            if error is not exc:
                error.__cause__ = exc  # the hook reads the chain (a lost database's error)
            if self.error_hook is not None:
                error = self.error_hook(error)
            if error is exc:
                raise
            raise error from exc
