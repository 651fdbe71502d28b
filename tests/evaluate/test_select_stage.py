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


def _scored(arch, psnr, bicubic, groups, params_count, excess=0.0):
    """A ranked-row stand-in with the per-image values the tie rule reads."""
    psnr, bicubic = np.asarray(psnr, float), np.asarray(bicubic, float)
    return {"arch": arch, "score": float((psnr - bicubic).mean()), "hallucination_excess": excess,
            "model_params": params_count,
            "_per_image": {"pair_id": [f"p{i}" for i in range(psnr.size)], "group": list(groups),
                           "sr_psnr": psnr.tolist(), "bicubic_psnr": bicubic.tolist()}}


GROUPS = ["g0", "g0", "g1", "g1", "g2", "g2", "g3", "g3"]
BIC = np.full(8, 30.0)
TIE_PARAMS = Params.model_validate({"evaluate": {"bootstrap": 2000}})


def test_tie_rule_prefers_the_smaller_model_when_the_ci_includes_zero():
    from satsr.evaluate.select import tie_rule

    # big leads by 0.05 dB on average, but the per-region differences go both ways
    big = _scored("rdn", BIC + [1.0, 1.0, 0.4, 0.4, 0.9, 0.9, 0.5, 0.5], BIC, GROUPS, 2_000_000)
    small = _scored("edsr", BIC + [0.6, 0.6, 0.9, 0.9, 0.4, 0.4, 0.8, 0.8], BIC, GROUPS, 500_000)
    rows = rank([big, small], cap=0.1)
    assert [r["arch"] for r in rows] == ["rdn", "edsr"]
    tie = tie_rule(rows, TIE_PARAMS)
    assert tie["tie"] and tie["applied"] and tie["winner"] == "edsr"
    d = tie["difference"]
    assert d["ci_low"] < 0 < d["ci_high"] and d["n_groups"] == 4
    assert d["ci_note"] == "95% CI over 4 spatial groups, cluster bootstrap"
    assert "smaller model: 0.5 M vs 2 M parameters" in tie["reason"] and "includes 0" in tie["reason"]
    assert [(r["arch"], r["rank"]) for r in rows] == [("edsr", 1), ("rdn", 2)]


def test_tie_rule_keeps_a_clear_winner_and_uses_consistency_at_equal_size():
    from satsr.evaluate.select import tie_rule

    clear = _scored("rdn", BIC + [1.5, 1.6, 1.4, 1.5, 1.6, 1.5, 1.4, 1.6], BIC, GROUPS, 2_000_000)
    small = _scored("edsr", BIC + [0.6, 0.6, 0.9, 0.9, 0.4, 0.4, 0.8, 0.8], BIC, GROUPS, 500_000)
    rows = rank([small, clear], cap=0.1)
    tie = tie_rule(rows, TIE_PARAMS)
    assert not tie["tie"] and not tie["applied"] and tie["winner"] == "rdn" and "excludes 0" in tie["reason"]
    assert rows[0]["arch"] == "rdn"
    # equal size: the one whose gain varies less between regions
    steady = _scored("a", BIC + [0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7], BIC, GROUPS, 1000)
    jumpy = _scored("b", BIC + [1.4, 1.4, 0.1, 0.1, 1.3, 1.3, 0.2, 0.2], BIC, GROUPS, 1000)
    rows = rank([steady, jumpy], cap=0.1)
    assert rows[0]["arch"] == "b"  # higher mean
    tie = tie_rule(rows, TIE_PARAMS)
    assert tie["winner"] == "a" and tie["applied"] and "more consistent" in tie["reason"]
    # a single group: no CI, so the two cannot be told apart -> the rule applies, and says why
    one = ["g0"] * 8
    rows = rank([_scored("rdn", BIC + 1.0, BIC, one, 2_000_000), _scored("edsr", BIC + 0.9, BIC, one, 10)], 0.1)
    tie = tie_rule(rows, TIE_PARAMS)
    assert tie["applied"] and tie["winner"] == "edsr" and "no CI: 1 spatial group" in tie["reason"]
    assert tie_rule(rank([steady], cap=0.1), TIE_PARAMS) is None


def test_select_cis_resample_the_val_spatial_groups(png_dir, tmp_path):
    """index.csv's group column (from the split) reaches the leaderboard: CIs over groups, unit stated,
    and the tie rule's verdict written in the markdown."""
    grouped = tmp_path / "png"
    import shutil

    shutil.copytree(png_dir, grouped)
    index = pd.read_csv(grouped / "index.csv")
    index["group"] = ["g0001", "g0002", "g0003", "g0004"][: len(index)]
    index.to_csv(grouped / "index.csv", index=False)
    p = Params.model_validate({"select": {"archs": ["edsr", "rdn"], "max_hallucination": 1.0},
                               "evaluate": {"bootstrap": 500}})
    for arch in ("edsr", "rdn"):
        save_model(tmp_path / "finetune" / arch, arch)
    board = run_select(p, png_dir=grouped, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                       out_md=tmp_path / "l.md", use_mlflow=False)
    assert board["ci_note"] == "95% CI over 3 spatial groups, cluster bootstrap" and board["ci_groups"] == 3
    assert all(r["psnr_gain"]["unit"] == "spatial groups" and "_per_image" not in r for r in board["rows"])
    assert all(r["model_params"] > 0 for r in board["rows"])
    tie = board["tie_rule"]
    assert sorted(tie["between"]) == ["edsr", "rdn"] and tie["difference"]["n_groups"] == 3
    assert board["winner"] == tie["winner"] == board["rows"][0]["arch"]
    saved = json.loads((tmp_path / "l.json").read_text())
    assert saved["ci_groups"] == 3 and saved["tie_rule"]["winner"] == board["winner"]
    md = (tmp_path / "l.md").read_text()
    assert "95% CI over 3 spatial groups, cluster bootstrap" in md and "**Top two**" in md


def test_select_can_rank_on_cpsnr_gain(png_dir, tmp_path):
    p = Params.model_validate({"select": {"archs": ["edsr"], "criterion": "cpsnr_gain", "max_hallucination": 1.0},
                               "evaluate": {"bootstrap": 200}})
    save_model(tmp_path / "finetune" / "edsr", "edsr")
    board = run_select(p, png_dir=png_dir, models_dir=tmp_path / "finetune", out_json=tmp_path / "l.json",
                       out_md=tmp_path / "l.md", use_mlflow=False)
    row = board["rows"][0]
    assert row["score"] == row["cpsnr_gain"]["mean"] and row["score"] is not None
    assert json.loads((tmp_path / "l.json").read_text())["edsr"]["cpsnr_gain"] == pytest.approx(row["score"])
    assert "cPSNR gain" in (tmp_path / "l.md").read_text()
