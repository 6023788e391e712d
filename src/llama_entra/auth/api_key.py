"""``api_key``: named keys from config, environment (via ``${env.*}``) or a file.

Only SHA-256 digests of the keys are kept in memory; a presented key is hashed and compared to
every known digest with ``hmac.compare_digest``. The principal is the key's name, which is also
its role for authorization rules. The keys file (``name:key`` or a bare key per line, ``#``
comments) is re-read when its modification time changes, at most once per second, so keys
rotate without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import HTTPConnection

from llama_entra.auth.base import Action, Principal
from llama_entra.auth.bearer import bearer_credential
from llama_entra.auth.rules import Rules
from llama_entra.config import ApiKeyAuthConfig
from llama_entra.errors import UnauthenticatedError

__all__ = ["ApiKeyAuthenticator", "parse_keys_file"]

logger = logging.getLogger(__name__)
_FILE_CHECK_INTERVAL = 1.0


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys_file(text: str) -> dict[str, bytes]:
    """Key digests by name from a keys file's text (bare keys are named ``key-<line>``)."""
    digests: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        name, separator, key = entry.partition(":")
        if not separator:
            name, key = f"key-{number}", entry
        if key.strip():
            digests[name.strip()] = _digest(key.strip())
    return digests


class ApiKeyAuthenticator:
    """Callers send ``Authorization: Bearer <key>``."""

    module = "api_key"

    def __init__(
        self,
        config: ApiKeyAuthConfig,
        rules: Rules,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._static = {name: _digest(key.get_secret_value()) for name, key in config.keys.items()}
        self._file = config.keys_file
        self._from_file: dict[str, bytes] = {}
        self._file_mtime: float | None = None
        self._checked_at = 0.0
        self._rules = rules
        if self._file is not None:
            self._load_file(self._file.stat().st_mtime if self._file.exists() else None)

    async def authenticate(self, connection: HTTPConnection) -> Principal:
        """The principal whose key the caller sent, or ``UnauthenticatedError``."""
        presented = _digest(bearer_credential(connection))
        await self._refresh_file()
        found: str | None = None
        for name, digest in (*self._static.items(), *self._from_file.items()):
            if hmac.compare_digest(presented, digest) and found is None:
                found = name
        if found is None:
            raise UnauthenticatedError("invalid API key")
        return Principal(name=found, roles=frozenset({found}))

    def authorize(self, principal: Principal, action: Action) -> None:
        """Apply the authorization rules."""
        self._rules.check(principal, action)

    async def aclose(self) -> None:
        """Nothing to release."""

    async def _refresh_file(self) -> None:
        if self._file is None or self._clock() - self._checked_at < _FILE_CHECK_INTERVAL:
            return
        self._checked_at = self._clock()
        path = self._file
        mtime = await asyncio.to_thread(lambda: path.stat().st_mtime if path.exists() else None)
        if mtime != self._file_mtime:
            await asyncio.to_thread(self._load_file, mtime)

    def _load_file(self, mtime: float | None) -> None:
        assert self._file is not None  # noqa: S101 - only called with a file
        try:
            self._from_file = parse_keys_file(self._file.read_text(encoding="utf-8"))
        except OSError as exc:
            logger.warning("cannot read keys file %s: %s", self._file, exc.strerror)
            self._from_file = {}
        self._file_mtime = mtime
        logger.info("loaded %d API keys from %s", len(self._from_file), Path(self._file).name)
