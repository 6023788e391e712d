"""End-to-end: HTTPS and mTLS on the real ``llama-entra proxy`` and ``serve`` commands.

Certificates come from trustme (a throwaway CA per test). The proxy starts fast, so it carries
most cases: HTTPS works, TLS 1.1 is refused, TLS 1.2 and 1.3 work, mTLS refuses a client
without a certificate and accepts one with, and a rotated certificate reaches new connections
without a restart. ``serve`` is checked once: HTTPS probes, and a clean stop with an idle TLS
keep-alive client.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import yaml

from support.emulator import EmulatorHandle
from support.service import ROOT, free_port, service_config, stack_environment

_BIN = Path(sys.executable).parent


def _healthcheck(url: str, client_cert: Path | None = None) -> int:
    """Run the Containerfile's HEALTHCHECK command against ``url``; its exit code."""
    containerfile = (ROOT / "Containerfile").read_text()
    command = json.loads(re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", containerfile, re.M)[1])
    assert command[:2] == ["python", "-c"]
    env = {**os.environ, "HEALTHCHECK_URL": url}
    if client_cert is not None:
        env["HEALTHCHECK_CLIENT_CERT"] = str(client_cert)
    return subprocess.run(
        [sys.executable, "-c", command[2]], env=env, capture_output=True
    ).returncode


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def _write_leaf(ca: trustme.CA, directory: Path) -> tuple[Path, Path, bytes]:
    """Certificate and key files for 127.0.0.1, and the certificate's DER."""
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = directory / "server.pem", directory / "server-key.pem"
    leaf.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return cert, key, ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def _client_context(ca: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


def _handshake(port: int, context: ssl.SSLContext) -> tuple[str | None, bytes | None]:
    """TLS version and DER certificate the server presents to a new connection."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version(), tls.getpeercert(binary_form=True)


@contextmanager
def _server(
    kind: str, directory: Path, emulator: EmulatorHandle, tls: dict[str, Any], ca: trustme.CA
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``llama-entra KIND`` with ``tls`` until the block exits; waits for a handshake."""
    port = free_port()
    path = service_config(
        directory,
        emulator,
        extra={
            "proxy": {
                "upstream": emulator.azure_base_url,
                "ca_bundle": str(emulator.ca_path),
                "port": port,
                "tls": tls,
            },
        },
    )
    if kind == "serve":
        document = yaml.safe_load(path.read_text())
        document["service"]["tls"] = tls
        path.write_text(yaml.safe_dump(document))
    env = stack_environment(emulator, directory / "state")
    log = directory / f"{kind}.log"
    command = [str(_BIN / "llama-entra"), kind, "-c", str(path), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        probe = _client_context(ca)
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                _handshake(port, probe)
                break
            except (OSError, ssl.SSLError):
                assert time.monotonic() < deadline, "no TLS handshake within 90 s"
                time.sleep(0.1)
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_proxy_https_tls12_and_13_but_not_11(
    tmp_path: Path, emulator: EmulatorHandle, ca: trustme.CA
) -> None:
    cert, key, _ = _write_leaf(ca, tmp_path)
    with _server(
        "proxy", tmp_path, emulator, {"cert_file": str(cert), "key_file": str(key)}, ca
    ) as (
        _,
        port,
    ):
        with httpx.Client(verify=_client_context(ca)) as client:
            assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
            assert client.get(f"https://127.0.0.1:{port}/models").status_code == 200
        assert _handshake(port, _client_context(ca))[0] == "TLSv1.3"
        assert _healthcheck(f"https://127.0.0.1:{port}/healthz") == 0  # the image's HEALTHCHECK
        tls12 = _client_context(ca)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        assert _handshake(port, tls12)[0] == "TLSv1.2"
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(old)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError):
            _handshake(port, old)
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_proxy_mtls_refuses_clients_without_a_certificate(
    tmp_path: Path, emulator: EmulatorHandle, ca: trustme.CA
) -> None:
    cert, key, _ = _write_leaf(ca, tmp_path)
    client_ca = trustme.CA()
    client_ca_file = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    tls = {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(client_ca_file)}
    with _server("proxy", tmp_path, emulator, tls, ca) as (_, port):
        url = f"https://127.0.0.1:{port}/healthz"
        with pytest.raises(httpx.TransportError):
            httpx.get(url, verify=_client_context(ca), timeout=5)
        stranger = ca.issue_cert("stranger@example.test")  # signed by another CA
        with pytest.raises(httpx.TransportError):
            httpx.get(url, verify=_client_context(ca, stranger), timeout=5)
        member = client_ca.issue_cert("app@example.test")
        assert httpx.get(url, verify=_client_context(ca, member), timeout=5).status_code == 200
        # The image's HEALTHCHECK: refused without a client certificate, fine with one.
        assert _healthcheck(url) != 0
        member_pem = tmp_path / "member.pem"
        member_pem.write_bytes(member.private_key_and_cert_chain_pem.bytes())
        assert _healthcheck(url, member_pem) == 0


def test_proxy_serves_a_rotated_certificate_without_restart(
    tmp_path: Path, emulator: EmulatorHandle, ca: trustme.CA
) -> None:
    cert, key, _ = _write_leaf(ca, tmp_path)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    with _server("proxy", tmp_path, emulator, tls, ca) as (process, port):
        context = _client_context(ca)
        with httpx.Client(verify=context) as kept:  # an open connection across the rotation
            assert kept.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
            first = _handshake(port, context)[1]
            staging = tmp_path / "next"
            staging.mkdir()
            new_cert, new_key, new_der = _write_leaf(ca, staging)
            new_key.replace(key)  # key first: a moment of mismatch must not break serving
            assert _handshake(port, context)[1] == first
            new_cert.replace(cert)
            deadline = time.monotonic() + 10
            while (served := _handshake(port, context)[1]) != new_der:
                assert served == first
                assert time.monotonic() < deadline, "rotated certificate not served within 10 s"
                time.sleep(0.2)
            assert kept.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
        assert process.poll() is None  # never restarted


@pytest.mark.slow
def test_serve_https_probes_and_clean_stop_with_idle_tls_client(
    tmp_path: Path, emulator: EmulatorHandle, ca: trustme.CA
) -> None:
    cert, key, _ = _write_leaf(ca, tmp_path)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    with (
        _server("serve", tmp_path, emulator, tls, ca) as (process, port),
        httpx.Client(verify=_client_context(ca)) as client,
    ):
        for probe in ("/liveness", "/readiness"):
            assert client.get(f"https://127.0.0.1:{port}{probe}").status_code == 200
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        assert time.monotonic() - started < 8
    assert process.returncode == 0
