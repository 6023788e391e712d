"""Unit: set-up mistakes are found at start, named in one line, and exit 2 from the commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llama_entra.cli import main
from llama_entra.config import parse_config
from llama_entra.enrich import main as enrich_main
from llama_entra.errors import ConfigError
from llama_entra.preflight import check_config_files, prepare_directory, prepare_run_config_dirs

_ENTRA = {"tenant_id": "t", "client_id": "c", "client_secret": "s"}


def _config(tmp_path: Path, **entra: object) -> Path:
    path = tmp_path / "llama-entra.yaml"
    document = {
        "service": {"state_dir": str(tmp_path / "state")},
        "llama_stack": {"mode": "service", "url": "http://127.0.0.1:1"},
        "azure_entra_id": _ENTRA | entra,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_check_config_files_names_the_key_and_path_of_a_missing_ca_bundle(tmp_path: Path) -> None:
    config = parse_config({"azure_entra_id": _ENTRA | {"ca_bundle": str(tmp_path / "ca.pem")}})
    with pytest.raises(ConfigError) as caught:
        check_config_files(config, source="x.yaml")
    assert caught.value.key == "azure_entra_id.ca_bundle"
    assert str(tmp_path / "ca.pem") in str(caught.value)
    assert "file not found" in str(caught.value)


def test_check_config_files_refuses_a_directory_and_accepts_a_file(tmp_path: Path) -> None:
    folder = parse_config({"azure_entra_id": _ENTRA | {"ca_bundle": str(tmp_path)}})
    with pytest.raises(ConfigError, match="is a directory, not a file"):
        check_config_files(folder, source="x.yaml")
    (tmp_path / "ca.pem").write_text("pem")
    present = parse_config({"azure_entra_id": _ENTRA | {"ca_bundle": str(tmp_path / "ca.pem")}})
    check_config_files(present, source="x.yaml")


def test_prepare_directory_creates_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert prepare_directory(target, source="x.yaml", key="service.state_dir") == target
    assert target.is_dir()


def test_prepare_directory_under_a_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as caught:
        prepare_directory(tmp_path / "file" / "sub", source="x.yaml", key="service.state_dir")
    assert caught.value.key == "service.state_dir"
    assert "cannot create directory" in str(caught.value)


def test_prepare_directory_that_cannot_be_written_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, who may write anywhere: the refusal a read-only mount gives is
    # what the check must report, so it is stood in for.
    def refuse(**_: object) -> None:
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr("llama_entra.preflight.tempfile.TemporaryFile", refuse)
    with pytest.raises(ConfigError, match="is not writable: Read-only file system"):
        prepare_directory(tmp_path, source="x.yaml", key="service.state_dir")


def test_prepare_run_config_dirs_creates_every_store_directory_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE", str(tmp_path / "state"))
    run_config = {
        "providers": {
            "files": [{"config": {"storage_dir": "${env.STATE}/files"}}],
            "vector_io": [{"config": {"db_path": ":memory:"}}],
        },
        "storage": {"backends": {"kv": {"db_path": "${env.STATE}/db/kv.db"}}},
    }
    prepared = prepare_run_config_dirs(run_config, source="run.yaml")
    assert prepared == [tmp_path / "state" / "files", tmp_path / "state" / "db"]
    assert all(path.is_dir() for path in prepared)


def test_prepare_run_config_dirs_names_the_store_key_it_cannot_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("STATE", str(tmp_path / "file" / "state"))
    run_config = {"storage": {"backends": {"kv": {"db_path": "${env.STATE:=x}/kv.db"}}}}
    with pytest.raises(ConfigError) as caught:
        prepare_run_config_dirs(run_config, source="run.yaml")
    assert caught.value.key == "storage.backends.kv.db_path"
    assert caught.value.file == "run.yaml"


def test_serve_with_a_missing_ca_bundle_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, ca_bundle=str(tmp_path / "missing.pem"))
    assert main(["serve", "-c", str(path)]) == 2
    error = capsys.readouterr().err
    assert "azure_entra_id.ca_bundle: file not found" in error
    assert "Traceback" not in error


def test_serve_with_a_state_dir_under_a_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "llama-entra.yaml"
    path.write_text(yaml.safe_dump({"service": {"state_dir": str(tmp_path / "file" / "state")}}))
    assert main(["serve", "-c", str(path)]) == 2
    assert "service.state_dir: cannot create directory" in capsys.readouterr().err


def test_proxy_with_a_missing_ca_bundle_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, ca_bundle=str(tmp_path / "missing.pem"))
    assert main(["proxy", "-c", str(path), "--upstream", "https://127.0.0.1:1/openai/v1"]) == 2
    assert "azure_entra_id.ca_bundle: file not found" in capsys.readouterr().err


def test_enrich_make_dirs_creates_the_store_directories_or_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "run.yaml"
    source.write_text(yaml.safe_dump({"storage": {"kv": {"db_path": "${env.STATE}/kv.db"}}}))
    monkeypatch.setenv("STATE", str(tmp_path / "new" / "state"))
    out = tmp_path / "out.yaml"
    assert enrich_main(["--entra", "-i", str(source), "-o", str(out), "--make-dirs"]) == 0
    assert (tmp_path / "new" / "state").is_dir()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("STATE", str(tmp_path / "file" / "state"))
    assert enrich_main(["--entra", "-i", str(source), "-o", str(out), "--make-dirs"]) == 2
    assert "storage.kv.db_path: cannot create directory" in capsys.readouterr().err
