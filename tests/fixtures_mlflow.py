"""A real ``mlflow server`` for the tests (session-scoped), on 127.0.0.1 and a free port.

Enabled from tests/conftest.py with ``from fixtures_mlflow import mlflow_server, mlflow_server_started``.
``isolated_mlflow_env`` is the one way a test points MLflow at its own store and restores the caller's
environment afterwards.

The server is the same one the compose stack runs: sqlite backend, proxied artifacts
(``--artifacts-destination`` + ``--serve-artifacts``), so the tests exercise the HTTP client, the
artifact proxy and the model registry end to end. It is kept light for two cores: one uvicorn
worker and no job-execution runner (MLflow 3 otherwise starts seven huey consumer processes).

Starting it takes tens of seconds on a busy two-core machine (two imports of mlflow plus the sqlite
schema migrations), so it is split in two fixtures: ``mlflow_server_started`` launches the process
and returns at once; ``mlflow_server`` waits for ``GET /health`` and returns the URL. A test module
can request the first one early (e.g. from an autouse fixture) and call ``wait_healthy()`` only when
it needs the server, so that start-up overlaps with its other work.

``mlflow_auth_server`` is the same server with MLflow's basic-auth app on, configured by the compose
stack's own docker/mlflow-auth.ini (only its user-store URI moved to a sqlite file in the temporary
folder), with a random admin password and Flask key. tests/conftest.py enables it like the others;
its server starts only when a test asks for it.
"""

from __future__ import annotations

import configparser
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Seconds to wait for /health (env SATSR_MLFLOW_SERVER_TIMEOUT); about 50 s was measured on two
#: busy cores, so the default leaves room.
START_TIMEOUT_S = float(os.environ.get("SATSR_MLFLOW_SERVER_TIMEOUT", "300"))

REPO = Path(__file__).resolve().parents[1]
#: The compose stack's settings of MLflow's basic-auth app.
AUTH_INI = REPO / "docker" / "mlflow-auth.ini"

#: Environment that selects or shapes an MLflow store (satsr.tracking's rule, DVC's variables, HTTP
#: retries): cleared for a test, so the caller's shell cannot redirect it, and restored afterwards.
MLFLOW_ENV_KEYS = ("MLFLOW_TRACKING_URI", "SATSR_TRACKING_ROOT", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV",
                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT",
                   "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


@contextmanager
def isolated_mlflow_env(**values: str) -> Iterator[None]:
    """Clear ``MLFLOW_ENV_KEYS``, set ``values``; on exit end any active run, make MLflow forget the
    store (``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI) and restore every key.

    Usable from fixtures of any scope: ``with isolated_mlflow_env(MLFLOW_TRACKING_URI=uri): yield``.
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in {*MLFLOW_ENV_KEYS, *values}}
    for key in MLFLOW_ENV_KEYS:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MlflowServer:
    url: str
    root: Path
    proc: subprocess.Popen
    log_file: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Block until ``GET /health`` answers 200; return the URL. Raises with the log tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {self.proc.returncode} before it was "
                                   f"healthy; log {self.log_file}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server at {self.url} not healthy after {timeout_s:.0f} s "
                           f"(raise SATSR_MLFLOW_SERVER_TIMEOUT on a slow machine); log {self.log_file}:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the server's own process group (it was started in a new session), then KILL."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # The uvicorn worker is in the same group; make sure nothing of ours outlives the session.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class AuthMlflowServer(MlflowServer):
    """A server with the basic-auth app: its admin's name and password."""

    admin: str = "admin"
    admin_password: str = ""


def write_auth_config(root: Path) -> Path:
    """docker/mlflow-auth.ini with its user store in ``root/auth.db`` (the stack's is PostgreSQL)."""
    config = configparser.ConfigParser()
    config.read_string(AUTH_INI.read_text())
    config["mlflow"]["database_uri"] = f"sqlite:///{root / 'auth.db'}"
    path = root / "auth.ini"
    with open(path, "w") as f:
        config.write(f)
    return path


def start_server(root: Path, extra_env: dict[str, str] | None = None,
                 extra_args: tuple[str, ...] = ()) -> MlflowServer:
    """Launch ``mlflow server`` on a free port with its store in ``root``; do not wait."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING_", "MLFLOW_AUTH_", "DVC_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "mlflow", "server", *extra_args,
           "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
           "--workers", "1"]
    log_file = root / "server.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return MlflowServer(url=f"http://127.0.0.1:{port}", root=root, proc=proc, log_file=log_file)


@pytest.fixture(scope="session")
def mlflow_server_started(tmp_path_factory) -> Iterator[MlflowServer]:
    """The server process, launched but maybe not yet healthy; stopped at the end of the session."""
    server = start_server(tmp_path_factory.mktemp("mlflow_server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_started: MlflowServer) -> str:
    """URL (``http://127.0.0.1:PORT``) of a healthy, real MLflow tracking + registry server."""
    return mlflow_server_started.wait_healthy()


def start_auth_server(root: Path) -> AuthMlflowServer:
    """Launch ``mlflow server --app-name basic-auth`` (compose's auth.ini, random admin password)."""
    root.mkdir(parents=True, exist_ok=True)
    admin_password = secrets.token_hex(16)
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(root)), "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
           "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    server = start_server(root, env, ("--app-name", "basic-auth"))
    return AuthMlflowServer(url=server.url, root=server.root, proc=server.proc, log_file=server.log_file,
                            admin="admin", admin_password=admin_password)


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory) -> Iterator[AuthMlflowServer]:
    """A healthy MLflow server with the basic-auth app; stopped at the end of the session."""
    server = start_auth_server(tmp_path_factory.mktemp("mlflow_auth_server"))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()
