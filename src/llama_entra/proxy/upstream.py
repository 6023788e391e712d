"""The proxy's one pooled connection to Azure OpenAI, and where each request goes there.

The pool is an ``aiohttp.ClientSession``, not ``httpx``: measured through the proxy
(``make bench``), httpx's pure-Python connection layer added about 0.5 ms per request on top
of the hop itself, aiohttp's C parser much less. The session is set up as a transparent
hop: no cookie jar shared between callers, no headers of its own (no ``Accept-Encoding``, so
a caller that did not ask for gzip never gets it), no decompression, no redirects, no proxy
settings from the environment, and connect and read timeouts but no total cap, so a long
generation is never cut.
"""

from __future__ import annotations

import ssl

import aiohttp
import yarl

from llama_entra.config import ProxyConfig

__all__ = ["upstream_session", "upstream_url"]

_OWN_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def upstream_session(config: ProxyConfig) -> aiohttp.ClientSession:
    """The pooled session: system CAs (and ``SSL_CERT_FILE``) plus ``ca_bundle``.

    Call it inside the running event loop (the lifespan) and close it at shutdown.
    """
    context = ssl.create_default_context()
    if config.ca_bundle is not None:
        context.load_verify_locations(cafile=str(config.ca_bundle))
    connector = aiohttp.TCPConnector(ssl=context, limit=200, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=config.connect_timeout_seconds,
        sock_read=config.read_timeout_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_OWN_HEADERS,
        auto_decompress=False,
        trust_env=False,
    )


def upstream_url(upstream: yarl.URL, raw_path: bytes, query: bytes) -> yarl.URL:
    """Where a request for ``raw_path`` (still percent-encoded, as received) goes.

    Paths under ``/openai/`` (what Azure SDKs send) go to the upstream's origin as they are;
    any other path is relative to the upstream base (what OpenAI SDKs with ``base_url`` send).
    The path and query are passed on byte for byte, never re-quoted. Raises
    ``UnicodeDecodeError`` for a path that is not ASCII.
    """
    path = raw_path.decode("ascii")
    if not path.startswith("/openai/"):
        path = upstream.raw_path.rstrip("/") + path
    target = str(upstream.origin()) + path
    if query:
        target += "?" + query.decode("ascii")
    return yarl.URL(target, encoded=True)
