"""Registration- and bias-tolerant cPSNR / cSSIM: the best integer shift of a prediction against HR
after per-band bias removal (package doc). satsr.data.registration's sub-pixel phase correlation serves
the filter stage and ``lr_shift_px``; this searches integer shifts for the lowest bias-free MSE, the
quantity cPSNR reports."""

from __future__ import annotations

import numpy as np

from satsr.config import SCALE
from satsr.evaluate.metrics.base import EvaluationError, RefCache, as_hwc, crop
from satsr.evaluate.metrics.fidelity import psnr, ssim


def _shift_order(max_shift: int) -> list[tuple[int, int]]:
    """Every integer (dy, dx) within +-max_shift, the smallest shifts first (ties go to them)."""
    r = range(-max_shift, max_shift + 1)
    return sorted(((dy, dx) for dy in r for dx in r), key=lambda s: (s[0] ** 2 + s[1] ** 2, s))


def register_shift(gt: np.ndarray, p: np.ndarray, border: int = SCALE,
                   max_shift: int = SCALE) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The integer shift of ``p`` that best matches ``gt`` after per-band bias removal (package doc).

    ``gt`` is cropped by ``border + max_shift`` on every side; for each (dy, dx) within
    +-``max_shift`` the same-size window of ``p`` starting ``(dy, dx)`` px further down / right is
    compared, with the per-band bias ``b = mean(gt - p_window)`` added to the window. Returns
    ``(dy, dx, gt_window, p_window + b, b)`` at the smallest bias-free MSE (ties: smallest shift).

    All shifts are scored at once from the variance identity
    ``MSE_b = mean(g^2) - 2 mean(g q) + mean(q^2) - (mean(g) - mean(q))^2`` with running sums for
    the window means of ``q`` and one dot product per shift, then the winner is recomputed
    directly (so identical images give exactly 0, i.e. cPSNR ``inf``)."""
    gt, p = as_hwc(gt), as_hwc(p)
    if gt.shape != p.shape:
        raise EvaluationError(f"shapes differ: reference {gt.shape}, prediction {p.shape}")
    m = border + max_shift
    g = crop(gt, m)
    h, w, c = g.shape
    n = float(h * w)
    k = 2 * max_shift + 1
    # Band-first contiguous copies: the per-shift products are 2-3x faster than on (h, w, c) views.
    gb = np.ascontiguousarray(g.transpose(2, 0, 1))
    region = np.ascontiguousarray(p[border:p.shape[0] - border, border:p.shape[1] - border].transpose(2, 0, 1))

    def window_sums(x: np.ndarray) -> np.ndarray:
        """Sum of x over the window of every shift, (c, k, k), from 2-D cumulative sums."""
        s = np.zeros((c, x.shape[1] + 1, x.shape[2] + 1))
        s[:, 1:, 1:] = x.cumsum(1).cumsum(2)
        return s[:, h:h + k, w:w + k] - s[:, :k, w:w + k] - s[:, h:h + k, :k] + s[:, :k, :k]

    q_sum, q2_sum = window_sums(region), window_sums(region * region)
    g_sum = gb.sum(axis=(1, 2))[:, None, None]
    g2_sum = (gb * gb).sum(axis=(1, 2))[:, None, None]
    gq = np.empty((c, k, k))
    for i in range(k):
        for j in range(k):
            gq[:, i, j] = (gb * region[:, i:i + h, j:j + w]).sum(axis=(1, 2))
    mse = np.mean((g2_sum - 2 * gq + q2_sum) / n - ((g_sum - q_sum) / n) ** 2, axis=0)  # (k, k)
    tol = 1e-9 * max(float(g2_sum.mean()) / n, 1e-12)
    lowest = float(mse.min())
    dy, dx = next(s for s in _shift_order(max_shift) if mse[s[0] + max_shift, s[1] + max_shift] <= lowest + tol)
    q = p[m + dy:m + dy + h, m + dx:m + dx + w]
    bias = (g - q).mean(axis=(0, 1))
    return dy, dx, g, q + bias, bias


def cpsnr(gt: np.ndarray, p: np.ndarray, border: int = SCALE, max_shift: int = SCALE, max_val: float = 1.0) -> float:
    """Clear/corrected PSNR (PROBA-V ``cPSNR``): the best PSNR over integer shifts of ``p`` within
    +-``max_shift`` px after per-band bias removal (``register_shift``), ``MAX = max_val``."""
    _, _, g, q, _ = register_shift(gt, p, border, max_shift)
    return psnr(g, q, max_val)


def registered_metrics(gt: np.ndarray, p: np.ndarray, border: int = SCALE, max_shift: int = SCALE,
                       max_val: float = 1.0, cache: RefCache | None = None) -> dict[str, float]:
    """``cpsnr`` and ``cssim`` (SSIM of the same bias-corrected window at the cPSNR-optimal shift,
    sewar's SSIM conventions), with the shift ``cshift_dy`` / ``cshift_dx`` (HR px) and the mean
    per-band bias ``cbias`` (reflectance, HR - prediction) that were removed. ``cache`` (one dict
    per reference image and setting) keeps the reference's SSIM statistics."""
    dy, dx, g, q, bias = register_shift(gt, p, border, max_shift)
    return {"cpsnr": psnr(g, q, max_val), "cssim": ssim(g, q, max_val, cache=cache),
            "cshift_dy": float(dy), "cshift_dx": float(dx), "cbias": float(np.mean(bias))}
