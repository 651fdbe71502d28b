"""The compose stack's services, run natively: PostgreSQL, `mlflow server` on it, Optuna on it.

No Docker engine is needed. The MLflow server is started with the *same* command and environment
as the ``mlflow`` service of docker/compose.yaml (read from that file, ``${VAR:-default}`` taken
at its default), with only what differs on a host replaced: 127.0.0.1 and a free port instead of
0.0.0.0:5000, a temporary folder instead of the artifact volume, the test PostgreSQL
(tests/fixtures_postgres.py) instead of the ``postgres`` service. The server runs MLflow's basic-auth
app as in compose: its settings are the stack's own docker/mlflow-auth.ini (the compose config), its
user store in the same PostgreSQL database (reached through libpq's PG* variables, as in compose),
and the admin's password and Flask key random, as docker/.env would give them. Then, through the
server's HTTP API only and logged in as the trainers' account (created by the admin over the REST
API): a run logs a small satsr Keras model, it is registered, the ``champion`` alias is set
with the REST API, and the model is downloaded back through the artifact proxy
(``mlflow-artifacts:``), loaded, and gives the same output on a fixed input.

The server is launched when the module starts and becomes healthy while the Optuna test runs.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures_mlflow import AuthMlflowServer, free_port, isolated_mlflow_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yaml"
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
#: The trainers' account on the server (MLFLOW_TRACKING_USERNAME / _PASSWORD in compose).
TRAINER = ("trainer", secrets.token_hex(16))


def compose_default(value: str) -> str:
    """``${VAR:-default}`` -> default, ``${VAR:?msg}`` / ``${VAR}`` -> '' (as compose with VAR unset)."""
    return _VAR.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", str(value))


def compose_service(name: str) -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"][name]


def native_mlflow_command(service: dict, port: int, artifacts: Path) -> list[str]:
    """The service's ``mlflow server`` command with this host's address, port and artifact folder."""
    cmd = [compose_default(a) for a in service["command"]]
    assert cmd[:2] == ["mlflow", "server"], cmd
    replace = {"--host": "127.0.0.1", "--port": str(port), "--artifacts-destination": str(artifacts)}
    out = [sys.executable, "-m", "mlflow", "server"]
    for arg in cmd[2:]:
        key = arg.split("=", 1)[0]
        out.append(f"{key}={replace[key]}" if key in replace and "=" in arg else arg)
    assert all(any(a.startswith(k + "=") for a in out) for k in replace), \
        f"compose's mlflow command should give {sorted(replace)} as --opt=value: {cmd}"
    return out


@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres_server, tmp_path_factory):
    """`mlflow server` as compose runs it, on the test PostgreSQL; launched now, not yet healthy."""
    service = compose_service("mlflow")
    root = tmp_path_factory.mktemp("mlflow_pg")
    backend = postgres_server.create_database("mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update({k: compose_default(v) for k, v in service["environment"].items()})
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    env["MLFLOW_BACKEND_STORE_URI"] = backend
    # basic-auth: the compose config's host file, this PostgreSQL, and what docker/.env would hold
    config = yaml.safe_load(COMPOSE.read_text())["configs"]
    [mount] = [c for c in service["configs"] if c["target"] == env["MLFLOW_AUTH_CONFIG_PATH"]]
    env["MLFLOW_AUTH_CONFIG_PATH"] = str((COMPOSE.parent / config[mount["source"]]["file"]).resolve())
    env.update(PGHOST=postgres_server.host, PGPORT=str(postgres_server.port), PGUSER=postgres_server.user,
               MLFLOW_AUTH_ADMIN_PASSWORD=secrets.token_hex(16), MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
    env.pop("PGPASSWORD", None)  # the test cluster trusts local connections
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    cmd = native_mlflow_command(service, port, root / "artifacts")
    log_file = root / "server.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = AuthMlflowServer(url=f"http://127.0.0.1:{port}", root=root, proc=proc, log_file=log_file,
                              admin=env["MLFLOW_AUTH_ADMIN_USERNAME"], admin_password=env["MLFLOW_AUTH_ADMIN_PASSWORD"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _launch_early(mlflow_on_postgres):
    return mlflow_on_postgres


@pytest.fixture
def tracking_env(mlflow_on_postgres):
    """MLFLOW_TRACKING_URI -> the server (short HTTP retries); everything restored afterwards."""
    with isolated_mlflow_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_TIMEOUT="60",
                             MLFLOW_TRACKING_USERNAME=TRAINER[0], MLFLOW_TRACKING_PASSWORD=TRAINER[1]):
        yield mlflow_on_postgres


def test_postgres_fixture_gives_a_working_database(postgres_url, postgres_server):
    import sqlalchemy as sa

    assert re.fullmatch(r"postgresql\+psycopg2://postgres@127\.0\.0\.1:\d+/satsr", postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY, note text)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (1, 'hello') ON CONFLICT DO NOTHING"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT note FROM probe WHERE id = 1")).scalar() == "hello"
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            assert int(conn.execute(sa.text("SHOW server_version_num")).scalar()) >= 130000
    finally:
        engine.dispose()


def test_optuna_workers_share_a_study_on_postgres(postgres_server):
    """Two workers (two storages, as two trainer hosts would open them) fill one study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = postgres_server.create_database("optuna")

    def objective(trial):
        return (trial.suggest_float("x", -3.0, 3.0) - 1.0) ** 2

    first = optuna.create_study(study_name="e2e", storage=optuna.storages.RDBStorage(url),
                                sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)
    first.optimize(objective, n_trials=4)
    second = optuna.load_study(study_name="e2e", storage=optuna.storages.RDBStorage(url),
                               sampler=optuna.samplers.RandomSampler(seed=1))
    second.optimize(objective, n_trials=3)
    trials = optuna.load_study(study_name="e2e", storage=url).trials
    assert len(trials) == 7 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["x"] for t in trials}) == 7
    assert first.best_value == min(t.value for t in trials)


