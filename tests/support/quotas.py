"""Helpers for quota tests: callers with API keys, limiters, and their queries."""

from __future__ import annotations

from typing import Any

import httpx

from support.service import ServiceHandle

__all__ = ["KEYS", "answered", "headers", "query", "quota_config", "spent"]

KEYS = {name: f"key-of-{name}-0123456789" for name in ("alice", "bob", "carol", "dave", "erin")}


def quota_config(user_quota: int, cluster_quota: int) -> dict[str, Any]:
    """``authentication`` with the ``KEYS`` callers and ``quota_handlers`` with two daily
    limiters: ``user_daily`` per caller and ``cluster_daily`` for the service."""
    return {
        "authentication": {"module": "api_key", "api_key": {"keys": KEYS}},
        "quota_handlers": {
            "limiters": [
                {
                    "type": "user_limiter",
                    "name": "user_daily",
                    "initial_quota": user_quota,
                    "quota_increase": 0,
                    "period": "1 day",
                },
                {
                    "type": "cluster_limiter",
                    "name": "cluster_daily",
                    "initial_quota": cluster_quota,
                    "quota_increase": 0,
                    "period": "1 day",
                },
            ]
        },
    }


def headers(user: str) -> dict[str, str]:
    """``user``'s credential."""
    return {"Authorization": f"Bearer {KEYS[user]}"}


def query(service: ServiceHandle, user: str, text: str, **fields: Any) -> httpx.Response:
    """``POST /v1/query`` as ``user`` (no topic summary: a background call would spend too)."""
    body = {"query": text, "generate_topic_summary": False, **fields}
    return httpx.post(f"{service.url}/v1/query", json=body, headers=headers(user), timeout=60)


def answered(service: ServiceHandle, user: str, text: str) -> dict[str, Any]:
    """A 200 answer to ``text`` for ``user``."""
    response = query(service, user, text)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def spent(body: dict[str, Any]) -> int:
    """Tokens an answer (or an ``end`` event's data) used."""
    return int(body["input_tokens"]) + int(body["output_tokens"])
