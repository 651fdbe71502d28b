"""Tiny datasets, models, spaces and params for the tuning tests (imported by tests/tune/test_*.py)."""

from __future__ import annotations

from pathlib import Path

import yaml
from scratch import write_png_dataset as write_dataset  # noqa: F401  (re-exported to tests/tune)

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
