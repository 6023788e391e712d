"""The built image's contents: its config, what is installed, and no secret in any layer.

The image is built once per session (``conftest.py``) with buildah on the local Debian base for
this run's backend; these tests read it without running a server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from support.container import Buildah, Container
from support.image import BuiltImage, record
from support.layers import Finding, export_layers, scan_layer, scan_text

pytestmark = pytest.mark.image

_UID = 10001
_SECRET_NAMES = re.compile(r"SECRET|PASSWORD|API_KEY|CREDENTIAL|(^|_)TOKEN($|_(?!FILE))", re.I)
_BUILD_SECRET_VARIABLES = {"SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "EXTRA_CA_BUNDLE"}
# What the scan flags in third-party packages, published on PyPI inside them: never ours.
_UPSTREAM_FILES = {
    "JWT": re.compile(r"site-packages/pyjwt-[^/]+\.dist-info/METADATA$"),  # PyJWT's README
    "PEM private key": re.compile(r"site-packages/tornado/test/test\.key$"),  # tornado's tests
}


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
