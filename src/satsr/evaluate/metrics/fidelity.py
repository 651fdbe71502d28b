"""Full-reference metrics: sewar 0.4.10's PSNR, SSIM, MS-SSIM, SCC, ERGAS, SAM, UQI and RASE,
vectorised over the bands with separable / running-sum filters (package doc: why, and sewar's quirks kept)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from scipy import ndimage as ndi

from satsr.config import SCALE
from satsr.evaluate.metrics.base import RefCache, as_hwc, cached

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _valid(x: np.ndarray, ws: int) -> np.ndarray:
    """The 'valid' part of a centred filter of odd width ``ws`` over the first two axes."""
    h = ws // 2
    return x[h:x.shape[0] - h, h:x.shape[1] - h]


def _box(x: np.ndarray, ws: int, mode: str = "reflect") -> np.ndarray:
    """Centred ws x ws mean over the first two axes (bands independent), running sums."""
    out = ndi.uniform_filter1d(x, ws, axis=0, mode=mode)
    return ndi.uniform_filter1d(out, ws, axis=1, mode=mode)


def _gauss_kernel(ws: int, sigma: float) -> np.ndarray:
    """The 1-D factor of sewar's ``fspecial(GAUSSIAN, ws, sigma)`` (which is its outer product)."""
    x = np.arange(-ws // 2 + 1, ws // 2 + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _gauss(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    out = ndi.correlate1d(x, g, axis=0, mode="reflect")
    return ndi.correlate1d(out, g, axis=1, mode="reflect")


def psnr(gt: np.ndarray, p: np.ndarray, max_val: float = 1.0) -> float:
    """sewar ``psnr``: 10 log10(MAX^2 / MSE) over all pixels and bands; ``inf`` when identical."""
    mse = float(np.mean((np.asarray(gt, np.float64) - np.asarray(p, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(max_val**2 / mse)


def _ssim_terms(gt: np.ndarray, p: np.ndarray, c1: float, c2: float, blur: Callable, ws: int,
                gt_stats: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term over the 'valid' windows, per band then averaged.
    ``gt_stats``: (blurred gt, blurred gt^2), 'valid' parts, when already known."""
    mu1, e11 = gt_stats if gt_stats is not None else (_valid(blur(gt), ws), _valid(blur(gt * gt), ws))
    mu2 = _valid(blur(p), ws)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = e11 - mu1_sq
    s2 = _valid(blur(p * p), ws) - mu2_sq
    s12 = _valid(blur(gt * p), ws) - mu12
    cs_map = (2 * s12 + c2) / (s1 + s2 + c2)
    ssim_map = ((2 * mu12 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return float(np.mean(ssim_map.mean(axis=(0, 1)))), float(np.mean(cs_map.mean(axis=(0, 1))))


def ssim(gt: np.ndarray, p: np.ndarray, max_val: float = 1.0, ws: int = 11, k1: float = 0.01,
         k2: float = 0.03, cache: RefCache | None = None) -> float:
    """sewar ``ssim(GT, P, ws=11, MAX=max_val)[0]``: uniform ws x ws window, 'valid' windows only,
    mean over windows per band, then over bands. NaN when the image is smaller than the window.
    ``cache`` (a dict per reference image) keeps gt's statistics for the next call with the same gt."""
    gt, p = as_hwc(gt), as_hwc(p)
    if min(gt.shape[:2]) < ws:
        return math.nan
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return _box(x, ws)

    stats = cached(cache, ("ssim", ws), lambda: (_valid(blur(gt), ws), _valid(blur(gt * gt), ws)))
    return _ssim_terms(gt, p, c1, c2, blur, ws, stats)[0]


def msssim(gt: np.ndarray, p: np.ndarray, max_val: float = 1.0, ws: int = 11, k1: float = 0.01, k2: float = 0.03,
           weights: Iterable[float] = MSSSIM_WEIGHTS, cache: RefCache | None = None) -> float:
    """sewar ``msssim``: Gaussian 11 px (sigma 1.5) SSIM at 5 scales, weights of Wang et al. 2003;
    between scales sewar's ``uniform_filter(img, 2)`` (over all axes, bands included) then ``[::2, ::2]``.
    Scales are capped, as in sewar, so the smallest image still holds the window. NaN below ``ws`` px.
    ``cache`` as for ``ssim``."""
    gt, p = as_hwc(gt), as_hwc(p)
    w = np.asarray(list(weights), dtype=np.float64)
    min_dim = min(gt.shape[:2])
    if min_dim < ws:
        return math.nan
    scales = min(len(w), int(np.floor(np.log2(min_dim / ws))) + 1)
    w = w[:scales]
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    g = _gauss_kernel(ws, 1.5)

    def blur(x: np.ndarray) -> np.ndarray:
        return _gauss(x, g)

    def down(x: np.ndarray) -> np.ndarray:
        return ndi.uniform_filter(x, 2)[::2, ::2, :]

    mssim, mcs = [], []
    g_k = gt
    for k in range(scales):
        if k:
            g_k = cached(cache, ("msssim_gt", ws, k), lambda prev=g_k: down(prev))
        stats = cached(cache, ("msssim_stats", ws, k),
                        lambda g_k=g_k: (_valid(blur(g_k), ws), _valid(blur(g_k * g_k), ws)))
        s_, c_ = _ssim_terms(g_k, p, c1, c2, blur, ws, stats)
        mssim.append(s_)
        mcs.append(c_)
        p = down(p)
    mssim_a, mcs_a = np.array(mssim), np.array(mcs)
    value = np.prod(mcs_a[: scales - 1].astype(complex) ** w[: scales - 1]) * (
        mssim_a[scales - 1].astype(complex) ** w[scales - 1])
    return float(value.real)


def scc(gt: np.ndarray, p: np.ndarray, ws: int = 8) -> float:
    """sewar ``scc``: correlation of the Laplacian high-pass images in ws x ws windows (zero-padded
    'same' windows, as sewar's ``convolve2d``), averaged over pixels and bands. sewar's high-pass is
    ``generic_laplace`` with the 3 x 3 kernel 8/-1 on both axes, i.e. ``18 (x - box3(x))``."""
    gt, p = as_hwc(gt), as_hwc(p)
    hp1 = 18.0 * (gt - _box(gt, 3))
    hp2 = 18.0 * (p - _box(p, 3))

    def win(x: np.ndarray) -> np.ndarray:
        return _box(x, ws, mode="constant")

    mu1, mu2 = win(hp1), win(hp2)
    s1 = np.maximum(win(hp1 * hp1) - mu1 * mu1, 0.0)
    s2 = np.maximum(win(hp2 * hp2) - mu2 * mu2, 0.0)
    s12 = win(hp1 * hp2) - mu1 * mu2
    den = np.sqrt(s1) * np.sqrt(s2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den == 0, 0.0, s12 / np.where(den == 0, 1.0, den))
    return float(np.mean(out))


def ergas(gt: np.ndarray, p: np.ndarray, ratio: float = 1.0 / SCALE) -> float:
    """sewar ``ergas(GT, P, r=ratio)``: 100 r sqrt(mean_b(RMSE_b^2 / mean_b(GT)^2)); r = 10 m / 30 m."""
    gt, p = as_hwc(gt), as_hwc(p)
    means = np.mean(gt, axis=(0, 1))
    rmse = np.sqrt(np.mean((gt - p) ** 2, axis=(0, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100 * ratio * np.sqrt(np.sum(rmse**2 / means**2) / gt.shape[2]))


def sam(gt: np.ndarray, p: np.ndarray) -> float:
    """sewar ``sam``: mean per-pixel spectral angle in radians (zero-norm pixels excluded; NaN if none)."""
    gt, p = as_hwc(gt), as_hwc(p)
    a = gt.reshape(-1, gt.shape[2])
    b = p.reshape(-1, p.shape[2])
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    valid = norms > 0
    if not valid.any():
        return math.nan
    cos = np.clip(np.sum(a * b, axis=1)[valid] / norms[valid], -1, 1)
    return float(np.mean(np.arccos(cos)))


def uqi(gt: np.ndarray, p: np.ndarray, ws: int = 8) -> float:
    """sewar ``uqi`` (Wang & Bovik's universal quality index in ws x ws windows), sewar's formula as
    written (window means where the paper has sums), mean over the inner windows and the bands."""
    gt, p = as_hwc(gt), as_hwc(p)
    n = ws**2
    m1, m2 = _box(gt, ws), _box(p, ws)
    e11, e22, e12 = _box(gt * gt, ws), _box(p * p, ws), _box(gt * p, ws)
    m12 = m1 * m2
    msq = m1 * m1 + m2 * m2
    numerator = 4 * (n * e12 - m12) * m12
    denominator1 = n * (e11 + e22) - msq
    denominator = denominator1 * msq
    q = np.ones(denominator.shape)
    np.divide(2 * m12, msq, out=q, where=(denominator1 == 0) & (msq != 0))
    np.divide(numerator, denominator, out=q, where=denominator != 0)
    s = int(np.round(ws / 2))
    return float(np.mean(q[s:-s, s:-s].mean(axis=(0, 1))))


def rase(gt: np.ndarray, p: np.ndarray, ws: int = 8) -> float:
    """sewar ``rase`` (relative average spectral error, %, ws x ws windows)."""
    gt, p = as_hwc(gt), as_hwc(p)
    rmse_map = np.sqrt(_box((gt - p) ** 2, ws))
    m = np.sum(_box(gt, ws), axis=2) / gt.shape[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        rase_map = np.where(m != 0, (100.0 / m) * np.sqrt(np.sum(rmse_map**2, axis=2) / gt.shape[2]), 0.0)
    s = int(np.round(ws / 2))
    return float(np.mean(rase_map[s:-s, s:-s]))
