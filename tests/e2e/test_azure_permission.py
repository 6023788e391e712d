"""End-to-end: an identity without the Azure OpenAI role, in library and service mode.

The emulator takes the role away from the demo client's principal, as Azure does when nobody
assigned "Cognitive Services OpenAI User": every call is 401 ``PermissionDenied`` whatever the
token. The service must neither refresh the token nor retry (the emulator's counters show it),
answer 502 naming the role and the principal's object id, list it in ``/readiness`` and count
it in ``/metrics`` until a call succeeds again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.emulator import EmulatorHandle
from support.service import (
    ServiceHandle,
    start_service_mode,
)

pytestmark = pytest.mark.slow

_ROLE = "Cognitive Services OpenAI User"
_JWT = re.compile(r"ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.")


@pytest.fixture(scope="module")
def service_mode(
    emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceHandle]:
    """llama-entra in service mode in front of a Llama Stack server (the entrypoint's)."""
    directory = tmp_path_factory.mktemp("permission-service-mode")
    with start_service_mode(emulator, directory) as handle:
        yield handle


@pytest.fixture(params=["library", "service"])
def mode_service(request: pytest.FixtureRequest) -> ServiceHandle:
    """The shared library-mode service, or the module's service-mode one."""
    name = "service" if request.param == "library" else "service_mode"
    handle: ServiceHandle = request.getfixturevalue(name)
    return handle


def _query(service: ServiceHandle, text: str) -> httpx.Response:
    # No topic summary: it is a second Azure call, made after the answer, that would land in
    # the counts of whatever the test measures next.
    body = {"query": text, "generate_topic_summary": False}
    return httpx.post(f"{service.url}/v1/query", json=body, timeout=60)


def _denied_count(service: ServiceHandle) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "llama_entra_azure_permission_denied":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("llama_entra_azure_permission_denied is not exported")


def test_missing_role_is_502_naming_role_and_principal_without_any_token_refresh(
    mode_service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    service, emulator = mode_service, fresh_emulator
    assert _query(service, "warm the token").status_code == 200
    denied_before = _denied_count(service)
    emulator.reset()
    emulator.set_role(emulator.client_object_id, assigned=False)
    try:
        response = _query(service, "no role")
        assert response.status_code == 502, response.text
        detail = response.json()["detail"]
        assert detail["response"] == "Azure OpenAI denied the identity access"
        assert _ROLE in detail["cause"]
        assert emulator.client_object_id in detail["cause"]

        client = openai.OpenAI(base_url=f"{service.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model=f"azure/{emulator.model}", messages=[{"role": "user", "content": "chat"}]
            )
        assert caught.value.status_code == 502
        assert caught.value.code == "PermissionDenied"
        assert emulator.client_object_id in str(caught.value.message)

        ready = httpx.get(f"{service.url}/readiness", timeout=10)
        assert ready.status_code == 200
        (azure,) = ready.json()["providers"]
        assert azure["provider_id"] == "azure"
        assert emulator.client_object_id in azure["message"]
        assert _denied_count(service) == denied_before + 2

        # One Azure call per caller request, and no token asked of Entra for any of them.
        counters = emulator.counters()
        assert counters["token_requests"] == 0
        assert emulator.azure_calls(emulator.model)["permission_denied"] == 2
    finally:
        emulator.set_role(emulator.client_object_id, assigned=True)
    assert _query(service, "role assigned").json()["response"] == "You said: role assigned"
    assert httpx.get(f"{service.url}/readiness", timeout=10).json()["providers"] == []


def test_missing_role_on_a_stream_is_a_plain_502_before_any_chunk(
    mode_service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    service, emulator = mode_service, fresh_emulator
    assert _query(service, "warm the token").status_code == 200
    emulator.reset()
    emulator.set_role(emulator.client_object_id, assigned=False)
    try:
        response = httpx.post(
            f"{service.url}/v1/streaming_query", json={"query": "stream"}, timeout=60
        )
        assert response.status_code == 502, response.text
        detail = response.json()["detail"]
        assert detail["response"] == "Azure OpenAI denied the identity access"
        assert _ROLE in detail["cause"]
        assert emulator.client_object_id in detail["cause"]
        assert emulator.counters()["token_requests"] == 0
        assert emulator.azure_calls(emulator.model)["permission_denied"] == 1
    finally:
        emulator.set_role(emulator.client_object_id, assigned=True)


def test_the_refusal_is_logged_naming_the_principal_and_no_token(
    service: ServiceHandle, fresh_emulator: EmulatorHandle
) -> None:
    assert _query(service, "warm the token").status_code == 200
    fresh_emulator.set_role(fresh_emulator.client_object_id, assigned=False)
    try:
        assert _query(service, "log it").status_code == 502
    finally:
        fresh_emulator.set_role(fresh_emulator.client_object_id, assigned=True)
    logs = service.logs()
    assert f"principal {fresh_emulator.client_object_id}" in logs
    assert _JWT.search(logs) is None
