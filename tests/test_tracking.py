"""satsr.tracking against real stores: an embedded sqlite store in tmp, and a real `mlflow server`.

The server fixture (tests/fixtures_mlflow.py) is launched at the start of this module and becomes
healthy while the sqlite tests run; only the registry test waits for it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures_mlflow import isolated_mlflow_env

from satsr import __version__, tracking, util
from satsr.config import GeeParams, SourceParams, TrackingParams


@pytest.fixture(scope="module", autouse=True)
def _server_starting(mlflow_server_started):
    """Launch the real server now, so that it starts while the sqlite tests run."""
    return mlflow_server_started


@pytest.fixture(autouse=True)
def clean_env():
    """No tracking env from the caller's shell; short HTTP retries; everything restored afterwards."""
    with isolated_mlflow_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_TIMEOUT="30"):
        yield


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """One embedded store for the module (creating the sqlite schema costs seconds); tests use
    their own experiments in it."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A stage's working directory: a git repo with a dvc.lock recording data/png's md5."""
    lock = {"schema": "2.0", "stages": {
        "png": {"cmd": "python stages/png.py",
                "deps": [{"path": "data/raw", "hash": "md5", "md5": "raw0.dir"}],
                "outs": [{"path": "data/png", "hash": "md5", "md5": "abc123.dir", "size": 10, "nfiles": 2}]},
    }}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "init"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def client(uri: str | None = None):
    from mlflow import MlflowClient

    return MlflowClient(uri)


# ------------------------------------------------------------------------------- URI resolution
def test_default_uri_is_the_repo_root_also_from_a_queued_experiment(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / "dvc.yaml").write_text("stages: {}\n")
    (repo / "stages").mkdir()
    expected = f"sqlite:///{repo.resolve()}/mlflow.db"
    assert tracking.resolve_uri(None, cwd=repo) == expected
    assert tracking.resolve_uri(TrackingParams(), cwd=repo / "stages") == expected

    # `dvc exp run --queue` runs in <repo>/.dvc/tmp/exps/tmpXXXX, itself a repo copy with .dvc/.
    for rel in (".dvc/tmp/exps/tmpabc", ".dvc/tmp/exps/standalone/tmpdef"):
        copy = repo / rel
        (copy / ".dvc").mkdir(parents=True)
        (copy / "dvc.yaml").write_text("stages: {}\n")
        assert tracking.tracking_root(copy) == repo.resolve()
        assert tracking.resolve_uri(None, cwd=copy) == expected

    # DVC_ROOT: DVC sets it to the original repo for queued runs (older versions: the temp copy).
    other = tmp_path / "elsewhere"
    other.mkdir()
    os.environ["DVC_ROOT"] = str(repo)
    assert tracking.resolve_uri(None, cwd=other) == expected
    os.environ["DVC_ROOT"] = str(repo / ".dvc/tmp/exps/tmpabc")
    assert tracking.resolve_uri(None, cwd=other) == expected

    # Overrides: SATSR_TRACKING_ROOT, then params, then MLFLOW_TRACKING_URI which wins over all.
    os.environ["SATSR_TRACKING_ROOT"] = str(other)
    assert tracking.resolve_uri(None, cwd=repo) == f"sqlite:///{other.resolve()}/mlflow.db"
    assert tracking.resolve_uri(TrackingParams(uri="sqlite:///runs/x.db"), cwd=repo) == \
        f"sqlite:///{other.resolve()}/runs/x.db"
    assert tracking.resolve_uri(TrackingParams(uri="http://mlflow:5000")) == "http://mlflow:5000"
    os.environ["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:1"
    assert tracking.resolve_uri(TrackingParams(uri="http://mlflow:5000")) == "http://127.0.0.1:1"


def test_dvc_lock_md5_prefers_the_producing_stage(tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {
        "train@rdn": {"deps": [{"path": "data/png/", "md5": "dep.dir"}, {"path": "x.py", "md5": "x"}]},
        "png": {"outs": [{"path": "data/png", "md5": "out.dir"}]},
    }}))
    assert tracking.dvc_lock_md5("data/png", lock) == "out.dir"
    assert tracking.dvc_lock_md5("./x.py", lock) == "x"
    assert tracking.dvc_lock_md5("data/none", lock) is None
    assert tracking.dvc_lock_md5("data/png", tmp_path / "missing.lock") is None


