"""Service configuration: the pydantic models of ``llama-entra.yaml`` and how it is loaded.

Every string value may be ``${env.NAME}`` (the variable must be set) or
``${env.NAME:=default}`` (the default when it is unset or empty), also inside a longer string.
Unknown keys are rejected, secrets are ``SecretStr``, and every problem becomes one
``ConfigError`` line naming the file, the key and the problem.

Relative paths in the file (run config, certificate, CA bundle) are resolved against the
current working directory, as the commands in README are run from the repository root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from llama_entra.config.auth import AuthenticationConfig
from llama_entra.config.base import StrictModel
from llama_entra.config.entra import AzureEntraIdConfig
from llama_entra.config.quotas import QuotaHandlersConfig
from llama_entra.config.service import (
    ConversationIndexConfig,
    FeedbackConfig,
    LlamaStackConfig,
    ProxyConfig,
    ServiceConfig,
    TelemetryConfig,
)
from llama_entra.errors import ConfigError

__all__ = ["LlamaEntraConfig", "expand_env", "load_config", "parse_config", "read_yaml"]

_ENV_PATTERN = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?::=([^}]*))?\}")


class LlamaEntraConfig(StrictModel):
    """The whole ``llama-entra.yaml``."""

    service: ServiceConfig = Field(default_factory=ServiceConfig)
    llama_stack: LlamaStackConfig = Field(default_factory=LlamaStackConfig)
    azure_entra_id: AzureEntraIdConfig | None = Field(
        None, description="Absent: no Entra; static keys in the run config still work."
    )
    authentication: AuthenticationConfig = Field(default_factory=AuthenticationConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    conversation_index: ConversationIndexConfig = Field(default_factory=ConversationIndexConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    quota_handlers: QuotaHandlersConfig = Field(
        default_factory=QuotaHandlersConfig,
        description="Token quotas per caller and for the service (none by default).",
    )
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    @model_validator(mode="after")
    def _on_behalf_of_knows_its_users(self) -> LlamaEntraConfig:
        entra = self.azure_entra_id
        if entra is None or entra.user_identity != "on_behalf_of":
            return self
        jwk = self.authentication.jwk if self.authentication.module == "jwk" else None
        if jwk is None or jwk.allow_any_audience_and_issuer:
            raise ValueError(
                "azure_entra_id.user_identity on_behalf_of needs authentication module jwk, "
                "checking this app's Entra issuer and audience: the caller's token is what "
                "Entra exchanges"
            )
        if jwk.principal_claim != "oid":
            raise ValueError(
                "azure_entra_id.user_identity on_behalf_of needs authentication.jwk."
                "principal_claim oid: the principal (conversations, logs) is the user's object id"
            )
        return self


def expand_env(value: Any, *, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Return ``value`` with ``${env.NAME}`` / ``${env.NAME:=default}`` expanded in strings.

    Walks mappings and lists; ``path`` is the dotted key of ``value`` for error messages.
    Raises ``ConfigError`` naming the key when a variable without default is unset.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {k: expand_env(v, environ=env, path=_join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ=env, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:  # set but empty, and no default: empty is what was asked for
            return found
        raise ConfigError(f"environment variable {name} is not set", key=path or None)

    return _ENV_PATTERN.sub(substitute, value)


def parse_config(raw: Any, *, source: str = "<config>") -> LlamaEntraConfig:
    """Validate an already-loaded YAML document (env vars expanded here) into the config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping", file=source)
    try:
        expanded = expand_env(raw)
        return LlamaEntraConfig.model_validate(expanded)
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=source, key=exc.key) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        raise ConfigError(_describe(first), file=source, key=key) from None


def read_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``; a missing, unreadable or malformed file: ``ConfigError``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc.__class__.__name__}", file=source) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"malformed YAML{where}", file=source) from None


def load_config(path: str | Path) -> LlamaEntraConfig:
    """Read, expand and validate ``path``; any problem is a one-line ``ConfigError``."""
    return parse_config(read_yaml(path), source=str(path))


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _describe(error: Any) -> str:
    """One line from a pydantic error, without echoing the (possibly secret) input."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
