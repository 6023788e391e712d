"""End-to-end: ``GET /`` is a status page a person can read, checked in a real headless Chromium.

Debian's ``chromium`` loads the page from a running service (no JavaScript needed: the page
has none), ``--dump-dom`` gives what the browser parsed and ``--screenshot`` what it drew; the
screenshot is kept under ``test-artifacts/`` (git-ignored). A missing browser fails the test
with the command that installs it, never skips it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from support.emulator import EmulatorHandle
from support.service import ROOT, ServiceHandle

pytestmark = pytest.mark.slow

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: run `apt-get install -y chromium` (Debian)")
    return found


def _browse(url: str, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [_chromium(), *_FLAGS, f"--user-data-dir={profile}", *flags, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_status_page_in_headless_chromium(
    service: ServiceHandle, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    httpx.post(f"{service.url}/v1/query", json={"query": "warm the token"}, timeout=60)
    raw = httpx.get(f"{service.url}/")
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("text/html")
    assert "<script" not in raw.text.lower() and "http://" not in raw.text
    assert emulator.client_secret not in raw.text

    dom = _browse(f"{service.url}/", tmp_path / "profile", "--dump-dom").stdout
    for expected in (
        "<title>llama-entra status</title>",
        "Backend",
        "library",  # mode
        "noop",  # inbound authentication
        "Token held",
        '<span class="ok">yes</span>',
        "Expires in",
        "Last refresh",
        f"azure/{emulator.model}",
        'href="/docs"',
        'href="/metrics"',
    ):
        assert expected in dom, expected

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "status-page.png"
    screenshot.unlink(missing_ok=True)
    _browse(
        f"{service.url}/",
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1200,900",
    )
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
