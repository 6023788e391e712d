"""A local Entra ID and Azure OpenAI emulator for development, end-to-end tests and benchmarks.

``create_emulator_app(settings)`` builds the ASGI app; ``llama-entra emulator`` serves it over
HTTPS with a private CA (see ``emulator.cli``, which also lists the quota options).

It answers as Azure OpenAI does, bodies, statuses and headers included. Where each answer is
described:

- ``caller``: 401 for a missing, unknown, expired, revoked or wrong-audience token (Azure's
  ``statusCode`` body); 401 ``PermissionDenied`` for a principal without the role (``roles``).
- ``gate``: 429 with ``retry-after``/``retry-after-ms`` (rate limits in ``limits``, forced
  throttles), 400 ``context_length_exceeded``, 400 ``content_filter``, ``!status NNN``, 404
  ``DeploymentNotFound``; ``x-ratelimit-*`` headers and the per-deployment outcome counters.
- ``content_filter``: the trigger words ``!filter-prompt [CATEGORY]`` and
  ``!filter-completion [CATEGORY]`` and Azure's annotations; ``chat_stream``: the chunk shapes.
- ``controls``: the test controls under ``/_emulator/``.
"""

from llama_entra.emulator.app import create_emulator_app
from llama_entra.emulator.state import EmulatorSettings, EmulatorState

__all__ = ["EmulatorSettings", "EmulatorState", "create_emulator_app"]
