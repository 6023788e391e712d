"""The sidecar: an Entra-authenticating reverse proxy for Azure OpenAI (``llama-entra proxy``).

``create_proxy_app(config)`` builds it; see ``proxy.forward`` for what is forwarded and how.
"""

from llama_entra.proxy.app import ProxyApp, create_proxy_app
from llama_entra.proxy.forward import forward
from llama_entra.proxy.upstream import upstream_session, upstream_url

__all__ = ["ProxyApp", "create_proxy_app", "forward", "upstream_session", "upstream_url"]
