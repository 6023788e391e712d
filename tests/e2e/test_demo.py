"""End-to-end: ``make demo`` brings up the emulator and the service, its printed examples work,
and Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Thread

import httpx
import pytest

from llama_entra.backends import active_backend
from support.service import ROOT, free_port

pytestmark = pytest.mark.slow

_DEADLINE = 120.0


class _Lines:
    """Lines a process prints, collected by a thread so reading never blocks the test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._stream = process.stdout
        self._thread = Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        """After the process has exited: the last lines read, the pipe closed."""
        self._thread.join(timeout=5)
        self._stream.close()

    def wait_for(self, text: str, process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + _DEADLINE
        while not any(text in line for line in self.lines):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"demo never printed {text!r}; it printed: {self.lines}")
            time.sleep(0.1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], _Lines, Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "LLAMA_ENTRA_PORT": str(free_port()),
        "LLAMA_ENTRA_DEMO_DIR": str(tmp_path / "demo"),
        "BACKEND": active_backend().name,  # `make demo` on the backend under test
    }
    process = subprocess.Popen(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    lines = _Lines(process)
    try:
        yield process, lines, tmp_path / "demo"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        lines.close()


def _alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_demo_examples_answer_and_ctrl_c_stops_everything(
    demo: tuple[subprocess.Popen[str], _Lines, Path],
) -> None:
    process, output, state_dir = demo
    output.wait_for("Ctrl-C stops both", process)
    curl = next(line for line in output.lines if "/v1/query" in line)
    url = re.search(r"(http://\S+/v1/query)", curl)
    body = re.search(r"-d '(\{.*\})'", curl)
    assert url and body, curl
    reply = httpx.post(url.group(1), json=json.loads(body.group(1)), timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["response"] == "You said: Hello Entra"
    info = httpx.get(url.group(1).replace("/v1/query", "/v1/info"), timeout=10).json()
    assert info["backend"] == active_backend().name

    python_example = next(line.strip() for line in output.lines if "import openai" in line)
    command = shlex.split(python_example)
    assert command[0] == "python3"
    ran = subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "You said: hi"

    emulator_pid = json.loads((state_dir / "emulator" / "emulator.json").read_text())["pid"]
    assert _alive(emulator_pid)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while _alive(emulator_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(emulator_pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url.group(1).replace("/v1/query", "/liveness"), timeout=5)
