"""The container image, built and run: its three roles, started as Kubernetes would start them.

Built once per session (``conftest.py``) with buildah on the local Debian base for this run's
backend, then run with buildah (``support/container.py`` says how each runtime feature is
reproduced and what that proves). Each role takes its command, environment and volumes from
the manifest kustomize renders from ``deploy/``, with the emulator standing in for Entra ID and
Azure OpenAI (its CA mounted into the container) and loopback ports for Services.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import trustme

from support.container import Buildah, Container, ContainerProcess
from support.deploy import DEPLOY, config_maps, container_env, containers, render
from support.emulator import EmulatorHandle
from support.image import BuiltImage, record
from support.layers import Finding, export_layers, scan_layer, scan_text
from support.service import free_port

pytestmark = pytest.mark.image

_KEY = "image-test-caller-key"
_CA_DIR = "/etc/emulator-ca"
_UID = 10001
_OPENSHIFT_UID = 1000790000  # from an OpenShift project's range; not in the image's passwd
_DRAIN_SECONDS = 10  # shutdown_timeout_seconds' default (serve and proxy)
_GRACE_SECONDS = 30  # the pod's default terminationGracePeriodSeconds: the server's bound
_START_DEADLINE = 180.0
_SECRET_NAMES = re.compile(r"SECRET|PASSWORD|API_KEY|CREDENTIAL|(^|_)TOKEN($|_(?!FILE))", re.I)
_BUILD_SECRET_VARIABLES = {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "EXTRA_CA_BUNDLE"}
# What the scan flags in third-party packages, published on PyPI inside them: never ours.
_UPSTREAM_FILES = {
    "JWT": re.compile(r"site-packages/pyjwt-[^/]+\.dist-info/METADATA$"),  # PyJWT's README
    "PEM private key": re.compile(r"site-packages/tornado/test/test\.key$"),  # tornado's tests
}


@dataclass
class Role:
    """One container of a rendered manifest, staged for buildah: command, env and volumes."""

    command: list[str]
    env: dict[str, str]
    volumes: dict[str, str]


def _stage(
    kustomization: str,
    name: str,
    stage: Path,
    emulator: EmulatorHandle,
    overrides: Mapping[str, str],
) -> Role:
    """Command, env and volumes of container ``name``, with the emulator's values swapped in.

    ConfigMaps and Secrets become read-only host directories (Secret files with the manifest's
    ``defaultMode``, owned by root: readable only through group 0); emptyDirs become empty
    directories with mode 0777, as the kubelet makes them.
    """
    docs = render(DEPLOY / kustomization)
    pod, item = next((p, i) for p, i in containers(docs) if i["name"] == name)
    secrets = {
        "llama-entra-entra": {
            "AZURE_TENANT_ID": emulator.tenant_id,
            "AZURE_CLIENT_ID": emulator.client_id,
            "AZURE_CLIENT_SECRET": emulator.client_secret,
        }
    }
    secret_files = {"llama-entra-callers": {"keys": f"image-test:{_KEY}\n"}}
    volumes_by_name = {volume["name"]: volume for volume in pod["volumes"]}
    maps = config_maps(docs)
    stage.mkdir()
    mounts: dict[str, str] = {}
    for mount in item.get("volumeMounts", []):
        volume = volumes_by_name[mount["name"]]
        host = stage / mount["name"]
        if "configMap" in volume:
            _write_files(host, maps[volume["configMap"]["name"]], 0o644)
        elif "secret" in volume:
            files = secret_files.get(volume["secret"]["secretName"])
            if files is None:
                assert volume["secret"].get("optional"), f"no test data for {volume}"
                continue
            _write_files(host, files, volume["secret"].get("defaultMode", 0o644))
        elif "emptyDir" in volume:
            host.mkdir()
            host.chmod(0o777)
        else:
            raise AssertionError(f"volume kind not staged here: {volume}")
        mounts[str(host)] = mount["mountPath"] + (":ro" if mount.get("readOnly") else "")
    _write_files(stage / "emulator-ca", {"ca.pem": emulator.ca_path.read_text()}, 0o644)
    mounts[str(stage / "emulator-ca")] = f"{_CA_DIR}:ro"
    azure = {
        "AZURE_API_BASE": emulator.azure_base_url,
        "AZURE_MODEL": emulator.model,
        "AZURE_AUTHORITY_HOST": emulator.url,
        "AZURE_CA_BUNDLE": f"{_CA_DIR}/ca.pem",
    }
    env = container_env(docs, item, secrets) | azure | dict(overrides)
    return Role(list(item["command"]), env, mounts)


def _write_files(directory: Path, files: Mapping[str, str], mode: int) -> None:
    directory.mkdir()
    directory.chmod(0o755)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(mode)


def _wait_until_up(url: str, process: ContainerProcess) -> float:
    """Seconds until ``url`` answers 200; fails with the container's log if it never does."""
    started = time.monotonic()
    while time.monotonic() - started < _START_DEADLINE:
        if process.process.poll() is not None:
            pytest.fail(
                f"the container exited with {process.process.returncode}:\n{process.logs()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"{url} not up within {_START_DEADLINE} s:\n{process.logs()[-4000:]}")


@contextlib.contextmanager
def _running(
    buildah: Buildah,
    image: BuiltImage,
    role: Role,
    workdir: Path,
    probe: str,
    *,
    label: str,
    user: str | None = None,
    read_only: bool = True,
) -> Iterator[tuple[Container, ContainerProcess]]:
    """The role running in a fresh container until the block exits, then removed."""
    name = f"llama-entra-test-{label}-{uuid.uuid4().hex[:8]}"
    container = Container(buildah, image.name, name, workdir)
    try:
        container.set_env(role.env)
        if read_only:
            container.make_root_read_only(role.volumes)
        process = container.start(role.command, log_name=name, user=user, volumes=role.volumes)
        seconds = _wait_until_up(probe, process)
        record(f"{image.backend}: {label} up in", f"{seconds:.1f} s")
        yield container, process
    finally:
        container.close()


def _healthcheck(
    container: Container, image: BuiltImage, url: str, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The image's own HEALTHCHECK command, run in the container with HEALTHCHECK_URL=url."""
    test: list[str] = image.config["Healthcheck"]["Test"]
    assert test[0] == "CMD", test  # exec form: runs without a shell
    return container.run(test[1:], user=user, env={"HEALTHCHECK_URL": url}, timeout=30)


def _assert_stops(process: ContainerProcess, limit: float, label: str, backend: str) -> None:
    code, seconds = process.terminate(timeout=limit + 20)
    record(f"{backend}: {label} stopped on SIGTERM in", f"{seconds:.1f} s (exit {code})")
    assert code == 0, f"{label} exited with {code} on SIGTERM:\n{process.logs()[-3000:]}"
    assert seconds <= limit, f"{label} took {seconds:.1f} s to stop (limit {limit} s)"


def _assert_read_only_except_volumes(container: Container, role: Role, user: str) -> None:
    """As root, every image path refuses writes; as the role's user, writable volumes take them."""
    for path in ("/probe", "/app/probe", "/app/.venv/probe", "/etc/probe", "/usr/bin/probe"):
        done = container.run(["touch", path], user="0:0", volumes=role.volumes)
        assert done.returncode != 0, f"root could write {path}"
        assert "Read-only file system" in done.stderr + done.stdout, done.stderr
    for target in role.volumes.values():
        if not target.endswith(":ro"):
            done = container.run(["touch", f"{target}/probe"], user=user, volumes=role.volumes)
            assert done.returncode == 0, f"{target} not writable: {done.stderr}"


class _StreamReader(threading.Thread):
    """A streaming POST read in the background, line by line; an error ends the lines."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        super().__init__()
        self.url = url
        self.body = body
        self.lines: list[str] = []
        self.first = threading.Event()
        self.start()

    def run(self) -> None:
        """Read until the stream ends or breaks."""
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=60) as response:
                for line in response.iter_lines():
                    if line:
                        self.lines.append(line)
                        self.first.set()
        except httpx.HTTPError as exc:
            self.lines.append(f"error: {exc!r}")
        finally:
            self.first.set()


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]


# --- the image itself ---------------------------------------------------------------------


def test_image_config_runs_as_10001_in_group_0_with_healthcheck_and_no_secret_variable(
    image: BuiltImage, buildah: Buildah
) -> None:
    """The config a runtime reads: user, default command, HEALTHCHECK, labels, env names."""
    config = image.config
    assert config["User"] == str(_UID)
    assert config["Cmd"] == ["llama-entra", "serve", "-c", "run-configs/llama-entra-azure.yaml"]
    assert config["Healthcheck"]["Test"][:2] == ["CMD", "python"]  # kept: Docker format
    assert config["Labels"]["io.llama-entra.backend"] == image.backend
    names = {entry.partition("=")[0] for entry in config["Env"]}
    assert not {n for n in names if _SECRET_NAMES.search(n) and n != "TIKTOKEN_CACHE_DIR"}
    assert not names & _BUILD_SECRET_VARIABLES
    size = json.loads(buildah("images", "--json", image.name))[0]["size"]
    record(f"{image.backend}: image size (buildah images)", size)


def test_image_holds_the_backend_on_python_3_12_or_newer_and_no_build_tools(
    image: BuiltImage, buildah: Buildah, tmp_path: Path
) -> None:
    """What is installed: the backend named by the label; no dev tools, no `oci`, no build."""
    script = """
import importlib.util, json, os, sys
from llama_entra.backends import active_backend
print(json.dumps({
    "python": sys.version_info >= (3, 12),
    "backend": active_backend().name,
    "bin": sorted(os.listdir("/app/.venv/bin")),
    "oci": importlib.util.find_spec("oci") is not None,
    "build leftovers": [p for p in ("/opt/uv", "/src") if os.path.exists(p)],
}))
"""
    name = f"llama-entra-test-probe-{uuid.uuid4().hex[:8]}"
    container = Container(buildah, image.name, name, tmp_path)
    try:
        done = container.run(["python", "-c", script])
        user = (
            container.run(["id", "-u"]).stdout.strip(),
            container.run(["id", "-g"]).stdout.strip(),
        )
    finally:
        container.close()
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["python"] is True and found["backend"] == image.backend
    assert "llama-entra" in found["bin"]
    assert not {"pytest", "mypy", "ruff", "hadolint", "mkdocs"} & set(found["bin"])
    assert found["oci"] is False  # Oracle's SDK, needed by no provider the image runs
    assert found["build leftovers"] == []  # uv and the sources stay in the build stage
    assert user == (str(_UID), "0")  # without --user: the image's USER, group 0


# --- secrets ------------------------------------------------------------------------------


def _pem_bodies(text: bytes) -> dict[bytes, bytes]:
    """Each PEM certificate's last full base64 line (in its signature), by its whole body.

    Early lines hold the issuer's name, which two generations of one CA share.
    """
    found: dict[bytes, bytes] = {}
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----\s+(.+?)-----END", text, re.S):
        lines = block.split()
        found[b"".join(lines)] = lines[-2] if len(lines) > 2 else lines[0]
    return found


def _needles(image: BuiltImage, system_bundle: bytes) -> dict[str, bytes]:
    """Values that must be in no layer: CAs only the build secret had, secrets of this host."""
    image_cas = _pem_bodies(system_bundle)
    extra = {
        body: line
        for body, line in _pem_bodies(image.secret_bundle.read_bytes()).items()
        if body not in image_cas
    }
    canary = next(iter(_pem_bodies(image.canary_pem)))
    assert canary in extra  # the scan looks for the canary at least
    assert not [line for line in extra.values() if line in system_bundle]
    needles = {f"build-secret CA #{n}": line for n, line in enumerate(extra.values())}
    for name, value in os.environ.items():
        if _SECRET_NAMES.search(name) and len(value) >= 8:
            needles[f"host variable {name}"] = value.encode()
        if name.lower().endswith("_proxy") and (password := urlsplit(value).password):
            needles[f"password in {name}"] = password.encode()
    return needles


def _ours(finding: Finding) -> bool:
    rule = _UPSTREAM_FILES.get(finding.what)
    return rule is None or not rule.search(finding.path)


def test_no_layer_or_history_entry_holds_a_secret(
    image: BuiltImage, buildah: Buildah, tmp_path: Path
) -> None:
    """Every file of every layer, read whole: no build-secret CA, host secret, key or token.

    The CA bundle given as the build secret held the host's CAs and a canary CA made for this
    session; any of its CAs that the image's own bundle lacks (the canary, a proxy's CA) found
    in a layer means the secret leaked. Plus: no PEM private key, no JWT, no credential file,
    no ``/run/secrets``; and the image config and history (what ``docker inspect`` and
    ``docker history`` show) name none of them.
    """
    probe = Container(buildah, image.name, f"llama-entra-test-ca-{uuid.uuid4().hex[:8]}", tmp_path)
    try:
        system_bundle = probe.run(["cat", "/etc/ssl/certs/ca-certificates.crt"]).stdout.encode()
    finally:
        probe.close()
    assert b"BEGIN CERTIFICATE" in system_bundle
    needles = _needles(image, system_bundle)
    started = time.monotonic()
    (tmp_path / "export").mkdir()
    archive, layers = export_layers(buildah, image.name, tmp_path / "export")
    record(
        f"{image.backend}: image size (OCI archive, compressed layers)",
        f"{archive.stat().st_size / 1e6:.0f} MB in {len(layers)} layers",
    )
    files = 0
    findings: list[Finding] = []
    for layer in layers:
        count, found = scan_layer(layer, needles)
        files += count
        findings += found
    record(
        f"{image.backend}: layer export and scan",
        f"{files} files, {len(needles)} needles, {time.monotonic() - started:.0f} s",
    )
    assert files > 1000, "the scan read the layers"
    assert [f for f in findings if _ours(f)] == []
    inspect = json.dumps(image.inspect)  # config (Env, Labels, Cmd) and history
    assert "created_by" in inspect
    assert scan_text(inspect.encode(), needles) == []
    assert "BEGIN CERTIFICATE" not in inspect


def test_the_layer_scan_finds_each_kind_of_secret(tmp_path: Path) -> None:
    """The scan is not blind: a layer holding each kind of secret gives one finding per kind."""
    ca = trustme.CA()
    key = ca.issue_cert("example.test").private_key_pem.bytes()
    canary = next(iter(_pem_bodies(ca.cert_pem.bytes()).values()))
    segment = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
    token = f"{segment}.{segment}.c2lnbmF0dXJlc2lnbmF0dXJl".encode()
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        for name, data in {
            "etc/ssl/leaked.pem": ca.cert_pem.bytes(),
            "app/key.pem": key,
            "app/data/token.txt": token,
            "run/secrets/ca-bundle": b"x",
            "root/.netrc": b"machine x",
            "app/clean.txt": b"nothing here",
        }.items():
            _add(tar, name, data)
    count, findings = scan_layer(layer, {"canary": canary})
    assert count == 6
    assert {(f.path, f.what) for f in findings} == {
        ("etc/ssl/leaked.pem", "canary"),
        ("app/key.pem", "PEM private key"),
        ("app/data/token.txt", "JWT"),
        ("run/secrets/ca-bundle", "credential file"),
        ("root/.netrc", "credential file"),
    }


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# --- the three roles ----------------------------------------------------------------------


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
    role = _stage(
        "library-mode",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_HOST": "127.0.0.1", "LLAMA_ENTRA_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {_KEY}"}
    with _running(buildah, image, role, tmp_path, f"{url}/readiness", label="serve") as (
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
        assert _healthcheck(container, image, f"{url}/liveness").returncode == 0
        closed = _healthcheck(container, image, f"http://127.0.0.1:{free_port()}/liveness")
        assert closed.returncode != 0
        _assert_read_only_except_volumes(container, role, f"{_UID}:0")
        data = next(Path(h) for h, t in role.volumes.items() if t == "/app/data")
        stores = {p.name: p.stat().st_uid for p in data.iterdir() if p.suffix == ".db"}
        assert stores and set(stores.values()) == {_UID}, stores
        secret = {"client secret": fresh_emulator.client_secret.encode()}
        writable = [Path(h) for h, t in role.volumes.items() if not t.endswith(":ro")]
        written = [p for volume in writable for p in volume.rglob("*") if p.is_file()]
        for path in written:  # tokens stay in memory
            assert scan_text(path.read_bytes(), secret) == [], path.name

        _assert_stops(process, _DRAIN_SECONDS, "serve", image.backend)


def test_llama_stack_server_role_lists_the_model_without_any_credential(
    image: BuiltImage, buildah: Buildah, fresh_emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """deploy/service-mode's llama-stack container: the entrypoint, no Entra secret at all.

    The server starts on a read-only root, lists the model, never asks Entra for a token; the
    HEALTHCHECK with the role's URL passes; SIGTERM shuts it down cleanly within the pod's
    grace period.
    """
    port = free_port()
    role = _stage(
        "service-mode",
        "llama-stack",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_STACK_HOST": "127.0.0.1", "LLAMA_STACK_PORT": str(port)},
    )
    assert role.command[0] == "scripts/llama-stack-entrypoint.sh"
    assert not [n for n in role.env if n.startswith(("AZURE_CLIENT", "AZURE_TENANT"))]
    url = f"http://127.0.0.1:{port}"
    with _running(buildah, image, role, tmp_path, f"{url}/v1/health", label="llama-stack") as (
        container,
        process,
    ):
        models = httpx.get(f"{url}/v1/models", timeout=30)
        assert models.status_code == 200, models.text
        assert fresh_emulator.model in models.text
        assert fresh_emulator.counters()["token_requests"] == 0
        assert _healthcheck(container, image, f"{url}/v1/health").returncode == 0
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
    role = _stage(
        "sidecar",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_PROXY_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    with _running(buildah, image, role, tmp_path, f"{url}/healthz", label="proxy") as (
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
        assert _healthcheck(container, image, f"{url}/healthz").returncode == 0
        fresh_emulator.set_stream_delay(0.3)
        reader = _StreamReader(
            f"{url}/chat/completions",
            {
                "model": fresh_emulator.model,
                "stream": True,
                "messages": [{"role": "user", "content": "one two three four five six"}],
            },
        )
        assert reader.first.wait(30), f"no chunk: {reader.lines}"
        _assert_stops(process, _DRAIN_SECONDS, "proxy", image.backend)
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
    role = _stage(
        "library-mode",
        "llama-entra",
        tmp_path / "pod",
        fresh_emulator,
        {"LLAMA_ENTRA_HOST": "127.0.0.1", "LLAMA_ENTRA_PORT": str(port)},
    )
    role.volumes = {h: t for h, t in role.volumes.items() if t.endswith(":ro")}  # no emptyDir
    url = f"http://127.0.0.1:{port}"
    user = f"{_OPENSHIFT_UID}:0"
    with _running(
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
            headers={"Authorization": f"Bearer {_KEY}"},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        data = container.root() / "app" / "data"
        stores = {p.name: p.stat().st_uid for p in data.glob("*.db")}
        assert stores and set(stores.values()) == {_OPENSHIFT_UID}, stores
        assert _healthcheck(container, image, f"{url}/liveness", user=user).returncode == 0
        _assert_stops(process, _DRAIN_SECONDS, "serve (arbitrary uid)", image.backend)
