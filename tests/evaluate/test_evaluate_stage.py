"""The evaluate stage end to end on a tiny PNG dataset: outputs, identical predictions (PSNR inf),
clear errors for bad input, and logging into the model's fine-tuning run on a real MLflow server."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from evaluate_fixtures import save_model, write_dataset

from satsr.cli import main
from satsr.config import Params
from satsr.evaluate import EvaluationError, run_evaluate
from satsr.evaluate.metrics import ALL_METRICS, METHODS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(scope="module", autouse=True)
def _server_starting(mlflow_server_started):
    """Start the real MLflow server now; it comes up while the first tests run."""
    return mlflow_server_started


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("png"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("models") / "finetune" / "edsr", "edsr")


def params(**evaluate) -> Params:
    return Params.model_validate({"evaluate": {"bootstrap": 500, "figures": 2, "zoom_px": 32, **evaluate}})


def test_evaluate_writes_csv_summary_metrics_and_figures(png_dir, model, tmp_path):
    out, metrics = tmp_path / "eval", tmp_path / "metrics" / "edsr.json"
    summary = run_evaluate(params(), "edsr", png_dir=png_dir, model_path=model, out_dir=out, metrics_path=metrics,
                           use_mlflow=False)
    df = pd.read_csv(out / "per_image.csv")
    assert list(df["pair_id"]) == ["test0", "test1", "test2"]  # the test split only, index order
    for method in METHODS:
        for metric in ALL_METRICS:
            assert f"{method}_{metric}" in df, f"{method}_{metric}"
    assert {"hr_sharpness", "sr_psnr_gain", "sr_cpsnr_gain", "sr_cshift_dy", "bicubic_cbias"} <= set(df.columns)
    assert (df["sr_cpsnr"] >= df["sr_psnr"] - 0.5).all()  # registered: never much below plain (smaller crop)
    full = json.loads((out / "summary.json").read_text())
    assert full["conventions"]["border_crop_px"] == 3 and "reflectance" in full["conventions"]["data_range"]
    gain = full["gain_vs_bicubic"]["sr"]["psnr"]
    assert gain["ci_low"] <= gain["mean"] <= gain["ci_high"] and gain["n"] == 3
    assert full["gain_vs_bicubic"]["sr"]["cpsnr"]["n"] == 3
    assert full["conventions"]["registered"]["max_shift_hr_px"] == 3
    compact = json.loads(metrics.read_text())

    def numbers_only(node):
        return all(numbers_only(v) if isinstance(v, dict) else isinstance(v, (int, float)) and not isinstance(v, bool)
                   for v in node.values())

    assert numbers_only(compact) and compact["n_images"] == 3 and compact["conventions"]["border_crop_px"] == 3
    assert compact["sr"]["psnr"]["mean"] == pytest.approx(df["sr_psnr"].mean())
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "sharpness_histogram.png" in figs and "psnr_histogram.png" in figs
    assert sum(n.startswith("side_by_side_") for n in figs) == 2
    assert summary["seconds_by_metric"]["ssim"] > 0


def test_identical_predictions_give_infinite_psnr_as_null_and_capped_mean(png_dir, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    for k in range(3):
        shutil.copy(png_dir / "test_HR" / f"test{k}.png", preds / f"test{k}.png")
    metrics = tmp_path / "m.json"
    run_evaluate(params(figures=0, workers=2), "edsr", png_dir=png_dir, predictions=preds, out_dir=tmp_path / "e",
                 metrics_path=metrics, use_mlflow=False)  # two metric processes: same rows, same order
    df = pd.read_csv(tmp_path / "e" / "per_image.csv")
    assert list(df["pair_id"]) == ["test0", "test1", "test2"]
    assert np.isinf(df["sr_psnr"]).all() and np.allclose(df["sr_ssim"], 1.0)
    assert np.isinf(df["sr_cpsnr"]).all() and (df["sr_cshift_dx"] == 0).all() and np.allclose(df["sr_cssim"], 1.0)
    full = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert full["stats"]["sr"]["psnr"]["n_infinite"] == 3 and full["stats"]["sr"]["psnr"]["mean"] == 100.0
    assert full["gain_vs_bicubic"]["sr"]["psnr"]["significant"] is True
    assert json.loads(metrics.read_text())["sr"]["psnr"]["mean"] == 100.0


def test_bad_inputs_name_the_file(png_dir, model, tmp_path):
    p = params(figures=0)
    kw = {"out_dir": tmp_path / "e", "metrics_path": tmp_path / "m.json", "use_mlflow": False}
    missing = tmp_path / "models" / "finetune" / "rdn" / "model.keras"
    with pytest.raises(EvaluationError, match=f"{missing}: model not found.*finetune@rdn"):
        run_evaluate(p, "rdn", png_dir=png_dir, model_path=missing, **kw)
    preds = tmp_path / "preds"
    preds.mkdir()
    with pytest.raises(EvaluationError, match=f"{preds / 'test0.png'}: prediction for pair test0 not found"):
        run_evaluate(p, "edsr", png_dir=png_dir, predictions=preds, **kw)
    for k in range(3):
        np.save(preds / f"test{k}.npy", np.full((72, 72, 3), 0.1))
    bad = np.full((72, 72, 3), 0.1)
    bad[5, 5, 1] = np.nan
    np.save(preds / "test1.npy", bad)
    with pytest.raises(EvaluationError, match=r"test1\.npy: the SR prediction of pair test1 has 1 NaN"):
        run_evaluate(p, "edsr", png_dir=png_dir, predictions=preds, **kw)
    np.save(preds / "test1.npy", np.full((69, 72, 3), 0.1))
    with pytest.raises(EvaluationError, match=r"test1\.npy: the SR prediction of pair test1 is 72x69x3, HR .*test1"):
        run_evaluate(p, "edsr", png_dir=png_dir, predictions=preds, **kw)
    index = pd.read_csv(png_dir / "index.csv")
    only_val = tmp_path / "png_val_only"
    shutil.copytree(png_dir, only_val)
    index[index["split"] != "test"].to_csv(only_val / "index.csv", index=False)
    with pytest.raises(EvaluationError, match=r"split 'test' of .*png_val_only is empty .*nothing to evaluate"):
        run_evaluate(p, "edsr", png_dir=only_val, model_path=model, **kw)
    shutil.copy(only_val / "val_LR" / "val0.png", only_val / "val_HR" / "val0.png")  # HR now 1x LR
    with pytest.raises(EvaluationError, match=r"pair val0: HR 24x24 \(.*val_HR/val0\.png\) is not exactly 3x"):
        run_evaluate(p, "edsr", png_dir=only_val, model_path=model, split="val", **kw)


def test_cli_reports_bad_input_with_exit_1(png_dir, tmp_path, capsys):
    code = main(["evaluate", "rrdn", "--data", str(png_dir), "--model", str(tmp_path / "nope.keras"),
                 "--out", str(tmp_path / "e"), "--metrics", str(tmp_path / "m.json"), "--no-mlflow"])
    assert code == 1
    assert f"{tmp_path / 'nope.keras'}: model not found" in capsys.readouterr().err


def test_logs_into_the_finetune_run(png_dir, model, tmp_path, mlflow_server_started, monkeypatch):
    from mlflow import MlflowClient

    from satsr import tracking

    url = mlflow_server_started.wait_healthy()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SATSR_TRACKING_ROOT", str(tmp_path))
    p = params(figures=1)
    tracking.configure(p)
    with tracking.stage_run("finetune", "edsr", {"epochs": 1}, data_path=None) as run:
        tracking.log_metrics({"val_psnr": 30.0}, step=1)
    summary_file = tmp_path / "summary.json"
    summary_file.write_text(json.dumps({"mlflow_run_id": run.run_id}))
    try:
        run_evaluate(p, "edsr", png_dir=png_dir, model_path=model, out_dir=tmp_path / "e",
                     metrics_path=tmp_path / "m.json", finetune_metrics=summary_file)
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
    client = MlflowClient(url)
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED" and logged.data.tags["evaluated_test"] == "true"
    assert logged.data.metrics["val_psnr"] == 30.0  # the training metrics are untouched
    assert math.isfinite(logged.data.metrics["test_gain_sr_psnr_mean"])
    assert "test_sr_sharpness_mean" in logged.data.metrics and "test_hr_sharpness_mean" in logged.data.metrics
    figures = {a.path for a in client.list_artifacts(run.run_id, "evaluation/test/figures")}
    assert "evaluation/test/figures/sharpness_histogram.png" in figures
    assert "evaluation/test/figures/psnr_histogram.png" in figures
    files = {a.path for a in client.list_artifacts(run.run_id, "evaluation/test")}
    assert {"evaluation/test/per_image.csv", "evaluation/test/summary.json"} <= files


def test_cli_help_and_dvc_stages(capsys):
    for name in ("evaluate", "select"):
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0 and f"usage: satsr {name}" in capsys.readouterr().out
    import yaml
    from scratch import repo_root

    dvc = yaml.safe_load((repo_root() / "dvc.yaml").read_text())
    stages = dvc["stages"]
    assert stages["evaluate"]["foreach"] == "${archs}"  # params.yaml's one list of architectures
    assert stages["evaluate"]["do"]["metrics"] == [{"metrics/eval/${item}.json": {"cache": False}}]
    assert "data/png" in stages["evaluate"]["do"]["deps"] and "evaluate" in stages["evaluate"]["do"]["params"]
    assert stages["select"]["cmd"] == "python stages/select_model.py"  # not select.py: it would shadow `select`
    assert {"metrics/leaderboard.json": {"cache": False}} in stages["select"]["metrics"]
    assert (repo_root() / "stages" / "select_model.py").is_file()
    assert not (repo_root() / "stages" / "select.py").exists()
