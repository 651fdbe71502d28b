"""Studies: failed trials are recorded FAIL and the study goes on, pruning, the cap, resume after a
killed worker (its trial re-run without using the budget, its MLflow run ended KILLED, its folder
removed, no proposal replayed), and the real fine-tune path with MLflow nested runs, figures and
the best params applied by `satsr finetune`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from tune_fixtures import REPO, pretrained, tiny_raw, write_dataset, write_params, write_spaces

from satsr.config import Params
from satsr.tune import spaces
from satsr.tune import study as st

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                                        "ignore:__array__ implementation doesn't accept a copy keyword")


def _params(tmp_path, **kw) -> Params:
    return Params.model_validate(tiny_raw(tmp_path, **kw))


def _journal(tmp_path) -> str:
    return f"journal:{tmp_path / 'journal.log'}"


def fake_train(failures: dict[int, Exception] | None = None, curve=(0.1, 0.2, 0.3)):
    """A cheap train_stage: reports ``curve`` scaled by lr, or raises the failure of its call."""
    calls = {"n": 0}

    def train(params, stage, arch, data_dir, out_dir, init, *, on_epoch_end=None, **kw):
        k = calls["n"]
        calls["n"] += 1
        if failures and k in failures:
            raise failures[k]
        sp = getattr(params.finetune, arch)
        gain = 0.0
        for epoch in range(1, sp.epochs + 1):
            gain = curve[min(epoch, len(curve)) - 1] * sp.lr * 100
            on_epoch_end(epoch, {"val_psnr": 30 + gain, "val_ssim": 0.9, "bicubic_psnr": 30.0,
                                 "val_psnr_gain": gain})
        return {"val_psnr": 30 + gain, "bicubic_psnr": 30.0, "psnr_gain_db": gain}

    return train


def test_failed_trials_are_recorded_and_the_study_goes_on(tmp_path):
    from satsr.train.trainer import NonFiniteLossError

    params = _params(tmp_path, n_trials=5)
    failures = {1: NonFiniteLossError("finetune@edsr: non-finite loss (loss=nan) at epoch 1/1"),
                2: MemoryError("OOM when allocating tensor"), 3: RuntimeError("disk full")}
    result = st.run_study(params, "edsr", data_dir=tmp_path, init_weights=None, storage=_journal(tmp_path),
                          out_path=tmp_path / "best.yaml", log_to_mlflow=False, train_fn=fake_train(failures))
    assert result.counts == {"COMPLETE": 2, "FAIL": 3}
    study = optuna.load_study(study_name=result.study_name, storage=st.make_storage(_journal(tmp_path)))
    reasons = {t.number: t.user_attrs.get("fail_reason", "") for t in study.trials if t.state.name == "FAIL"}
    assert "NonFiniteLossError" in reasons[1] and "MemoryError" in reasons[2] and "disk full" in reasons[3]
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["best_trial"] in (0, 4) and "finetune.lr" in best["overrides"]


def test_pruning_marks_trials_pruned(tmp_path):
    raw = tiny_raw(tmp_path, n_trials=8, epochs=3)
    write_spaces(tmp_path / "spaces", ("edsr",), pruner="successive_halving", sampler="random")
    params = Params.model_validate(raw)
    result = st.run_study(params, "edsr", data_dir=tmp_path, init_weights=None, storage=_journal(tmp_path),
                          log_to_mlflow=False, train_fn=fake_train())
    assert sum(result.counts.values()) == 8
    assert result.counts.get("PRUNED", 0) >= 1, result.counts
    pruned = [r for r in result.trials_here if r.state == "PRUNED"]
    assert all("pruned at epoch" in r.reason for r in pruned)


def test_cap_counts_every_state_and_reruns_top_up(tmp_path):
    params = _params(tmp_path, n_trials=3)
    kw = {"data_dir": tmp_path, "init_weights": None, "storage": _journal(tmp_path), "log_to_mlflow": False}
    first = st.run_study(params, "edsr", train_fn=fake_train({0: RuntimeError("x")}), **kw)
    assert sum(first.counts.values()) == 3 and len(first.trials_here) == 3
    again = st.run_study(params, "edsr", train_fn=fake_train(), **kw)
    assert again.trials_here == [] and sum(again.counts.values()) == 3  # nothing added
    more = st.run_study(params, "edsr", n_trials=5, train_fn=fake_train(), **kw)
    assert len(more.trials_here) == 2 and sum(more.counts.values()) == 5


def test_explicit_value_after_the_study_joins_it_and_wins_at_finetune(tmp_path):
    """`dvc exp run -S finetune.edsr.lr=...` reruns tune@edsr: the searched lr is masked in the study
    name, so the full study is joined (no new trials) and best_params.yaml keeps the base the study
    ran with; finetune then uses the explicit lr (satsr.resolve), the tuned one where untouched."""
    from satsr import resolve

    kw = {"data_dir": tmp_path, "init_weights": None, "storage": _journal(tmp_path), "log_to_mlflow": False,
          "out_path": tmp_path / "best.yaml"}
    raw = tiny_raw(tmp_path, n_trials=2)
    first = st.run_study(Params.model_validate(raw), "edsr", train_fn=fake_train(), **kw)
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert doc["base"]["finetune.lr"] == 1e-3 and doc["base"]["finetune.input.batch_size"] == 2
    assert doc["budget"]["n_trials"] == {"value": 2, "source": "params.yaml"}
    raw["finetune"]["edsr"]["lr"] = 1e-5
    changed = Params.model_validate(raw)
    again = st.run_study(changed, "edsr", train_fn=fake_train(), **kw)
    assert again.study_name == first.study_name and again.trials_here == []
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["base"] == doc["base"]
    eff = resolve.effective_params(changed, "finetune", "edsr", best_params=tmp_path / "best.yaml")
    assert eff.params.finetune.edsr.lr == 1e-5 and eff.sources["finetune.edsr.lr"] == "params.yaml"
    assert eff.params.finetune.edsr.input.batch_size == doc["overrides"]["finetune.input.batch_size"]
    # a non-searched value changes what trials train: a new study
    raw["finetune"]["edsr"]["epochs"] = 2
    assert st.study_name(Params.model_validate(raw), "edsr", *spaces.load_all(tmp_path / "spaces", "edsr")) != \
        first.study_name


KILLED_WORKER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_study import fake_train, _params
    from satsr.tune import study as st
    from pathlib import Path
    tmp = Path({tmp!r})
    inner = fake_train()
    calls = {{"n": 0}}
    def train(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:          # SIGKILL in the middle of the third trial, its folder written
            (Path(k["ckpt_dir"]) / "tf").mkdir(parents=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return inner(*a, **k)
    st.run_study(_params(tmp, n_trials=5), "edsr", data_dir=tmp, init_weights=None,
                 storage="journal:" + str(tmp / "journal.log"), log_to_mlflow={mlflow}, train_fn=train)
""")


