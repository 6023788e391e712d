"""Unit: Azure's refusals read from the SDK's exception data and from a server's text."""

from __future__ import annotations

import pytest

from llama_entra.azure import caller_headers, classify_azure_error, retry_after_seconds
from llama_entra.errors import AzureThrottledError, ContentFilterError, ContextLengthError

THROTTLED = (
    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 "
    "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
    "7 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further "
    "increase the default rate limit."
)
FILTER_OBJECT = {
    "code": "content_filter",
    "param": "prompt",
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry.",
    "innererror": {
        "code": "ResponsibleAIPolicyViolation",
        "content_filter_result": {
            "hate": {"filtered": False, "severity": "safe"},
            "jailbreak": {"filtered": True, "detected": True},
            "violence": {"filtered": True, "severity": "high"},
        },
    },
}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7"}, 7),
        ({"retry-after-ms": "6500"}, 7),  # rounded up
        ({"retry-after": "2", "retry-after-ms": "4001"}, 5),  # the larger one
        ({"retry-after": "9", "retry-after-ms": "1000"}, 9),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({}, None),
    ],
)
def test_azures_wait_is_the_larger_header_rounded_up(headers: dict[str, str], wait: int) -> None:
    assert retry_after_seconds(headers) == wait


def test_caller_sees_the_remaining_quota_headers_and_the_wait_only() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "1200",
        "apim-request-id": "abc",
        "retry-after-ms": "7000",
    }
    assert caller_headers(headers, retry_after=7) == {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "1200",
        "Retry-After": "7",
    }


def test_in_process_429_keeps_azures_object_wait_and_headers() -> None:
    error = classify_azure_error(
        429,
        "Error code: 429 - ...",
        body={"code": "429", "message": THROTTLED},
        headers={"retry-after": "7", "x-ratelimit-remaining-tokens": "0"},
    )
    assert isinstance(error, AzureThrottledError)
    assert error.retry_after == 7
    assert error.message == THROTTLED
    assert error.azure_error == {"code": "429", "message": THROTTLED}
    assert error.headers == {"x-ratelimit-remaining-tokens": "0", "Retry-After": "7"}
    assert not error.final


def test_servers_429_text_gives_the_wait_from_azures_message() -> None:
    error = classify_azure_error(429, f"Error code: 429 - {THROTTLED}")
    assert isinstance(error, AzureThrottledError)
    assert error.retry_after == 7
    assert error.message == THROTTLED  # the SDK's prefix is not Azure's
    assert error.azure_error == {"code": "429", "message": THROTTLED}


def test_content_filter_object_from_a_body_and_from_a_quoted_python_repr() -> None:
    direct = classify_azure_error(400, "x", body={"error": FILTER_OBJECT})
    quoted = classify_azure_error(400, f"Error code: 400 - { ({'error': FILTER_OBJECT})!r}")
    for error in (direct, quoted):
        assert isinstance(error, ContentFilterError)
        assert error.azure_error == FILTER_OBJECT
        assert error.categories == ["jailbreak", "violence"]


def test_content_filter_and_context_window_recognised_from_azures_message_alone() -> None:
    blocked = classify_azure_error(400, f"Error code: 400 - {FILTER_OBJECT['message']}")
    assert isinstance(blocked, ContentFilterError)
    assert blocked.categories == []  # the message does not say which fired
    assert blocked.azure_error["param"] == "prompt"
    too_long = classify_azure_error(
        400, "Error code: 400 - This model's maximum context length is 20 tokens. However..."
    )
    assert isinstance(too_long, ContextLengthError)
    assert too_long.azure_error["code"] == "context_length_exceeded"
    assert too_long.azure_error["param"] == "messages"


@pytest.mark.parametrize(
    ("status", "message", "body"),
    [
        (400, "Invalid value for 'temperature'", {"code": "invalid_value", "message": "bad"}),
        (401, THROTTLED, None),
        (500, "context_length_exceeded {'error': {'code': 'x'}", None),
        (400, "{'error': {'code': 'content_filter'", None),  # unterminated: not an object
    ],
)
def test_other_answers_are_not_classified(status: int, message: str, body: object) -> None:
    assert classify_azure_error(status, message, body=body) is None
