"""Where SR images come from when they are scored: a saved model, or a folder of saved predictions.

A predictor maps (pair, LR reflectance (h, w, 3)) to SR reflectance (3h, 3w, 3).
:func:`super_resolve` is the ONE place that feeds reflectance to a satsr model and turns its output
back into reflectance; evaluation, selection and training-time validation all go through it, so a
model is scored identically wherever it is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from satsr.evaluate.dataset import read_reflectance
from satsr.evaluate.metrics import EvaluationError


class _Pair(Protocol):
    pair_id: str
    lr_path: Path
    hr_path: Path


def super_resolve(model_fn: Callable[[Any], Any], lr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """SR reflectance (float64) of one (h, w, c) LR reflectance image.

    satsr models take and return the PNG stage's units ``(r - lo) / (hi - lo)`` (png16 / 65535);
    ``model_fn`` maps such a (1, h, w, c) float32 batch to the (1, 3h, 3w, c) output. The output is
    clipped to [0, 1] in those units (the PNG range) before mapping back; a non-finite output is
    returned as is, so the caller can report it.
    """
    unit = ((np.asarray(lr, np.float64) - lo) / (hi - lo)).astype(np.float32)
    out = np.asarray(model_fn(unit[None]), dtype=np.float64)[0]
    if not np.isfinite(out).all():
        return out
    return lo + np.clip(out, 0.0, 1.0) * (hi - lo)


class ModelPredictor:
    """A saved satsr model (``model.keras``): LR reflectance -> SR reflectance (whole image).

    An exported model (satsr.models.export) is fed reflectance and its output is clipped to the
    range it carries; a bare network saved before export existed goes through ``super_resolve`` with
    the dataset's ``lo, hi`` (a warning says so).
    """

    def __init__(self, model_path: str | Path, lo: float, hi: float, arch: str | None = None):
        self.path = Path(model_path)
        self.lo, self.hi = lo, hi
        stage = f"finetune@{arch}" if arch else "finetune@<arch>"
        if not self.path.is_file():
            raise EvaluationError(f"{self.path}: model not found; run `dvc repro {stage}` first "
                                  f"(or score saved predictions with --predictions DIR)")
        from satsr.models import is_exported, load, model_range

        try:
            self.model = load(self.path)
        except Exception as err:  # noqa: BLE001 -- keras raises many types for a damaged file
            raise EvaluationError(f"{self.path}: cannot load the model ({type(err).__name__}: {err})") from None
        self.model_range = model_range(self.model) if is_exported(self.model) else None
        if self.model_range is None:
            logging.getLogger(__name__).warning(
                "%s: saved without its normalization (before satsr exported its models); fed the dataset's "
                "png units [%g, %g]", self.path, lo, hi)

    def describe(self, pair: _Pair) -> str:
        return f"{self.path} on {pair.lr_path}"

    def __call__(self, pair: _Pair, lr: np.ndarray) -> np.ndarray:
        if self.model_range is None:
            return super_resolve(lambda x: self.model(x, training=False), lr, self.lo, self.hi)
        x = np.asarray(lr, np.float32)[None]
        out = np.asarray(self.model(x, training=False), dtype=np.float64)[0]
        return np.clip(out, *self.model_range) if np.isfinite(out).all() else out


class PredictionDirPredictor:
    """Saved SR predictions: ``<dir>/<pair_id>.png`` (16-bit, the PNG dataset's encoding) or
    ``<dir>/<pair_id>.npy`` ((H, W, 3) float reflectance)."""

    def __init__(self, folder: str | Path, lo: float, hi: float):
        self.folder = Path(folder)
        self.lo, self.hi = lo, hi
        if not self.folder.is_dir():
            raise EvaluationError(f"{self.folder}: predictions folder not found")

    def path(self, pair: _Pair) -> Path:
        for ext in (".png", ".npy"):
            p = self.folder / f"{pair.pair_id}{ext}"
            if p.is_file():
                return p
        raise EvaluationError(f"{self.folder / (pair.pair_id + '.png')}: prediction for pair {pair.pair_id} "
                              f"not found (expected <pair_id>.png or .npy in {self.folder})")

    def describe(self, pair: _Pair) -> str:
        return str(self.path(pair))

    def __call__(self, pair: _Pair, lr: np.ndarray) -> np.ndarray:
        p = self.path(pair)
        if p.suffix == ".npy":
            try:
                arr = np.load(p)
            except (OSError, ValueError) as err:
                raise EvaluationError(f"{p}: unreadable prediction ({err})") from None
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise EvaluationError(f"{p}: expected an (H, W, 3) array, got shape {arr.shape}")
            return arr.astype(np.float64)
        return read_reflectance(p, self.lo, self.hi)


Predictor = Callable[[_Pair, np.ndarray], np.ndarray]


def predict_checked(predictor: Any, pair: _Pair, lr: np.ndarray, hr_shape: tuple[int, ...]) -> np.ndarray:
    """The prediction of one pair, checked: finite everywhere and exactly HR's size."""
    sr = predictor(pair, lr)
    bad = int(np.size(sr) - np.count_nonzero(np.isfinite(sr)))
    if bad:
        raise EvaluationError(f"{predictor.describe(pair)}: the SR prediction of pair {pair.pair_id} has {bad} "
                              f"NaN/inf value(s) (of {np.size(sr)})")
    if sr.shape != hr_shape:
        raise EvaluationError(f"{predictor.describe(pair)}: the SR prediction of pair {pair.pair_id} is "
                              f"{sr.shape[1]}x{sr.shape[0]}x{sr.shape[2] if sr.ndim == 3 else 1}, HR {pair.hr_path} "
                              f"is {hr_shape[1]}x{hr_shape[0]}x{hr_shape[2]}")
    return sr
