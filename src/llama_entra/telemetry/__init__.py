"""OpenTelemetry tracing for the service and the proxy; off unless configured.

- ``settings``: whether tracing is on and where spans go (the ``telemetry:`` section and
  OpenTelemetry's own ``OTEL_*`` variables).
- ``setup``: ``start_tracing`` builds the SDK's tracer provider and OTLP exporter and installs
  the instrumentations (FastAPI/ASGI server spans, httpx and aiohttp client spans). Nothing is
  installed when tracing is off, so it costs nothing then.
- ``spans``: the few spans no instrumentation can make (token manager, the in-process Llama
  Stack call, the 401 refresh-and-retry) through the OpenTelemetry API, a no-op when off.
- ``logcontext``: the trace id on log records.
- ``server``: the Llama Stack/OGX server command under ``opentelemetry-instrument``.

No span attribute ever carries a token, key or secret.

Import the module you need (``llama_entra.telemetry.setup`` pulls in the SDK; ``spans`` only
the API).
"""
