"""Fixtures for the image tests: the image built once per session, and its measurements.

``image`` builds the Containerfile with buildah for this run's backend on ``$BASE_IMAGE``
(made with ``scripts/image.sh base`` when it is missing), passing the host's CA bundle plus a
canary CA made for this session as the build secret ``ca-bundle``: the layer scan then looks
for the canary, which exists nowhere else. The build, base and export times and the image size
are printed at the end of the run (``make test-image``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from llama_entra.backends import active_backend
from support.container import Buildah
from support.image import MEASURED, BuiltImage, record
from support.service import ROOT

_HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the run measured (build times, image size)."""
    if MEASURED:
        terminalreporter.section("image measurements")
        for name, value in MEASURED.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    """The buildah command line; fails (never skips) when the test cannot run here."""
    missing = [tool for tool in ("buildah", "mount") if shutil.which(tool) is None]
    assert not missing, f"{missing} not on PATH: `make test-image` installs buildah"
    assert os.geteuid() == 0, "the image test runs as root (buildah, read-only bind mounts)"
    return Buildah()


def _build(buildah: Buildah, script_args: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "image.sh"), *script_args],
        env={**buildah.env, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"image.sh {script_args[0]} failed:\n{done.stdout[-3000:]}"
    return time.monotonic() - started


@pytest.fixture(scope="session")
def image(buildah: Buildah, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """The image for this run's backend, built now on the local base; removed afterwards."""
    backend = active_backend().name
    base = os.environ.get("BASE_IMAGE", "localhost/llama-entra-base:trixie")
    if not buildah.has_image(base):
        seconds = _build(buildah, ["base"], {"BASE_IMAGE": base})
        record(f"base image {base} built in", f"{seconds:.0f} s")
    canary = trustme.CA(organization_name="llama-entra image test canary").cert_pem.bytes()
    work = tmp_path_factory.mktemp("image-build")
    secret = work / "ca-bundle.pem"
    secret.write_bytes((_HOST_CA.read_bytes() if _HOST_CA.exists() else b"") + canary)
    name = f"localhost/llama-entra:test-{backend}"
    seconds = _build(
        buildah,
        ["build"],
        {
            "ENGINE": "buildah",
            "IMAGE": name,
            "BACKEND": backend,
            "PYTHON_IMAGE": base,
            "CA_BUNDLE": str(secret),
        },
    )
    record(f"image {name} built in", f"{seconds:.0f} s")
    inspect = json.loads(buildah("inspect", "--type", "image", name))
    try:
        yield BuiltImage(name, backend, inspect, secret, canary)
    finally:
        buildah("rmi", name)
