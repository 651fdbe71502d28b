"""What training saves: model.keras is exported (reflectance in/out, the dataset's range and the
train.harmonize map inside), and fine-tuning starts from such a file (its network is unwrapped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scratch import write_png_dataset

from satsr import models
from satsr.config import Params
from satsr.models import export, harmonize
from satsr.train import trainer

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

LO, HI = -0.1, 0.9


def _params(stage: str, harmonize_spec: str = "none") -> Params:
    return Params.model_validate({
        "models": {"edsr": {"num_blocks": 1, "num_filters": 8}},
        "png": {"reflectance_min": LO, "reflectance_max": HI},
        stage: {"edsr": {"epochs": 1, "steps_per_epoch": 1, "input": {"lr_patch": 8, "batch_size": 2,
                                                                         "cache": "memory"}}},
        "train": {"samples": 0, "harmonize": harmonize_spec},
    })


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = write_png_dataset(tmp_path_factory.mktemp("png"), n_train=2, n_val=1, lr_size=12)
    (root / "encoding.json").write_text(json.dumps({"lo": LO, "hi": HI}))
    return root


def test_training_saves_an_exported_model_with_its_range_and_harmonization(data_dir, tmp_path):
    out = tmp_path / "pre"
    trainer.train_stage(_params("pretrain"), "pretrain", "edsr", data_dir, out, ckpt_dir=tmp_path / "c1",
                        log_to_mlflow=False)
    pre = models.load(out / trainer.MODEL_FILE)
    assert models.is_exported(pre) and models.model_range(pre) == (LO, HI)
    assert export.get_harmonization(pre).source == "none"

    spec = tmp_path / "map.yaml"
    spec.write_text("gain: [1.05, 1.0, 0.95]\noffset: [0.0, 0.01, 0.0]\n")
    fine = tmp_path / "fine"
    summary = trainer.train_stage(_params("finetune", str(spec)), "finetune", "edsr", data_dir, fine,
                                  out / trainer.MODEL_FILE, ckpt_dir=tmp_path / "c2", log_to_mlflow=False)
    assert np.isfinite(summary["val_psnr"])
    model = models.load(fine / trainer.MODEL_FILE)
    assert models.model_range(model) == (LO, HI)
    h = export.get_harmonization(model)
    assert h.source == str(spec)
    np.testing.assert_allclose(h.gain, (1.05, 1.0, 0.95), rtol=1e-6)
    # The saved model is the trained network behind harmonize + encode, and decode after it.
    refl = np.random.default_rng(0).uniform(0.0, 0.5, (1, 7, 9, 3)).astype(np.float32)
    unit = (np.clip(harmonize.Harmonization("f", h.gain, h.offset).apply(refl), LO, HI) - LO) / (HI - LO)
    expected = LO + np.asarray(models.unwrap(model)(unit)) * (HI - LO)
    np.testing.assert_allclose(np.asarray(model(refl)), expected, atol=1e-5)
