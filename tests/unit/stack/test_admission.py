"""``Admission``: new Azure calls start at once on a healthy loop, queue on a lagging one."""

from __future__ import annotations

import asyncio
import time

import pytest

from llama_entra.errors import ServiceOverloadedError
from llama_entra.stack.admission import BATCH, TICK_SECONDS, Admission


async def _admitted(admission: Admission, count: int) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(admission.admit()) for _ in range(count)]
    await asyncio.sleep(0)
    return tasks


async def test_a_burst_starts_a_batch_at_once_and_the_rest_on_the_next_ticks_in_order() -> None:
    admission = Admission(max_lag=10.0, max_wait=30.0)
    order: list[int] = []

    async def call(n: int) -> None:
        await admission.admit()
        order.append(n)

    tasks = [asyncio.create_task(call(n)) for n in range(BATCH * 2 + 5)]
    await asyncio.sleep(TICK_SECONDS / 5)
    assert order == list(range(BATCH))
    assert admission.waiting == BATCH + 5
    await asyncio.gather(*tasks)
    assert order == list(range(BATCH * 2 + 5))
    assert admission.waited == BATCH + 5 and admission.refused == 0
    await admission.aclose()


async def test_calls_wait_while_the_loop_lags_and_start_once_it_keeps_up() -> None:
    admission = Admission(max_lag=0.1, max_wait=30.0)
    await asyncio.gather(*await _admitted(admission, BATCH))  # the first tick's allowance
    loop = asyncio.get_running_loop()
    loop.call_soon(time.sleep, 0.4)  # the loop is stuck: the next tick fires 0.4 s late
    await asyncio.sleep(TICK_SECONDS * 2)
    assert admission.lag >= 0.1
    waiting = asyncio.create_task(admission.admit())
    await asyncio.sleep(0)
    assert not waiting.done()  # lagging: no allowance was given
    await asyncio.wait_for(waiting, 5.0)  # the next ticks are on time again
    assert admission.lag < 0.1
    await admission.aclose()


async def test_a_call_that_waits_too_long_is_refused_with_a_wait() -> None:
    admission = Admission(max_lag=0.0, max_wait=0.2)  # every tick counts as lagging
    await asyncio.gather(*await _admitted(admission, BATCH))
    await asyncio.sleep(TICK_SECONDS * 2)
    with pytest.raises(ServiceOverloadedError) as raised:
        await admission.admit()
    assert raised.value.retry_after >= 1
    assert admission.refused == 1 and admission.waiting == 0
    await admission.aclose()


async def test_a_caller_that_leaves_gives_its_turn_to_the_next() -> None:
    admission = Admission(max_lag=10.0, max_wait=30.0)
    await asyncio.gather(*await _admitted(admission, BATCH))
    leaving, staying = await _admitted(admission, 2)
    leaving.cancel()
    await asyncio.wait_for(staying, 1.0)
    assert leaving.cancelled()
    await admission.aclose()


async def test_closing_lets_queued_calls_through() -> None:
    admission = Admission(max_lag=0.0, max_wait=30.0)
    await asyncio.gather(*await _admitted(admission, BATCH))
    await asyncio.sleep(TICK_SECONDS * 2)
    queued = await _admitted(admission, 3)
    await admission.aclose()
    await asyncio.wait_for(asyncio.gather(*queued), 1.0)


def test_an_overloaded_worker_answers_503_with_its_wait_in_both_dialects() -> None:
    from llama_entra.app.errors import openai_error_of, status_and_body

    error = ServiceOverloadedError(3)
    status, body, headers = status_and_body(error)
    assert (status, headers) == (503, {"Retry-After": "3"})
    assert body["detail"]["response"] == "Service overloaded"
    assert "waited its turn too long" in body["detail"]["cause"]
    status, error_object, headers = openai_error_of(error)
    assert (status, error_object["code"], headers) == (
        503,
        "service_overloaded",
        {"Retry-After": "3"},
    )
