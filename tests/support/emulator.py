"""Pytest plugin: the emulator as a real HTTPS server in a subprocess, and a handle to drive it.

``emulator`` (session) starts ``python -m llama_entra.emulator --port 0`` once and waits for
its ready file with a deadline; ``fresh_emulator`` is the same server after ``reset()``.
``start_emulator(state_dir)`` is the context manager behind them, for benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_entra.emulator.state import OUTCOMES

__all__ = ["EmulatorHandle", "start_emulator"]

_START_DEADLINE = 30.0


class EmulatorHandle:
    """A running emulator: its URLs, demo identities, and sync test controls."""

    def __init__(self, info: dict[str, Any], process: subprocess.Popen[bytes]) -> None:
        self.info = info
        self.process = process
        self.url: str = info["url"]
        self.azure_base_url: str = info["azure_base_url"]
        self.ca_path = Path(info["ca_path"])
        self.tenant_id: str = info["tenant_id"]
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        self.cert_client_id: str = info["cert_client_id"]
        self.cert_path = Path(info["cert_path"])
        self.model: str = info["models"][0]
        self.embedding_model: str = info["embedding_models"][0]
        self.embedding_dimension: int = info["embedding_dimension"]
        self.static_api_key: str = info["static_api_key"]
        self.managed_identity_endpoint: str = info["managed_identity_endpoint"]
        self.managed_identity_header: str = info["managed_identity_header"]
        self._http = httpx.Client(base_url=f"{self.url}/_emulator", verify=str(self.ca_path))

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(path, json=body or {})
        response.raise_for_status()
        return response.json()

    def counters(self) -> dict[str, Any]:
        """Token requests (total and per client), completions, 401s since the last reset."""
        response = self._http.get("/counters")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        """Counters, faults and token lifetime back to defaults (issued tokens stay valid)."""
        self._post("/reset")

    def fail_next_token_requests(self, count: int, status: int = 503) -> None:
        """The next ``count`` token requests fail with ``status``."""
        self._post("/faults", {"fail_token_requests": count, "fail_status": status})

    def delay_next_token_requests(self, count: int, seconds: float) -> None:
        """The next ``count`` token requests wait ``seconds`` before answering."""
        self._post("/faults", {"delay_token_requests": count, "delay_seconds": seconds})

    def set_entra_down(self, down: bool) -> None:
        """Entra answers 503 to everything while ``down``."""
        self._post("/faults", {"entra_down": down})

    def set_stream_delay(self, seconds: float) -> None:
        """Pause before each streamed chunk."""
        self._post("/faults", {"stream_delay": seconds})

    def set_first_chunk_delay(self, seconds: float) -> None:
        """Pause before the first streamed chunk, as a model does before its first token."""
        self._post("/faults", {"first_chunk_delay": seconds})

    def break_streams_after(self, chunks: int) -> None:
        """Drop every streamed completion's connection after ``chunks`` content chunks (until
        ``reset``)."""
        self._post("/faults", {"break_streams_after": chunks})

    def revoke_all_tokens(self) -> None:
        """Every token issued so far is rejected by Azure OpenAI from now on."""
        self._post("/revoke")

    def set_token_lifetime(self, seconds: int, refresh_in: int | None = None) -> None:
        """Lifetime (and ``refresh_in`` hint) of tokens issued from now on."""
        self._post("/token-lifetime", {"seconds": seconds, "refresh_in": refresh_in})

    def federated_token(self, subject: str = "system:serviceaccount:default:app") -> str:
        """A service account token the token endpoint accepts for workload identity."""
        token: str = self._post("/federated-token", {"subject": subject})["token"]
        return token

    def access_token(self) -> str:
        """A new access token for the demo client, fetched with azure-identity (no cache)."""
        from azure.identity import ClientSecretCredential

        credential = ClientSecretCredential(
            self.tenant_id,
            self.client_id,
            self.client_secret,
            authority=self.url,
            connection_verify=str(self.ca_path),
            disable_instance_discovery=True,
        )
        try:
            return credential.get_token("https://cognitiveservices.azure.com/.default").token
        finally:
            credential.close()

    def last_request_headers(self) -> list[dict[str, str]]:
        """Headers of the most recent Azure OpenAI requests, oldest first."""
        response = self._http.get("/requests")
        response.raise_for_status()
        headers: list[dict[str, str]] = response.json()
        return headers

    @property
    def client_object_id(self) -> str:
        """Object id (the tokens' ``oid``) of the demo client's service principal."""
        object_id: str = self.info["client_object_id"]
        return object_id

    @property
    def cert_client_object_id(self) -> str:
        """Object id of the certificate client's service principal."""
        object_id: str = self.info["cert_client_object_id"]
        return object_id

    def set_limits(
        self,
        model: str,
        rpm: int | None = None,
        tpm: int | None = None,
        context_window: int | None = None,
    ) -> dict[str, Any]:
        """Set a deployment's quota exactly (None: unlimited rate, default context window)."""
        body = {"model": model, "rpm": rpm, "tpm": tpm, "context_window": context_window}
        result: dict[str, Any] = self._post("/limits", body)
        return result

    def limits(self) -> dict[str, Any]:
        """Each deployment's quota and what its rate-limit window holds now."""
        response = self._http.get("/limits")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def throttle_next(self, count: int, retry_after: float, model: str | None = None) -> None:
        """The next ``count`` Azure OpenAI calls (of ``model``, or any) answer 429."""
        body = {"throttle_next": count, "throttle_retry_after": retry_after}
        self._post("/faults", {**body, "throttle_model": model})

    def set_role(self, object_id: str, assigned: bool) -> None:
        """Give the principal the Azure OpenAI role, or take it away (401 PermissionDenied)."""
        self._post("/roles", {"object_id": object_id, "assigned": assigned})

    def roles(self) -> dict[str, Any]:
        """The registered principals, their object ids and role assignments."""
        response = self._http.get("/roles")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def azure_calls(self, model: str | None = None) -> dict[str, Any]:
        """Azure OpenAI calls by outcome: per deployment, or of ``model`` alone."""
        calls: dict[str, Any] = self.counters()["azure_calls"]
        if model is None:
            return calls
        outcomes: dict[str, Any] = calls.get(model) or dict.fromkeys(OUTCOMES, 0)
        return outcomes

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward until the next reset (windows empty, tokens expire)."""
        self._post("/clock", {"advance_seconds": seconds})

    def user_token(self, user: str = "alice", **options: Any) -> str:
        """An access token of test ``user`` for the demo app (``app_only``, ``audience``,
        ``lifetime``: see ``llama_entra.emulator.users``)."""
        token: str = self._post("/user-token", {"user": user, **options})["access_token"]
        return token

    def user_object_id(self, user: str) -> str:
        """The object id (``oid``) of test ``user``."""
        from llama_entra.emulator.user_directory import user_object_id

        return user_object_id(self.tenant_id, user)

    def set_consent(self, user: str, granted: bool) -> None:
        """Grant or revoke ``user``'s consent to the app's delegated permission."""
        self._post("/consent", {"user": user, "granted": granted})

    def users(self) -> dict[str, Any]:
        """On-behalf-of exchanges per user, Azure calls per token ``oid``."""
        response = self._http.get("/users")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        """Close the control client (the process is stopped by its owner)."""
        self._http.close()


@contextlib.contextmanager
def start_emulator(state_dir: Path, *extra_args: str) -> Iterator[EmulatorHandle]:
    """Run the emulator on a free port until the block exits."""
    ready_file = state_dir / "emulator.json"
    ready_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "llama_entra.emulator", "--port", "0"]
    command += ["--state-dir", str(state_dir), *extra_args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + _START_DEADLINE
        while not ready_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"emulator exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"emulator not ready within {_START_DEADLINE} s")
            time.sleep(0.05)
        handle = EmulatorHandle(json.loads(ready_file.read_text()), process)
        try:
            yield handle
        finally:
            handle.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """One emulator for the whole session."""
    with start_emulator(tmp_path_factory.mktemp("emulator")) as handle:
        yield handle


@pytest.fixture
def fresh_emulator(emulator: EmulatorHandle) -> EmulatorHandle:
    """The session emulator with counters, faults and lifetime reset."""
    emulator.reset()
    return emulator
