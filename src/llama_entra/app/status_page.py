"""The HTML status page for a person: plain server-rendered HTML, no scripts, no external assets.

Built from the same data as ``/v1/info`` (never a secret or a token) and the model list;
every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from llama_entra.stack import ModelInfo

__all__ = ["render_status_page"]

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;
color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:1.8rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #d8dee4;vertical-align:top}th{width:16rem;font-weight:600}
.ok{color:#116329;font-weight:600}.bad{color:#b3261e;font-weight:600}code{font-size:.92em}
nav a{margin-right:1.2rem}
"""


def _row(name: str, value: str, *, raw: bool = False) -> str:
    return f"<tr><th>{escape(name)}</th><td>{value if raw else escape(value)}</td></tr>"


def _state(good: bool, text: str) -> str:
    return f'<span class="{"ok" if good else "bad"}">{escape(text)}</span>'


def _entra_rows(entra: dict[str, Any] | None) -> list[str]:
    if entra is None:
        return [_row("Entra ID", "not configured (static keys from the run config, if any)")]
    held = bool(entra.get("has_token"))
    expires = entra.get("expires_in_seconds")
    return [
        _row("Identity", str(entra.get("identity") or "")),
        _row("Token held", _state(held, "yes" if held else "no"), raw=True),
        _row("Expires in", f"{float(expires):.0f} s" if expires is not None else "-"),
        _row("Last refresh", str(entra.get("last_refresh") or "never")),
        _row(
            "Last error",
            _state(False, str(entra["last_error"])) if entra.get("last_error") else "none",
            raw=True,
        ),
        _row("Token requests", str(entra.get("token_requests", 0))),
    ]


def _models_table(models: list[ModelInfo] | None, problem: str | None) -> str:
    if models is None:
        return f"<p>{_state(False, 'Models unavailable: ' + (problem or 'unknown'))}</p>"
    if not models:
        return "<p>No models are registered.</p>"
    rows = "".join(
        f"<tr><td><code>{escape(m.id)}</code></td><td>{escape(m.model_type)}</td>"
        f"<td>{escape(m.provider_id)}</td><td>{'yes' if m.azure else 'no'}</td></tr>"
        for m in models
    )
    head = "<tr><th>Model</th><th>Type</th><th>Provider</th><th>Azure (Entra ID)</th></tr>"
    return f"<table>{head}{rows}</table>"


def _resources_table(resources: dict[str, list[dict[str, Any]]]) -> str:
    """Models on several Azure OpenAI resources: each resource's state and counts."""
    if not resources:
        return ""
    rows = "".join(
        f"<tr><td>{escape(provider)}</td><td><code>{escape(str(r['url']))}</code></td>"
        f"<td>{_cooling(float(r['cooling_down_seconds']))}</td><td>{int(r['calls'])}</td>"
        f"<td>{int(r['throttled'])}</td><td>{int(r['unavailable'])}</td>"
        f"<td>{int(r['failovers'])}</td></tr>"
        for provider, states in sorted(resources.items())
        for r in states
    )
    head = (
        "<tr><th>Provider</th><th>Resource</th><th>State</th><th>Calls</th><th>429s</th>"
        "<th>Refused</th><th>Moved on</th></tr>"
    )
    return f"<h2>Azure OpenAI resources</h2><table>{head}{rows}</table>"


def _cooling(seconds: float) -> str:
    if seconds <= 0:
        return _state(True, "serving")
    return _state(False, f"cooling down, {seconds:.0f} s left")


def render_status_page(
    info: dict[str, Any], models: list[ModelInfo] | None, problem: str | None
) -> str:
    """The whole page for ``info`` (``service_info``) and the models (None: listing failed)."""
    service = [
        _row("Service", f"{info['name']} {info.get('service_version') or ''}".strip()),
        _row(
            "Backend",
            f"{info['backend']} {info.get('llama_stack_version') or ''} "
            f"(client {info.get('llama_stack_client_version') or '?'})",
        ),
        _row("Mode", str(info["mode"])),
        _row("Inbound authentication", str(info["authentication"])),
    ]
    bases = info.get("azure_providers") or {}
    azure = [_row(f"Azure provider {name}", url) for name, url in sorted(bases.items())]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>llama-entra status</title><style>{_STYLE}</style></head><body>"
        "<h1>llama-entra</h1><p>Llama Stack on Azure OpenAI with Microsoft Entra ID.</p>"
        '<nav><a href="/docs">API docs (/docs)</a><a href="/openapi.json">OpenAPI</a>'
        '<a href="/metrics">Metrics (/metrics)</a><a href="/readiness">Readiness</a></nav>'
        f"<h2>Service</h2><table>{''.join(service + azure)}</table>"
        f"<h2>Entra ID token</h2><table>{''.join(_entra_rows(info.get('entra_id')))}</table>"
        f"{_resources_table(info.get('azure_resources') or {})}"
        f"<h2>Models</h2>{_models_table(models, problem)}"
        "</body></html>"
    )
