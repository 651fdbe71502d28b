"""Tiny datasets, models, spaces and params for the tuning tests (imported by tests/tune/test_*.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.ndimage import gaussian_filter

REPO = Path(__file__).resolve().parents[2]
TINY_MODELS = {
    "rdn": {"D": 1, "C": 2, "G": 8, "G0": 8},
    "rrdn": {"T": 1, "D": 1, "C": 2, "G": 8, "G0": 8},
    "edsr": {"num_blocks": 1, "num_filters": 8},
    "srgan": {"num_blocks": 1, "num_filters": 8, "disc_filters": 8, "disc_stages": 2, "disc_dense": 16},
}
TINY_SPACE = {
    "finetune": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "input.lr_patch": {"type": "int", "low": 8, "high": 8},
        "input.batch_size": {"type": "categorical", "choices": [2, 4]},
        "schedule.name": {"type": "categorical", "choices": ["constant", "cosine"]},
    },
}


def write_dataset(root: Path, n_train: int = 3, n_val: int = 2, lr_size: int = 16, seed: int = 0) -> Path:
    """A PNG dataset (png stage layout) whose LR is the exact 3x3 mean of a textured HR."""
    from satsr.data.png import write_png16

    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        for k in range(n):
            s = lr_size * 3
            g = gaussian_filter(rng.normal(size=(s, s)), 2) * 4 + gaussian_filter(rng.normal(size=(s, s)), 0.8)
            hr = np.clip(0.4 + 0.15 * np.tanh(g)[..., None] * np.array([1.0, 0.9, 0.7]), 0, 1)
            lr = hr.reshape(lr_size, 3, lr_size, 3, 3).mean(axis=(1, 3))
            pid = f"{split}{k}"
            rel = {"lr_png": f"{split}_LR/{pid}.png", "hr_png": f"{split}_HR/{pid}.png"}
            write_png16(root / rel["lr_png"], np.round(lr * 65535).astype(np.uint16))
            write_png16(root / rel["hr_png"], np.round(hr * 65535).astype(np.uint16))
            rows.append({"pair_id": pid, "split": split, **rel})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def write_spaces(folder: Path, archs=("edsr",), pruner: str = "none", epochs_space: dict | None = None,
                 sampler: str = "tpe") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        (folder / f"{arch}.yaml").write_text(yaml.safe_dump({"arch": arch, **(epochs_space or TINY_SPACE)}))
    (folder / "study.yaml").write_text(yaml.safe_dump({
        "objective": "val_psnr_gain", "direction": "maximize",
        "sampler": {"name": sampler, "seed": 1, "n_startup_trials": 2},
        "pruner": {"name": pruner, "min_resource": 1, "reduction_factor": 2}}))
    return folder


def tiny_raw(tmp: Path, arch: str = "edsr", n_trials: int = 3, epochs: int = 1, steps: int = 2,
             storage: str | None = None) -> dict:
    return {
        "models": TINY_MODELS,
        "finetune": {arch: {"epochs": 1, "steps_per_epoch": 2, "lr": 1e-3,
                            "input": {"lr_patch": 8, "batch_size": 2, "cache": "memory"}}},
        "train": {"samples": 0},
        "tune": {"n_trials": n_trials, "epochs": epochs, "steps_per_epoch": steps, "storage": storage,
                 "spaces_dir": str(write_spaces(tmp / "spaces", (arch,))), "work_dir": str(tmp / "work")},
    }


def write_params(tmp: Path, raw: dict) -> Path:
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def pretrained(tmp: Path, arch: str = "edsr") -> Path:
    """A saved tiny model.keras to fine-tune from."""
    from satsr import models
    from satsr.config import Params

    path = tmp / "pretrain" / arch / "model.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    models.build(arch, Params.model_validate({"models": TINY_MODELS}).models).save(str(path))
    return path
