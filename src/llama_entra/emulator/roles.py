"""Role assignments on the emulated Azure OpenAI resource, per principal (object id).

Every token the emulator issues names its principal in the ``oid`` claim: a UUID derived from
tenant and client id, so it is stable across restarts (``object_id_for``). By default every
principal holds "Cognitive Services OpenAI User" on the resource; ``POST /_emulator/roles``
``{"object_id": ..., "assigned": false}`` removes it, and then every Azure OpenAI call with
that principal's token answers Azure's **401** ``PermissionDenied`` (a fresh token changes
nothing, as in Azure). ``GET /_emulator/roles`` lists the registered clients' object ids.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = [
    "ROLE_NAME",
    "SYSTEM_ASSIGNED",
    "object_id_for",
    "permission_denied_body",
    "principals",
]

ROLE_NAME = "Cognitive Services OpenAI User"
SYSTEM_ASSIGNED = "system-assigned"  # the managed identity's client id in the emulator


def object_id_for(tenant_id: str, client_id: str) -> str:
    """The object id of the service principal of ``client_id`` in ``tenant_id``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"emulator:{tenant_id}:{client_id}"))


def permission_denied_body() -> dict[str, Any]:
    """Azure's answer (status 401) when the principal lacks the role."""
    return {
        "error": {
            "code": "PermissionDenied",
            "message": "Principal does not have access to API/Operation.",
        }
    }


def principals(tenant_id: str, client_ids: list[str], removed: set[str]) -> list[dict[str, Any]]:
    """Each client's object id and whether it holds the role."""
    listed = []
    for client_id in [*client_ids, SYSTEM_ASSIGNED]:
        object_id = object_id_for(tenant_id, client_id)
        assigned = object_id not in removed
        listed.append({"client_id": client_id, "object_id": object_id, "assigned": assigned})
    return listed
