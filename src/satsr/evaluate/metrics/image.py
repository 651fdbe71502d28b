"""Every metric of every method for one image (the one entry point of evaluate, select and training
validation), the per-group timer and the conventions written next to every number."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager

import numpy as np

from satsr.config import SCALE, CorrectnessParams
from satsr.evaluate.metrics.base import (
    ALL_METRICS,
    CONSISTENCY,
    CORRECTNESS,
    FULL_REF,
    HIGHER_IS_BETTER,
    QUICKLOOK,
    REGISTERED,
    REGISTERED_EXTRA,
    UNITS,
    EvaluationError,
    RefCache,
    as_hwc,
    crop,
    upsample,
)
from satsr.evaluate.metrics.consistency import lr_consistency, sharpness
from satsr.evaluate.metrics.fidelity import ergas, msssim, psnr, rase, sam, scc, ssim, uqi
from satsr.evaluate.metrics.opensr import correctness
from satsr.evaluate.metrics.registration import registered_metrics


class Timer:
    """Wall and CPU seconds per metric group, summed over calls (CPU time of this process: a
    load-independent figure on a shared machine)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + wall
        self.cpu_seconds[name] = self.cpu_seconds.get(name, 0.0) + cpu
        self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def __call__(self, name: str):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0, time.process_time() - c0)


@contextmanager
def _nothing(_name: str):
    yield


def quicklook8(refl: np.ndarray, max_reflectance: float, gamma: float) -> np.ndarray:
    """The PNG stage's 8-bit quicklook stretch (satsr.data.radiometry.to_quicklook8)."""
    from satsr.data.radiometry import to_quicklook8

    return to_quicklook8(refl, max_reflectance, gamma)


def image_metrics(lr: np.ndarray, hr: np.ndarray, predictions: Mapping[str, np.ndarray], *,
                  scale: int = SCALE, border: int = SCALE, quicklook: tuple[float, float] = (0.3, 1.8),
                  correctness_settings: CorrectnessParams = CorrectnessParams(),
                  metrics: Iterable[str] = ALL_METRICS, timer: Timer | None = None,
                  max_shift: int = SCALE) -> dict[str, float]:
    """Every metric of every prediction of one image, as a flat ``{method}_{metric}`` dict.

    ``lr`` (h, w, c) and ``hr`` / predictions (3h, 3w, c) are reflectance; they are clipped to
    [0, 1] here and border-cropped per the package conventions. ``metrics`` picks a subset (the
    select stage needs only PSNR and hallucination). Adds ``hr_sharpness`` when sharpness is asked,
    and ``{method}_cshift_dy|cshift_dx|cbias`` with cPSNR / cSSIM (``max_shift``: their +-N, HR px).
    """
    want = set(metrics)
    unknown = want - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; valid: {', '.join(ALL_METRICS)}")
    t = timer or _nothing
    lr = np.clip(as_hwc(lr), 0.0, 1.0)
    hr_full = np.clip(as_hwc(hr), 0.0, 1.0)
    hr = crop(hr_full, border)
    out: dict[str, float] = {}
    if "sharpness" in want:
        with t("sharpness"):
            out["hr_sharpness"] = sharpness(hr)
    hr8 = quicklook8(hr, *quicklook) if want & set(QUICKLOOK) else None
    lr_up = None
    if want & set(CORRECTNESS):
        with t("correctness"):
            lr_up = crop(upsample(lr, scale, "bilinear"), border)
    ref_cache: RefCache = {}  # HR-side work shared by the methods (and a separate one for 8-bit)
    ref8_cache: RefCache = {}
    reg_cache: RefCache = {}  # cSSIM compares a smaller HR window (border + max_shift): its own cache
    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "psnr": psnr, "ssim": lambda a, b: ssim(a, b, cache=ref_cache),
        "msssim": lambda a, b: msssim(a, b, cache=ref_cache), "ergas": lambda a, b: ergas(a, b, 1.0 / scale),
        "sam": sam, "uqi": uqi, "scc": scc, "rase": rase,
    }
    for method, pred_full in predictions.items():
        if pred_full.shape[:2] != hr_full.shape[:2]:
            raise EvaluationError(f"{method}: prediction {pred_full.shape[1]}x{pred_full.shape[0]} px differs from "
                                  f"HR {hr_full.shape[1]}x{hr_full.shape[0]} px")
        pred_full = np.clip(as_hwc(pred_full), 0.0, 1.0)
        pred = crop(pred_full, border)
        for name in FULL_REF:
            if name in want:
                with t(name):
                    out[f"{method}_{name}"] = fns[name](hr, pred)
        if want & set(REGISTERED):
            with t("registered"):
                reg = registered_metrics(hr_full, pred_full, border, max_shift, cache=reg_cache)
                out.update({f"{method}_{k}": v for k, v in reg.items() if k in want or k in REGISTERED_EXTRA})
        if hr8 is not None:
            with t("quicklook8"):
                p8 = quicklook8(pred, *quicklook)
                if "psnr8" in want:
                    out[f"{method}_psnr8"] = psnr(hr8, p8, 255.0)
                if "ssim8" in want:
                    out[f"{method}_ssim8"] = ssim(hr8, p8, 255.0, cache=ref8_cache)
        if "sharpness" in want:
            with t("sharpness"):
                out[f"{method}_sharpness"] = sharpness(pred)
        if want & set(CONSISTENCY):
            with t("consistency"):
                cons = lr_consistency(pred_full, lr, scale, border)
                out.update({f"{method}_{k}": v for k, v in cons.items()})
        if lr_up is not None:
            with t("correctness"):
                corr = correctness(pred, hr, lr_up, correctness_settings, ref_cache)
                out.update({f"{method}_{k}": v for k, v in corr.items() if k in want})
    return out


