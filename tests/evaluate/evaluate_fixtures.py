"""Small real inputs for the evaluation tests: a PNG dataset in the png stage's layout, tiny saved
models, and textured reflectance images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from satsr.data.png import write_png16

LO, HI = -0.1, 1.0
TINY = {"edsr": {"num_blocks": 1, "num_filters": 8}, "rdn": {"D": 1, "C": 2, "G": 8, "G0": 8},
        "rrdn": {"T": 1, "D": 1, "C": 2, "G": 8, "G0": 8},
        "srgan": {"num_blocks": 1, "num_filters": 8, "disc_filters": 8, "disc_stages": 2, "disc_dense": 16}}


def texture(rng: np.random.Generator, size: int, base: float = 0.08) -> np.ndarray:
    """(size, size, 3) reflectance with structure at several scales, roughly in [0.02, 0.2]."""
    g = gaussian_filter(rng.normal(size=(size, size)), 3) * 5 + gaussian_filter(rng.normal(size=(size, size)), 0.8)
    return np.clip(base + 0.05 * np.tanh(g)[..., None] * np.array([1.0, 0.85, 0.7]), 0.0, 1.0)


def to_png16(refl: np.ndarray) -> np.ndarray:
    return np.round((np.clip(refl, LO, HI) - LO) / (HI - LO) * 65535).astype(np.uint16)


def write_dataset(root: Path, splits: dict[str, int] | None = None, lr_size: int = 24, seed: int = 0) -> Path:
    """PNG dataset (index.csv, {split}_{LR,HR}/<id>.png, encoding.json) whose LR is the 3x3 mean of HR."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, n in (splits or {"val": 3, "test": 3}).items():
        for k in range(n):
            hr = texture(rng, lr_size * 3)
            lr = hr.reshape(lr_size, 3, lr_size, 3, 3).mean(axis=(1, 3))
            pid = f"{split}{k}"
            rel = {"lr_png": f"{split}_LR/{pid}.png", "hr_png": f"{split}_HR/{pid}.png"}
            write_png16(root / rel["lr_png"], to_png16(lr))
            write_png16(root / rel["hr_png"], to_png16(hr))
            rows.append({"pair_id": pid, "split": split, **rel})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    (root / "encoding.json").write_text(json.dumps({"lo": LO, "hi": HI}))
    return root


def save_model(folder: Path, arch: str = "edsr", seed: int = 1) -> Path:
    """A tiny untrained satsr model (bicubic global residual, so close to bicubic) saved as model.keras."""
    import keras

    from satsr import models

    keras.utils.set_random_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    model = models.build(arch, TINY[arch])
    model.save(str(folder / "model.keras"))
    return folder / "model.keras"
