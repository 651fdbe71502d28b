"""evaluate@<arch> on an empty test split (issue 13, 10b): skipped with a note when split.allow_empty_test,
else an error that says how to allow it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluate_fixtures import write_dataset

from satsr.cli import main
from satsr.config import Params
from satsr.evaluate import EvaluationError, run_evaluate


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("png"))


def test_an_allowed_empty_test_split_is_skipped_with_a_note(png_dir, tmp_path, capsys):
    """Issue 13, 10b: with split.allow_empty_test the stage writes its outputs saying "skipped" (DVC
    needs them, `dvc metrics show` tells why) instead of failing after every model was trained."""
    only_val = tmp_path / "png_val_only"
    shutil.copytree(png_dir, only_val)
    index = pd.read_csv(only_val / "index.csv")
    index[index["split"] != "test"].to_csv(only_val / "index.csv", index=False)
    allowed = Params.model_validate({"split": {"allow_empty_test": True}})
    out, metrics, plots = tmp_path / "eval" / "edsr", tmp_path / "metrics.json", tmp_path / "plot.csv"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"stale")
    # no model anywhere: a skipped evaluation never loads one
    summary = run_evaluate(allowed, "edsr", png_dir=only_val, model_path=tmp_path / "absent.keras", out_dir=out,
                           metrics_path=metrics, use_mlflow=False)
    assert summary["skipped"] is True and summary["n_images"] == 0 and "allow_empty_test" in summary["reason"]
    assert json.loads(metrics.read_text()) == {"n_images": 0, "skipped": 1}
    assert json.loads((out / "summary.json").read_text())["skipped"] is True
    assert pd.read_csv(out / "per_image.csv").empty
    assert {"bicubic_psnr", "sr_psnr"} <= set(pd.read_csv(out / "per_image.csv").columns)  # dvc.yaml's plot x / y
    assert not (out / "figures").exists()
    # the stage command too: exit 0, the plots CSV copied for DVC
    code = main(["evaluate", "edsr", "--data", str(only_val), "--model", str(tmp_path / "absent.keras"),
                 "--out", str(out), "--metrics", str(metrics), "--plots", str(plots), "--no-mlflow",
                 "--params", str(_params_file(tmp_path, "split:\n  allow_empty_test: true\n"))])
    assert code == 0 and plots.is_file()
    # without the permission the message says how to get it
    with pytest.raises(EvaluationError, match="split.allow_empty_test: true"):
        run_evaluate(Params(), "edsr", png_dir=only_val, model_path=tmp_path / "absent.keras", out_dir=out,
                     metrics_path=metrics, use_mlflow=False)
    # a val evaluation of the same dataset is unaffected by the permission (val is never skipped)
    quick = Params.model_validate({"split": {"allow_empty_test": True}, "evaluate": {"figures": 0, "bootstrap": 200}})
    val = run_evaluate(quick, "edsr",
                       png_dir=only_val, predictions=_bicubic_predictions(only_val, tmp_path / "preds"),
                       out_dir=tmp_path / "v", metrics_path=tmp_path / "v.json", split="val", use_mlflow=False)
    assert val["n_images"] == 3 and "skipped" not in val


def _params_file(folder, text: str):
    path = folder / "params.yaml"
    path.write_text(text)
    return path


def _bicubic_predictions(png: Path, folder: Path) -> Path:
    """Bicubic x3 of every val LR as <pair_id>.npy reflectance: a prediction folder needing no model."""
    from satsr.evaluate.dataset import read_reflectance
    from satsr.evaluate.metrics import upsample

    folder.mkdir(parents=True, exist_ok=True)
    for row in pd.read_csv(png / "index.csv").itertuples():
        if row.split == "val":
            lr = read_reflectance(png / row.lr_png, -0.1, 1.0)
            np.save(folder / f"{row.pair_id}.npy", upsample(lr, 3, "bicubic"))
    return folder


def test_select_ranks_on_val_when_test_is_empty(png_dir, tmp_path):
    """The other half of 10b: with no test split at all, select still ranks the models on val."""
    from evaluate_fixtures import save_model

    from satsr.evaluate.select import run_select

    only_val = tmp_path / "png_val_only"
    shutil.copytree(png_dir, only_val)
    index = pd.read_csv(only_val / "index.csv")
    index[index["split"] != "test"].to_csv(only_val / "index.csv", index=False)
    save_model(tmp_path / "finetune" / "edsr", "edsr")
    p = Params.model_validate({"split": {"allow_empty_test": True},
                               "select": {"archs": ["edsr"], "max_hallucination": 1.0, "include_release": False},
                               "evaluate": {"bootstrap": 200}})
    board = run_select(p, png_dir=only_val, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                       out_md=tmp_path / "l.md", use_mlflow=False)
    assert board["winner"] == "edsr" and board["split"] == "val" and board["n_images"] == 3
    assert (tmp_path / "l.json").is_file() and (tmp_path / "l.md").is_file()