def conventions(border: int, scale: int, quicklook: tuple[float, float],
                settings: CorrectnessParams, max_shift: int = SCALE) -> dict[str, object]:
    """The conventions behind every number (written into the summaries and the CSV's sidecar)."""
    return {
        "data_range": "reflectance clipped to [0, 1] (PSNR/SSIM MAX = 1); *8 metrics: 8-bit quicklook, MAX = 255",
        "quicklook": {"max_reflectance": quicklook[0], "gamma": quicklook[1],
                      "formula": "round(clip(r / max, 0, 1) ** (1 / gamma) * 255)"},
        "border_crop_px": border,
        "border_crop_lr_px": math.ceil(border / scale),
        "channels": "RGB; band-mean grey for sharpness",
        "scale": scale,
        "baselines": {"bicubic": "Pillow BICUBIC (Keys a=-0.5) on reflectance",
                      "lanczos": "Pillow LANCZOS (Lanczos-3) on reflectance"},
        "full_reference": "sewar 0.4.10 definitions (SSIM/MS-SSIM/SCC re-implemented, equal to sewar to ~1e-10); "
                          "ERGAS r = 1/scale; SAM in radians",
        "registered": {"metrics": "cpsnr, cssim (PROBA-V cPSNR convention)", "max_shift_hr_px": max_shift,
                       "crop_px": border + max_shift,
                       "rule": "best PSNR over integer shifts within +-max_shift of the prediction window "
                               "(prediction (y+dy, x+dx) vs HR (y, x)) after adding the per-band bias "
                               "mean(HR - prediction); cSSIM = SSIM of that window at the cPSNR-optimal shift; "
                               "MAX = 1 reflectance; ties to the smallest shift"},
        "sharpness": "mean sqrt(gx^2 + gy^2), (gy, gx) = np.gradient(band-mean grey), reflectance / 10 m px",
        "cpbd": "not computed: no maintained, openly licensed package on PyPI",
        "consistency": "SR area-downsampled x scale vs LR: L1 (reflectance), spectral angle (deg), "
                       "phase-correlation shift (LR px)",
        "correctness": {"after": "opensr-test 1.3.3 formulas (Aybar et al. 2024), distance 'nd'",
                        "differs_from_opensr_test_defaults": "norm percent (its default softmin) unless set; no "
                        "spatial alignment (its harm_apply_spatial); border = border_crop_px (its border_mask 16)",
                        **settings.__dict__},
        "psnr_identical": "inf per image (JSON: null, counted in n_infinite); capped for averages, see stats",
        "units": UNITS,
        "higher_is_better": HIGHER_IS_BETTER,
    }
