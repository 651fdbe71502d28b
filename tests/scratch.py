"""Test and benchmark support (not library code, so it lives under tests/): run the real DVC
pipeline in a scratch copy of the repo, and write tiny PNG datasets.

Tests import it as ``scratch`` (tests/ is on sys.path through tests/conftest.py); benchmarks put
tests/ on sys.path first.

The copy holds the pipeline definition and code, with its own git repository, DVC cache and local
remote, so `dvc repro`, `dvc push` and `dvc exp run` can be exercised for real without touching the
working checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

#: What a pipeline copy needs: definitions, code, committed review list.
PIPELINE_FILES = ("dvc.yaml", "params.yaml", ".dvcignore", "pyproject.toml", "stages", "src", "data/review",
                  "experiments",
                  ".dvc/config", ".dvc/.gitignore")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def deep_update(base: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def env() -> dict[str, str]:
    """Environment whose `python` and `dvc` are this interpreter's virtualenv."""
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["GIT_AUTHOR_NAME"] = e["GIT_COMMITTER_NAME"] = "satsr-test"
    e["GIT_AUTHOR_EMAIL"] = e["GIT_COMMITTER_EMAIL"] = "satsr-test@localhost"
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_copy(dest: Path, params: dict[str, Any] | None = None, src: Path | None = None) -> Path:
    """Copy the pipeline into ``dest`` with ``params`` merged into params.yaml; git-commit it."""
    src = src or repo_root()
    dest.mkdir(parents=True, exist_ok=True)
    for rel in PIPELINE_FILES:
        s, d = src / rel, dest / rel
        if s.is_dir():
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"), dirs_exist_ok=True)
        elif s.exists():
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    shutil.copy2(src / ".gitignore", dest / ".gitignore")
    if params:
        merged = deep_update(yaml.safe_load((dest / "params.yaml").read_text()), params)
        (dest / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "scratch pipeline"], dest)
    return dest


def write_png_dataset(root: Path, n_train: int = 3, n_val: int = 2, lr_size: int = 16, seed: int = 0) -> Path:
    """A tiny PNG dataset in the png stage's layout (``{split}_{LR,HR}/<id>.png`` + ``index.csv``):
    textured HR images whose LR is their exact 3x3 mean, for training tests and benchmarks."""
    import numpy as np
    import pandas as pd
    from scipy.ndimage import gaussian_filter

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


def tiny_detail_net(alpha: float = 1.0, detail_scale: float = 1.0):
    """The smallest network with a ``detail_strength`` layer (as the released model has): bicubic +
    alpha * (random conv detail); ``detail_scale`` shrinks the tail's kernel (and so the detail)."""
    import keras

    from satsr.models import blocks

    keras.utils.set_random_seed(5)
    lr = blocks.lr_input(3)
    x = blocks.conv(lr, 4, 3, name="head", activation="relu")
    x = blocks.upsampler(x, 4)
    detail = blocks.conv(x, 3, 3, name="tail_conv")
    base = blocks.Upsample(3, "bicubic", name="lr_upsampled")(lr)
    sr = blocks.DetailStrength(alpha, name="detail_strength")([base, detail])
    net = keras.Model(lr, sr, name="detail_tiny")
    if detail_scale != 1.0:
        tail = net.get_layer("tail_conv")
        kernel, bias = tail.get_weights()
        tail.set_weights([kernel * detail_scale, bias])
    return net


def smooth_field(rng: np.random.Generator, size: int, bands: int = 3) -> np.ndarray:
    """A textured reflectance field (bands, size, size) in roughly [0.02, 0.25]."""
    from scipy.ndimage import gaussian_filter

    base = gaussian_filter(rng.normal(size=(size, size)), sigma=size / 16) * 8
    detail = gaussian_filter(rng.normal(size=(size, size)), sigma=2)
    grey = 0.1 + 0.05 * np.tanh(base) + 0.02 * detail
    tints = np.array([1.0, 0.9, 0.7])[:bands, None, None]
    return np.clip(grey[None] * tints, 0.01, 0.9).astype(np.float32)


def box_op(reach: int):
    """(2 reach + 1)^2 box blur (zero padding, like a network's convolutions) then nearest x3."""
    from scipy.ndimage import uniform_filter

    def op(batch):
        size = 2 * reach + 1
        blurred = np.stack([uniform_filter(b, size=(size, size, 1), mode="constant") for b in batch])
        return blurred.repeat(3, axis=1).repeat(3, axis=2)

    return op
