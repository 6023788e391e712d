"""The image's three roles, started as Kubernetes would start them, and an OpenShift uid.

Each role runs in a buildah container of the image built for this session (``conftest.py``;
``support/container.py`` says how each runtime feature is reproduced and what that proves),
with its command, environment and volumes from the manifest kustomize renders from ``deploy/``
(``support/roles.py``), the emulator standing in for Entra ID and Azure OpenAI and loopback
ports for Services.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from support.container import Buildah
from support.emulator import EmulatorHandle
from support.image import BuiltImage, record
from support.layers import scan_text
from support.roles import (
    KEY,
    StreamReader,
    assert_read_only_except_volumes,
    assert_stops,
    run_healthcheck,
    running_role,
    stage_role,
)
from support.service import free_port

pytestmark = pytest.mark.image

_UID = 10001
_OPENSHIFT_UID = 1000790000  # from an OpenShift project's range; not in the image's passwd
_DRAIN_SECONDS = 10  # shutdown_timeout_seconds' default (serve and proxy)
_GRACE_SECONDS = 30  # the pod's default terminationGracePeriodSeconds: the server's bound


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


def test_library_mode_serves_query_and_stream_as_10001_on_a_read_only_root_and_stops_on_sigterm(
    image: BuiltImage, buildah: Buildah, fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """deploy/library-mode's container: the image's user, read-only root, the data volume.

    Query and stream through Llama Stack in-process; the main process is uid 10001 gid 0; the
    HEALTHCHECK passes, and fails when nothing listens; root cannot write any path of the
    image; the stores land in the data volume, and no token or secret in any volume; SIGTERM
    stops it (exit 0) within the drain limit.
    """
    port = free_port()
    role = stage_role(
        "library-mode",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_HOST": "127.0.0.1", "LLAMA_ENTRA_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    with running_role(buildah, image, role, tmp_path, f"{url}/readiness", label="serve") as (
        container,
        process,
    ):
        main = process.main_process()
        assert (main.uids().real, main.gids().real) == (_UID, 0)
        answer = httpx.post(
            f"{url}/v1/query", json={"query": "in the image"}, headers=auth, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"] == "You said: in the image"
        assert httpx.post(f"{url}/v1/query", json={"query": "x"}, timeout=30).status_code == 401
        with httpx.stream(
            "POST",
            f"{url}/v1/streaming_query",
            json={"query": "streamed"},
            headers=auth,
            timeout=60,
        ) as response:
            assert response.status_code == 200
            events = _events(response)
        assert events[0]["event"] == "start" and events[-1]["event"] == "end"
        tokens = "".join(e["data"]["token"] for e in events if e["event"] == "token")
        assert tokens == "You said: streamed"
        assert run_healthcheck(container, image, f"{url}/liveness").returncode == 0
        closed = run_healthcheck(container, image, f"http://127.0.0.1:{free_port()}/liveness")
        assert closed.returncode != 0
        assert_read_only_except_volumes(container, role, f"{_UID}:0")
        data = next(Path(h) for h, t in role.volumes.items() if t == "/app/data")
        stores = {p.name: p.stat().st_uid for p in data.iterdir() if p.suffix == ".db"}
        assert stores and set(stores.values()) == {_UID}, stores
        secret = {"client secret": fresh_emulator.client_secret.encode()}
        writable = [Path(h) for h, t in role.volumes.items() if not t.endswith(":ro")]
        written = [p for volume in writable for p in volume.rglob("*") if p.is_file()]
        for path in written:  # tokens stay in memory
            assert scan_text(path.read_bytes(), secret) == [], path.name

        assert_stops(process, _DRAIN_SECONDS, "serve", image.backend)


def test_llama_stack_server_role_lists_the_model_without_any_credential(
    image: BuiltImage, buildah: Buildah, fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """deploy/service-mode's llama-stack container: the entrypoint, no Entra secret at all.

    The server starts on a read-only root, lists the model, never asks Entra for a token; the
    HEALTHCHECK with the role's URL passes; SIGTERM shuts it down cleanly within the pod's
    grace period.
    """
    port = free_port()
    role = stage_role(
        "service-mode",
        "llama-stack",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_STACK_HOST": "127.0.0.1", "LLAMA_STACK_PORT": str(port)},
    )
    assert role.command[0] == "scripts/llama-stack-entrypoint.sh"
    assert not [n for n in role.env if n.startswith(("AZURE_CLIENT", "AZURE_TENANT"))]
    url = f"http://127.0.0.1:{port}"
    with running_role(buildah, image, role, tmp_path, f"{url}/v1/health", label="llama-stack") as (
        container,
        process,
    ):
        models = httpx.get(f"{url}/v1/models", timeout=30)
        assert models.status_code == 200, models.text
        assert fresh_emulator.model in models.text
        assert fresh_emulator.counters()["token_requests"] == 0
        assert run_healthcheck(container, image, f"{url}/v1/health").returncode == 0
        main = process.main_process()
        assert (main.uids().real, main.gids().real) == (_UID, 0)
        code, seconds = process.terminate(timeout=_GRACE_SECONDS + 20)
    record(f"{image.backend}: llama-stack stopped on SIGTERM in", f"{seconds:.1f} s")
    assert seconds <= _GRACE_SECONDS
    # The backend's own server (uvicorn) shuts down cleanly, then re-raises SIGTERM, so the
    # process ends killed by it: exit 143 under podman or docker; buildah says "terminated".
    logs = process.logs()
    assert "Application shutdown complete" in logs, logs[-3000:]
    assert code == 0 or "subprocess exited on terminated" in logs, (code, logs[-3000:])


def test_proxy_role_relays_a_chat_completion_with_an_entra_token(
    image: BuiltImage, buildah: Buildah, fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """deploy/sidecar's llama-entra container: the proxy on a read-only root.

    An OpenAI client with a dummy key gets a completion; the proxy fetched one token; the
    HEALTHCHECK with ``/healthz`` passes; a SIGTERM during a stream lets the stream finish and
    the proxy exit 0 within the drain limit.
    """
    port = free_port()
    role = stage_role(
        "sidecar",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_PROXY_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    with running_role(buildah, image, role, tmp_path, f"{url}/healthz", label="proxy") as (
        container,
        process,
    ):
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
        try:
            reply = client.chat.completions.create(
                model=fresh_emulator.model,
                messages=[{"role": "user", "content": "through the image"}],
            )
        finally:
            client.close()
        assert reply.choices[0].message.content == "You said: through the image"
        assert fresh_emulator.counters()["token_requests"] == 1
        assert run_healthcheck(container, image, f"{url}/healthz").returncode == 0
        fresh_emulator.set_stream_delay(0.3)
        reader = StreamReader(
            f"{url}/chat/completions",
            {
                "model": fresh_emulator.model,
                "stream": True,
                "messages": [{"role": "user", "content": "one two three four five six"}],
            },
        )
        assert reader.first.wait(30), f"no chunk: {reader.lines}"
        assert_stops(process, _DRAIN_SECONDS, "proxy", image.backend)
        reader.join(30)
    assert reader.lines[-1] == "data: [DONE]", reader.lines[-3:]


def test_an_arbitrary_uid_in_group_0_serves_and_writes_the_images_data_directory(
    image: BuiltImage, buildah: Buildah, fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """OpenShift's restricted policy: a uid the image never heard of, group 0, no data volume.

    The service starts, answers, and writes its stores into the image's own ``/app/data``
    (owned by 10001, group 0, mode 0770): only group 0 lets this uid in.
    """
    port = free_port()
    role = stage_role(
        "library-mode",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_HOST": "127.0.0.1", "LLAMA_ENTRA_PORT": str(port)},
    )
    role.volumes = {h: t for h, t in role.volumes.items() if t.endswith(":ro")}  # no emptyDir
    url = f"http://127.0.0.1:{port}"
    user = f"{_OPENSHIFT_UID}:0"
    with running_role(
        buildah,
        image,
        role,
        tmp_path,
        f"{url}/readiness",
        label="openshift-uid",
        user=user,
        read_only=False,
    ) as (container, process):
        main = process.main_process()
        assert (main.uids().real, main.gids().real) == (_OPENSHIFT_UID, 0)
        answer = httpx.post(
            f"{url}/v1/query",
            json={"query": "any uid"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        data = container.root() / "app" / "data"
        stores = {p.name: p.stat().st_uid for p in data.glob("*.db")}
        assert stores and set(stores.values()) == {_OPENSHIFT_UID}, stores
        assert run_healthcheck(container, image, f"{url}/liveness", user=user).returncode == 0
        assert_stops(process, _DRAIN_SECONDS, "serve (arbitrary uid)", image.backend)
