"""Azure OpenAI as it answers: its refusals kept intact, one retry policy, several resources.

- ``answers``: Azure's throttling (429 with its wait), content filter and context window answers
  read from wherever they arrive (the OpenAI SDK's exception in-process, or the text a Llama
  Stack server kept of it) and turned into the llama-entra errors that carry them.
- ``retry``: the one retry policy for Azure's 429 (``azure_entra_id.retries``): how many times
  and how long one caller request may wait for Azure, and who applies it.
- ``deployments``: one model on several Azure OpenAI resources (``azure_entra_id.endpoints``):
  which one serves a call, cool-downs, failover.
"""

from llama_entra.azure.answers import (
    RATE_LIMIT_HEADERS,
    azure_error_object,
    caller_headers,
    classify_azure_error,
    retry_after_seconds,
)
from llama_entra.azure.deployments import Deployment, DeploymentPool
from llama_entra.azure.retry import RateLimitRetry

__all__ = [
    "RATE_LIMIT_HEADERS",
    "Deployment",
    "DeploymentPool",
    "RateLimitRetry",
    "azure_error_object",
    "caller_headers",
    "classify_azure_error",
    "retry_after_seconds",
]
