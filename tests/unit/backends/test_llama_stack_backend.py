"""Unit tests of the llama-stack backend's error translation (llama_stack_client's errors)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import llama_stack_client
import pytest

from llama_entra.backends import active_backend
from llama_entra.backends.llama_stack import LlamaStackClientAdapter, translate
from llama_entra.errors import (
    LlamaEntraError,
    NotFoundError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamUnavailableError,
)

_REQUEST = httpx.Request("POST", "http://stack.test/v1/chat/completions")


def _status_error(status: int, body: object) -> llama_stack_client.APIStatusError:
    response = httpx.Response(status, request=_REQUEST, json=body)
    return llama_stack_client.APIStatusError("failed", response=response, body=body)


def test_llama_stack_backend_is_active_with_its_header() -> None:
    backend = active_backend()
    assert (backend.name, backend.provider_data_header) == (
        "llama-stack",
        "X-LlamaStack-Provider-Data",
    )
    assert backend.server_command(Path("run.yaml"), 8321) == [
        sys.executable, "-m", "llama_entra.backends.llama_stack_server", "run.yaml",
        "--port", "8321",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "expected"), [(401, UpstreamError), (404, NotFoundError), (426, UpstreamError)]
)
def test_llama_stack_translate_keeps_status_and_body_message(
    status: int, expected: type[Exception]
) -> None:
    error = translate(_status_error(status, {"detail": "Client version 9.9 is not compatible"}))
    assert type(error) is expected
    assert "not compatible" in str(error)
    if isinstance(error, UpstreamError):
        assert error.status == status


def test_llama_stack_translate_timeout_and_connection_apart() -> None:
    timeout = translate(llama_stack_client.APITimeoutError(request=_REQUEST))
    dropped = translate(llama_stack_client.APIConnectionError(request=_REQUEST))
    assert type(timeout) is UpstreamUnavailableError
    assert type(dropped) is UpstreamConnectionError


async def test_llama_stack_adapter_error_hook_sees_the_cause_and_may_replace_the_error() -> None:
    async def create(**_: object) -> None:
        raise ConnectionRefusedError(111, "refused")  # what a lost store connection raises

    raw = SimpleNamespace(conversations=SimpleNamespace(create=create))
    adapter = LlamaStackClientAdapter(active_backend(), raw, library=True)  # type: ignore[arg-type]
    seen: list[BaseException | None] = []

    def hook(error: LlamaEntraError) -> LlamaEntraError:
        seen.append(error.__cause__)
        return UpstreamUnavailableError("replaced")

    adapter.error_hook = hook
    with pytest.raises(UpstreamUnavailableError, match="replaced"):
        await adapter.create_conversation()
    assert isinstance(seen[0], ConnectionRefusedError)
