"""The names every metric module shares: methods and metric names in column order, their units and
directions, the evaluation error, the border crop, the reference cache and the upsampling baselines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from satsr.errors import SatsrError

#: Methods compared on the same pixels, in table order (``sr`` = the model).
BASELINES: tuple[str, ...] = ("bicubic", "lanczos")
METHODS: tuple[str, ...] = ("sr", *BASELINES)
#: Full-reference metrics from sewar, on reflectance in [0, 1].
FULL_REF: tuple[str, ...] = ("psnr", "ssim", "msssim", "ergas", "sam", "uqi", "scc", "rase")
QUICKLOOK: tuple[str, ...] = ("psnr8", "ssim8")
#: Shift- and bias-tolerant PSNR / SSIM (package doc); extra per-image columns: REGISTERED_EXTRA.
REGISTERED: tuple[str, ...] = ("cpsnr", "cssim")
REGISTERED_EXTRA: tuple[str, ...] = ("cshift_dy", "cshift_dx", "cbias")
CONSISTENCY: tuple[str, ...] = ("lr_l1", "lr_sam_deg", "lr_shift_px")
CORRECTNESS: tuple[str, ...] = ("improvement", "omission", "hallucination")
#: Every per-method metric, in column order.
ALL_METRICS: tuple[str, ...] = (*FULL_REF, *REGISTERED, *QUICKLOOK, "sharpness", *CONSISTENCY, *CORRECTNESS)
#: True: higher is better; False: lower is better; None: neither (sharpness: closer to HR is better).
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "psnr": True, "ssim": True, "msssim": True, "ergas": False, "sam": False, "uqi": True, "scc": True,
    "rase": False, "cpsnr": True, "cssim": True, "psnr8": True, "ssim8": True, "sharpness": None,
    "lr_l1": False, "lr_sam_deg": False,
    "lr_shift_px": False, "improvement": True, "omission": False, "hallucination": False,
}
UNITS: dict[str, str] = {
    "psnr": "dB", "cpsnr": "dB", "psnr8": "dB", "sam": "rad", "lr_sam_deg": "deg", "lr_shift_px": "LR px",
    "lr_l1": "reflectance", "sharpness": "reflectance / 10 m px", "ergas": "", "rase": "%",
}


class EvaluationError(SatsrError, ValueError):
    """Evaluation cannot run on these inputs; the message names the file or pair."""


def crop(img: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` px on every side of an (h, w[, c]) image."""
    if border <= 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise EvaluationError(f"image of {img.shape[1]}x{img.shape[0]} px is too small for a {border} px border crop")
    return img[border:-border, border:-border]


def as_hwc(img: np.ndarray) -> np.ndarray:
    """float64 (h, w, c): every metric takes grey (h, w) images as one band."""
    img = np.asarray(img, dtype=np.float64)
    return img[:, :, None] if img.ndim == 2 else img


#: Reference-side results shared by the methods scored against the same HR image (image_metrics):
#: the blurred HR statistics of SSIM / MS-SSIM, HR's downsampled scales, HR's histogram tables and
#: the LR-to-HR distance of the correctness scores. Keys name the computation; pass one dict per HR.
RefCache = dict


def cached(cache: RefCache | None, key: tuple, fn: Callable[[], Any]) -> Any:
    """``fn()`` once per ``key`` and reference image; every call without a cache."""
    if cache is None:
        return fn()
    if key not in cache:
        cache[key] = fn()
    return cache[key]


# ------------------------------------------------------------------------------- baselines
def upsample(img: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Upsample an (h, w, c) float image ``scale`` x with Pillow on float32 bands (pixel-centre
    aligned): ``bicubic`` (Keys a = -0.5), ``lanczos`` (Lanczos-3) or ``bilinear``."""
    filters = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "bilinear": Image.Resampling.BILINEAR}
    if method not in filters:
        raise ValueError(f"unknown upsampling method {method!r}; valid: {', '.join(filters)}")
    img = as_hwc(img)
    h, w, c = img.shape
    out = np.empty((h * scale, w * scale, c), np.float64)
    for k in range(c):
        band = Image.fromarray(np.ascontiguousarray(img[:, :, k], dtype=np.float32), mode="F")
        out[:, :, k] = np.asarray(band.resize((w * scale, h * scale), filters[method]), dtype=np.float64)
    return out
