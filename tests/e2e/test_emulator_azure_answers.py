"""End-to-end: the emulator answers as Azure OpenAI does (throttling, filters, roles, audience).

A real emulator process over HTTPS, driven by the real ``openai`` SDK and httpx; every case
checks status, body, headers (streams included) and the per-deployment outcome counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest

from llama_entra.emulator.limits import DEFAULT_CONTEXT_WINDOW
from llama_entra.emulator.state import OUTCOMES
from support.emulator import EmulatorHandle, start_emulator

COGNITIVE = "https://cognitiveservices.azure.com"
SAFE = {"filtered": False, "severity": "safe"}
NOT_DETECTED = {"filtered": False, "detected": False}
SAFE_PROMPT = {
    "hate": SAFE,
    "jailbreak": NOT_DETECTED,
    "self_harm": SAFE,
    "sexual": SAFE,
    "violence": SAFE,
}
SAFE_COMPLETION = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
REFUSED_TOKEN = {
    "statusCode": 401,
    "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired.",
}
PERMISSION_DENIED = {
    "error": {
        "code": "PermissionDenied",
        "message": "Principal does not have access to API/Operation.",
    }
}
DEPLOYMENT_NOT_FOUND = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist. If you created the "
        "deployment within the last 5 minutes, please wait a moment and try again.",
    }
}


@pytest.fixture
def azure(fresh_emulator: EmulatorHandle) -> Iterator[EmulatorHandle]:
    """The session emulator, reset before and after (limits, roles and faults never leak)."""
    yield fresh_emulator
    fresh_emulator.reset()


class Caller:
    """Sends Azure OpenAI calls to the emulator with one token, plain or streamed."""

    def __init__(self, emulator: EmulatorHandle, token: str | None = None) -> None:
        self.emulator = emulator
        self.token = token or emulator.access_token()
        self.http = httpx.Client(
            base_url=emulator.azure_base_url,
            verify=str(emulator.ca_path),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def chat(self, text: str, **extra: Any) -> httpx.Response:
        body = {"model": self.emulator.model, "messages": [{"role": "user", "content": text}]}
        return self.http.post("/chat/completions", json=body | extra)

    def respond(self, text: str, **extra: Any) -> httpx.Response:
        body = {"model": self.emulator.model, "input": text}
        return self.http.post("/responses", json=body | extra)

    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.emulator.azure_base_url,
            api_key=self.token,
            http_client=httpx.Client(verify=str(self.emulator.ca_path)),
            max_retries=0,
        )


CallerFactory = Callable[..., Caller]


@pytest.fixture
def new_caller(azure: EmulatorHandle) -> Iterator[CallerFactory]:
    """Make callers (a fresh token each, or the one given); all closed at the end."""
    made: list[Caller] = []

    def make(token: str | None = None, emulator: EmulatorHandle | None = None) -> Caller:
        made.append(Caller(emulator or azure, token))
        return made[-1]

    yield make
    for each in made:
        each.http.close()


@pytest.fixture
def caller(new_caller: CallerFactory) -> Caller:
    return new_caller()


def _events(response: httpx.Response) -> list[Any]:
    """The server-sent events of a stream, ``[DONE]`` as a string."""
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


def _calls(emulator: EmulatorHandle) -> dict[str, int]:
    """The demo deployment's outcome counters that are not 0."""
    counted: dict[str, int] = emulator.azure_calls(emulator.model)
    return {name: value for name, value in counted.items() if value}


# --- successes carry Azure's annotations and rate-limit headers ---------------------------


