"""Unit tests of the OGX backend's error translation (ogx_client's errors)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from ogx_client.exceptions import ApiException, NotFoundException, UnauthorizedException

from llama_entra.backends import active_backend
from llama_entra.backends.ogx import OgxClientAdapter, translate
from llama_entra.errors import (
    LlamaEntraError,
    NotFoundError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailableError,
)


def test_ogx_backend_is_active_with_its_header() -> None:
    backend = active_backend()
    assert (backend.name, backend.provider_data_header) == ("ogx", "X-OGX-Provider-Data")
    assert backend.server_command(Path("run.yaml"), 8321) == [
        sys.executable, "-m", "llama_entra.backends.ogx_server", "run.yaml", "--insecure",
        "--port", "8321",
    ]  # fmt: skip


def test_ogx_translate_unauthorized_keeps_401_and_the_body_message() -> None:
    body = json.dumps({"error": {"message": "Access token is missing or invalid"}})
    error = translate(UnauthorizedException(status=401, reason="Unauthorized", body=body))
    assert type(error) is UpstreamError
    assert (error.status, str(error)) == (401, "Access token is missing or invalid")


def test_ogx_translate_not_found_and_version_mismatch() -> None:
    missing = translate(NotFoundException(status=404, body=json.dumps({"detail": "no such"})))
    old = translate(ApiException(status=426, body=json.dumps({"error": {"message": "upgrade"}})))
    assert type(missing) is NotFoundError
    assert isinstance(old, UpstreamError)
    assert (old.status, str(old)) == (426, "upgrade")


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (httpx.ReadTimeout("slow"), UpstreamUnavailableError),
        (httpx.ConnectError("refused"), UpstreamConnectionError),
    ],
)
def test_ogx_translate_status_zero_tells_timeout_from_connection(
    cause: Exception, expected: type[Exception]
) -> None:
    try:
        try:
            raise cause
        except httpx.RequestError as exc:  # as ogx-client wraps every transport error
            raise ApiException(status=0, reason=str(exc)) from None
    except ApiException as wrapped:
        wrapped.__context__ = cause
        assert type(translate(wrapped)) is expected


async def test_ogx_adapter_error_hook_sees_the_cause_and_may_replace_the_error() -> None:
    async def create(**_: object) -> None:
        raise ConnectionRefusedError(111, "refused")  # what a lost store connection raises

    raw = SimpleNamespace(conversations=SimpleNamespace(create=create))
    adapter = OgxClientAdapter(active_backend(), raw, library=True)  # type: ignore[arg-type]
    seen: list[BaseException | None] = []

    def hook(error: LlamaEntraError) -> LlamaEntraError:
        seen.append(error.__cause__)
        return UpstreamUnavailableError("replaced")

    adapter.error_hook = hook
    with pytest.raises(UpstreamUnavailableError, match="replaced"):
        await adapter.create_conversation()
    assert isinstance(seen[0], ConnectionRefusedError)


async def test_ogx_adapter_service_mode_reads_newest_ids_and_returns_added_ids() -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    async def listed(conversation_id: str, **options: object) -> SimpleNamespace:
        calls.append((conversation_id, options))
        wrapped = SimpleNamespace(actual_instance=SimpleNamespace(id="msg_c"))  # a oneOf wrapper
        return SimpleNamespace(data=[wrapped, SimpleNamespace(id="msg_b")])  # newest first

    async def created(conversation_id: str, items: list[object]) -> SimpleNamespace:
        return SimpleNamespace(data=[SimpleNamespace(id=f"msg_{n}") for n in range(len(items))])

    raw = SimpleNamespace(items=SimpleNamespace(list=listed, create=created))
    adapter = OgxClientAdapter(active_backend(), raw, library=False)  # type: ignore[arg-type]
    assert adapter.strict_item_order
    assert await adapter.newest_item_ids("conv_x", 2) == ["msg_b", "msg_c"]
    assert calls == [("conv_x", {"order": "desc", "limit": 2})]
    added = await adapter.add_conversation_items("conv_x", [{"role": "user"}, {"role": "x"}])
    assert added == ["msg_0", "msg_1"]


def test_ogx_providers_build_clients_that_validate_streamed_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OGX's OpenAI mixin builds its clients by the name ``AsyncOpenAI`` in its module."""
    from ogx.providers.remote.inference.azure.azure import AzureInferenceAdapter
    from ogx.providers.remote.inference.azure.config import AzureConfig
    from ogx.providers.utils.inference import openai_mixin

    from llama_entra.backends.openai_chunks import ValidatingOpenAI, validate_chunks_of

    monkeypatch.setattr(openai_mixin, "AsyncOpenAI", openai_mixin.AsyncOpenAI)  # restored after
    assert validate_chunks_of(openai_mixin)
    assert not validate_chunks_of(openai_mixin)  # once
    config = AzureConfig(base_url="https://resource.example/openai/v1", api_key="static-key")
    adapter = AzureInferenceAdapter(config=config)
    object.__setattr__(adapter, "get_request_provider_data", lambda: None)  # no request here
    assert type(adapter.client) is ValidatingOpenAI
