"""End-to-end: what differs between backends is absorbed by the seam, on whichever is installed.

Runs on both backends (``make test`` and ``make test BACKEND=ogx``): a run config that lists
only ``inference`` still gives ``/v1/query`` its conversations through a real server, and a
server of another version is named once at start-up and in ``/readiness``, not as a 426 per
request.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.emulator import EmulatorHandle
from support.servers import run_uvicorn
from support.service import (
    ROOT,
    service_config,
    stack_environment,
    start_llama_stack,
    start_service,
)

pytestmark = pytest.mark.slow

_MISMATCH = "Client version 1.5.0 is not compatible with server version 9.9.0."


def test_inference_only_run_config_still_serves_query_history(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    run_config = yaml.safe_load((ROOT / "run-configs" / "azure.yaml").read_text())
    run_config["apis"] = ["inference"]
    run_config["providers"] = {"inference": run_config["providers"]["inference"]}
    path = tmp_path / "inference-only.yaml"
    path.write_text(yaml.safe_dump(run_config))
    env = stack_environment(emulator, tmp_path / "state")
    (tmp_path / "stack").mkdir()
    with start_llama_stack(
        service_config(tmp_path / "stack", emulator), env, run_config=path
    ) as stack:
        (tmp_path / "service").mkdir()
        config = service_config(
            tmp_path / "service", emulator, mode="service", llama_stack_url=stack.url
        )
        with start_service(config, env) as service:
            first = httpx.post(f"{service.url}/v1/query", json={"query": "one"}, timeout=60)
            assert first.status_code == 200, first.text
            conversation = first.json()["conversation_id"]
            second = httpx.post(
                f"{service.url}/v1/query",
                json={"query": "two", "conversation_id": conversation},
                timeout=60,
            )
            assert second.status_code == 200, second.text
            assert second.json()["conversation_id"] == conversation


async def _refuse(request: Request) -> JSONResponse:
    return JSONResponse({"error": {"message": _MISMATCH}}, status_code=426)


def test_server_of_another_version_is_named_at_start_up_and_in_readiness(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    app = Starlette(routes=[Route("/{path:path}", _refuse, methods=["GET", "POST", "DELETE"])])
    with run_uvicorn(app) as url:
        config = service_config(tmp_path, emulator, mode="service", llama_stack_url=url)
        with start_service(config, stack_environment(emulator, tmp_path / "state")) as service:
            ready = httpx.get(f"{service.url}/readiness", timeout=10)
            assert ready.status_code == 503
            assert ready.json()["detail"]["cause"] == _MISMATCH
            assert httpx.get(f"{service.url}/liveness", timeout=10).status_code == 200
            assert f"the Llama Stack server at {url} refuses" in service.logs()
            assert _MISMATCH in service.logs()
