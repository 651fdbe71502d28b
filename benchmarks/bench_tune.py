"""Hyperparameter search costs: per-trial overhead and what pruning saves.

1. Overhead: a real study (tiny textured PNG dataset, the params.yaml model of ARCH, the committed
   space experiments/<arch>.yaml, MLflow to a fresh sqlite store) of ``--trials`` trials; per trial,
   overhead = trial wall time - time inside train_stage (sampling, storage, lock, nested MLflow
   run with params / intermediate values, cleanup). Reported as a share of trial time (target < 5 %).
2. Pruning: the same space, seed and trial count with the study.yaml pruner (hyperband) and with
   none; compute = epochs actually trained and wall time; best value reached by each.

Usage: python benchmarks/bench_tune.py [--arch edsr] [--trials 6] [--epochs 3] [--steps 4]
       [--lr-size 40] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test support: scratch.py

import numpy as np
import optuna
import yaml
from scratch import write_png_dataset

from satsr import models
from satsr.config import Params, load_params
from satsr.tune import study as st

REPO = Path(__file__).resolve().parents[1]


def spaces_dir(tmp: Path, arch: str, pruner: str) -> Path:
    d = tmp / f"spaces_{pruner}"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{arch}.yaml").write_text((REPO / "experiments" / f"{arch}.yaml").read_text())
    settings = yaml.safe_load((REPO / "experiments" / "study.yaml").read_text())
    if pruner == "none":
        settings["pruner"]["name"] = "none"
    (d / "study.yaml").write_text(yaml.safe_dump(settings))
    return d


def params_for(base: Params, tmp: Path, arch: str, pruner: str, a) -> Params:
    raw = base.model_dump(mode="json")
    raw["tune"].update(n_trials=a.trials, epochs=a.epochs, steps_per_epoch=a.steps, storage=None,
                       spaces_dir=str(spaces_dir(tmp, arch, pruner)), work_dir=str(tmp / f"work_{pruner}"))
    raw["finetune"][arch]["input"]["cache"] = "memory"
    raw["train"]["samples"] = 0
    return Params.model_validate(raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--arch", default="edsr")
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--lr-size", type=int, default=40)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = load_params(a.params)
    tmp = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    data = write_png_dataset(tmp / "png", n_train=6, n_val=2, lr_size=a.lr_size)
    init = tmp / "pretrain.keras"
    models.build(a.arch, base.models).save(str(init))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["SATSR_TRACKING_ROOT"] = str(tmp)
    out: dict = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs)", "date": time.strftime("%Y-%m-%d"),
                 "arch": a.arch, "trials": a.trials, "epochs": a.epochs, "steps": a.steps}
    runs = {}
    # "none" first, so TensorFlow's one-off warm-up does not count against pruning; the pruning
    # comparison uses trial time only (no MLflow in either), the overhead run adds MLflow.
    for label, pruner, mlflow_on in (("none", "none", False), ("hyperband", "hyperband", False),
                                     ("hyperband_mlflow", "hyperband", True)):
        p = params_for(base, tmp, a.arch, pruner, a)
        store = f"journal:{tmp / label}.log"
        t0 = time.perf_counter()
        res = st.run_study(p, a.arch, data_dir=data, init_weights=init, storage=store, log_to_mlflow=mlflow_on,
                           out_path=tmp / f"best_{label}.yaml", figures_dir=tmp / f"fig_{label}" if mlflow_on else None)
        wall = time.perf_counter() - t0
        study = optuna.load_study(study_name=res.study_name, storage=st.make_storage(store))
        recs = res.trials_here
        runs[label] = {"wall_s": round(wall, 1), "trial_s_sum": round(sum(r.seconds for r in recs), 1),
                       "epochs_trained": sum(len(t.intermediate_values) for t in study.trials),
                       "best_value_db": res.best_value, "counts": res.counts,
                       "trial_s_mean": round(float(np.mean([r.seconds for r in recs])), 2),
                       "overhead_s_mean": round(float(np.mean([r.seconds - r.train_seconds for r in recs])), 3),
                       "overhead_share": round(sum(r.seconds - r.train_seconds for r in recs)
                                               / sum(r.seconds for r in recs), 4)}
    out["runs"] = runs
    out["overhead_share_bookkeeping"] = runs["hyperband"]["overhead_share"]
    out["overhead_share_with_mlflow"] = runs["hyperband_mlflow"]["overhead_share"]
    out["pruning_epochs_saved"] = round(1 - runs["hyperband"]["epochs_trained"] / runs["none"]["epochs_trained"], 3)
    out["pruning_trial_time_saved"] = round(1 - runs["hyperband"]["trial_s_sum"] / runs["none"]["trial_s_sum"], 3)
    print(json.dumps(out, indent=2, default=str))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
