"""Inbound TLS for ``serve`` and ``proxy``: the server's SSLContext, and reloading it in place.

``TlsReloader(config)`` builds an ``ssl.SSLContext`` for a server: TLS 1.2 at least (1.3
available), the certificate chain and key from ``cert_file``/``key_file``, and with
``client_ca_file`` a required client certificate signed by that CA (mTLS). uvicorn is handed
this very context (``ssl_context_factory``), and ``check()`` (called once a second by the
server) loads a changed certificate and key into it: new handshakes get the new certificate,
open connections keep theirs, nothing restarts. A half-written or mismatched pair is refused
with a warning and the old certificate stays in use until the files are complete.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

from llama_entra.config import TlsConfig
from llama_entra.errors import ConfigError

__all__ = ["TlsReloader"]

logger = logging.getLogger(__name__)

_Signature = tuple[tuple[int, int, int], ...]


class TlsReloader:
    """A server SSLContext for ``config`` that follows changes of its certificate files."""

    def __init__(self, config: TlsConfig, *, source: str | None = None, key: str = "tls") -> None:
        self._config = config
        self._source = source
        self._key = key
        self._signature = self._stat()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load()
        if config.client_ca_file is not None:
            try:
                self.context.load_verify_locations(cafile=str(config.client_ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise self._error("client_ca_file", exc) from None
            self.context.verify_mode = ssl.CERT_REQUIRED

    def check(self) -> bool:
        """Reload the certificate and key if their files changed; True when reloaded."""
        try:
            signature = self._stat()
        except ConfigError:
            return False  # a file is missing mid-rotation: keep serving the loaded one
        if signature == self._signature:
            return False
        try:
            self._load()
        except ConfigError as exc:
            logger.warning("TLS certificate not reloaded, the previous one stays in use: %s", exc)
            return False
        self._signature = signature
        logger.info("TLS certificate reloaded from %s", self._config.cert_file)
        return True

    def _load(self) -> None:
        password = self._config.key_password
        arguments = (
            str(self._config.cert_file),
            str(self._config.key_file),
            password.get_secret_value() if password is not None else None,
        )
        try:
            # A failed load_cert_chain can leave a context without a certificate (OpenSSL
            # drops the certificate when the key does not match), so try a scratch context
            # first: the live one is only touched with a pair known to be good.
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(*arguments)
            self.context.load_cert_chain(*arguments)
        except (OSError, ssl.SSLError) as exc:
            raise self._error("cert_file", exc) from None

    def _stat(self) -> _Signature:
        signature = []
        for name, path in (
            ("cert_file", self._config.cert_file),
            ("key_file", self._config.key_file),
        ):
            try:
                found = os.stat(path)
            except OSError as exc:
                raise self._error(name, exc) from None
            signature.append((found.st_mtime_ns, found.st_size, found.st_ino))
        return tuple(signature)

    def _error(self, name: str, exc: OSError | ssl.SSLError) -> ConfigError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, ssl.SSLError):
            reason = f"cert_file and key_file are not a usable pair ({exc.reason or exc})"
        return ConfigError(
            f"{reason}: {Path(getattr(self._config, name))}",
            file=self._source,
            key=f"{self._key}.{name}",
        )
