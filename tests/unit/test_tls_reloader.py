"""Unit tests of inbound TLS: the server context, reload rules and config errors."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trustme
import yaml

from llama_entra.cli import main
from llama_entra.config import TlsConfig, parse_config
from llama_entra.errors import ConfigError
from llama_entra.tls import TlsReloader


def _pair(ca: trustme.CA, directory: Path) -> TlsConfig:
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = directory / "cert.pem", directory / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return TlsConfig(cert_file=cert, key_file=key)


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_tls_context_is_tls12_or_later_without_client_certificates(tmp_path: Path) -> None:
    reloader = TlsReloader(_pair(trustme.CA(), tmp_path))
    assert reloader.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert reloader.context.verify_mode == ssl.CERT_NONE
    assert reloader.check() is False  # nothing changed


def test_tls_client_ca_requires_client_certificates(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = _pair(ca, tmp_path).model_copy(update={"client_ca_file": tmp_path / "ca.pem"})
    assert TlsReloader(config).context.verify_mode == ssl.CERT_REQUIRED


def test_tls_reload_takes_a_complete_pair_and_refuses_a_mismatch(tmp_path: Path) -> None:
    ca = trustme.CA()
    config = _pair(ca, tmp_path)
    reloader = TlsReloader(config)
    other = ca.issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(config.key_file))  # key rotated, cert not yet
    _touch_later(config.key_file)
    assert reloader.check() is False
    other.cert_chain_pems[0].write_to_path(str(config.cert_file))
    _touch_later(config.cert_file)
    assert reloader.check() is True
    assert reloader.check() is False


def test_tls_missing_file_names_the_key(tmp_path: Path) -> None:
    config = TlsConfig(cert_file=tmp_path / "nope.pem", key_file=tmp_path / "nope-key.pem")
    with pytest.raises(ConfigError, match=r"service\.tls\.cert_file: No such file"):
        TlsReloader(config, key="service.tls")


def test_tls_bad_files_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = trustme.CA()
    config = _pair(ca, tmp_path)
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(config.key_file))  # mismatch
    path = tmp_path / "llama-entra.yaml"
    tls = {"cert_file": str(config.cert_file), "key_file": str(config.key_file)}
    path.write_text(yaml.safe_dump({"proxy": {"upstream": "https://x.test/v1", "tls": tls}}))
    assert main(["proxy", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{path}: proxy.tls.cert_file: cert_file and key_file are not a usable pair" in err


def test_tls_with_several_workers_is_refused_at_load() -> None:
    tls = {"cert_file": "c.pem", "key_file": "k.pem"}
    with pytest.raises(ConfigError, match="service: tls needs workers: 1"):
        parse_config({"service": {"workers": 2, "tls": tls}})
