"""Metrics that need no HR image: the seed's sharpness index and the SR image's consistency with its
LR input (area-downsampled back to 30 m: L1, spectral angle, phase-correlation shift)."""

from __future__ import annotations

import math

import numpy as np

from satsr.config import SCALE
from satsr.data.registration import area_downsample, phase_shift
from satsr.evaluate.metrics.base import EvaluationError, as_hwc, crop


# ---------------------------------------------------------------------------------- sharpness
def grey(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    return img.mean(axis=-1) if img.ndim == 3 else img


def sharpness(img: np.ndarray) -> float:
    """The seed's sharpness index: mean gradient magnitude of the grey (band-mean) image,
    ``gy, gx = np.gradient(grey)``, ``mean(sqrt(gx^2 + gy^2))``."""
    gy, gx = np.gradient(grey(img))
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


# -------------------------------------------------------------------------------- consistency
def spectral_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-pixel angle (degrees) between the band vectors of two (h, w, c) images; pixels with
    a zero vector in either are excluded (NaN when none is left)."""
    a = as_hwc(a)
    a = a.reshape(-1, a.shape[-1])
    b = as_hwc(b).reshape(a.shape)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    ok = norm > 0
    if not ok.any():
        return math.nan
    cos = np.clip(np.sum(a[ok] * b[ok], axis=1) / norm[ok], -1.0, 1.0)
    return float(np.degrees(np.mean(np.arccos(cos))))


def lr_consistency(sr: np.ndarray, lr: np.ndarray, scale: int = SCALE, border: int = SCALE,
                   upsample_factor: int = 20) -> dict[str, float]:
    """SR brought back to 30 m (``area_downsample`` by ``scale``) against the LR input.

    ``lr_l1``: mean |SR_30m - LR| (reflectance); ``lr_sam_deg``: mean spectral angle (degrees);
    ``lr_shift_px``: length of the phase-correlation shift of SR_30m against LR in LR px
    (``lr_shift_dy`` / ``lr_shift_dx`` signed; satsr.data.registration's sign convention).
    ``sr`` and ``lr`` are the full, uncropped (H, W, C) and (h, w, C) images; ``ceil(border /
    scale)`` LR px are cropped from both after downsampling.
    """
    sr, lr = as_hwc(sr), as_hwc(lr)
    if sr.shape[0] != lr.shape[0] * scale or sr.shape[1] != lr.shape[1] * scale:
        raise EvaluationError(f"SR {sr.shape[1]}x{sr.shape[0]} is not {scale}x LR {lr.shape[1]}x{lr.shape[0]}")
    down = area_downsample(sr.transpose(2, 0, 1), scale).transpose(1, 2, 0)
    b = math.ceil(border / scale)
    down, lr = crop(down, b), crop(lr, b)
    dy, dx, _ = phase_shift(lr.transpose(2, 0, 1), down.transpose(2, 0, 1), upsample_factor=upsample_factor)
    return {"lr_l1": float(np.mean(np.abs(down - lr))), "lr_sam_deg": spectral_angle_deg(down, lr),
            "lr_shift_px": float(math.hypot(dy, dx)), "lr_shift_dy": float(dy), "lr_shift_dx": float(dx)}
