"""A throwaway PostgreSQL server for the tests (session-scoped), on 127.0.0.1 and a free port.

Enabled from tests/conftest.py with ``from fixtures_postgres import postgres_server, postgres_url``.

It is the same database the compose stack gives MLflow and Optuna, run natively: Debian's
PostgreSQL (``/usr/lib/postgresql/<major>/bin``), installed with ``apt-get install -y postgresql``
when missing (CI starts on a fresh machine; the tests skip, saying why, only when that install is
impossible). The cluster lives in a temporary folder: ``initdb -A trust -U postgres``, then
``pg_ctl start`` with its socket in the same folder, listening on 127.0.0.1 only. As root both run
as the ``postgres`` user (``initdb`` refuses root); as any other user they run as that user.
The server is always stopped, and its folder removed, at the end of the session.

``postgres_url`` is ``postgresql+psycopg2://postgres@127.0.0.1:PORT/satsr`` (SQLAlchemy form, as
MLflow's ``--backend-store-uri`` and Optuna's RDB storage take it); ``postgres_server`` gives the
server itself, e.g. ``postgres_server.create_database("mlflow")`` for one more database.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Seconds allowed for ``apt-get update && apt-get install -y postgresql`` on a fresh machine.
APT_TIMEOUT_S = float(os.environ.get("SATSR_APT_TIMEOUT", "900"))
PG_USER = "postgres"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder holding initdb and pg_ctl, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        major = bindir.parent.name
        if (bindir / "pg_ctl").is_file() and major.split(".")[0].isdigit():
            found.append((int(major.split(".")[0]), bindir))
    return max(found)[1] if found else None


def install_postgresql() -> str | None:
    """``apt-get update && apt-get install -y postgresql``; None when it worked, else why not."""
    if os.geteuid() != 0:
        return "PostgreSQL is not installed and installing it needs root (apt-get install -y postgresql)"
    if shutil.which("apt-get") is None:
        return "PostgreSQL is not installed and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"`{' '.join(cmd)}` failed: {err}"
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
            return f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{tail}"
    return None


@dataclass
class PostgresServer:
    """A running cluster: ``url(db)`` for SQLAlchemy, ``create_database(name)``, ``stop()``."""

    bindir: Path
    datadir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = PG_USER
    as_postgres: bool = True

    def url(self, database: str = "satsr") -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database,
                                connect_timeout=10)

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; return its URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.datadir / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program of ``bindir``, as the ``postgres`` user when we are root."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False, cwd="/")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{args[0]} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}\n"
                               f"server log:\n{self.log_tail()}")
        return proc

    def start(self) -> None:
        self.run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", self.user, "-E", "UTF8",
                 "--locale=C", "--no-sync")
        options = (f"-k {self.datadir} -c listen_addresses={self.host} -p {self.port} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self.run("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.datadir / "server.log"),
                 "-w", "-t", "60", "start")

    def stop(self) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        proc = self.run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "30", "stop", check=False)
        if proc.returncode != 0 and (self.datadir / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "30", "stop", check=False)


def _make_root_dir(as_postgres: bool) -> Path:
    """A folder the server's user owns, under the system temp dir (pytest's own tmp folders are
    private to root, so the ``postgres`` user could not enter them)."""
    root = Path(tempfile.mkdtemp(prefix="satsr-pg-"))
    if as_postgres:
        pw = pwd.getpwnam(PG_USER)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    os.chmod(root, 0o700)
    return root


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL on 127.0.0.1:<free port>, trust auth, user ``postgres``."""
    bindir = find_bindir()
    if bindir is None:
        why = install_postgresql()
        bindir = find_bindir()
        if bindir is None:
            pytest.skip(f"no PostgreSQL server available: {why or 'installed, but no initdb was found'}")
    as_postgres = os.geteuid() == 0
    if as_postgres:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            pytest.skip("running as root but there is no `postgres` user to run the server as")
    root = _make_root_dir(as_postgres)
    server = PostgresServer(bindir=bindir, datadir=root / "data", port=free_port(), as_postgres=as_postgres)
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg2://postgres@127.0.0.1:PORT/satsr`` of a fresh database ``satsr``."""
    return postgres_server.create_database("satsr")
