"""Per-user Azure tokens: exchanged at first need, single flight per user, bounded LRU.

Keyed by ``(tenant id, object id)`` from the validated inbound token, so a caller cannot name
another user's entry. A cached token is reused until ``margin_seconds`` before it expires; then
the request at hand exchanges its own assertion for a new one (no background refresh per user:
an idle user costs nothing). Any number of concurrent requests of one user that find no usable
token share one exchange; exchanges of different users run at most ``concurrency`` at a time,
so a thousand new users queue instead of flooding Entra.

Memory: one entry is the two ids, the token (an Entra access token, about 1.5-2.5 KB) and
its expiry, about 3 KB per user; ``size`` users at most, the least recently used evicted first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from azure.core.credentials import AccessTokenInfo
from pydantic import SecretStr

from llama_entra.errors import AuthError, LlamaEntraError
from llama_entra.identity.caller import UserCaller

__all__ = ["EXCHANGE_OUTCOMES", "Exchange", "UserTokenCache"]

logger = logging.getLogger(__name__)

Exchange = Callable[[UserCaller], Awaitable[AccessTokenInfo]]
Key = tuple[str, str]
# How an exchange ended (a metric label): a token, the caller's fault, Entra's or ours.
EXCHANGE_OUTCOMES = ("ok", "refused", "unavailable")


@dataclass(frozen=True, slots=True)
class _Entry:
    token: SecretStr
    expires_on: float


class UserTokenCache:
    """Tokens per user; see the module docstring."""

    def __init__(
        self,
        exchange: Exchange,
        *,
        size: int,
        concurrency: int,
        margin_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._exchange = exchange
        self.size = size
        self._margin = margin_seconds
        self._clock = clock
        self._gate = asyncio.Semaphore(concurrency)
        self._entries: collections.OrderedDict[Key, _Entry] = collections.OrderedDict()
        self._flights: dict[Key, asyncio.Task[_Entry]] = {}
        self.hits = 0
        self.misses = 0
        self.exchanges: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._entries)

    async def token(self, caller: UserCaller) -> SecretStr:
        """``caller``'s Azure token, from the cache or one shared exchange."""
        key = caller.key
        entry = self._entries.get(key)
        if entry is not None and entry.expires_on - self._margin > self._clock():
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.token
        self.misses += 1
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.create_task(self._exchanged(caller))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        # Shielded: a waiter that goes away does not cancel the others' exchange.
        return (await asyncio.shield(flight)).token

    def drop(self, caller: UserCaller, rejected: SecretStr | None) -> None:
        """Forget ``caller``'s token if it is ``rejected`` (Azure refused it), or any token."""
        entry = self._entries.get(caller.key)
        if entry is None:
            return
        if rejected is None or entry.token.get_secret_value() == rejected.get_secret_value():
            del self._entries[caller.key]

    async def _exchanged(self, caller: UserCaller) -> _Entry:
        async with self._gate:
            try:
                info = await self._exchange(caller)
            except LlamaEntraError as exc:
                self.exchanges["refused" if isinstance(exc, AuthError) else "unavailable"] += 1
                raise
            except Exception:
                self.exchanges["unavailable"] += 1
                raise
        self.exchanges["ok"] += 1
        entry = _Entry(SecretStr(info.token), float(info.expires_on))
        self._entries[caller.key] = entry
        self._entries.move_to_end(caller.key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry

    def _landed(self, key: Key, done: asyncio.Task[_Entry]) -> None:
        if self._flights.get(key) is done:
            del self._flights[key]
        if not done.cancelled() and done.exception() is not None:
            logger.debug("on-behalf-of exchange failed: %s", type(done.exception()).__name__)
