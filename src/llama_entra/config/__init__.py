"""Service configuration: the pydantic models of ``llama-entra.yaml`` and how it is loaded.

Every string value may be ``${env.NAME}`` (the variable must be set) or
``${env.NAME:=default}`` (the default when it is unset or empty), also inside a longer string.
Unknown keys are rejected, secrets are ``SecretStr``, and every problem becomes one
``ConfigError`` line naming the file, the key and the problem.

- ``loading``: the whole document (``LlamaEntraConfig``), ``load_config``, ``expand_env``
- ``service``: where the service, Llama Stack, the proxy, the index and tracing run
- ``entra``: the Entra ID identity; ``auth``: inbound authentication
- ``quotas``: token quotas (``quota_handlers``, lightspeed-stack's shape)
- ``reference``: the configuration reference page, generated from these models
"""

from llama_entra.config.auth import (
    ApiKeyAuthConfig,
    AuthAction,
    AuthenticationConfig,
    AuthorizationRule,
    CustomAuthConfig,
    JwkAuthConfig,
)
from llama_entra.config.base import StrictModel
from llama_entra.config.entra import (
    COGNITIVE_SERVICES_SCOPE,
    PUBLIC_AUTHORITY,
    AzureDeployments,
    AzureEntraIdConfig,
    AzureRetryPolicy,
    CredentialKind,
)
from llama_entra.config.loading import LlamaEntraConfig, expand_env, load_config, parse_config
from llama_entra.config.quotas import (
    QuotaHandlersConfig,
    QuotaLimiterConfig,
    QuotaSchedulerConfig,
    parse_period,
)
from llama_entra.config.service import (
    ConversationIndexConfig,
    FeedbackConfig,
    LlamaStackConfig,
    PostgresConfig,
    ProxyConfig,
    ServiceConfig,
    TelemetryConfig,
    TlsConfig,
)

__all__ = [
    "COGNITIVE_SERVICES_SCOPE",
    "PUBLIC_AUTHORITY",
    "ApiKeyAuthConfig",
    "AuthAction",
    "AuthenticationConfig",
    "AuthorizationRule",
    "AzureDeployments",
    "AzureEntraIdConfig",
    "AzureRetryPolicy",
    "ConversationIndexConfig",
    "CredentialKind",
    "CustomAuthConfig",
    "FeedbackConfig",
    "JwkAuthConfig",
    "LlamaEntraConfig",
    "LlamaStackConfig",
    "PostgresConfig",
    "ProxyConfig",
    "QuotaHandlersConfig",
    "QuotaLimiterConfig",
    "QuotaSchedulerConfig",
    "ServiceConfig",
    "StrictModel",
    "TelemetryConfig",
    "TlsConfig",
    "expand_env",
    "load_config",
    "parse_config",
    "parse_period",
]
