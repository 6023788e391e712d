"""glibc's malloc arenas for ``serve``: two per process unless ``MALLOC_ARENA_MAX`` is set.

glibc gives each thread that allocates an arena of its own, up to eight per core, and memory
freed in an arena stays in the process's resident size. llama-stack 0.7.3 opens a SQLite
connection, on a new aiosqlite thread, for each read of its key-value store (each lookup its
registry cannot answer from its cache), so a burst of such reads is a burst of short-lived
threads, each leaving pages behind in one more arena. Measured in library mode with 200
concurrent streams, while every streamed answer still made such a read (its ``has_model``
lookup, now remembered: ``backends.model_lookups``): about 230 KB of resident growth per open
stream with glibc's default, about 150 KB with two arenas (the threads then share them), and
no measurable change in CPU. Two, not one: the event loop keeps an arena of its own, apart
from the stores' threads.

``limit_malloc_arenas`` runs first thing in ``serve``: it sets the limit in this process
(``mallopt``, effective before the process has started threads of its own) and in the
environment, which the worker processes, started anew, read at their start. An operator's own
``MALLOC_ARENA_MAX`` is left as it is; on a C library other than glibc nothing is done.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import MutableMapping
from typing import Any

__all__ = ["ARENAS", "ENV", "limit_malloc_arenas"]

logger = logging.getLogger(__name__)
ARENAS = 2
ENV = "MALLOC_ARENA_MAX"
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def limit_malloc_arenas(
    environ: MutableMapping[str, str] = os.environ, libc: Any = None
) -> int | None:
    """Cap glibc's arenas at ``ARENAS`` here and in the workers; the cap set, or None when
    ``MALLOC_ARENA_MAX`` was already set or the C library is not glibc."""
    if ENV in environ or not _is_glibc():
        return None
    environ[ENV] = str(ARENAS)
    if libc is None:
        libc = ctypes.CDLL(None)  # the process's own C library
    if libc.mallopt(_M_ARENA_MAX, ARENAS) != 1:
        logger.warning("glibc refused to limit its malloc arenas to %d", ARENAS)
        return None
    return ARENAS


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # not glibc (musl, macOS)
        return False
