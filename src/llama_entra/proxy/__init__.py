"""The sidecar: an Entra-authenticating reverse proxy for Azure OpenAI (``llama-entra proxy``).

``create_proxy_app(config)`` builds it; see ``proxy.forward`` for what is forwarded and how.
"""

from llama_entra.proxy.app import create_proxy_app, upstream_client
from llama_entra.proxy.forward import forward, upstream_url

__all__ = ["create_proxy_app", "forward", "upstream_client", "upstream_url"]
