"""The token manager: one Entra ID access token per identity, fetched lazily, refreshed ahead.

- ``token()`` returns the held token while it is fresh, without a lock and without awaiting.
- No valid token: the caller joins the single in-flight fetch (a shared task), so any number
  of concurrent callers cause one token request. A cancelled caller does not cancel the fetch
  for the others (that is why it is a shared task, not a lock held by the first caller).
- Due (``refresh_on`` passed, or less than ``refresh_margin_seconds`` left) but still valid:
  the caller gets the held token at once and a refresh starts in the background. Callers never
  wait for Entra while a valid token is held. A margin above half the token's lifetime counts
  as half, so a short-lived token is not fetched again on every call.
- A failed fetch sets a retry time. Until then no new fetch starts: callers holding a valid
  token keep getting it; callers without one get the recorded error at once, so a failing Entra
  is asked once per retry step, not once per request (no thundering herd).
  - While a valid token is held (a background early refresh failed): exponential backoff with
    jitter, 1 s doubling to 30 s, never later than the held token's expiry. Nobody is waiting.
  - Without a valid token, callers are failing: the step is at most ``Backoff.without_token``
    (1 s), however long the outage, so the first caller after Entra recovers gets a token
    within about a second, while Entra still sees at most one request per second.
- ``start()`` runs a background task that sleeps until the next refresh or retry point and
  refreshes then. It does nothing before the first token was fetched: start-up never calls Entra.
- ``invalidate()`` drops the token (Azure answered 401); the next call fetches a new one.

Why each token request uses a new credential instance: azure-identity credentials cache the
token they issued and have no "force refresh". Until 5 minutes before expiry ``get_token_info``
returns that cached token (also after Azure revoked it), it asks Entra at most every 30 s, and
an early refresh that fails returns the old token without an error. This manager is the cache:
it builds a credential (off the event loop), asks it once, and closes it, so every request
really reaches Entra and every failure is seen. A token request is rare (about one per hour).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra.backoff import Backoff
from llama_entra.entra.credentials import TokenSource, build_credential, resolve_identity
from llama_entra.entra.status import TokenStatus
from llama_entra.entra.translate import translate_error
from llama_entra.errors import TokenError, TokenRejectedError, TokenUnavailableError
from llama_entra.telemetry import spans

__all__ = ["Backoff", "CredentialFactory", "FetchObserver", "TokenManager", "create_token_manager"]

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
FetchObserver = Callable[[str, float], None]
Sleep = Callable[[float], Awaitable[None]]
CredentialFactory = Callable[[], Awaitable[TokenSource]]


@dataclass(frozen=True, slots=True)
class _Held:
    secret: SecretStr
    expires_on: float
    refresh_at: float


@dataclass(frozen=True, slots=True)
class _Failure:
    error: TokenError
    attempts: int
    retry_at: float

    def raise_again(self) -> TokenError:
        return type(self.error)(self.error.cause)


def _outcome(error: TokenError) -> str:
    return "rejected" if isinstance(error, TokenRejectedError) else "unavailable"


class TokenManager:
    """Holds one identity's access token; see the module docstring for the rules."""

    def __init__(
        self,
        config: AzureEntraIdConfig,
        *,
        credential_factory: CredentialFactory | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        resolved = resolve_identity(config)
        self.identity = resolved.label
        self._config = config
        self._scope = config.scope
        self._factory = credential_factory or (lambda: asyncio.to_thread(build_credential, config))
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._rand = rand
        self._held: _Held | None = None
        self._failure: _Failure | None = None
        self._fetch_task: asyncio.Task[_Held] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._closed = False
        self._token_requests = 0
        self._last_refresh: float | None = None
        self._last_error: str | None = None
        self._fetch_observers: list[FetchObserver] = []

    def observe_fetches(self, observer: FetchObserver) -> None:
        """Call ``observer(outcome, seconds)`` after every token request to Entra ID.

        ``outcome`` is ``success``, ``rejected`` or ``unavailable``; metrics use this.
        """
        self._fetch_observers.append(observer)

    def _notify(self, outcome: str, started: float) -> None:
        elapsed = max(0.0, self._clock() - started)
        for observer in self._fetch_observers:
            observer(outcome, elapsed)

    async def token(self) -> SecretStr:
        """A valid access token; raises ``TokenUnavailableError``/``TokenRejectedError``.

        Traced as ``entra.token``: ``entra.token.source`` is ``cache`` (the held token, or the
        recorded error while a retry is pending) or ``fetch`` (this caller waited for Entra).
        """
        with spans.span("entra.token", {"entra.identity": self.identity}) as current:
            if self._closed:
                raise TokenUnavailableError("the token manager is closed")
            now = self._clock()
            held = self._held
            if held is not None and now < held.expires_on:
                current.set_attribute("entra.token.source", "cache")
                if now >= held.refresh_at and self._may_fetch(now):
                    current.set_attribute("entra.token.refresh_started", True)
                    self._start_fetch()
                return held.secret
            failure = self._failure
            if not self._fetching() and failure is not None and now < failure.retry_at:
                current.set_attribute("entra.token.source", "cache")
                raise failure.raise_again()
            current.set_attribute("entra.token.source", "fetch")
            fetched = await asyncio.shield(self._start_fetch())
            return fetched.secret

    def invalidate(self, rejected: SecretStr | None = None) -> None:
        """Drop the held token so the next call fetches a new one.

        With ``rejected`` (the token Azure refused), do nothing if another token is held by
        now: someone already replaced it.
        """
        held = self._held
        if held is None:
            return
        if rejected is not None and not secrets.compare_digest(
            rejected.get_secret_value(), held.secret.get_secret_value()
        ):
            return
        self._held = None
        logger.info(
            "Entra ID token for %s invalidated; the next call fetches a new one", self.identity
        )
        self._changed.set()

    async def start(self) -> None:
        """Start the background refresh; makes no Entra call itself."""
        if self._closed:
            raise TokenUnavailableError("the token manager is closed")
        if self._refresh_task is None:
            self._refresh_task = asyncio.create_task(
                self._refresh_loop(), name=f"entra-refresh {self.identity}"
            )

    async def aclose(self) -> None:
        """Stop the background refresh and any fetch in flight; the manager is unusable after."""
        self._closed = True
        self._changed.set()
        tasks = [task for task in (self._refresh_task, self._fetch_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refresh_task = self._fetch_task = None

    def status(self) -> TokenStatus:
        """Whether a valid token is held, for how long, and the last refresh and error."""
        now = self._clock()
        held = self._held
        valid = held is not None and now < held.expires_on
        return TokenStatus(
            has_token=valid,
            expires_in_seconds=round(held.expires_on - now, 3) if held and valid else None,
            last_refresh=(
                datetime.fromtimestamp(self._last_refresh, UTC) if self._last_refresh else None
            ),
            last_error=self._last_error,
            token_requests=self._token_requests,
        )

    # -- fetching -------------------------------------------------------------------------

    def _fetching(self) -> bool:
        return self._fetch_task is not None and not self._fetch_task.done()

    def _may_fetch(self, now: float) -> bool:
        return not self._fetching() and (self._failure is None or now >= self._failure.retry_at)

    def _start_fetch(self) -> asyncio.Task[_Held]:
        """The fetch in flight, or a new one: the single flight every caller joins."""
        task = self._fetch_task
        if task is None or task.done():
            task = asyncio.create_task(self._fetch(), name=f"entra-fetch {self.identity}")
            task.add_done_callback(self._fetch_done)
            self._fetch_task = task
        return task

    def _fetch_done(self, task: asyncio.Task[_Held]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here; joiners re-raise it themselves
        self._changed.set()

    async def _fetch(self) -> _Held:
        attributes = {"entra.identity": self.identity, "entra.credential": self._config.credential}
        with spans.span("entra.token.fetch", attributes) as current:
            self._token_requests += 1
            started = self._clock()
            try:
                credential = await self._factory()
                try:
                    async with asyncio.timeout(self._config.timeout_seconds):
                        info = await credential.get_token_info(self._scope)
                finally:
                    with suppress(Exception):
                        await credential.close()
            except Exception as exc:
                error = translate_error(
                    exc, kind=self._config.credential, timeout_seconds=self._config.timeout_seconds
                )
                current.set_attribute("entra.outcome", _outcome(error))
                raise self._record_failure(error, started) from exc
            held = self._record_success(
                SecretStr(info.token), info.expires_on, info.refresh_on, started
            )
            current.set_attribute("entra.outcome", "success")
            current.set_attribute("entra.token.expires_in_s", round(held.expires_on - started))
            return held

    def _record_success(
        self, token: SecretStr, expires_on: float, refresh_on: float | None, fetched_at: float
    ) -> _Held:
        lifetime = expires_on - fetched_at
        if lifetime <= 0:
            raise self._record_failure(
                TokenUnavailableError("Entra ID returned an expired token (is the clock right?)"),
                fetched_at,
            )
        refresh_at = expires_on - self._config.refresh_margin_seconds
        if refresh_on is not None and refresh_on > fetched_at:
            refresh_at = min(refresh_at, refresh_on)
        held = _Held(token, expires_on, max(refresh_at, fetched_at + lifetime / 2))
        self._held = held
        self._failure = None
        self._last_error = None
        self._last_refresh = fetched_at
        self._notify("success", fetched_at)
        logger.info(
            "Entra ID token for %s fetched: expires in %.0f s, refresh in %.0f s",
            self.identity,
            lifetime,
            held.refresh_at - fetched_at,
        )
        return held

    def _record_failure(self, error: TokenError, started: float) -> TokenError:
        self._notify(_outcome(error), started)
        now = self._clock()
        attempts = self._failure.attempts + 1 if self._failure else 1
        held = self._held
        token_held = held is not None and now < held.expires_on
        retry_at = now + self._backoff.delay(attempts, self._rand(), token_held=token_held)
        if held is not None and token_held:
            retry_at = min(retry_at, held.expires_on)
        self._failure = _Failure(error, attempts, retry_at)
        self._last_error = error.cause
        logger.warning(
            "Entra ID token request for %s failed (%s, %d in a row, retry in %.1f s): %s",
            self.identity,
            type(error).__name__,
            attempts,
            retry_at - now,
            error.cause,
        )
        return error

    # -- background refresh ---------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while not self._closed:
            self._changed.clear()
            await self._wait(self._next_refresh_in(self._clock()))
            now = self._clock()
            if self._closed or self._held is None or not self._may_fetch(now):
                continue
            if now >= self._held.refresh_at:
                with suppress(TokenError):
                    await self._start_fetch()

    def _next_refresh_in(self, now: float) -> float | None:
        """Seconds until the loop should act; ``None``: nothing to do until the state changes."""
        if self._held is None or self._fetching():
            return None
        point = self._held.refresh_at
        if self._failure is not None:
            point = max(point, self._failure.retry_at)
        return max(0.0, point - now)

    async def _wait(self, delay: float | None) -> None:
        """Sleep ``delay`` seconds (injected sleep) or until the state changes, if sooner."""
        changed = asyncio.ensure_future(self._changed.wait())
        waiters: set[asyncio.Future[Any]] = {changed}
        if delay is not None:
            waiters.add(asyncio.ensure_future(self._sleep(delay)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


def create_token_manager(config: AzureEntraIdConfig, *, clock: Clock = time.time) -> TokenManager:
    """A token manager for ``config`` with real azure-identity credentials; no I/O until used."""
    return TokenManager(config, clock=clock)
