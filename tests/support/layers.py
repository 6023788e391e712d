"""Read an image's layers back from an OCI archive and look for what must never be in them.

``export_layers`` writes the image with ``buildah push IMAGE oci-archive:FILE`` and returns
each layer as a tar file; ``scan_layer`` reads every regular file of a layer (the whole file,
not a prefix) and reports, by name only, what it found: a value that must not be there
(a secret's value, a CA that was only a build secret), a private key in PEM with its body, a
JWT, or a file whose name is a credential store. Findings never repeat the value they matched.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "export_layers", "scan_layer", "scan_text"]

PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[^-]{0,200}?[A-Za-z0-9+/]{64}"
)
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}")
CREDENTIAL_FILES = re.compile(
    r"(^|/)(\.netrc|\.pypirc|\.git-credentials|\.docker/config\.json|id_rsa|id_ed25519|id_ecdsa)$"
    r"|(^|/)run/secrets/"
)


@dataclass(frozen=True)
class Finding:
    """What was found where: ``what`` names the rule or the needle, never the value."""

    layer: str
    path: str
    what: str


def export_layers(
    buildah: Callable[..., str], image: str, directory: Path
) -> tuple[Path, list[Path]]:
    """The image as an OCI archive in ``directory``, and its layer tars, base layer first."""
    archive = directory / "image.oci.tar"
    buildah("push", image, f"oci-archive:{archive}", timeout=600)
    blobs = directory / "blobs"
    with tarfile.open(archive) as outer:
        outer.extractall(blobs, filter="data")
    index = json.loads((blobs / "index.json").read_text())
    manifest = json.loads(_blob(blobs, index["manifests"][0]["digest"]).read_text())
    return archive, [_blob(blobs, layer["digest"]) for layer in manifest["layers"]]


def _blob(root: Path, digest: str) -> Path:
    algorithm, _, value = digest.partition(":")
    return root / "blobs" / algorithm / value


def _files(layer: Path) -> Iterator[tuple[str, bytes | None]]:
    """(path, content) of each member; content None for anything but a regular file."""
    with tarfile.open(layer, mode="r:*") as tar:
        for member in tar:
            if not member.isfile():
                yield member.name, None
                continue
            handle = tar.extractfile(member)
            yield member.name, handle.read() if handle else b""


def scan_text(data: bytes, needles: Mapping[str, bytes]) -> list[str]:
    """The rules and needle names ``data`` matches (PEM private key, JWT, any needle)."""
    found = [name for name, needle in needles.items() if needle in data]
    if PRIVATE_KEY.search(data):
        found.append("PEM private key")
    if JWT.search(data):
        found.append("JWT")
    return found


def scan_layer(layer: Path, needles: Mapping[str, bytes]) -> tuple[int, list[Finding]]:
    """(files read, findings) for one layer tar."""
    findings: list[Finding] = []
    count = 0
    for path, content in _files(layer):
        if CREDENTIAL_FILES.search(path):
            findings.append(Finding(layer.name, path, "credential file"))
        if content is None:
            continue
        count += 1
        findings += [Finding(layer.name, path, what) for what in scan_text(content, needles)]
    return count, findings
