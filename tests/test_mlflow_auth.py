"""MLflow's basic-auth app as the compose stack runs it (issue 13, item 16b), against a real server.

``mlflow server --app-name basic-auth`` on 127.0.0.1 (tests/fixtures_mlflow.py, configured by
docker/mlflow-auth.ini) and three things: an anonymous client is refused; satsr logs a run and
registers a model with an account the admin created (with docker/mlflow-user.sh, as the README
says); and no password shows up in the run's params, tags or artifacts, in what satsr and MLflow log
or print, in the environment passed to child processes, or in the server's own log.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from fixtures_mlflow import AuthMlflowServer, isolated_mlflow_env

from satsr import tracking
from satsr.config import Params, TrackingParams
from satsr.resolve import effective_params, log_effective, write_effective

REPO = Path(__file__).resolve().parents[1]
USER_SCRIPT = REPO / "docker" / "mlflow-user.sh"
API = "/api/2.0/mlflow"
TRAINER = "trainer"
TRAINER_PASSWORD = secrets.token_hex(16)
READER = "analyst"
READER_PASSWORD = secrets.token_hex(16)


def create_user(server: AuthMlflowServer, tmp_path: Path, *args: str, admin_password: str | None = None,
                **env: str) -> subprocess.CompletedProcess:
    """docker/mlflow-user.sh with a docker/.env of this server (as on the tracking host)."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (docker/mlflow-user.sh uses it)")
    env_file = tmp_path / "test.env"
    env_file.write_text(f"MLFLOW_ADMIN_PASSWORD={admin_password or server.admin_password}\n"
                        f"MLFLOW_TRACKING_PASSWORD={TRAINER_PASSWORD}\n# MLFLOW_TRACKING_USERNAME=trainer\n")
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SATSR_ENV_FILE": str(env_file),
            "MLFLOW_URL": server.url}
    return subprocess.run(["bash", str(USER_SCRIPT), *args], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def accounts(mlflow_auth_server, tmp_path_factory) -> AuthMlflowServer:
    """The trainers' account and a reader's, created by the admin with docker/mlflow-user.sh."""
    tmp = tmp_path_factory.mktemp("users")
    first = create_user(mlflow_auth_server, tmp)
    assert first.returncode == 0, first.stderr
    assert f"created {TRAINER}" in first.stdout
    again = create_user(mlflow_auth_server, tmp)
    assert again.returncode == 0 and "already exists" in again.stdout, again.stdout + again.stderr
    reader = create_user(mlflow_auth_server, tmp, READER, MLFLOW_NEW_USER_PASSWORD=READER_PASSWORD)
    assert reader.returncode == 0, reader.stderr
    wrong = create_user(mlflow_auth_server, tmp, "intruder", admin_password="not-the-admin-password",
                        MLFLOW_NEW_USER_PASSWORD=secrets.token_hex(16))
    assert wrong.returncode == 1 and "refused the admin" in wrong.stderr
    for proc in (first, again, reader, wrong):
        out = proc.stdout + proc.stderr
        for secret in (TRAINER_PASSWORD, READER_PASSWORD, mlflow_auth_server.admin_password):
            assert secret not in out, "mlflow-user.sh printed a password"
    return mlflow_auth_server


def test_anonymous_requests_are_refused(mlflow_auth_server):
    url = mlflow_auth_server.url
    assert requests.get(f"{url}/health", timeout=30).status_code == 200, "the healthcheck needs no login"
    for method, path, body in (("GET", "/experiments/search", None),
                               ("POST", "/runs/delete", {"run_id": "0" * 32}),
                               ("POST", "/registered-models/alias",
                                {"name": "satsr-edsr", "alias": "champion", "version": "1"}),
                               ("DELETE", "/registered-models/delete", {"name": "satsr-edsr"})):
        resp = requests.request(method, f"{url}{API}{path}", json=body, timeout=30)
        assert resp.status_code == 401, (method, path, resp.status_code)
        assert resp.headers.get("WWW-Authenticate", "").startswith("Basic")
    wrong = requests.get(f"{url}{API}/experiments/search", params={"max_results": 1},
                         auth=(mlflow_auth_server.admin, "wrong-password"), timeout=30)
    assert wrong.status_code == 401
    # the artifact proxy too (model files could otherwise be replaced or read)
    art = requests.get(f"{url}/api/2.0/mlflow-artifacts/artifacts", timeout=30)
    assert art.status_code == 401


def test_the_admin_creates_accounts_with_the_script(accounts):
    """docker/mlflow-user.sh (the README's step) made the trainers' and a reader's account."""
    for user, password in ((TRAINER, TRAINER_PASSWORD), (READER, READER_PASSWORD)):
        resp = requests.get(f"{accounts.url}{API}/experiments/search", params={"max_results": 1},
                            auth=(user, password), timeout=30)
        assert resp.status_code == 200, (user, resp.status_code)


def test_satsr_refuses_clearly_without_a_login(mlflow_auth_server, tmp_path):
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=mlflow_auth_server.url, SATSR_TRACKING_ROOT=str(tmp_path),
                             MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
        with pytest.raises(tracking.TrackingAuthError, match="login refused for an anonymous client"):
            tracking.configure(TrackingParams(experiment="auth-anonymous"))
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=mlflow_auth_server.url, SATSR_TRACKING_ROOT=str(tmp_path),
                             MLFLOW_TRACKING_USERNAME="nobody", MLFLOW_TRACKING_PASSWORD="x" * 16,
                             MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"):
        with pytest.raises(tracking.TrackingAuthError, match="login refused for user 'nobody'") as err:
            tracking.configure(TrackingParams(experiment="auth-anonymous"))
        assert "x" * 16 not in str(err.value)


@pytest.mark.slow
def test_satsr_logs_and_registers_with_a_login_and_leaks_no_password(accounts, tmp_path, caplog, capfd):
    import keras

    from satsr import models
    from satsr.config import EDSRParams

    server = accounts
    caplog.set_level(logging.DEBUG)
    # The login written into the URI, as a user might: satsr moves it into MLflow's variables.
    host = server.url.removeprefix("http://")
    uri_with_login = f"http://{TRAINER}:{TRAINER_PASSWORD}@{host}"
    keras.utils.set_random_seed(0)
    model = models.build("edsr", EDSRParams(num_blocks=1, num_filters=8))
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=uri_with_login, SATSR_TRACKING_ROOT=str(tmp_path),
                             MLFLOW_HTTP_REQUEST_MAX_RETRIES="1"):
        assert tracking.configure(TrackingParams(experiment="auth")) == server.url
        assert os.environ["MLFLOW_TRACKING_URI"] == server.url, "children would inherit the password"
        assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == \
               (TRAINER, TRAINER_PASSWORD)
        section = {"lr": 1e-3, "store": uri_with_login, "mlflow_password": TRAINER_PASSWORD}
        with tracking.stage_run("finetune", "edsr", section, tmp_path / "run_id", data_path=None,
                                tags={"origin": uri_with_login}) as run:
            tracking.log_params({"tracking": {"uri": uri_with_login}})
            tracking.log_metrics({"val_psnr": 30.0}, step=1)
            tracking.log_dict({"tracking_uri": uri_with_login, "password": TRAINER_PASSWORD}, "effective.json")
            info = tracking.log_keras_model(model, "edsr", models_example())
        assert (info.name, info.version, info.run_id) == ("satsr-edsr", 1, run.run_id)
        tracking.set_alias("satsr-edsr", "champion", 1)
        assert tracking.alias_version("satsr-edsr", "champion") == 1
        assert tracking.model_versions("satsr-edsr")[0].run_id == run.run_id
        # The effective parameters (tags + effective_params.yaml), reaching the server through a
        # params.yaml `tracking.uri` with the login written in it this time.
        del os.environ["MLFLOW_TRACKING_URI"]
        params = Params(tracking=TrackingParams(uri=uri_with_login, experiment="auth"))
        assert tracking.configure(params) == server.url
        assert os.environ.get("MLFLOW_TRACKING_URI") in (None, server.url)
        eff = effective_params(params, "finetune", "edsr")
        log_effective(eff, run.run_id, write_effective(eff, tmp_path / "eff"))

    # What the run holds, read back as the admin.
    auth = (server.admin, server.admin_password)
    data = requests.get(f"{server.url}{API}/runs/get", params={"run_id": run.run_id}, auth=auth,
                        timeout=30).json()["run"]["data"]
    stored = {"params": {p["key"]: p["value"] for p in data["params"]},
              "tags": {t["key"]: t["value"] for t in data["tags"]}}
    assert stored["params"]["lr"] == "0.001"
    assert stored["params"]["mlflow_password"] == "<redacted>"
    assert stored["tags"]["stage"] == "finetune"
    assert "effective_params.precedence" in stored["tags"], "log_effective tagged the run"
    artifacts = ""
    for name in ("effective.json", "effective_params.yaml"):
        resp = requests.get(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/"
                            f"{_artifact_path(server, run.run_id)}/{name}", auth=auth, timeout=30)
        assert resp.status_code == 200, (name, resp.status_code)
        artifacts += resp.text
    out, err = capfd.readouterr()
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in (("params/tags", repr(stored)), ("artifacts", artifacts), ("logs", logs),
                        ("stdout/stderr", out + err), ("server log", server.log_file.read_text(errors="replace"))):
        for secret in (TRAINER_PASSWORD, server.admin_password):
            assert secret not in text, f"a password is in the {where}"
    assert host in logs, "the logs should still say where the runs went"

    # The reader may look, but not move the champion alias, delete the run or replace the model.
    reader = (READER, READER_PASSWORD)
    assert requests.get(f"{server.url}{API}/runs/get", params={"run_id": run.run_id}, auth=reader,
                        timeout=30).status_code == 200
    for method, path, body in (("POST", "/registered-models/alias",
                                {"name": "satsr-edsr", "alias": "champion", "version": "1"}),
                               ("POST", "/runs/delete", {"run_id": run.run_id}),
                               ("POST", "/model-versions/create",
                                {"name": "satsr-edsr", "source": "mlflow-artifacts:/elsewhere"}),
                               ("DELETE", "/registered-models/delete", {"name": "satsr-edsr"})):
        resp = requests.request(method, f"{server.url}{API}{path}", json=body, auth=reader, timeout=30)
        assert resp.status_code == 403, (method, path, resp.status_code, resp.text[:200])


def models_example():
    import numpy as np

    return np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)


def _artifact_path(server: AuthMlflowServer, run_id: str) -> str:
    """The run's folder under the artifact proxy (``mlflow-artifacts:/<exp>/<run>/artifacts``)."""
    info = requests.get(f"{server.url}{API}/runs/get", params={"run_id": run_id},
                        auth=(server.admin, server.admin_password), timeout=30).json()["run"]["info"]
    return info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")


def test_credentials_move_out_of_the_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    assert tracking.store._credentials_out_of_uri("http://host:5000") == "http://host:5000"
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    clean = tracking.store._credentials_out_of_uri("https://tr%40iner:p%3Ass@w@mlflow.example:443/prefix")
    assert clean == "https://mlflow.example:443/prefix"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "tr@iner"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "p:ss@w"