# ----------------------------------------------------------------------------- sqlite store runs
def test_stage_run_logs_params_tags_metrics_to_the_repo_store(store, workdir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.environ["SATSR_TRACKING_ROOT"] = str(store)
    os.environ["DVC_EXP_NAME"] = "sunny-bike"
    uri = tracking.configure(TrackingParams(experiment="stage-test"))
    assert uri == f"sqlite:///{store.resolve()}/mlflow.db"
    section = SourceParams(gee=GeeParams(credentials_file="/home/me/sa-key.json", project="p1"))

    with tracking.stage_run("finetune", "rdn", section, None, is_demo=True, tags={"note": "x"}) as run:
        tracking.log_metrics({"loss": 0.5, "val_psnr": np.float32(30.5)}, step=0)
        tracking.log_metrics({"loss": 0.25}, step=1)
        tracking.log_dict({"gee": {"credentials_file": "/home/me/sa-key.json"}, "n": 3}, "config/params.json")
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        tracking.log_figure(fig, "figures/curve.png")
        plt.close(fig)
        assert tracking.active_run_id() == run.run_id and not run.resumed

    got = client().get_run(run.run_id)
    assert got.info.run_name == "finetune@rdn" and got.info.status == "FINISHED"
    p = got.data.params
    assert p["arch"] == "rdn" and p["lr_size"] == "128" and p["gee.project"] == "p1"
    assert p["gee.credentials_file"] == util.REDACTED
    assert "sa-key" not in json.dumps(p)
    t = got.data.tags
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workdir, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert t["git_commit"] == head and t["git_dirty"] == "false"
    assert t["dvc_exp_name"] == "sunny-bike" and t["data_md5"] == "abc123.dir" and t["data_path"] == "data/png"
    assert t["satsr_version"] == __version__ and t["is_demo"] == "true"
    assert t["stage"] == "finetune" and t["arch"] == "rdn" and t["note"] == "x"
    assert got.data.metrics == {"loss": 0.25, "val_psnr": 30.5}

    # Artifacts live in <root>/mlartifacts, not under the working dir.
    exp = client().get_experiment(got.info.experiment_id)
    assert exp.artifact_location == (store.resolve() / "mlartifacts").as_uri()
    art = Path(got.info.artifact_uri.removeprefix("file://"))
    assert art.is_relative_to(store.resolve() / "mlartifacts")
    assert (art / "figures/curve.png").stat().st_size > 0
    assert "sa-key" not in (art / "config/params.json").read_text()
    assert not (workdir / "mlruns").exists() and not (workdir / "mlartifacts").exists()


def test_stage_run_resumes_from_the_run_id_file(store, workdir):
    os.environ["SATSR_TRACKING_ROOT"] = str(store)
    tracking.configure(TrackingParams(experiment="resume-test"))
    id_file = workdir / "ckpt" / "mlflow_run_id"
    section = {"epochs": 5, "lr": 1e-3}

    # The first attempt dies after step 2 (an exception here; a real SIGKILL leaves it RUNNING).
    with pytest.raises(RuntimeError, match="killed"), \
            tracking.stage_run("train", "edsr", section, id_file, data_path=None) as first:
        assert id_file.read_text().strip() == first.run_id  # written before any work
        for step in range(3):
            tracking.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        raise RuntimeError("killed")
    assert client().get_run(first.run_id).info.status == "FAILED"

    # Rerun: the checkpoint restarts at step 2 (the last one was redone), then steps 3, 4.
    with tracking.stage_run("train", "edsr", section, id_file, data_path=None) as second:
        assert second.run_id == first.run_id and second.resumed
        for step in range(2, 5):
            tracking.log_metrics({"loss": 10.0 + step}, step=step)
    run = client().get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "true"
    history = sorted((m.step, m.value) for m in client().get_metric_history(first.run_id, "loss"))
    assert history == [(0, 1.0), (1, 0.5), (2, 1.0 / 3), (3, 13.0), (4, 14.0)]

    # Other params (e.g. a stale checkpoint folder after a params change): a new run, file updated.
    with tracking.stage_run("train", "edsr", {**section, "lr": 5e-4}, id_file, data_path=None) as third:
        assert third.run_id != first.run_id and not third.resumed
    assert id_file.read_text().strip() == third.run_id


# --------------------------------------------------------------------------- real server, registry
def test_keras_model_registry_on_a_real_server(mlflow_server_started, workdir):
    import keras  # imported (slow) before waiting, while the server finishes starting

    from satsr.models.blocks import PixelShuffle


    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(27, 3, padding="same")(x)
    model = keras.Model(inp, PixelShuffle(3)(x), name="tiny")
    rng = np.random.default_rng(0)
    example = rng.random((1, 8, 8, 3), dtype=np.float32)
    probe = rng.random((2, 12, 10, 3), dtype=np.float32)  # another size than the example
    expected = np.asarray(model(probe))

    url = mlflow_server_started.wait_healthy()
    os.environ["MLFLOW_TRACKING_URI"] = url
    assert tracking.configure(TrackingParams(uri="sqlite:///ignored.db", experiment="server-test")) == url
    with tracking.stage_run("train", "testarch", {"lr": 1e-3}, None, data_path=None) as run:
        info = tracking.log_keras_model(model, "testarch", example)
    assert info.name == "satsr-testarch" and info.version == 1 and info.run_id == run.run_id
    assert info.registry_uri == "models:/satsr-testarch/1"

    tracking.set_alias("satsr-testarch", "champion", info.version)
    assert tracking.alias_version("satsr-testarch", "champion") == 1
    assert tracking.latest_version("satsr-testarch") == 1
    assert "satsr-testarch" in tracking.list_registered_models()
    # the server is shared by the session: other tests register their own satsr-* models
    with_prefix = tracking.list_registered_models(prefix="satsr-")
    assert "satsr-testarch" in with_prefix and all(n.startswith("satsr-") for n in with_prefix)

    for uri in ("models:/satsr-testarch/1", "models:/satsr-testarch@champion"):
        loaded = tracking.load_model(uri)
        out = np.asarray(loaded(probe))
        assert out.shape == (2, 36, 30, 3)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

    # The artifacts went through the server's proxy into its --artifacts-destination.
    stored = list((mlflow_server_started.root / "artifacts").rglob("*.keras"))
    assert stored, "no .keras file in the server's artifact destination"