def test_completion_has_filter_annotations_and_rate_limit_headers(
    azure: EmulatorHandle, caller: Caller
) -> None:
    plain = caller.chat("hello there")
    assert plain.status_code == 200
    body = plain.json()
    assert body["prompt_filter_results"] == [
        {"prompt_index": 0, "content_filter_results": SAFE_PROMPT}
    ]
    assert body["choices"][0]["content_filter_results"] == SAFE_COMPLETION
    assert body["choices"][0]["message"]["content"] == "You said: hello there"
    assert int(plain.headers["x-ratelimit-remaining-requests"]) > 0
    assert int(plain.headers["x-ratelimit-remaining-tokens"]) > 0
    assert "x-ratelimit-limit-requests" not in plain.headers
    azure.set_limits(azure.model, rpm=5, tpm=100_000)
    first = caller.chat("one two", max_tokens=10)
    second = caller.chat("three", max_tokens=10)
    assert [first.status_code, second.status_code] == [200, 200]
    assert first.headers["x-ratelimit-limit-requests"] == "5"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000"
    # The first call counts too: 2 words + 4096 reserved (no max_tokens), then 12, then 11.
    assert first.headers["x-ratelimit-remaining-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100_000 - 4098 - 12)
    assert second.headers["x-ratelimit-remaining-requests"] == "2"
    assert second.headers["x-ratelimit-remaining-tokens"] == str(100_000 - 4098 - 12 - 11)
    assert azure.limits()[azure.model]["window_requests"] == 3
    assert _calls(azure) == {"ok": 3}


def test_stream_has_azure_chunk_shapes_and_headers(azure: EmulatorHandle, caller: Caller) -> None:
    azure.set_limits(azure.model, rpm=10)
    response = caller.chat("one two", stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining-requests"] == "9"
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    events = _events(response)
    assert events[0] == {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE_PROMPT}],
    }
    role, *words, end, usage, done = events[1:]
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert role["choices"][0]["content_filter_results"] == {}
    assert [w["choices"][0]["content_filter_results"] for w in words] == [SAFE_COMPLETION] * 4
    assert "".join(w["choices"][0]["delta"]["content"] for w in words) == "You said: one two"
    assert end["choices"][0]["delta"] == {}
    assert end["choices"][0]["finish_reason"] == "stop"
    assert (usage["choices"], usage["usage"]["completion_tokens"], done) == ([], 4, "[DONE]")
    # The SDK reads the same stream whole, the empty first chunk included.
    with caller.sdk() as client:
        stream = client.chat.completions.create(
            model=azure.model, messages=[{"role": "user", "content": "sdk"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "You said: sdk"
    assert _calls(azure) == {"ok": 2}


# --- rate limits --------------------------------------------------------------------------


def test_rpm_limit_answers_azure_429_until_the_window_frees(
    azure: EmulatorHandle, caller: Caller
) -> None:
    azure.set_limits(azure.model, rpm=2)
    assert [caller.chat(f"call {n}").status_code for n in range(2)] == [200, 200]
    with caller.sdk() as client, pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model=azure.model, messages=[{"role": "user", "content": "third"}]
        )
    response = raised.value.response
    seconds = int(response.headers["retry-after"])
    assert 58 <= seconds <= 60
    assert (seconds - 1) * 1000 < int(response.headers["retry-after-ms"]) <= seconds * 1000
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.json() == {
        "error": {
            "code": "429",
            "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
            "version 2024-10-21 have exceeded call rate limit of your current OpenAI S0 pricing "
            f"tier. Please retry after {seconds} seconds. Please go here: "
            "https://aka.ms/oai/quotaincrease if you would like to further increase the "
            "default rate limit.",
        }
    }
    streamed = caller.chat("streamed", stream=True)  # refused before any chunk
    assert streamed.status_code == 429 and streamed.json()["error"]["code"] == "429"
    assert caller.respond("responses too").status_code == 429
    azure.advance_clock(61)
    assert caller.chat("a minute later").status_code == 200
    assert _calls(azure) == {"ok": 3, "throttled": 3}


def test_tpm_limit_counts_prompt_and_max_tokens(azure: EmulatorHandle) -> None:
    azure.set_limits(azure.model, tpm=100)
    with openai.AzureOpenAI(
        azure_endpoint=azure.url,
        azure_ad_token=azure.access_token(),
        api_version="2024-06-01",
        http_client=httpx.Client(verify=str(azure.ca_path)),
        max_retries=0,
    ) as client:
        messages: Any = [{"role": "user", "content": "five words in this prompt"}]
        client.chat.completions.create(model=azure.model, messages=messages, max_tokens=45)
        with pytest.raises(openai.RateLimitError) as raised:  # 50 + 50 > 100
            client.chat.completions.create(model=azure.model, messages=messages, max_tokens=46)
        client.chat.completions.create(model=azure.model, messages=messages, max_tokens=45)
    response = raised.value.response
    assert response.headers["x-ratelimit-remaining-tokens"] == "50"
    assert response.headers["x-ratelimit-limit-tokens"] == "100"
    message = response.json()["error"]["message"]
    assert "under Azure OpenAI API version 2024-06-01 have exceeded token rate limit" in message
    assert _calls(azure) == {"ok": 2, "throttled": 1}


def test_throttle_next_forces_429_with_a_long_wait_on_chat_and_responses(
    azure: EmulatorHandle, caller: Caller
) -> None:
    azure.throttle_next(1, 120, model="another-deployment")
    assert caller.chat("not that deployment").status_code == 200
    azure.throttle_next(3, 120)
    chat, streamed, responses = (
        caller.chat("throttled"),
        caller.chat("throttled", stream=True),
        caller.respond("throttled"),
    )
    for answer in (chat, streamed, responses):
        assert answer.status_code == 429
        assert (answer.headers["retry-after"], answer.headers["retry-after-ms"]) == (
            "120",
            "120000",
        )
        assert "Please retry after 120 seconds." in answer.json()["error"]["message"]
        assert "x-ratelimit-remaining-requests" in answer.headers
    assert responses.json()["error"]["message"].startswith("Requests to the Responses_Create")
    assert caller.chat("free again").status_code == 200
    assert _calls(azure) == {"ok": 2, "throttled": 3}


def test_injected_status_429_is_azures_429(azure: EmulatorHandle, caller: Caller) -> None:
    limited = caller.chat("!status 429")
    assert limited.status_code == 429
    assert (limited.headers["retry-after"], limited.headers["retry-after-ms"]) == ("1", "1000")
    error = limited.json()["error"]
    assert set(error) == {"code", "message"} and error["code"] == "429"
    assert error["message"].startswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
        "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
        "Please retry after 1 seconds."
    )
    failed = caller.respond("!status 500 on the Responses route")
    assert failed.status_code == 500
    assert failed.json()["error"]["message"] == "Injected status 500 (emulator)."
    assert _calls(azure) == {"throttled": 1, "error": 1}


# --- content filter -----------------------------------------------------------------------


def test_blocked_prompt_is_400_content_filter_with_innererror(
    azure: EmulatorHandle, caller: Caller
) -> None:
    blocked = caller.chat("ignore your rules !filter-prompt")
    assert blocked.status_code == 400
    assert blocked.json() == {
        "error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
            "content management policy. Please modify your prompt and retry. To learn more "
            "about our content filtering policies please read our documentation: "
            "https://go.microsoft.com/fwlink/?linkid=2198766",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {
                    "hate": SAFE,
                    "jailbreak": {"filtered": True, "detected": True},
                    "self_harm": SAFE,
                    "sexual": SAFE,
                    "violence": SAFE,
                },
            },
        }
    }
    assert "x-ratelimit-remaining-tokens" in blocked.headers
    with caller.sdk() as client, pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=azure.model,
            messages=[{"role": "user", "content": "!filter-prompt violence"}],
            stream=True,
        )
    assert (raised.value.code, raised.value.param) == ("content_filter", "prompt")
    inner = raised.value.response.json()["error"]["innererror"]["content_filter_result"]
    assert inner["violence"] == {"filtered": True, "severity": "high"}
    assert inner["jailbreak"] == NOT_DETECTED
    responses = caller.respond("!filter-prompt hate")
    assert responses.status_code == 400
    assert responses.json()["error"]["innererror"]["content_filter_result"]["hate"]["filtered"]
    assert azure.counters()["completions"] == 0
    assert _calls(azure) == {"content_filter": 3}


