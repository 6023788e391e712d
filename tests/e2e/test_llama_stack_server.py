"""End-to-end: the container entrypoint never starts an unenriched run config.

(The happy path, a real ``llama stack run`` from the enriched ``run-configs/azure.yaml`` with
no credential, is ``tests/e2e/test_service_mode.py::test_llama_stack_server_started_...``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.service import ROOT

SCRIPT = ROOT / "scripts" / "llama-stack-entrypoint.sh"


def _entrypoint(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_entrypoint_broken_run_config_exits_nonzero_without_starting(tmp_path: Path) -> None:
    broken = tmp_path / "run.yaml"
    broken.write_text("providers: [unclosed\n")
    result = _entrypoint("--entra", str(broken), home=tmp_path)
    assert result.returncode == 2
    assert "malformed YAML" in result.stderr
    assert "Starting server" not in result.stdout + result.stderr


def test_entrypoint_invalid_service_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    service = tmp_path / "llama-entra.yaml"
    service.write_text("azure_entra_id: {tenant_id: t, client_id: c, nonsense: 1}\n")
    result = _entrypoint(str(service), str(ROOT / "run-configs" / "azure.yaml"), home=tmp_path)
    assert result.returncode == 2
    assert "azure_entra_id.nonsense: unknown key" in result.stderr


def test_entrypoint_without_arguments_prints_usage(tmp_path: Path) -> None:
    result = _entrypoint(home=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
