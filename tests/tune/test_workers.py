"""Multi-machine tuning for real: two `satsr tune` worker processes share one study in a real
PostgreSQL (the compose stack's database, run natively), and `dvc exp run -S` in a scratch copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest
from scratch import make_copy, run
from tune_fixtures import pretrained, tiny_raw, write_dataset, write_params

pytestmark = pytest.mark.slow


def test_two_workers_share_a_postgres_study(tmp_path, postgres_url):
    data = write_dataset(tmp_path / "png")
    init = pretrained(tmp_path)
    params_file = write_params(tmp_path, tiny_raw(tmp_path, n_trials=4, epochs=1, steps=2))
    env = {**os.environ, "SATSR_OPTUNA_STORAGE": postgres_url, "TF_CPP_MIN_LOG_LEVEL": "3",
           "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "satsr.cli", "tune", "edsr", "--params", str(params_file), "--data", str(data),
           "--init", str(init), "--no-mlflow", "--study-name", "shared-edsr"]
    procs = [subprocess.Popen([*cmd, "--worker", str(k), "--out", str(tmp_path / f"best{k}.yaml"),
                               "--figures", str(tmp_path / f"fig{k}")], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    outs = [p.communicate(timeout=400) for p in procs]  # two TF start-ups: ~3 min on 2 busy cores
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    study = optuna.load_study(study_name="shared-edsr", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4  # the cap holds across workers
    assert sorted(t.number for t in trials) == list(range(4))  # no trial duplicated
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in trials)
    pids = {t.user_attrs["worker_pid"] for t in trials}
    assert {p.pid for p in procs} == pids, "both workers ran trials"
    here = reports[0]["trials_here"] + reports[1]["trials_here"]
    assert sorted(here) == list(range(4))


def test_dvc_exp_run_set_param_records_a_different_experiment(tmp_path):
    tiny = {"source": {"lr_size": 32, "demo": {"n_pairs": 8, "n_locations": 4, "n_regions": 4,
                                               "bad_fraction": 0.25}},
            "split": {"group_cell_m": 2000.0}}
    repo = make_copy(tmp_path / "repo", tiny)
    run(["dvc", "repro", "split"], repo, timeout=120)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    run(["dvc", "exp", "run", "split", "-n", "seed7", "-S", "split.seed=7", "-S", "split.train=0.5",
         "-S", "split.val=0.25", "-S", "split.test=0.25"], repo, timeout=120)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    (base,) = [e for e in shown if e.get("rev") != "workspace"]
    exps = [x for x in (base.get("experiments") or [])]
    assert exps, shown
    exp_rev = exps[0]["revs"][0]
    assert exp_rev["name"] == "seed7"

    def metrics(entry):
        return entry["data"]["metrics"]["metrics/split.json"]["data"]

    def params(entry):
        return entry["data"]["params"]["params.yaml"]["data"]["split"]

    assert params(exp_rev)["seed"] == 7 and params(base)["seed"] == 42
    assert metrics(exp_rev) != metrics(base)
