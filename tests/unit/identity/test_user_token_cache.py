"""Unit tests of llama_entra.identity.cache: single flight, LRU bound, expiry, keys."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.credentials import AccessTokenInfo
from pydantic import SecretStr

from llama_entra.errors import TokenUnavailableError
from llama_entra.identity import SignInAgainError, UserCaller, UserTokenCache


class FakeExchange:
    """Issues ``token-<oid>-<n>`` valid for ``lifetime`` seconds from the fake clock."""

    def __init__(self, clock: list[float], lifetime: float = 3600) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.calls: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_with: Exception | None = None

    async def __call__(self, caller: UserCaller) -> AccessTokenInfo:
        self.calls.append((caller.object_id, caller.assertion.get_secret_value()))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
            await asyncio.sleep(0)
            if self.fail_with is not None:
                raise self.fail_with
            count = len(self.calls)
            return AccessTokenInfo(
                f"token-{caller.object_id}-{count}", int(self.clock[0] + self.lifetime)
            )
        finally:
            self.in_flight -= 1


def user(object_id: str, assertion: str = "assertion", tenant: str = "t") -> UserCaller:
    return UserCaller(tenant, object_id, SecretStr(assertion), app_only=False)


def make(exchange: FakeExchange, clock: list[float], **options: float) -> UserTokenCache:
    settings = {"size": 100, "concurrency": 16, "margin_seconds": 300} | options
    return UserTokenCache(
        exchange,
        size=int(settings["size"]),
        concurrency=int(settings["concurrency"]),
        margin_seconds=settings["margin_seconds"],
        clock=lambda: clock[0],
    )


async def test_user_token_cache_burst_of_one_user_makes_one_exchange() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    exchange.release.clear()
    cache = make(exchange, clock)
    waiting = [asyncio.create_task(cache.token(user("alice"))) for _ in range(50)]
    await asyncio.sleep(0)
    exchange.release.set()
    tokens = await asyncio.gather(*waiting)
    assert len(exchange.calls) == 1
    assert {t.get_secret_value() for t in tokens} == {"token-alice-1"}
    assert cache.exchanges["ok"] == 1


async def test_user_token_cache_concurrent_users_never_get_each_others_token() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    cache = make(exchange, clock)
    names = [f"user{i}" for i in range(20)]
    asked = [name for name in names for _ in range(5)]
    tokens = await asyncio.gather(*(cache.token(user(name)) for name in asked))
    for name, token in zip(asked, tokens, strict=True):
        assert token.get_secret_value().startswith(f"token-{name}-")
    assert len(exchange.calls) == len(names)


async def test_user_token_cache_reuses_until_the_margin_then_exchanges_the_current_assertion() -> (
    None
):
    clock = [1000.0]
    exchange = FakeExchange(clock, lifetime=1000)
    cache = make(exchange, clock, margin_seconds=300)
    first = await cache.token(user("alice", "old"))
    clock[0] += 600  # 400 s left: still outside the margin
    assert await cache.token(user("alice", "newer")) == first
    clock[0] += 150  # 250 s left: inside the margin
    second = await cache.token(user("alice", "newest"))
    assert second != first
    assert exchange.calls == [("alice", "old"), ("alice", "newest")]
    assert (cache.hits, cache.misses) == (1, 2)


async def test_user_token_cache_evicts_the_least_recently_used_user() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    cache = make(exchange, clock, size=2)
    await cache.token(user("a"))
    await cache.token(user("b"))
    await cache.token(user("a"))  # a is now the most recent
    await cache.token(user("c"))  # evicts b
    assert len(cache) == 2
    await cache.token(user("a"))
    await cache.token(user("b"))
    assert [call[0] for call in exchange.calls] == ["a", "b", "c", "b"]


async def test_user_token_cache_keys_by_tenant_and_object_id() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    cache = make(exchange, clock)
    await cache.token(user("same", tenant="t1"))
    await cache.token(user("same", tenant="t2"))
    assert len(exchange.calls) == 2
    assert len(cache) == 2


async def test_user_token_cache_bounds_concurrent_exchanges() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    exchange.release.clear()
    cache = make(exchange, clock, concurrency=3)
    waiting = [asyncio.create_task(cache.token(user(f"u{i}"))) for i in range(30)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert exchange.in_flight == 3
    exchange.release.set()
    await asyncio.gather(*waiting)
    assert exchange.most_in_flight == 3
    assert len(exchange.calls) == 30


async def test_user_token_cache_failure_reaches_every_waiter_and_is_not_cached() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    exchange.fail_with = SignInAgainError("sign in again")
    cache = make(exchange, clock)
    results = await asyncio.gather(
        *(cache.token(user("alice")) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, SignInAgainError) for result in results)
    assert len(exchange.calls) == 1
    assert cache.exchanges["refused"] == 1
    exchange.fail_with = TokenUnavailableError("Entra down")
    with pytest.raises(TokenUnavailableError):
        await cache.token(user("alice"))
    assert cache.exchanges["unavailable"] == 1
    exchange.fail_with = None
    assert (await cache.token(user("alice"))).get_secret_value().startswith("token-alice-")


async def test_user_token_cache_cancelled_waiter_does_not_cancel_the_exchange() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    exchange.release.clear()
    cache = make(exchange, clock)
    first = asyncio.create_task(cache.token(user("alice")))
    second = asyncio.create_task(cache.token(user("alice")))
    await asyncio.sleep(0)
    first.cancel()
    exchange.release.set()
    assert (await second).get_secret_value() == "token-alice-1"
    assert len(exchange.calls) == 1


async def test_user_token_cache_drop_forgets_only_the_rejected_token() -> None:
    clock = [1000.0]
    exchange = FakeExchange(clock)
    cache = make(exchange, clock)
    token = await cache.token(user("alice"))
    cache.drop(user("alice"), SecretStr("some-other-token"))
    assert await cache.token(user("alice")) == token
    cache.drop(user("alice"), token)
    assert await cache.token(user("alice")) != token
    assert len(exchange.calls) == 2
