"""Settings for on-behalf-of against the emulator: the service's and the proxy's."""

from __future__ import annotations

from typing import Any

import pytest

from support.emulator import EmulatorHandle

__all__ = ["OTHER_APP", "REFUSED_ASSERTIONS", "obo_settings"]

OTHER_APP = "api://other-app"  # accepted inbound, but not this app: Entra refuses to exchange

# Tokens Entra will not exchange (``user_token`` options), the status and a phrase of the cause.
REFUSED_ASSERTIONS = pytest.mark.parametrize(
    ("options", "status", "phrase"),
    [
        ({"lifetime": -30}, 401, "sign in again"),  # within jwk's leeway, not Entra's
        ({"audience": OTHER_APP}, 401, "not for this application"),
        ({"app_only": True}, 403, "no signed-in user"),
    ],
    ids=["expired-assertion", "wrong-audience", "app-only"],
)


def obo_settings(
    emulator: EmulatorHandle, cache_size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``azure_entra_id`` additions and the ``authentication`` section for on-behalf-of:
    ``jwk`` for the emulator's issuer and the demo app's audience (and ``OTHER_APP``, so that
    Entra's own audience check is reached), the principal being the user's object id."""
    root = f"{emulator.url}/{emulator.tenant_id}"
    entra = {"user_identity": "on_behalf_of", "user_cache_size": cache_size}
    authentication = {
        "module": "jwk",
        "jwk": {
            "jwks_url": f"{root}/discovery/v2.0/keys",
            "issuer": f"{root}/v2.0",
            "audience": [emulator.client_id, f"api://{emulator.client_id}", OTHER_APP],
            "principal_claim": "oid",
            "ca_bundle": str(emulator.ca_path),
        },
    }
    return entra, {"authentication": authentication}
