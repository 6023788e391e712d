"""Property-based fuzzing of the service's own OpenAPI document with schemathesis.

Schemathesis generates requests from ``/openapi.json`` (valid and invalid bodies) for every
operation of a real library-mode service wired to the emulator, and checks that none is
answered with a 5xx and every answer matches the documented schema.
"""

from __future__ import annotations

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from support.service import ServiceHandle

pytestmark = pytest.mark.slow


def test_no_server_error_and_documented_responses(service: ServiceHandle) -> None:
    # Driven by hand rather than schemathesis' pytest plugin, which does not support pytest 9.
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    # One session for every call, closed at the end: a streamed answer schemathesis does not
    # read to its end otherwise leaves its connection to the garbage collector (an unclosed
    # socket, which pytest turns into a failure at the end of the run).
    with requests.Session() as session:
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
            def fuzz(case: schemathesis.Case) -> None:
                case.call_and_validate(
                    base_url=service.url,
                    session=session,
                    checks=[not_a_server_error, response_schema_conformance],
                    timeout=60,
                )

            fuzz()
    answered = httpx.get(f"{service.url}/metrics", timeout=10).text
    counted = {
        sample.labels["route"]
        for family in text_string_to_metric_families(answered)
        for sample in family.samples
        if sample.name == "llama_entra_requests_total"
    }
    assert {operation.path for operation in operations} <= counted  # every operation was called
