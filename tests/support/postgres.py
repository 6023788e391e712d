"""Pytest plugin: a real PostgreSQL server for the session, from the system's server binaries.

``postgres`` (session) runs ``initdb`` once into a private directory and starts ``postgres`` on
a free loopback port with password (scram) authentication; ``postgres_db`` gives each test its
own empty database on it. ``start_postgres()`` is the context manager behind them, for
benchmarks. The handle stops and starts the server (the same port and data) so tests can take
the database away and bring it back.

PostgreSQL refuses to run as root: as root, every server command runs as the ``postgres`` user
(``runuser``) on a directory that user owns. The binaries come from ``LLAMA_ENTRA_PG_BINDIR``,
``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``; without them the fixture fails with a
message saying what to install, never skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from support.service import free_port

__all__ = ["PostgresServer", "find_bindir", "start_postgres"]

_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's server "
    "(apt-get install postgresql) or set LLAMA_ENTRA_PG_BINDIR to the directory holding initdb"
)


def find_bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``; ``RuntimeError`` names what to install."""
    candidates: list[Path] = []
    if os.environ.get("LLAMA_ENTRA_PG_BINDIR"):
        candidates.append(Path(os.environ["LLAMA_ENTRA_PG_BINDIR"]))
    if shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found:
            candidates.append(Path(found))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise RuntimeError(_INSTALL_HINT)


class PostgresServer:
    """A PostgreSQL server in a private directory; superuser ``llama`` with a random password."""

    user = "llama"

    def __init__(self, bindir: Path, root: Path, *, port: int, durable: bool = False) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "run"
        self.log_path = root / "postgres.log"
        self.host = "127.0.0.1"
        self.port = port
        self.password = "pg-" + secrets.token_hex(12)  # tests search logs and bodies for it
        self._as_postgres = os.geteuid() == 0
        self.durable = durable  # fsync and synchronous commit as in production (benchmarks)

    def _run(self, *command: str, timeout: float = 120) -> None:
        argv = [str(self.bindir / command[0]), *command[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            log = self.log_path
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}\n{tail}")

    def init(self) -> None:
        """``initdb`` with scram password authentication over TCP."""
        self.socket_dir.mkdir()
        password_file = self.root / "pwfile"
        password_file.write_text(self.password + "\n")
        if self._as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError(
                    "running as root, PostgreSQL needs the 'postgres' user: " + _INSTALL_HINT
                ) from exc
            for path in (self.root, self.socket_dir, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--pwfile", str(password_file),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        password_file.unlink()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
            "-c max_connections=300"
        )
        if not self.durable:  # tests: nothing to keep after the session, so no fsync
            options += " -c fsync=off -c synchronous_commit=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def is_running(self) -> bool:
        """Whether the server accepts connections."""
        try:
            self.connect().close()
        except psycopg2.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server (fast: open connections are closed)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def connect(self, database: str = "postgres") -> psycopg2.extensions.connection:
        """A superuser connection (autocommit)."""
        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database
        )
        connection.autocommit = True
        return connection

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; returns the name."""
        with contextlib.closing(self.connect()) as connection, connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        return name

    def environment(self, database: str) -> dict[str, str]:
        """Llama Stack's ``POSTGRES_*`` variables for ``database``."""
        return {
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DB": database,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
        }


@contextlib.contextmanager
def start_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Initialise and run a PostgreSQL server until the block exits, then delete it."""
    bindir = find_bindir()
    # Not under pytest's tmp dirs: their parents are private to root and postgres must enter.
    root = Path(tempfile.mkdtemp(prefix="llama-entra-pg-"))
    server = PostgresServer(bindir, root, port=free_port(), durable=durable)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; fails (never skips) without the binaries."""
    try:
        context = start_postgres()
        server = context.__enter__()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def postgres_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A new empty database on the session server for this test."""
    return postgres.create_database(f"t_{secrets.token_hex(6)}")
