"""``authentication``: how callers prove who they are, and what each role may do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from llama_entra.config.base import StrictModel, blank

__all__ = [
    "Action",
    "ApiKeyAuthConfig",
    "AuthAction",
    "AuthenticationConfig",
    "AuthorizationRule",
    "CustomAuthConfig",
    "JwkAuthConfig",
]

# What a caller may be allowed to do (``authorization`` rules; ``*``: everything).
Action = Literal[
    "query",
    "streaming_query",
    "conversations",
    "chat",
    "responses",
    "models",
    "info",
    "metrics",
    "feedback",
    "admin",
]
AuthAction = Literal[Action, "*"]


class ApiKeyAuthConfig(StrictModel):
    """``api_key``: named keys, compared in constant time, kept only as hashes."""

    keys: dict[str, SecretStr] = Field(
        default_factory=dict, description="Key name (the principal) to key."
    )
    keys_file: Path | None = Field(
        None,
        description="File with one `name:key` (or bare key) per line; re-read when it changes.",
    )


class CustomAuthConfig(StrictModel):
    """``custom``: delegate each decision to an HTTP endpoint (Llama Stack's protocol)."""

    endpoint: str = Field(description="URL the service POSTs {api_key, request} to.")
    timeout_seconds: float = Field(5.0, gt=0, description="Slower answers count as unavailable.")
    cache_ttl_seconds: float = Field(
        60.0,
        ge=0,
        description="Longest reuse of an allow decision for the same key, method, path, query "
        "and cache_key_headers (0: never); the endpoint's Cache-Control may shorten it.",
    )
    cache_key_headers: list[str] = Field(
        default_factory=list,
        description="Request headers the endpoint decides on; their values join the cache key.",
    )
    ca_bundle: Path | None = Field(None, description="Extra CA for the endpoint.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class JwkAuthConfig(StrictModel):
    """``jwk``: JWT bearer tokens verified against a JWKS (Entra ID, Keycloak, ...)."""

    jwks_url: str = Field(description="Where the signing keys are published.")
    issuer: str | None = Field(None, description="Required `iss`; required here too.")
    audience: list[str] = Field(
        default_factory=list, description="Accepted `aud` values; at least one required."
    )
    allow_any_audience_and_issuer: bool = Field(
        False,
        description="Accept tokens without checking an unset issuer or audience (unsafe: any "
        "token signed by the key set passes); logged as a warning at start-up.",
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256"], description="Accepted signing algorithms."
    )
    leeway_seconds: int = Field(60, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    principal_claim: str = Field("sub", description="Claim naming the caller (Entra: oid).")
    roles_claim: str = Field("roles", description="Claim holding roles (list or space-separated).")
    jwks_cache_seconds: int = Field(3600, ge=0, description="How long fetched keys are reused.")
    unknown_kid_refetch_seconds: float = Field(
        10.0, ge=0, description="Least time between fetches caused by tokens with unknown kids."
    )
    timeout_seconds: float = Field(5.0, gt=0, description="JWKS fetch timeout.")
    ca_bundle: Path | None = Field(None, description="Extra CA for the JWKS URL.")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
        wrong = [alg for alg in value if alg not in allowed]
        if wrong or not value:
            raise ValueError(
                f"only asymmetric algorithms are allowed ({', '.join(sorted(allowed))})"
            )
        return value

    @model_validator(mode="after")
    def _issuer_and_audience_are_checked(self) -> JwkAuthConfig:
        missing = [
            name
            for name, unset in (("issuer", blank(self.issuer)), ("audience", not self.audience))
            if unset
        ]
        if missing and not self.allow_any_audience_and_issuer:
            raise ValueError(
                f"{' and '.join(missing)} required: without them a token minted for any other "
                "application sharing the key set is accepted (opt out with "
                "allow_any_audience_and_issuer: true)"
            )
        return self


class AuthorizationRule(StrictModel):
    """Callers with ``role`` ("*": everyone authenticated) may perform ``actions``."""

    role: str = Field(description="A role of the principal, or * for any caller.")
    actions: list[AuthAction] = Field(description="Allowed actions; * means all.")


class AuthenticationConfig(StrictModel):
    """Inbound authentication of callers (see ``llama_entra.auth``)."""

    module: Literal["noop", "api_key", "custom", "jwk"] = Field(
        "noop", description="How callers prove who they are."
    )
    api_key: ApiKeyAuthConfig | None = Field(None, description="Settings of `api_key`.")
    custom: CustomAuthConfig | None = Field(None, description="Settings of `custom`.")
    jwk: JwkAuthConfig | None = Field(None, description="Settings of `jwk`.")
    rules: list[AuthorizationRule] = Field(
        default_factory=list,
        description="Role to actions; empty: every authenticated caller may do everything.",
    )
    metrics_require_auth: bool = Field(False, description="Whether /metrics needs a caller.")

    @model_validator(mode="after")
    def _module_has_its_section(self) -> AuthenticationConfig:
        if self.module != "noop" and getattr(self, self.module) is None:
            raise ValueError(f"module {self.module} needs a `{self.module}:` section")
        return self
