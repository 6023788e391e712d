"""Library mode: Llama Stack's OpenAI-compatible adapters stop retrying on their own.

Llama Stack's ``remote::azure`` adapter (both backends) builds an ``AsyncOpenAI`` client with
the SDK's default of two retries, which sleeps up to 60 s for each 429 and re-sends after a
timeout: calls to Azure no caller sees or counts, and waits no budget bounds. Its run config
cannot change that, but its adapters build every client from ``get_extra_client_params()``;
in-process llama-entra makes that hook add ``max_retries=0``, so the service's retry policy
(``llama_entra.azure.retry``) is the only one. A Llama Stack server cannot be reached this way:
there the SDK's retries stay (README, "Azure's answers").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["disable_sdk_retries"]

logger = logging.getLogger(__name__)


def disable_sdk_retries(inference: object) -> list[str]:
    """Make each OpenAI-mixin adapter behind ``inference`` (Llama Stack's inference router)
    build clients with ``max_retries=0``; the provider ids changed.

    Adapters that apply the policy themselves (``applies_retry_policy``, the
    ``remote::azure-entra`` provider) are left alone.
    """
    table = getattr(inference, "routing_table", None)
    adapters: dict[str, Any] = getattr(table, "impls_by_provider_id", None) or {}
    changed: list[str] = []
    for provider_id, adapter in adapters.items():
        extra = getattr(adapter, "get_extra_client_params", None)
        if not callable(extra) or getattr(adapter, "applies_retry_policy", False):
            continue
        # A pydantic model refuses unknown attributes; the bound method lives on the instance.
        object.__setattr__(adapter, "get_extra_client_params", _without_retries(extra))
        changed.append(provider_id)
    if changed:
        logger.debug("OpenAI SDK retries off for providers %s", ", ".join(changed))
    return changed


def _without_retries(extra: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def params() -> dict[str, Any]:
        return {**extra(), "max_retries": 0}

    return params