def _values(t) -> tuple:
    return tuple(sorted(t.params.items()))


def test_a_killed_trial_does_not_use_the_budget_is_rerun_and_cleaned_up(tmp_path, mlflow_server):
    """Issue 13 item 8, with a real SIGKILL: the worker dies in trial 2 (RUNNING in the journal, its
    nested MLflow run RUNNING, its work folder on disk). The next worker marks it FAIL without
    counting it, re-runs its values as trial 3, ends its MLflow run KILLED and removes its folder;
    the study ends with n_trials counted trials and no finished trial repeated."""
    from fixtures_mlflow import isolated_mlflow_env
    from mlflow import MlflowClient

    from satsr.tune import recovery

    uri = mlflow_server  # the session's real `mlflow server` (tests/fixtures_mlflow.py)
    code = KILLED_WORKER.format(tests=str(Path(__file__).parent), tmp=str(tmp_path), mlflow=True)
    env = {**os.environ, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{REPO / 'tests'}",
           "MLFLOW_TRACKING_URI": uri, "SATSR_TRACKING_ROOT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    storage = st.make_storage(_journal(tmp_path))
    (summary,) = optuna.get_all_study_summaries(storage)
    killed = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert [t.state.name for t in killed] == ["COMPLETE", "COMPLETE", "RUNNING"]
    dead = killed[2]
    dead_dir, dead_run = Path(dead.user_attrs["work_dir"]), dead.user_attrs["mlflow_run_id"]
    assert dead_dir.name == "trial_2" and (dead_dir / "ckpt" / "tf").is_dir()
    client = MlflowClient(uri)
    assert client.get_run(dead_run).info.status == "RUNNING"

    with isolated_mlflow_env(MLFLOW_TRACKING_URI=uri, SATSR_TRACKING_ROOT=str(tmp_path)):
        result = st.run_study(_params(tmp_path, n_trials=5), "edsr", data_dir=tmp_path, init_weights=None,
                              storage=_journal(tmp_path), log_to_mlflow=True, train_fn=fake_train())
    assert result.study_name == summary.study_name
    assert result.counts == {"COMPLETE": 5, "FAIL": 1}  # the killed trial is not counted: 5 complete ones
    assert [r.number for r in result.trials_here] == [3, 4, 5]
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert recovery.budget_used(optuna.load_study(study_name=summary.study_name, storage=storage)) == 5
    dead = trials[2]
    assert dead.state.name == "FAIL" and dead.user_attrs["killed"] and dead.user_attrs["counted"] is False
    assert "died (killed); its values are re-run" in dead.user_attrs["fail_reason"]
    assert trials[3].user_attrs["retry_of"] == 2 and trials[3].params == dead.params  # the same values re-run
    complete = [_values(t) for t in trials if t.state.name == "COMPLETE"]
    assert len(set(complete)) == len(complete) == 5  # no finished trial proposed twice
    assert client.get_run(dead_run).info.status == "KILLED"
    assert not dead_dir.exists()
    parent = client.get_run(dead_run).data.tags["mlflow.parentRunId"]
    children = client.search_runs([client.get_run(dead_run).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(r.info.status for r in children) == ["FINISHED"] * 5 + ["KILLED"]
    assert client.get_run(parent).info.status == "FINISHED"  # the resumed worker closed the study's run


def test_a_restarted_seeded_worker_does_not_replay_its_first_proposals(tmp_path):
    """The random phase of a seeded sampler used to restart with the same seed on every rerun, so
    a resumed study re-proposed trial 0. The seed now depends on the trials already in the study."""
    raw = tiny_raw(tmp_path)
    write_spaces(tmp_path / "spaces", ("edsr",), sampler="random")  # tiny_raw wrote the TPE settings
    params = Params.model_validate(raw)
    kw = {"data_dir": tmp_path, "init_weights": None, "storage": _journal(tmp_path), "log_to_mlflow": False}
    st.run_study(params, "edsr", n_trials=2, train_fn=fake_train(), **kw)
    result = st.run_study(params, "edsr", n_trials=4, train_fn=fake_train(), **kw)
    trials = optuna.load_study(study_name=result.study_name, storage=st.make_storage(_journal(tmp_path))).trials
    lrs = [t.params["finetune.lr"] for t in trials]
    assert len(trials) == 4 and len(set(lrs)) == 4, lrs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_recovery_touches_only_dead_workers_of_this_host_and_gives_up_after_killed_retries(tmp_path):
    from satsr.tune import recovery

    study = optuna.create_study(storage=st.make_storage(_journal(tmp_path)), study_name="r")
    host = socket.gethostname()
    workers = {"dead_last_retry": (host, _dead_pid(), 2), "live": (host, os.getppid(), 0),
               "other_host": ("elsewhere", 1, 0), "this_process": (host, os.getpid(), 0)}
    numbers = {}
    for name, (w_host, pid, retries) in workers.items():
        trial = study.ask()
        trial.suggest_float("finetune.lr", 1e-4, 1e-2, log=True)
        for key, value in {"worker_host": w_host, "worker_pid": pid, "retries": retries}.items():
            trial.set_user_attr(key, value)
        recovery.trial_dir(tmp_path / "work", trial.number).mkdir(parents=True)
        numbers[name] = trial.number
    assert recovery.recover_killed(study, tmp_path / "work", killed_retries=2) == [
        numbers["dead_last_retry"], numbers["this_process"]]
    trials = study.get_trials(deepcopy=False)
    last = trials[numbers["dead_last_retry"]]
    assert last.state.name == "FAIL" and last.user_attrs["counted"] is True  # counts: values kill every time
    assert "re-run 2 time(s) already" in last.user_attrs["fail_reason"]
    assert trials[numbers["live"]].state.name == trials[numbers["other_host"]].state.name == "RUNNING"
    assert trials[numbers["this_process"]].user_attrs["counted"] is False
    waiting = [t for t in trials if t.state.name == "WAITING"]
    assert [t.user_attrs["retry_of"] for t in waiting] == [numbers["this_process"]]
    assert waiting[0].user_attrs["retries"] == 1
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [f"trial_{numbers['live']}",
                                                                    f"trial_{numbers['other_host']}"]
    assert recovery.budget_used(study) == 3  # last retry (FAIL) + two live RUNNING


def test_real_trials_log_nested_mlflow_runs_figures_and_feed_finetune(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    data = write_dataset(tmp_path / "png")
    init = pretrained(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SATSR_TRACKING_ROOT", str(tmp_path))
    monkeypatch.setenv("SATSR_OPTUNA_STORAGE", _journal(tmp_path))
    raw = tiny_raw(tmp_path, n_trials=3, epochs=2, steps=2)
    params_file = write_params(tmp_path, raw)
    best = tmp_path / "tune" / "best_params.yaml"
    from satsr.cli import main

    assert main(["tune", "edsr", "--params", str(params_file), "--data", str(data), "--init", str(init),
                 "--out", str(best), "--figures", str(tmp_path / "tune" / "figures")]) == 0
    doc = yaml.safe_load(best.read_text())
    assert doc["tuned"] and sum(doc["trials"].values()) == 3 and "finetune.lr" in doc["overrides"]
    figures = {p.name for p in (tmp_path / "tune" / "figures").iterdir()}
    assert {"optimization_history.png", "parallel_coordinate.png", "intermediate_values.png",
            "trials.csv"} <= figures
    assert not any((tmp_path / "work" / "edsr").rglob("trial_*"))  # trial folders cleaned up

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("satsr").experiment_id])
    parents = [r for r in runs if r.info.run_name == "tune@edsr"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3
    assert "best.finetune.lr" in parent.data.tags and parent.data.tags["best_trial"] == str(doc["best_trial"])
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/optimization_history.png" in arts
    complete = [c for c in children if c.data.tags.get("state") == "COMPLETE"]
    assert complete and all("finetune.lr" in c.data.params for c in children)
    hist = client.get_metric_history(complete[0].info.run_id, "val_psnr_gain_refl")
    assert [m.step for m in hist] == [1, 2] and "value" in complete[0].data.metrics

    # finetune applies the best values (tune.enabled), or the fixed ones when disabled
    out = tmp_path / "ft"
    assert main(["finetune", "edsr", "--params", str(params_file), "--data", str(data), "--init", str(init),
                 "--best-params", str(best), "--out", str(out), "--ckpt", str(tmp_path / "ck"),
                 "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p.csv")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["batch_size"] == doc["overrides"]["finetune.input.batch_size"]
    effective = yaml.safe_load((out / "effective_params.yaml").read_text())
    assert effective["sources"]["finetune.edsr.input.batch_size"] == "tune"
    ft_run = client.get_run(summary["mlflow_run_id"])
    assert ft_run.data.tags["param_source.finetune.edsr.input.batch_size"] == "tune"
    assert "effective_params.yaml" in {a.path for a in client.list_artifacts(ft_run.info.run_id)}
    raw["tune"]["enabled"] = False
    write_params(tmp_path, raw)
    fixed = tmp_path / "fixed.yaml"
    assert main(["tune", "edsr", "--params", str(params_file), "--out", str(fixed),
                 "--figures", str(tmp_path / "f2")]) == 0
    assert yaml.safe_load(fixed.read_text()) == {"arch": "edsr", "tuned": False, "overrides": {}}


WORKER_HOLDER = textwrap.dedent("""
    import sys, time
    from satsr.locks import dir_lock
    with dir_lock(sys.argv[1], "a tune worker"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_the_same_worker_of_a_study_runs_once_per_host(tmp_path):
    """Issue 13 item 7 for tune: a second `satsr tune --worker 0` of the same study (e.g. beside the
    orphan of a killed `dvc`) is refused naming the first one; another --worker index runs."""
    from satsr import locks

    params = _params(tmp_path, n_trials=1)
    kw = {"data_dir": tmp_path, "init_weights": None, "storage": _journal(tmp_path), "log_to_mlflow": False,
          "train_fn": fake_train()}
    name = st.study_name(params, "edsr", *spaces.load_all(tmp_path / "spaces", "edsr"))
    worker0 = tmp_path / "work" / "edsr" / name / "worker-0"
    holder = subprocess.Popen([sys.executable, "-c", WORKER_HOLDER, str(worker0)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockHeldError) as err:
            st.run_study(params, "edsr", **kw)
        assert str(err.value).startswith(f"{worker0}.lock: tune worker 0 of study {name} is in use: held by pid "
                                         f"{holder.pid} on host {socket.gethostname()}")
        assert not (tmp_path / "journal.log").exists() or not optuna.get_all_study_summaries(
            st.make_storage(_journal(tmp_path)))  # refused before touching the study
        assert len(st.run_study(params, "edsr", worker=1, **kw).trials_here) == 1
    finally:
        holder.kill()
        holder.wait(timeout=20)


def test_on_an_rdb_storage_a_silent_trial_of_any_host_is_recovered_by_its_heartbeat(tmp_path):
    """PostgreSQL (the multi-host set-up) is an RDB storage: trials record Optuna heartbeats, so a
    trial of a lost host (no pid to check from here) is recovered once silent for stale_after_s.
    SQLite stands in for PostgreSQL here (the same RDBStorage code)."""
    import time

    from satsr.tune import recovery

    storage = st.make_storage(f"sqlite:///{tmp_path / 'optuna.db'}", stale_after_s=1)  # beat 1 s, grace 2 s
    study = optuna.create_study(storage=storage, study_name="hb")
    lost, alive = study.ask(), study.ask()
    for trial in (lost, alive):
        trial.suggest_float("finetune.lr", 1e-4, 1e-2, log=True)
        trial.set_user_attr("worker_host", "lost-host")
        trial.set_user_attr("worker_pid", 7)
    storage.record_heartbeat(lost._trial_id)
    with recovery.heartbeat(study, alive):
        assert recovery.recover_killed(study, tmp_path / "work", killed_retries=2) == []  # both fresh
        time.sleep(3.5)
        assert recovery.recover_killed(study, tmp_path / "work", killed_retries=2) == [lost.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[lost.number].state.name == "FAIL" and trials[lost.number].user_attrs["counted"] is False
    assert "lost-host:7 sent no heartbeat" in trials[lost.number].user_attrs["fail_reason"]
    assert trials[alive.number].state.name == "RUNNING"  # its heartbeat kept it alive
    assert [t.user_attrs["retry_of"] for t in trials if t.state.name == "WAITING"] == [lost.number]
