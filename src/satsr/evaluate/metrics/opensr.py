"""opensr-test's improvement / omission / hallucination shares with satsr's settings (package doc:
which of its defaults are kept and why)."""

from __future__ import annotations

import math

import numpy as np

from satsr.config import CorrectnessParams
from satsr.evaluate.metrics.base import CORRECTNESS, RefCache, as_hwc, cached


def _nd(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """opensr-test's 'nd' (fractional difference) per pixel: mean_b |x - y| / |x + y + 1e-8|."""
    return np.mean(np.abs(x - y) / np.abs(x + y + 1e-8), axis=-1)


def _cdf_table(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.unique(band.reshape(-1), return_counts=True)
    return values, np.cumsum(counts) / band.size


def match_histograms(img: np.ndarray, reference: np.ndarray, cache: RefCache | None = None) -> np.ndarray:
    """``skimage.exposure.match_histograms(img, reference, channel_axis=-1)`` for float images (the
    same cumulative-CDF interpolation, per band), with the reference's tables kept in ``cache``."""
    out = np.empty(img.shape, dtype=np.float64)
    for b in range(img.shape[-1]):
        t_values, t_quantiles = cached(cache, ("cdf", b), lambda b=b: _cdf_table(reference[..., b]))
        _, s_inverse, s_counts = np.unique(img[..., b].reshape(-1), return_inverse=True, return_counts=True)
        s_quantiles = np.cumsum(s_counts) / s_inverse.size
        out[..., b] = np.interp(s_quantiles, t_quantiles, t_values)[s_inverse].reshape(img.shape[:-1])
    return out


def correctness(sr: np.ndarray, hr: np.ndarray, lr_up: np.ndarray,
                settings: CorrectnessParams = CorrectnessParams(),
                cache: RefCache | None = None) -> dict[str, float]:
    """Improvement, omission and hallucination shares of an SR image after opensr-test
    (Aybar et al. 2024, ``opensr_test.main.Metrics.correctness``) with satsr's settings, which are
    not all opensr-test's defaults (package doc: percent, no spatial alignment, the evaluate border).

    With ``lr_up`` the LR image bilinearly upsampled to the HR grid and ``SRh`` the SR image
    (histogram-matched to HR when ``harmonize``), per pixel with the 'nd' distance
    ``d(x, y) = mean_b |x - y| / |x + y|``::

        d_ref = d(lr_up, HR),  d_im = d(SRh, HR) / d_ref,  d_om = d(SRh, lr_up) / d_ref
        H = d_im + d_om - 1
        improvement   = d_im + d_om (1 - exp(-lambda_im H))
        omission      = d_om + d_im (1 - exp(-lambda_om H))
        hallucination = exp(-lambda_ha d_im d_om)

    Only pixels where d_ref, d(SRh, HR) or d(SRh, lr_up) exceed the ``threshold_quantile`` of d_ref
    count. The three scores are turned into class weights by a softmin with ``temperature``; each
    pixel's class is the largest weight. ``norm: percent`` returns the share of counted pixels in
    each class (fractions summing to 1), ``softmin`` the mean weight. d_ref is floored at 1e-12 so
    that pixels where LR already matches HR do not divide by zero. All inputs are (H, W, C), already
    border-cropped and clipped. ``cache`` (one dict per HR / LR pair) keeps the HR-side work.
    """
    sr, hr, lr_up = as_hwc(sr), as_hwc(hr), as_hwc(lr_up)
    if settings.harmonize:
        sr = match_histograms(sr, hr, cache)

    def reference() -> tuple[np.ndarray, float]:
        d = _nd(lr_up, hr)
        k = max(1, int(settings.threshold_quantile * d.size))
        return d, float(np.partition(d.ravel(), k - 1)[k - 1])

    d_ref, threshold = cached(cache, ("d_ref", settings.threshold_quantile), reference)
    d_im = _nd(sr, hr)
    d_om = _nd(sr, lr_up)
    mask = (d_ref > threshold) | (d_im > threshold) | (d_om > threshold)
    if not mask.any():
        return dict.fromkeys(CORRECTNESS, math.nan)
    ref = np.maximum(d_ref[mask], 1e-12)
    im_r, om_r = d_im[mask] / ref, d_om[mask] / ref
    h = im_r + om_r - 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        scores = np.stack([im_r + om_r * (1.0 - np.exp(-h * settings.im_lambda)),
                           om_r + im_r * (1.0 - np.exp(-h * settings.om_lambda)),
                           np.exp(-im_r * om_r * settings.ha_lambda)])
        # softmin, shifted by the per-pixel minimum for numerical safety (same result)
        z = -(scores - np.nanmin(scores, axis=0)) / settings.temperature
        weights = np.exp(z)
        weights /= weights.sum(axis=0)
    if settings.norm == "softmin":
        values = np.nanmean(weights, axis=1)
    else:
        cls = np.argmax(np.nan_to_num(weights, nan=-1.0), axis=0)
        values = np.bincount(cls, minlength=3) / cls.size
    return {name: float(v) for name, v in zip(CORRECTNESS, values, strict=True)}
