"""End-to-end: one service, three kinds of client, each reading the shape it expects.

``/v1/models`` read by a lightspeed-stack client (httpx), by the installed backend's own client
(llama-stack-client or ogx-client, opened through the backend seam) and by the ``openai`` SDK;
``/v1/info`` and ``/readiness`` in lightspeed's fields; errors on the OpenAI routes seen through
the SDK (``e.code``, ``e.type``); caller mistakes on the Responses API are 400, not 502; unknown
routes do not look like unknown models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llama_entra.backends import active_backend
from support.emulator import EmulatorHandle
from support.service import ServiceHandle

pytestmark = pytest.mark.slow


@pytest.fixture
def sdk(service: ServiceHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_models_for_a_lightspeed_client(service: ServiceHandle, emulator: EmulatorHandle) -> None:
    body = httpx.get(f"{service.url}/v1/models").json()
    assert body["models"] == [
        {
            "identifier": f"azure/{emulator.model}",
            "type": "model",
            "api_model_type": "llm",
            "model_type": "llm",
            "provider_id": "azure",
            "provider_resource_id": emulator.model,
            "metadata": {},
        }
    ]
    llms = httpx.get(f"{service.url}/v1/models", params={"model_type": "llm"}).json()
    assert [m["identifier"] for m in llms["models"]] == [f"azure/{emulator.model}"]
    embeddings = httpx.get(f"{service.url}/v1/models", params={"model_type": "embedding"}).json()
    assert embeddings["models"] == [] and embeddings["data"] == []


def test_models_for_the_openai_sdk(sdk: openai.OpenAI, emulator: EmulatorHandle) -> None:
    models = list(sdk.models.list())
    assert [m.id for m in models] == [f"azure/{emulator.model}"]
    assert models[0].owned_by == "azure"


def test_models_for_the_backends_own_client(
    service: ServiceHandle, emulator: EmulatorHandle
) -> None:
    async def read() -> Any:
        client = active_backend().open_service(service.url, None, 30.0)
        try:
            listed = await client.raw.models.list()  # type: ignore[attr-defined]
            return getattr(listed, "data", listed)  # ogx-client: a oneOf wrapper with .data
        finally:
            await client.aclose()

    models = asyncio.run(read())
    assert [m.id for m in models] == [f"azure/{emulator.model}"]
    assert models[0].custom_metadata == {
        "model_type": "llm",
        "provider_id": "azure",
        "provider_resource_id": emulator.model,
    }
    if hasattr(type(models[0]), "model_type"):  # llama-stack-client reads custom_metadata
        assert models[0].model_type == "llm" and models[0].provider_id == "azure"


def test_info_and_readiness_in_lightspeed_fields(service: ServiceHandle) -> None:
    info = httpx.get(f"{service.url}/v1/info").json()
    assert info["name"] == "llama-entra"
    assert info["service_version"] and info["llama_stack_version"]
    assert info["backend"] == active_backend().name
    ready = httpx.get(f"{service.url}/readiness").json()
    # lightspeed-stack's ReadinessResponse fields and wording (src/app/endpoints/health.py).
    assert ready == {
        "ready": True,
        "reason": "All providers are healthy",
        "overall_status": "healthy",
        "impacts": [],
        "providers": [],
    }
    assert httpx.get(f"{service.url}/liveness").json() == {"alive": True}


def test_openai_routes_answer_openai_errors(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown_model:
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert unknown_model.value.code == "model_not_found"
    assert unknown_model.value.type == "invalid_request_error"
    assert "nope" in unknown_model.value.message
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        sdk.chat.completions.create(model="nope", messages=[])
    assert invalid.value.code == "invalid_request" and invalid.value.param == "messages"
    with pytest.raises(openai.NotFoundError) as unknown_route:
        sdk.embeddings.create(model="nope", input="hi")
    assert unknown_route.value.code == "unknown_url"
    assert "POST /v1/embeddings" in unknown_route.value.message
    assert "model" not in unknown_route.value.message.lower()


def test_lightspeed_routes_keep_lightspeed_errors(service: ServiceHandle) -> None:
    body = httpx.post(f"{service.url}/v1/query", json={"question": "hi"}).json()
    assert set(body) == {"detail"} and body["detail"][0]["type"] == "missing"
    both = httpx.get(f"{service.url}/v1/models", params={"model_type": "x" * 100})
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["query", "model_type"]
    assert both.json()["error"]["code"] == "invalid_request"


def test_responses_caller_mistakes_are_400_not_502(
    sdk: openai.OpenAI, emulator: EmulatorHandle
) -> None:
    model = f"azure/{emulator.model}"
    with pytest.raises(openai.BadRequestError) as orphan_output:
        sdk.responses.create(
            model=model,
            input=[{"type": "function_call_output", "call_id": "call_nobody", "output": "42"}],
        )
    assert orphan_output.value.status_code == 400
    assert orphan_output.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as unknown_tool:
        sdk.responses.create(model=model, input="hi", tools=[{"type": "no_such_tool"}])  # type: ignore[list-item]
    assert unknown_tool.value.status_code == 400