def test_mlflow_server_as_in_compose_on_postgres(tracking_env, postgres_server, tmp_path):
    import keras
    import requests
    import sqlalchemy as sa
    from mlflow.artifacts import download_artifacts

    from satsr import models, tracking
    from satsr.config import EDSRParams, TrackingParams

    keras.utils.set_random_seed(0)
    model = models.build("edsr", EDSRParams(num_blocks=1, num_filters=8))
    rng = np.random.default_rng(0)
    example = rng.random((1, 8, 8, 3), dtype=np.float32)
    probe = rng.random((2, 12, 10, 3), dtype=np.float32)
    expected = np.asarray(model(probe))

    server = tracking_env
    url = server.wait_healthy()
    api = f"{url}/api/2.0/mlflow"

    # basic-auth: anonymous requests are refused; the admin creates the trainers' account.
    anonymous = requests.get(f"{api}/experiments/search", params={"max_results": 1}, timeout=30)
    assert anonymous.status_code == 401, anonymous.status_code
    created = requests.post(f"{api}/users/create", json={"username": TRAINER[0], "password": TRAINER[1]},
                            auth=(server.admin, server.admin_password), timeout=30)
    assert created.status_code == 200, created.text
    with engine_of(postgres_server) as conn:  # the user store is in MLflow's own database
        import sqlalchemy as sa

        assert TRAINER[0] in conn.execute(sa.text("SELECT username FROM users")).scalars().all()

    # The Host headers compose allows: the trainer's `mlflow:5000` passes, any other name does not.
    ok = requests.get(f"{api}/experiments/search", params={"max_results": 1},
                      headers={"Host": "mlflow:5000"}, auth=TRAINER, timeout=30)
    assert ok.status_code == 200, ok.text
    bad = requests.get(f"{api}/experiments/search", params={"max_results": 1},
                       headers={"Host": "attacker.example:5000"}, auth=TRAINER, timeout=30)
    assert bad.status_code in (400, 403), bad.status_code

    os.environ["MLFLOW_TRACKING_URI"] = url
    assert tracking.configure(TrackingParams(experiment="services-e2e")) == url
    with tracking.stage_run("finetune", "edsr", {"lr": 1e-3}, None, data_path=None) as run:
        tracking.log_metrics({"val_psnr": 30.0}, step=1)
        info = tracking.log_keras_model(model, "edsr", example)
    assert (info.name, info.version, info.run_id) == ("satsr-edsr", 1, run.run_id)

    # The alias through the REST API, as any client (or the UI) would set it.
    resp = requests.post(f"{api}/registered-models/alias", timeout=30, auth=TRAINER,
                         json={"name": "satsr-edsr", "alias": "champion", "version": "1"})
    assert resp.status_code == 200, resp.text
    resp = requests.get(f"{api}/registered-models/alias", params={"name": "satsr-edsr", "alias": "champion"},
                        auth=TRAINER, timeout=30)
    assert resp.status_code == 200, resp.text
    version = resp.json()["model_version"]
    assert version["version"] == "1" and "champion" in version.get("aliases", [])
    assert tracking.alias_version("satsr-edsr", "champion") == 1

    # Artifacts are proxied: the client only ever sees mlflow-artifacts:, the files are in the
    # server's --artifacts-destination.
    run_info = requests.get(f"{api}/runs/get", params={"run_id": run.run_id}, auth=TRAINER,
                            timeout=30).json()["run"]["info"]
    assert run_info["artifact_uri"].startswith("mlflow-artifacts:/"), run_info["artifact_uri"]
    assert list((server.root / "artifacts").rglob("*.keras")), "no .keras file in the artifact destination"

    # Download the champion back through the proxy, load the .keras file, same output.
    local = Path(download_artifacts(artifact_uri="models:/satsr-edsr@champion", dst_path=str(tmp_path / "dl")))
    keras_files = list(local.rglob("*.keras"))
    assert len(keras_files) == 1, sorted(p.relative_to(local) for p in local.rglob("*"))
    np.testing.assert_allclose(np.asarray(models.load(keras_files[0])(probe)), expected, rtol=1e-5, atol=1e-6)
    out = np.asarray(tracking.load_model("models:/satsr-edsr@champion")(probe))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

    # ... and everything else is in PostgreSQL.
    engine = sa.create_engine(postgres_server.url("mlflow"))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM runs WHERE run_uuid = :r"),
                                {"r": run.run_id}).scalar() == 1
            assert conn.execute(sa.text("SELECT name, version FROM model_versions")).all() == [("satsr-edsr", 1)]
            assert conn.execute(sa.text("SELECT alias FROM registered_model_aliases")).scalars().all() == ["champion"]
    finally:
        engine.dispose()


@contextmanager
def engine_of(postgres_server, database: str = "mlflow"):
    """A SQLAlchemy connection to the test PostgreSQL's ``database``, disposed afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server.url(database))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
