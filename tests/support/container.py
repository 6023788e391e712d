"""Run the built image with buildah, the way a container runtime would, for tests/image.

No daemon and no pull here, so a "container" is a buildah working container made from the
image (``buildah from``), its processes started with ``buildah run`` in chroot isolation on the
host network (so they reach the emulator on 127.0.0.1). What that gives, and how:

- the image's environment, working directory and user: ``buildah run`` applies the image
  config; ``--user`` overrides the user as ``runAsUser``/``runAsGroup`` would;
- volumes: ``-v HOST:PATH[:ro]`` bind mounts, PATH resolved inside the image first: buildah
  1.28's chroot isolation follows an absolute symlink on the way (Debian's ``/var/run`` ->
  ``/run``) on the host, and would mount on the host's ``/run``;
- a read-only root filesystem: the working container's root is bind mounted read-only onto
  itself on the host before the run, so every path of the image is read-only for every user,
  root included; only the volumes and ``/run`` (where buildah itself puts ``.containerenv``,
  bound to a fresh host directory) are writable;
- a stop: chroot isolation shares the host's PID namespace, so SIGTERM goes straight to the
  container's main process (the child of ``buildah-chroot-exec``, which stands in for the
  runtime's init). ``buildah run`` itself answers SIGTERM with SIGKILL, so it is never signalled.

Secrets reach the container with ``buildah config --env`` (kept in the working container, gone
with it), never on a command line that ``ps`` shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

import psutil

__all__ = ["Buildah", "Container", "ContainerProcess"]

_RUN_NAME = "buildah-chroot-exec"


class Buildah:
    """The buildah command line, with the isolation that works in a container (chroot)."""

    def __init__(self) -> None:
        self.env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}

    def __call__(self, *args: str, timeout: float = 120) -> str:
        """Run ``buildah ARGS``; its stdout, or an error naming the command and its stderr."""
        done = subprocess.run(
            ["buildah", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"buildah {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}"
            )
        return done.stdout

    def has_image(self, image: str) -> bool:
        """Whether ``image`` is in local storage."""
        done = subprocess.run(
            ["buildah", "inspect", "--type", "image", image],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0

    def popen(self, args: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start ``buildah ARGS`` with its output going to ``log``."""
        return subprocess.Popen(
            ["buildah", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )


class ContainerProcess:
    """A process started in a container: the ``buildah run`` client and its log."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def logs(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def main_process(self, deadline_seconds: float = 10) -> psutil.Process:
        """The container's main process (the command), as a host process."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                try:
                    parent = child.parent()
                    if parent is not None and parent.cmdline()[:1] == [_RUN_NAME]:
                        return child
                except psutil.NoSuchProcess:
                    continue
            time.sleep(0.05)
        raise RuntimeError(f"no process under {_RUN_NAME} within {deadline_seconds} s")

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM to the main process; (exit code, seconds to exit). Killed after ``timeout``."""
        main = self.main_process()
        started = time.monotonic()
        main.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Stop at once (clean-up after a failure)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


class Container:
    """A buildah working container of the image, removed by ``close()``."""

    def __init__(self, buildah: Buildah, image: str, name: str, workdir: Path) -> None:
        self.buildah = buildah
        self.name = name
        self.workdir = workdir
        self._read_only_root: Path | None = None
        self._root: Path | None = None
        self._processes: list[ContainerProcess] = []
        buildah("from", "--pull-never", "--name", name, image)

    def set_env(self, env: Mapping[str, str]) -> None:
        """Add variables to the container's environment (not visible in any command line)."""
        args: list[str] = []
        for name, value in env.items():
            args += ["--env", f"{name}={value}"]
        if args:
            self.buildah("config", *args, self.name)

    def _run_args(
        self,
        command: Sequence[str],
        user: str | None,
        volumes: Mapping[str, str],
        env: Mapping[str, str],
    ) -> list[str]:
        args = ["run", "--network", "host"]
        if user is not None:
            args += ["--user", user]
        for host, target in volumes.items():
            path, colon, options = target.partition(":")
            args += ["-v", f"{host}:{self.resolve(path)}{colon}{options}"]
        for name, value in env.items():
            args += ["--env", f"{name}={value}"]
        return [*args, self.name, "--", *command]

    def root(self) -> Path:
        """The container's root filesystem on the host (``buildah mount``)."""
        if self._root is None:
            self._root = Path(self.buildah("mount", self.name).strip())
        return self._root

    def resolve(self, path: str) -> str:
        """``path`` with every symlink on the way resolved inside the container's root."""
        root = self.root()
        resolved = PurePosixPath("/")
        pending = list(PurePosixPath(path).parts[1:])
        for _ in range(64):
            if not pending:
                return str(resolved)
            part = pending.pop(0)
            if part == "..":
                resolved = resolved.parent
                continue
            candidate = resolved / part
            host = root / candidate.relative_to("/")
            if host.is_symlink():
                link = PurePosixPath(os.readlink(host))
                base = PurePosixPath("/") if link.is_absolute() else resolved
                pending = list((base / link).parts[1:]) + pending
                resolved = PurePosixPath("/")
            else:
                resolved = candidate
        raise RuntimeError(f"too many symlinks resolving {path}")

    def run(
        self,
        command: Sequence[str],
        *,
        user: str | None = None,
        volumes: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` to its end; its result whatever the exit code."""
        args = self._run_args(command, user, volumes or {}, env or {})
        return subprocess.run(
            ["buildah", *args],
            env=self.buildah.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(
        self,
        command: Sequence[str],
        *,
        log_name: str,
        user: str | None = None,
        volumes: Mapping[str, str] | None = None,
    ) -> ContainerProcess:
        """Start ``command`` in the background; the caller waits for it to be ready."""
        log_path = self.workdir / f"{log_name}.log"
        with log_path.open("wb") as log:
            process = self.buildah.popen(self._run_args(command, user, volumes or {}, {}), log)
        started = ContainerProcess(process, log_path)
        self._processes.append(started)
        return started

    def make_root_read_only(self, volumes: Mapping[str, str]) -> None:
        """From now on the image's files are read-only; ``volumes`` and ``/run`` stay writable.

        A first run creates the mount points of ``volumes`` (as a runtime does before it
        starts a container); then the root is bound read-only onto itself on the host.
        """
        prepared = self.run(["true"], user="0:0", volumes=volumes)
        if prepared.returncode != 0:
            raise RuntimeError(f"preparing the mount points failed: {prepared.stderr[-2000:]}")
        root = self.root()
        run_dir = self.workdir / f"{self.name}-run"
        run_dir.mkdir(mode=0o755)
        _mount("--bind", str(root), str(root))
        self._read_only_root = root
        _mount("-o", "remount,bind,ro", str(root))
        _mount("--bind", str(run_dir), str(root / "run"))

    def close(self) -> None:
        """Stop what still runs, undo the mounts, remove the working container."""
        for process in self._processes:
            process.kill()
        if self._read_only_root is not None:
            _umount(self._read_only_root / "run")
            _umount(self._read_only_root)
        self.buildah("rm", self.name)


def _mount(*args: Any) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mount {' '.join(args)} failed (root is needed): {done.stderr}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=False)
