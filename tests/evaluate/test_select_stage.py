"""Model selection: ranking under the hallucination cap, val only (never test), and the registry
aliases on a real MLflow server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from evaluate_fixtures import save_model, write_dataset

from satsr.config import Params
from satsr.evaluate import EvaluationError
from satsr.evaluate.select import choose, rank, run_select

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture(scope="module", autouse=True)
def _server_starting(mlflow_server_started):
    return mlflow_server_started


def _row(arch, score, excess):
    return {"arch": arch, "score": score, "hallucination_excess": excess}


def test_rank_respects_the_hallucination_cap():
    rows = rank([_row("a", 0.5, 0.3), _row("b", 0.2, 0.1), _row("c", 0.4, 0.05), _row("d", None, 0.0)], cap=0.2)
    assert [r["arch"] for r in rows] == ["c", "b", "d", "a"]
    assert [r["eligible"] for r in rows] == [True, True, True, False]
    best, met = choose([_row("a", 0.5, 0.3), _row("b", 0.9, 0.4)], cap=0.2)
    assert best["arch"] == "a" and not met  # none under the cap: the least hallucinating


@pytest.fixture(scope="module")
def png_dir(tmp_path_factory):
    root = write_dataset(tmp_path_factory.mktemp("png"), {"val": 3, "test": 1})
    index = pd.read_csv(root / "index.csv")
    index.loc[index["split"] == "test", ["lr_png", "hr_png"]] = ["missing/LR.png", "missing/HR.png"]
    index.to_csv(root / "index.csv", index=False)  # select must never open a test image
    return root


def test_select_needs_every_model(png_dir, tmp_path):
    p = Params.model_validate({"select": {"archs": ["edsr", "rdn"]}})
    save_model(tmp_path / "finetune" / "edsr", "edsr")
    with pytest.raises(EvaluationError, match=f"{tmp_path / 'finetune' / 'rdn' / 'model.keras'}: model not found"):
        run_select(p, png_dir=png_dir, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                   out_md=tmp_path / "l.md", use_mlflow=False)


def test_select_sets_champion_aliases(png_dir, tmp_path, mlflow_server_started, monkeypatch):
    from mlflow import MlflowClient

    from satsr import models, tracking

    url = mlflow_server_started.wait_healthy()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SATSR_TRACKING_ROOT", str(tmp_path))
    p = Params.model_validate({"select": {"archs": ["edsr", "rdn"], "max_hallucination": 1.0,
                                          "registered_model": "satsr-selecttest"},
                               "evaluate": {"bootstrap": 500}})
    tracking.configure(p)
    try:
        for arch in ("edsr", "rdn"):
            path = save_model(tmp_path / "finetune" / arch, arch)
            model = models.load(path)
            with tracking.stage_run("finetune", arch, {"epochs": 1}, data_path=None) as run:
                info = tracking.log_keras_model(model, arch, np.zeros((1, 8, 8, 3), np.float32))
            (path.parent / "summary.json").write_text(json.dumps(
                {"mlflow_run_id": run.run_id, "registered_model": info.registry_uri}))
        board = run_select(p, png_dir=png_dir, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                           out_md=tmp_path / "l.md")
        again = run_select(p, png_dir=png_dir, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                           out_md=tmp_path / "l.md")
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
    client = MlflowClient(url)
    winner = board["winner"]
    assert winner in ("edsr", "rdn") and board["winner_eligible"] and board["n_images"] == 3
    champ = client.get_model_version_by_alias("satsr-selecttest", "champion")
    assert champ.tags["arch"] == winner and champ.tags["source_model"].startswith(f"models:/satsr-{winner}/")
    assert again["registry"]["version"] == board["registry"]["version"]  # same source: version reused
    for arch in ("edsr", "rdn"):
        v = client.get_model_version_by_alias(f"satsr-{arch}", "champion")
        assert v.tags["val_protocol"] == board["protocol"] and float(v.tags["val_n_images"]) == 3
    saved = json.loads((tmp_path / "l.json").read_text())
    assert saved["winner"] == winner and {"edsr", "rdn"} <= set(saved)
    assert saved[winner]["rank"] == 1 and "psnr_gain_ci_low" in saved[winner]
    md = (tmp_path / "l.md").read_text()
    assert "| rank | arch |" in md and f"**Winner: {winner}**" in md and "models:/satsr-selecttest@champion" in md
