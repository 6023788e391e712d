"""Benchmarks of per-user identity (on-behalf-of), in process against the emulator.

Cached token: what a call pays for the user's token once it is cached (bind the caller from
the validated claims, look the token up), against the service identity's cached token in the
same run; the difference must stay under 0.1 ms a call. Many users: 1,000 new users at once;
their exchanges run with at most ``user_exchange_concurrency`` in flight at Entra (no herd),
each user exchanged exactly once; the cache's memory per user is measured too.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable

import httpx
from azure.core.credentials import AccessTokenInfo
from pydantic import SecretStr

from llama_entra.config import AzureEntraIdConfig
from llama_entra.entra import create_token_manager
from llama_entra.identity import (
    OnBehalfOfExchange,
    UserCaller,
    UserTokenCache,
    UserTokens,
    bind_caller,
    caller_from_claims,
    create_user_tokens,
)
from support.bench import report, summarize
from support.emulator import EmulatorHandle

CALLS = 20_000
ROUNDS = 7
USERS = 1_000
CONCURRENCY = 16


def _config(emulator: EmulatorHandle, **changes: object) -> AzureEntraIdConfig:
    return AzureEntraIdConfig.model_validate(
        {
            "tenant_id": emulator.tenant_id,
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
            "authority_host": emulator.url,
            "ca_bundle": str(emulator.ca_path),
            "user_identity": "on_behalf_of",
            "user_exchange_concurrency": CONCURRENCY,
            **changes,
        }
    )


async def _per_call(step: Callable[[], Awaitable[object]]) -> float:
    """Seconds per call of ``step``, over ``CALLS`` calls."""
    started = time.perf_counter()
    for _ in range(CALLS):
        await step()
    return (time.perf_counter() - started) / CALLS


async def _bytes_per_cached_user(token_length: int) -> int:
    """Memory a cache of ``USERS`` users holds per user, tokens of ``token_length`` characters
    (every id and token a string of its own, as when they come from separate requests)."""
    shared = SecretStr("assertion")

    async def issue(caller: UserCaller) -> AccessTokenInfo:
        return AccessTokenInfo(caller.object_id.ljust(token_length, "x"), 2**40)

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = UserTokenCache(issue, size=USERS, concurrency=CONCURRENCY, margin_seconds=300)
        for _ in range(USERS):
            await cache.token(UserCaller(f"tenant{0:028}", str(uuid.uuid4()), shared, False))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(cache) == USERS
    return held // USERS


def test_bench_cached_user_token_adds_under_a_tenth_of_a_millisecond(
    fresh_emulator: EmulatorHandle,
) -> None:
    emulator = fresh_emulator
    config = _config(emulator)
    assertion = emulator.user_token("bench-cached")
    claims = {"tid": emulator.tenant_id, "oid": emulator.user_object_id("bench-cached")}
    claims["scp"] = "user_impersonation"

    async def run() -> tuple[list[float], list[float]]:
        service = create_token_manager(config)
        await service.start()
        users = create_user_tokens(config)
        assert users is not None
        try:
            await service.token()
            bind_caller(caller_from_claims(claims, assertion))
            await users.token()  # the one exchange; every call below is a cache hit

            async def as_user() -> object:
                bind_caller(caller_from_claims(claims, assertion))
                return await users.token()

            baseline, per_user = [], []
            for _ in range(ROUNDS):  # interleaved, so drift hits both series alike
                baseline.append(await _per_call(service.token))
                per_user.append(await _per_call(as_user))
            return baseline, per_user
        finally:
            await users.aclose()
            await service.aclose()

    baseline, per_user = asyncio.run(run())
    added_ms = (statistics.median(per_user) - statistics.median(baseline)) * 1000
    report(
        "obo_cached_token",
        [
            summarize("service token, cached (per call)", baseline),
            summarize("user token, cached (bind + lookup, per call)", per_user),
        ],
        {"added_ms_per_call": round(added_ms, 4), "target_ms": 0.1},
    )
    assert added_ms < 0.1


def test_bench_thousand_new_users_exchange_once_each_with_bounded_concurrency(
    fresh_emulator: EmulatorHandle,
) -> None:
    emulator = fresh_emulator
    config = _config(emulator, user_cache_size=USERS)
    names = [f"bench-user-{i}" for i in range(USERS)]
    with httpx.Client(base_url=f"{emulator.url}/_emulator", verify=str(emulator.ca_path)) as http:
        minted = [http.post("/user-token", json={"user": name}).json() for name in names]
    callers = [
        UserCaller(m["tenant_id"], m["object_id"], SecretStr(m["access_token"]), app_only=False)
        for m in minted
    ]
    in_flight = most = 0
    exchange = OnBehalfOfExchange(config)

    async def counted(caller: UserCaller) -> AccessTokenInfo:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await exchange(caller)
        finally:
            in_flight -= 1

    async def run() -> tuple[float, int, int]:
        users = UserTokens(config, counted, close=exchange.aclose)
        started = time.perf_counter()
        # Every user twice at once: the second of each pair waits for the first's exchange.
        try:
            await asyncio.gather(
                *(users.token(c) for c in callers), *(users.token(c) for c in callers)
            )
            seconds = time.perf_counter() - started
            token = await users.token(callers[0])
        finally:
            await users.aclose()
        assert token is not None
        length = len(token.get_secret_value())
        return seconds, length, await _bytes_per_cached_user(length)

    seconds, token_length, bytes_per_user = asyncio.run(run())
    exchanges = emulator.users()["exchanges"]
    report(
        "obo_thousand_users",
        [],
        {
            "users": USERS,
            "exchanges": exchanges,
            "most_in_flight": most,
            "concurrency_bound": CONCURRENCY,
            "seconds": round(seconds, 2),
            "exchanges_per_second": round(USERS / seconds, 1),
            "token_characters": token_length,
            "bytes_per_cached_user": bytes_per_user,
        },
    )
    assert exchanges == USERS
    assert most <= CONCURRENCY
    assert bytes_per_user < 4096
