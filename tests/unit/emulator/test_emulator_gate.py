"""Unit: the emulator's deployment checks (throttle, quota, context, filter) with a moved clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import Response

from llama_entra.emulator.content_filter import (
    blocked_prompt_body,
    completion_trigger,
    cut_reply,
    prompt_trigger,
)
from llama_entra.emulator.gate import DeploymentCall, admit, finish
from llama_entra.emulator.limits import CallCost, DeploymentLimits
from llama_entra.emulator.state import EmulatorSettings, EmulatorState

MODEL = "gpt-4o-mini"
OTHER = "gpt-4o"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(key: rsa.RSAPrivateKey, clock: Clock) -> EmulatorState:
    settings = EmulatorSettings(
        models=(MODEL, OTHER),
        deployment_limits={MODEL: DeploymentLimits(rpm=2, context_window=50)},
    )
    return EmulatorState(settings=settings, signing_key=key, clock=clock)


def _call(prompt: str = "hello", model: str = MODEL, **cost: Any) -> DeploymentCall:
    return DeploymentCall("chat", model, CallCost(prompt_tokens=3, **cost), prompt)


def _body(response: Response) -> Any:
    return json.loads(bytes(response.body))


def test_gate_rpm_429_says_call_rate_limit_and_frees_when_the_clock_moves(
    state: EmulatorState, clock: Clock
) -> None:
    assert admit(state, _call()) is None
    clock.now += 15
    assert admit(state, _call()) is None
    clock.now += 15
    refusal = admit(state, _call())
    assert refusal is not None and refusal.outcome == "throttled"
    assert refusal.response.status_code == 429
    assert refusal.response.headers["retry-after"] == "30"
    assert refusal.response.headers["retry-after-ms"] == "30000"
    message = _body(refusal.response)["error"]["message"]
    assert message.startswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 30 seconds."
    )
    clock.now += 30
    assert admit(state, _call()) is None


def test_gate_tpm_429_says_token_rate_limit(state: EmulatorState) -> None:
    state.limits[OTHER] = DeploymentLimits(tpm=20)
    assert admit(state, _call(model=OTHER, max_tokens=10)) is None
    refusal = admit(state, _call(model=OTHER, max_tokens=10))
    assert refusal is not None
    assert "exceeded token rate limit" in _body(refusal.response)["error"]["message"]
    assert refusal.response.headers["retry-after"] == "60"


def test_gate_forced_throttle_hits_only_the_named_deployment(state: EmulatorState) -> None:
    state.faults.throttle_next, state.faults.throttle_retry_after = 2, 120
    state.faults.throttle_model = OTHER
    assert admit(state, _call(model=MODEL)) is None
    for _ in range(2):
        refusal = admit(state, _call(model=OTHER))
        assert refusal is not None and refusal.response.headers["retry-after"] == "120"
        assert refusal.response.headers["retry-after-ms"] == "120000"
    assert admit(state, _call(model=OTHER)) is None
    assert state.window_for(OTHER).usage(state.clock()) == (1, 3 + 4096)


def test_gate_context_window_counts_prompt_and_requested_output(state: EmulatorState) -> None:
    call = DeploymentCall("chat", MODEL, CallCost(prompt_tokens=45, max_tokens=10), "long")
    refusal = admit(state, call)
    assert refusal is not None and refusal.outcome == "context_length_exceeded"
    assert _body(refusal.response) == {
        "error": {
            "message": "This model's maximum context length is 50 tokens. However, you "
            "requested 55 tokens (45 in the messages, 10 in the completion). Please reduce "
            "the length of the messages or completion.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    responses = DeploymentCall("responses", MODEL, CallCost(prompt_tokens=51), "long")
    refusal = admit(state, responses)
    assert refusal is not None and _body(refusal.response)["error"]["param"] == "input"


def test_gate_prompt_filter_and_injected_statuses(state: EmulatorState) -> None:
    state.limits[MODEL] = DeploymentLimits()
    blocked = admit(state, _call("tell me !filter-prompt violence"))
    assert blocked is not None and blocked.outcome == "content_filter"
    assert _body(blocked.response) == blocked_prompt_body("violence")
    limited = admit(state, _call("!status 429"))
    assert limited is not None and limited.outcome == "throttled"
    assert limited.response.headers["retry-after"] == "1"
    error = _body(limited.response)["error"]
    assert set(error) == {"code", "message"} and error["code"] == "429"
    assert error["message"].endswith("Injected status 429 (emulator).")
    failed = admit(state, _call("!status 503"))
    assert failed is not None and (failed.outcome, failed.response.status_code) == ("error", 503)


def test_finish_counts_outcomes_and_sets_rate_limit_headers(state: EmulatorState) -> None:
    admit(state, _call())
    answered = finish(state, MODEL, Response(), "ok")
    assert answered.headers["x-ratelimit-remaining-requests"] == "1"
    assert answered.headers["x-ratelimit-limit-requests"] == "2"
    assert "x-ratelimit-limit-tokens" not in answered.headers
    unknown = finish(state, "nope", Response(status_code=404), "not_found")
    assert "x-ratelimit-remaining-requests" not in unknown.headers
    calls = state.counters()["azure_calls"]
    assert isinstance(calls, dict)
    assert calls[MODEL]["ok"] == 1 and calls[OTHER]["ok"] == 0
    assert calls["nope"]["not_found"] == 1


def test_reset_restores_start_up_limits_and_clock_and_clears_windows_roles_and_calls(
    state: EmulatorState, clock: Clock
) -> None:
    state.advance_clock(90)
    assert state.clock() == clock.now + 90
    state.limits[MODEL] = DeploymentLimits(rpm=1)
    state.roles_removed.add("someone")
    admit(state, _call())
    state.count_call(MODEL, "ok")
    state.reset()
    assert state.limits_for(MODEL) == DeploymentLimits(rpm=2, context_window=50)
    assert state.window_for(MODEL).usage(state.clock()) == (0, 0)
    assert not state.roles_removed and not state.azure_calls
    assert state.clock() == clock.now


@pytest.mark.parametrize(
    ("text", "prompt", "completion"),
    [
        ("plain", None, None),
        ("!filter-prompt", "jailbreak", None),
        ("x !filter-prompt hate y", "hate", None),
        ("!filter-prompt nonsense", "jailbreak", None),
        ("!filter-completion", None, "violence"),
        ("a !filter-completion sexual", None, "sexual"),
        ("!filter-completion jailbreak", None, "violence"),  # not an output category
    ],
)
def test_content_filter_triggers(text: str, prompt: str | None, completion: str | None) -> None:
    assert (prompt_trigger(text), completion_trigger(text)) == (prompt, completion)


def test_cut_reply_stops_before_the_trigger_word() -> None:
    words = ["You", "said:", "tell", "me", "!filter-completion", "more"]
    assert cut_reply(words) == ["You", "said:", "tell", "me"]
    assert cut_reply(["You", "said:", "hi"]) == ["You", "said:", "hi"]
