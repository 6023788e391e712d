"""End-to-end: every server stops promptly and cleanly on SIGTERM and Ctrl-C (SIGINT).

Each test starts the real command as a subprocess, holds an idle keep-alive connection (the
client made one request and keeps the socket open, as connection pools do), signals the process
and asserts it exits with 0 well inside a Kubernetes grace period (30 s). One test proves an
in-flight stream is allowed to finish.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from support.emulator import EmulatorHandle, start_emulator
from support.service import ROOT, free_port, service_config, stack_environment, wait_until_up

STOP_WITHIN_SECONDS = 8.0  # far below 30 s, with room for a loaded 2-core machine
SIGNALS = [signal.SIGTERM, signal.SIGINT]
_BIN = Path(sys.executable).parent


def _stopped_within(process: subprocess.Popen[bytes], sig: signal.Signals) -> float:
    started = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_WITHIN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"still running {STOP_WITHIN_SECONDS} s after {sig.name}")
    return time.monotonic() - started


@contextmanager
def _running(
    command: list[str], env: dict[str, str], log: Path, probe: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``; yields once ``probe`` answers; kills it if the test left it running."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        wait_until_up(probe, process, log, deadline_seconds=90)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_emulator_stops_with_idle_https_keep_alive_client(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with start_emulator(tmp_path) as emulator, httpx.Client(verify=str(emulator.ca_path)) as client:
        assert client.get(f"{emulator.url}/_emulator/counters").status_code == 200
        _stopped_within(emulator.process, sig)
        assert emulator.process.returncode == 0


def _proxy_config(directory: Path, emulator: EmulatorHandle, port: int, drain: float = 5) -> Path:
    path = service_config(
        directory,
        emulator,
        extra={
            "proxy": {
                "upstream": emulator.azure_base_url,
                "ca_bundle": str(emulator.ca_path),
                "port": port,
                "shutdown_timeout_seconds": drain,
            }
        },
    )
    return path


def _start(
    kind: str, directory: Path, emulator: EmulatorHandle, drain: float = 5
) -> tuple[list[str], str, str]:
    """Command, base URL and probe path of ``serve`` or ``proxy`` for the emulator."""
    port = free_port()
    path = _proxy_config(directory, emulator, port, drain)
    command = [str(_BIN / "llama-entra"), kind, "-c", str(path), "--port", str(port)]
    probe = "/liveness" if kind == "serve" else "/healthz"
    return command, f"http://127.0.0.1:{port}", probe


@pytest.mark.parametrize("kind", [pytest.param("serve", marks=pytest.mark.slow), "proxy"])
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_server_stops_with_idle_keep_alive_client(
    tmp_path: Path, emulator: EmulatorHandle, kind: str, sig: signal.Signals
) -> None:
    command, base, probe = _start(kind, tmp_path, emulator)
    env = stack_environment(emulator, tmp_path / "state")
    log = tmp_path / f"{kind}.log"
    with _running(command, env, log, f"{base}{probe}") as process, httpx.Client() as client:
        # A real call first, so the proxy also holds a pooled upstream connection.
        path = "/v1/models" if kind == "serve" else "/models"
        assert client.get(f"{base}{path}", timeout=30).status_code == 200
        _stopped_within(process, sig)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


def test_proxy_lets_an_in_flight_stream_finish_then_exits(
    tmp_path: Path, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(0.3)
    command, base, probe = _start("proxy", tmp_path, fresh_emulator)
    env = stack_environment(fresh_emulator, tmp_path / "state")
    log = tmp_path / "proxy.log"
    body = {
        "model": fresh_emulator.model,
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six"}],
    }
    with _running(command, env, log, f"{base}{probe}") as process:
        signalled = 0.0
        lines: list[str] = []
        with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data:") and not lines:
                    signalled = time.monotonic()
                    process.send_signal(signal.SIGTERM)  # mid-stream
                lines.append(line)
        finished = time.monotonic() - signalled
        process.wait(timeout=STOP_WITHIN_SECONDS)
    assert "data: [DONE]" in lines
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for line in lines
        if line.startswith("data: {")
        for chunk in [json.loads(line.removeprefix("data: "))]
        if chunk["choices"]
    )
    assert text == "You said: one two three four five six"
    assert finished > 0.6  # the stream really went on after the signal
    assert process.returncode == 0


def test_proxy_cuts_a_stream_longer_than_the_drain_limit(
    tmp_path: Path, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.set_stream_delay(2.0)  # about 20 s for the whole answer
    command, base, probe = _start("proxy", tmp_path, fresh_emulator, drain=1)
    env = stack_environment(fresh_emulator, tmp_path / "state")
    body = {
        "model": fresh_emulator.model,
        "stream": True,
        "messages": [{"role": "user", "content": "a b c d e f g h"}],
    }
    with (
        _running(command, env, tmp_path / "proxy.log", f"{base}{probe}") as process,
        httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=30) as response,
    ):
        lines = response.iter_lines()
        while not next(lines).startswith("data:"):
            pass
        took = _stopped_within(process, signal.SIGTERM)
    assert process.returncode == 0
    assert took < 6  # drain limit 1 s, then the stream is cancelled


@pytest.mark.slow
def test_serve_lets_an_in_flight_streaming_query_finish_then_exits(
    tmp_path: Path, fresh_emulator: EmulatorHandle
) -> None:
    """SIGTERM mid-answer: the stream goes on to its ``end`` event, then the service exits."""
    command, base, probe = _start("serve", tmp_path, fresh_emulator)
    env = stack_environment(fresh_emulator, tmp_path / "state")
    log = tmp_path / "serve.log"
    body = {"query": "one two three four five six", "generate_topic_summary": False}
    with _running(command, env, log, f"{base}{probe}") as process:
        fresh_emulator.set_stream_delay(0.3)
        signalled = 0.0
        events: list[dict[str, object]] = []
        with httpx.stream("POST", f"{base}/v1/streaming_query", json=body, timeout=30) as answer:
            for line in answer.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line.removeprefix("data: ")))
                if events[-1]["event"] == "token" and not signalled:
                    signalled = time.monotonic()
                    process.send_signal(signal.SIGTERM)  # mid-answer
        finished = time.monotonic() - signalled
        process.wait(timeout=STOP_WITHIN_SECONDS)
    names = [event["event"] for event in events]
    assert names[0] == "start" and names[-1] == "end", names
    text = "".join(str(e["data"]["token"]) for e in events if e["event"] == "token")  # type: ignore[index]
    assert text == "You said: one two three four five six"
    assert finished > 0.6  # the stream really went on after the signal
    assert process.returncode == 0, log.read_text()[-2000:]
