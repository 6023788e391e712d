"""The seam between llama-entra and the Llama Stack distribution it runs on.

Two backends, one installed per environment (their dependencies conflict): llama-stack 0.7.3
(extra ``llama-stack``) and OGX 1.x, its renamed successor (extra ``ogx``). ``active_backend()``
picks the installed one once; everything else talks to ``Backend`` and ``StackClient`` and
never asks which it is.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec

from llama_entra.backends.base import (
    Backend,
    ConversationRecord,
    Headers,
    InferenceProviderKit,
    ListedModel,
    ListedProvider,
    StackClient,
)
from llama_entra.errors import ConfigError

__all__ = [
    "PROVIDER_DATA_HEADERS",
    "Backend",
    "ConversationRecord",
    "Headers",
    "InferenceProviderKit",
    "ListedModel",
    "ListedProvider",
    "StackClient",
    "active_backend",
    "package_version",
]

# Every header either backend reads provider data from (inbound copies are never forwarded).
PROVIDER_DATA_HEADERS = ("X-LlamaStack-Provider-Data", "X-OGX-Provider-Data")


@functools.cache
def active_backend() -> Backend:
    """The installed backend: OGX when ``ogx`` is importable, else llama-stack."""
    if find_spec("ogx") is not None and find_spec("ogx_client") is not None:
        from llama_entra.backends.ogx import OgxBackend

        return OgxBackend()
    if find_spec("llama_stack") is not None and find_spec("llama_stack_client") is not None:
        from llama_entra.backends.llama_stack import LlamaStackBackend

        return LlamaStackBackend()
    raise ConfigError(
        "no Llama Stack backend is installed: install llama-entra[llama-stack] or llama-entra[ogx]"
    )


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None
