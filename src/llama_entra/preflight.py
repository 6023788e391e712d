"""Set-up mistakes found at start, before any request: missing files and unusable directories.

Without these checks a mistyped CA bundle path surfaced as "No such file or directory" at the
first token request, and a state directory that could not be written let the service start and
answer every call with 502 "unable to open database file". Each check raises one
``ConfigError`` naming the file, the key and the path, so the command exits 2 with one line.

- ``check_config_files``: every file ``llama-entra.yaml`` names as an input (CA bundles,
  certificates, key files) exists and is a file.
- ``prepare_directory``: a directory the process writes to exists (created if missing, like
  ``mkdir -p``) and is writable.
- ``prepare_run_config_dirs``: the same for every SQLite ``db_path`` and ``storage_dir`` of a
  Llama Stack run config (Llama Stack creates some of them, not all, and only at first use).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from llama_entra.config import expand_env
from llama_entra.errors import ConfigError

__all__ = ["check_config_files", "prepare_directory", "prepare_run_config_dirs"]

# Keys of llama-entra.yaml whose value is a file read at some point after start-up.
_INPUT_FILE_KEYS = frozenset(
    {
        "ca_bundle",
        "ca_cert_path",
        "certificate_path",
        "cert_file",
        "key_file",
        "client_ca_file",
        "keys_file",
        "federated_token_file",
    }
)
# Keys of a run config: a SQLite file (its directory must exist) and a directory of files.
_FILE_IN_DIRECTORY_KEYS = frozenset({"db_path"})
_DIRECTORY_KEYS = frozenset({"storage_dir"})


def check_config_files(config: BaseModel, *, source: str) -> None:
    """Raise ``ConfigError`` for the first input file of ``config`` that is not there."""
    for key, path in _input_files(config, ""):
        if not path.is_file():
            problem = "is a directory, not a file" if path.is_dir() else "file not found"
            raise ConfigError(f"{problem}: {path}", file=source, key=key)


def _input_files(model: BaseModel, prefix: str) -> Iterator[tuple[str, Path]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            yield from _input_files(value, key)
        elif isinstance(value, Path) and name in _INPUT_FILE_KEYS:
            yield key, value


def prepare_directory(directory: Path, *, source: str, key: str) -> Path:
    """Create ``directory`` if missing and prove it writable; ``ConfigError`` otherwise."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"not a directory: {directory}", file=source, key=key) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot create directory {directory}: {reason}", file=source, key=key
        ) from None
    # os.access answers for the real uid and misses read-only mounts: try a real file instead.
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"directory {directory} is not writable: {reason}", file=source, key=key
        ) from None
    return directory


def prepare_run_config_dirs(run_config: dict[str, Any], *, source: str) -> list[Path]:
    """Prepare the directory of every SQLite store and file store of ``run_config``.

    Returns the directories, in the order found. A value still holding ``${env...}`` (not
    expanded, e.g. in a config that Llama Stack expands itself) is expanded from the
    environment first, the way Llama Stack will.
    """
    prepared: list[Path] = []
    for key, value, is_directory in _path_values(run_config, ""):
        text = _expand(value)
        if not text or text == ":memory:" or text.startswith("file:"):
            continue
        path = Path(text).expanduser()
        directory = path if is_directory else path.parent
        if directory not in prepared:
            prepared.append(prepare_directory(directory, source=source, key=key))
    return prepared


def _path_values(node: Any, prefix: str) -> Iterator[tuple[str, str, bool]]:
    if isinstance(node, dict):
        for name, value in node.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            if isinstance(value, str) and name in _FILE_IN_DIRECTORY_KEYS | _DIRECTORY_KEYS:
                yield key, value, name in _DIRECTORY_KEYS
            else:
                yield from _path_values(value, key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _path_values(value, f"{prefix}[{index}]")


def _expand(value: str) -> str:
    try:
        expanded: str = expand_env(value)
    except ConfigError:
        return ""  # an unset variable: Llama Stack reports it itself, naming the variable
    return expanded
