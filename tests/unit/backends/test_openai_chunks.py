"""``ValidatingOpenAI`` streams the same chunks as the OpenAI SDK's own client, faster.

Azure's chunk shapes, as a stream sends them, through the real SDK over an in-memory transport:
each chunk from ``ValidatingOpenAI`` equals the stock client's (type, values, fields set,
Azure's extra fields), including the shapes that do not conform to the SDK's model and are
built leniently as the SDK builds them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from llama_entra.backends.openai_chunks import ValidatingOpenAI

_SAFE = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual")}
_BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}


def _choice(**fields: Any) -> dict[str, Any]:
    return {"index": 0, "finish_reason": None, "logprobs": None, **fields}


AZURE_CHUNKS: list[dict[str, Any]] = [
    # The prompt's annotations: "object": "" does not conform to the SDK's model.
    {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _SAFE}],
    },
    {
        **_BASE,
        "choices": [_choice(delta={"role": "assistant", "content": ""}, content_filter_results={})],
    },
    {
        **_BASE,
        "system_fingerprint": "fp_1",
        "choices": [_choice(delta={"content": " word"}, content_filter_results=_SAFE)],
    },
    {
        **_BASE,
        "choices": [
            _choice(
                delta={
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get", "arguments": '{"a"'},
                        }
                    ]
                }
            )
        ],
    },
    # A blocked answer's last chunk has no delta: built leniently.
    {
        **_BASE,
        "choices": [
            _choice(
                finish_reason="content_filter",
                content_filter_results={"violence": {"filtered": True, "severity": "medium"}},
            )
        ],
    },
    {**_BASE, "choices": [_choice(delta={}, finish_reason="stop", content_filter_results={})]},
    {
        **_BASE,
        "choices": [],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    },
]


def _transport() -> httpx.MockTransport:
    body = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in AZURE_CHUNKS)

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, content=body + b"data: [DONE]\n\n", headers=headers)

    return httpx.MockTransport(answer)


async def _streamed(kind: type[AsyncOpenAI]) -> list[ChatCompletionChunk]:
    # The SDK types its client as httpx2's, which httpx's is at run time here.
    http_client: Any = httpx.AsyncClient(transport=_transport())
    client = kind(
        api_key="key", base_url="https://x.example/v1", http_client=http_client, max_retries=0
    )
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    return chunks


async def test_every_azure_chunk_is_the_same_as_the_sdks_own() -> None:
    stock, validated = await _streamed(AsyncOpenAI), await _streamed(ValidatingOpenAI)
    assert len(stock) == len(validated) == len(AZURE_CHUNKS)
    for ours, theirs in zip(validated, stock, strict=True):
        assert type(ours) is type(theirs) is ChatCompletionChunk
        assert ours.model_dump() == theirs.model_dump()
        assert ours.model_dump(exclude_unset=True) == theirs.model_dump(exclude_unset=True)
        assert ours.model_extra == theirs.model_extra
        for mine, sdks in zip(ours.choices, theirs.choices, strict=True):
            assert mine.model_extra == sdks.model_extra  # content_filter_results kept
    assert validated[2].choices[0].delta.content == " word"
    assert validated[0].model_extra == {
        "prompt_filter_results": AZURE_CHUNKS[0]["prompt_filter_results"]
    }


async def test_a_conforming_chunk_is_validated_and_the_others_constructed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[object] = []
    sdks = AsyncOpenAI._process_response_data

    def counted(self: AsyncOpenAI, **kwargs: Any) -> Any:
        built.append(kwargs["data"])
        return sdks(self, **kwargs)

    monkeypatch.setattr(AsyncOpenAI, "_process_response_data", counted)
    client = ValidatingOpenAI(api_key="key", base_url="https://x.example/v1")
    response: Any = None
    validated = client._process_response_data(
        data=AZURE_CHUNKS[2], cast_to=ChatCompletionChunk, response=response
    )
    lenient = client._process_response_data(
        data=AZURE_CHUNKS[0], cast_to=ChatCompletionChunk, response=response
    )
    assert ChatCompletionChunk.model_validate(AZURE_CHUNKS[2]) == validated
    assert lenient.object == ""  # the SDK's lenient construction, as before
    assert built == [AZURE_CHUNKS[0]]  # only the chunk that does not conform
    assert client._process_response_data(data={"a": 1}, cast_to=object, response=response) == {
        "a": 1
    }
    await client.close()