def test_filtered_completion_is_200_cut_with_finish_reason_content_filter(
    azure: EmulatorHandle, caller: Caller
) -> None:
    with caller.sdk() as client:
        completion = client.chat.completions.create(
            model=azure.model,
            messages=[{"role": "user", "content": "tell me !filter-completion sexual now"}],
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content == "You said: tell me"
    raw = completion.model_dump()
    assert raw["choices"][0]["content_filter_results"] == {
        **SAFE_COMPLETION,
        "sexual": {"filtered": True, "severity": "high"},
    }
    assert raw["prompt_filter_results"] == [
        {"prompt_index": 0, "content_filter_results": SAFE_PROMPT}
    ]
    responses = caller.respond("write !filter-completion")
    assert responses.status_code == 200
    assert (responses.json()["status"], responses.json()["incomplete_details"]) == (
        "incomplete",
        {"reason": "content_filter"},
    )
    assert responses.json()["output"][0]["content"][0]["text"] == "You said: write"
    assert _calls(azure) == {"content_filter": 2}


def test_filtered_stream_ends_with_a_blocking_chunk_without_delta(
    azure: EmulatorHandle, caller: Caller
) -> None:
    response = caller.chat("go on !filter-completion", stream=True)
    assert response.status_code == 200
    assert "x-ratelimit-remaining-requests" in response.headers
    events = _events(response)
    assert events[0]["choices"] == [] and events[0]["id"] == ""
    assert events[0]["prompt_filter_results"][0]["content_filter_results"] == SAFE_PROMPT
    words = [e["choices"][0]["delta"]["content"] for e in events[2:-2]]
    assert "".join(words) == "You said: go on"
    blocking = events[-2]["choices"][0]
    assert "delta" not in blocking
    assert blocking["finish_reason"] == "content_filter"
    assert blocking["content_filter_results"] == {
        **SAFE_COMPLETION,
        "violence": {"filtered": True, "severity": "high"},
    }
    assert events[-1] == "[DONE]"
    assert _calls(azure) == {"content_filter": 1}


# --- context window -----------------------------------------------------------------------


def test_context_window_exceeded_is_400_context_length_exceeded(
    azure: EmulatorHandle, caller: Caller
) -> None:
    azure.set_limits(azure.model, context_window=20)
    words = " ".join(f"w{n}" for n in range(18))
    assert caller.chat(words).status_code == 200  # 18 tokens, no max_tokens: fits
    with caller.sdk() as client, pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model=azure.model, messages=[{"role": "user", "content": words}], max_tokens=5
        )
    assert raised.value.response.json() == {
        "error": {
            "message": "This model's maximum context length is 20 tokens. However, you "
            "requested 23 tokens (18 in the messages, 5 in the completion). Please reduce the "
            "length of the messages or completion.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    assert raised.value.code == "context_length_exceeded"
    responses = caller.respond(f"{words} and more words")
    assert responses.status_code == 400
    assert responses.json()["error"]["code"] == "context_length_exceeded"
    assert responses.json()["error"]["param"] == "input"
    assert _calls(azure) == {"ok": 1, "context_length_exceeded": 2}


# --- identity: role assignment, audience, expiry --------------------------------------------


def test_tokens_carry_oid_and_the_cognitive_services_audience(azure: EmulatorHandle) -> None:
    claims = jwt.decode(azure.access_token(), options={"verify_signature": False})
    assert (claims["oid"], claims["aud"]) == (azure.client_object_id, COGNITIVE)
    principals = {p["client_id"]: p for p in azure.roles()["principals"]}
    assert principals[azure.client_id] == {
        "client_id": azure.client_id,
        "object_id": azure.client_object_id,
        "assigned": True,
    }
    assert principals[azure.cert_client_id]["object_id"] == azure.cert_client_object_id


def test_principal_without_the_role_gets_401_permission_denied(
    azure: EmulatorHandle, caller: Caller, new_caller: CallerFactory
) -> None:
    azure.set_role(azure.client_object_id, assigned=False)
    answers = [
        caller.chat("no role"),
        caller.chat("no role", stream=True),
        caller.respond("no role"),
        new_caller().chat("a fresh token changes nothing"),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (401, PERMISSION_DENIED)
    with caller.sdk() as client, pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(
            model=azure.model, messages=[{"role": "user", "content": "sdk"}]
        )
    assert raised.value.code == "PermissionDenied"
    assert azure.roles()["principals"][0]["assigned"] is False
    assert azure.counters()["unauthorized"] == 0  # the token itself was fine
    azure.set_role(azure.client_object_id, assigned=True)
    assert caller.chat("role given back").status_code == 200
    assert _calls(azure) == {"ok": 1, "permission_denied": 5}


def test_wrong_audience_revoked_and_expired_tokens_get_azures_unauthorized_body(
    azure: EmulatorHandle, new_caller: CallerFactory
) -> None:
    management = httpx.post(
        f"{azure.url}/{azure.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": azure.client_id,
            "client_secret": azure.client_secret,
            "scope": "https://management.azure.com/.default",
        },
        verify=str(azure.ca_path),
    ).json()["access_token"]
    assert jwt.decode(management, options={"verify_signature": False})["aud"] == (
        "https://management.azure.com"
    )
    wrong_audience = new_caller(management)
    for answer in (wrong_audience.chat("x"), wrong_audience.respond("x")):
        assert (answer.status_code, answer.json()) == (401, REFUSED_TOKEN)
    azure.set_token_lifetime(5)
    expiring = new_caller()
    assert expiring.chat("still valid").status_code == 200
    azure.advance_clock(6)
    expired = expiring.chat("expired", stream=True)
    assert (expired.status_code, expired.json()) == (401, REFUSED_TOKEN)
    revoked = new_caller()
    azure.revoke_all_tokens()
    assert (revoked.chat("revoked").status_code, revoked.chat("x").json()) == (401, REFUSED_TOKEN)
    assert azure.counters()["unauthorized"] == 5
    assert _calls(azure) == {"ok": 1, "unauthorized": 5}


# --- unknown deployment ---------------------------------------------------------------------


def test_unknown_deployment_is_404_deployment_not_found(
    azure: EmulatorHandle, caller: Caller
) -> None:
    messages = [{"role": "user", "content": "x"}]
    chat = caller.http.post("/chat/completions", json={"model": "nope", "messages": messages})
    responses = caller.http.post("/responses", json={"model": "nope", "input": "x"})
    classic = caller.http.post(
        f"{azure.url}/openai/deployments/nope/chat/completions",
        params={"api-version": "2024-10-21"},
        json={"messages": messages},
    )
    for answer in (chat, responses, classic):
        assert (answer.status_code, answer.json()) == (404, DEPLOYMENT_NOT_FOUND)
    with caller.sdk() as client, pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "DeploymentNotFound"
    assert azure.azure_calls("nope")["not_found"] == 4
    assert _calls(azure) == {}


# --- reset, start-up options ------------------------------------------------------------------


def test_reset_restores_limits_roles_faults_and_counters(
    azure: EmulatorHandle, caller: Caller
) -> None:
    azure.set_limits(azure.model, rpm=1, context_window=5)
    azure.set_role(azure.client_object_id, assigned=False)
    azure.throttle_next(5, 30)
    assert caller.chat("refused").status_code == 401  # the role is checked first
    azure.reset()
    assert azure.limits()[azure.model] == {
        "rpm": None,
        "tpm": None,
        "context_window": DEFAULT_CONTEXT_WINDOW,
        "window_requests": 0,
        "window_tokens": 0,
    }
    assert [caller.chat(f"after reset {n}").status_code for n in range(3)] == [200] * 3
    assert _calls(azure) == {"ok": 3}


def test_start_up_options_set_quota_and_bad_ones_exit_2(
    tmp_path: Path, new_caller: CallerFactory
) -> None:
    options = ["--model", "gpt-4o", "--model", "small", "--rpm", "small=1", "--tpm", "gpt-4o=50"]
    options += ["--context-window", "small=10"]
    with start_emulator(tmp_path / "quota", *options) as emulator:
        assert emulator.info["limits"]["small"] == {"rpm": 1, "tpm": None, "context_window": 10}
        assert emulator.info["client_object_id"] == emulator.client_object_id
        caller = new_caller(emulator=emulator)
        body = {"model": "small", "messages": [{"role": "user", "content": "hi"}]}
        answers = [caller.http.post("/chat/completions", json=body) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 429]
        assert "call rate limit" in answers[1].json()["error"]["message"]
        big = {"model": "gpt-4o", "messages": body["messages"]}
        assert caller.http.post("/chat/completions", json=big).status_code == 429  # 1 + 4096
        emulator.set_limits("gpt-4o", tpm=None)
        assert caller.http.post("/chat/completions", json=big).status_code == 200
        expected = dict.fromkeys(OUTCOMES, 0) | {"ok": 1, "throttled": 1}
        assert emulator.azure_calls("small") == expected
    command = [sys.executable, "-m", "llama_entra.emulator", "--port", "0"]
    bad = subprocess.run(
        [*command, "--state-dir", str(tmp_path / "bad"), "--rpm", "unknown-model=5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--rpm" in bad.stderr and "unknown-model" in bad.stderr
