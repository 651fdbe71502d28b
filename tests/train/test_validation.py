"""Training-time validation scores with the evaluation's metric stack: for the same model and the
same images it reports the numbers `evaluate` reports (PSNR / SSIM on reflectance, evaluate.border,
Pillow bicubic), under names that carry the unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter

from satsr.config import Params
from satsr.data.png import write_png16
from satsr.data.radiometry import to_png16
from satsr.evaluate import run_evaluate
from satsr.evaluate.dataset import png_decoding
from satsr.train import trainer
from satsr.train.validation import Validator

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

LO, HI = -0.1, 1.0


def write_reflectance_dataset(root: Path, splits: dict[str, int], lr_size: int = 16, seed: int = 0) -> Path:
    """A PNG dataset as the png stage writes it (reflectance mapped with [LO, HI], encoding.json),
    LR = 3x3 mean of a textured HR; a few HR pixels above 1 exercise the [0, 1] clipping."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in splits.items():
        for k in range(n):
            s = lr_size * 3
            g = gaussian_filter(rng.normal(size=(s, s)), 2) * 5 + gaussian_filter(rng.normal(size=(s, s)), 0.7)
            hr = 0.12 + 0.06 * np.tanh(g)[..., None] * np.array([1.0, 0.85, 0.7])
            hr[:3, :3] = 1.05
            lr = hr.reshape(lr_size, 3, lr_size, 3, 3).mean(axis=(1, 3))
            pid = f"{split}{k}"
            rel = {"lr_png": f"{split}_LR/{pid}.png", "hr_png": f"{split}_HR/{pid}.png"}
            write_png16(root / rel["lr_png"], to_png16(lr, LO, HI))
            write_png16(root / rel["hr_png"], to_png16(hr, LO, HI))
            rows.append({"pair_id": pid, "split": split, **rel})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    (root / "encoding.json").write_text(json.dumps({"lo": LO, "hi": HI}))
    return root


def test_training_validation_and_evaluate_give_the_same_numbers(tmp_path):
    data = write_reflectance_dataset(tmp_path / "png", {"train": 2, "val": 3})
    params = Params.model_validate({
        "models": {"edsr": {"num_blocks": 1, "num_filters": 8}},
        "finetune": {"edsr": {"epochs": 1, "steps_per_epoch": 2, "lr": 1e-3,
                              "input": {"lr_patch": 8, "batch_size": 2, "cache": "memory"}}},
        "evaluate": {"border": 4, "bootstrap": 200, "figures": 0},
    })
    out, plots = tmp_path / "model", tmp_path / "plots.csv"
    summary = trainer.train_stage(params, "finetune", "edsr", data, out, ckpt_dir=tmp_path / "ckpt",
                                  plots_path=plots, log_to_mlflow=False)
    evaluated = run_evaluate(params, "edsr", png_dir=data, model_path=out / trainer.MODEL_FILE, split="val",
                             out_dir=tmp_path / "eval", metrics_path=tmp_path / "eval.json", use_mlflow=False)
    stats = evaluated["stats"]
    assert summary["val_psnr"] == pytest.approx(stats["sr"]["psnr"]["mean"], abs=1e-6)
    assert summary["bicubic_psnr"] == pytest.approx(stats["bicubic"]["psnr"]["mean"], abs=1e-9)
    assert summary["val_ssim"] == pytest.approx(stats["sr"]["ssim"]["mean"], abs=1e-7)
    assert summary["bicubic_ssim"] == pytest.approx(stats["bicubic"]["ssim"]["mean"], abs=1e-9)
    assert summary["psnr_gain_db"] == pytest.approx(evaluated["gain_vs_bicubic"]["sr"]["psnr"]["mean"], abs=1e-6)
    conv = summary["conventions"]
    assert conv["border_crop_px"] == 4 and conv["metric_suffix"] == "refl" and "reflectance" in conv["data_range"]

    # The history / MLflow names say the unit; the old png16/65535 names are gone.
    history = pd.read_csv(plots)
    assert {"val_psnr_refl", "val_ssim_refl", "val_psnr_gain_refl", "bicubic_psnr_refl"} <= set(history.columns)
    assert "val_psnr" not in history.columns
    assert history["val_psnr_refl"].iloc[-1] == pytest.approx(summary["val_psnr"])


def test_validator_per_image_matches_evaluate_per_image(tmp_path):
    """Image by image, with an untrained model (far from bicubic, so a unit mix-up would show)."""
    import keras

    from satsr import models
    from satsr.config import InputParams
    from satsr.data.pipeline import make_dataset

    data = write_reflectance_dataset(tmp_path / "png", {"train": 1, "val": 2}, seed=3)
    keras.utils.set_random_seed(5)
    model = models.build("edsr", {"num_blocks": 1, "num_filters": 8})
    rng = np.random.default_rng(0)  # untrained EDSR outputs (TF) bicubic; perturb it to a real SR
    model.set_weights([w + rng.normal(0, 0.02, w.shape).astype(w.dtype) for w in model.get_weights()])
    model.save(str(tmp_path / "m.keras"))
    params = Params.model_validate({"evaluate": {"bootstrap": 200, "figures": 0}})
    val_ds = make_dataset(data, "val", InputParams(cache="memory"), training=False, seed=0)
    validator = Validator(val_ds, png_decoding(data, params.png), params.evaluate.border, params.evaluate.psnr_cap_db)
    rows = validator.per_image(lambda x: model(x, training=False))
    run_evaluate(params, "edsr", png_dir=data, model_path=tmp_path / "m.keras", split="val",
                 out_dir=tmp_path / "eval", metrics_path=tmp_path / "eval.json", use_mlflow=False)
    df = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    np.testing.assert_allclose([r["psnr"] for r in rows], df["sr_psnr"], atol=1e-6)
    np.testing.assert_allclose([r["ssim"] for r in rows], df["sr_ssim"], atol=1e-7)
    bic = validator.per_image(None)
    np.testing.assert_allclose([r["psnr"] for r in bic], df["bicubic_psnr"], atol=1e-9)
    assert validator.names.psnr == "val_psnr_refl" and validator.names.bicubic_ssim == "bicubic_ssim_refl"
