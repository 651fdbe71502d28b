"""Per-image metrics of super-resolved images: full-reference quality, sharpness, consistency with
the LR input, and the opensr-test correctness scores (improvement / omission / hallucination).

Conventions (written into every output by ``conventions()``):

* **Data**: reflectance clipped to [0, 1] (SR, baselines and HR alike), float64; PSNR / SSIM
  ``MAX`` = 1. The 8-bit variants (``psnr8``, ``ssim8``) compare the PNG stage's fixed quicklook
  stretch of the same pixels (``png.quicklook_max_reflectance``, ``png.quicklook_gamma``) with
  ``MAX`` = 255, for comparison with the seed project, which scored 8-bit stretched images.
* **Border**: ``border`` px (default 3, the scale) cropped from every side of the HR-sized images
  before every metric; the LR-side metrics crop ``ceil(border / scale)`` LR px.
* **Registration- and bias-tolerant** ``cpsnr`` / ``cssim`` (the PROBA-V challenge's cPSNR, Martens
  et al. 2019; WorldStrat's shift-tolerant scores): real Landsat / Sentinel-2 pairs differ by
  sub-pixel misregistration and a per-scene radiometric offset, which plain PSNR charges to the
  model. HR is cropped by ``border + N`` px (``N`` = ``evaluate.cpsnr_max_shift``, default 3 HR px
  = one LR px, PROBA-V's +-3 px at x3); for every integer shift (dy, dx) within +-N the same-size
  window of the prediction starting (dy, dx) px further down / right is compared (prediction pixel
  (y + dy, x + dx) against HR pixel (y, x)), after adding the per-band bias
  ``b = mean(HR - prediction)`` over the compared pixels. ``cpsnr`` = the highest PSNR over the
  shifts (MAX = 1 reflectance, the plain PSNR convention); ``cssim`` = SSIM (sewar's, as above) of
  the same bias-corrected window AT THE cPSNR-OPTIMAL SHIFT (one registration per image, not a
  second search). Ties go to the smallest shift. The chosen shift (``cshift_dy`` / ``cshift_dx``,
  HR px) and the mean removed bias (``cbias``) are per-image columns. Every method (SR, bicubic,
  Lanczos) is registered on its own, so the gain over bicubic compares each at its best shift.
* **Channels**: RGB (R, G, B); multi-band metrics average over the bands as sewar does; sharpness
  uses the band-mean grey image.
* **Full-reference metrics** are sewar 0.4.10's (``sewar.full_ref``) definitions, re-implemented
  here vectorised over the bands with separable / running-sum filters (sewar filters each band with
  direct 2-D ``scipy.signal.convolve2d``: 3-5 s per 795 px image for SSIM or MS-SSIM) and equal to
  sewar's own functions to ~1e-10 (tested against sewar; sewar is not imported at run time).
  sewar's own quirks are kept so the numbers are sewar's: SSIM uses an 11 px *uniform* window;
  MS-SSIM downsamples with ``uniform_filter(img, 2)`` over all three axes (bands included) and
  raises negative contrast terms to fractional powers in complex arithmetic (real part kept);
  SCC's Laplacian is applied twice (``generic_laplace``), which cancels in the correlation; ERGAS
  uses ``r = 1 / scale`` (10 m / 30 m) instead of sewar's default 1/4; SAM is in radians.
  PSNR of identical images is ``inf`` (never an error); see satsr.evaluate.stats for averaging.
* **Sharpness** (the seed's index): mean gradient magnitude of the grey image,
  ``mean(sqrt(gx^2 + gy^2))`` with ``gy, gx = np.gradient(grey)``, in reflectance per 10 m px.
  CPBD (the seed's second blur metric) is not computed: the ``cpbd`` package on PyPI was last
  released in 2018 and its only recent fork (``cpbd-py312``) carries a proprietary licence.
* **Consistency with the input** (after opensr-test): the SR image area-downsampled to 30 m
  (3 x 3 block means, exactly how the nested grids relate) against the LR image: mean absolute
  reflectance difference (``lr_l1``), mean per-pixel spectral angle in degrees (``lr_sam_deg``),
  and the sub-pixel shift by phase correlation (``lr_shift_px``, LR px; satsr.data.registration).
* **Correctness** (improvement / omission / hallucination, :func:`correctness`) follows opensr-test
  1.3.3's formulas, but NOT all of its defaults; what is used, and why:

  - the same: the per-pixel 'nd' distance, the lambdas (0.05) and softmin temperature (0.25), SR
    histogram-matched to HR first (its ``harm_apply_spectral``), LR bilinearly upsampled to HR as
    the reference, and the pixel mask "auto" = 75th percentile of d_ref (what its
    ``Metrics.compute`` passes; ``Metrics.correctness`` called alone uses a fixed 0.1);
  - ``norm: percent`` (opensr-test's default is ``softmin``): the share of counted pixels in each
    class, fractions summing to 1, because select caps a share ("how many pixels are
    hallucinated") and a share reads plainly; ``evaluate.correctness.norm: softmin`` gives its mean
    soft class weight instead;
  - NO spatial alignment (opensr-test aligns SR to HR, ``harm_apply_spatial`` with phase
    correlation up to 5 px): the pairs are co-registered by the filter stage
    (``filter.max_shift_lr_px``), and a shift the model itself introduces is an error the score
    should see rather than remove (it is also reported on its own: ``lr_shift_px``, cPSNR);
  - border ``evaluate.border`` = 3 HR px (the scale; opensr-test masks 16, ``border_mask``): one
    border for every metric, so the correctness shares and PSNR describe the same pixels.

  With those three set alike (``correctness_norm``, ``harm_apply_spatial=False``,
  ``border_mask=3``), opensr-test 1.3.3 gives the same shares to 1e-3 (checked for issue 10).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from satsr.config import SCALE, CorrectnessParams
from satsr.data.registration import area_downsample, phase_shift
from satsr.errors import SatsrError

#: Methods compared on the same pixels, in table order (``sr`` = the model).
BASELINES: tuple[str, ...] = ("bicubic", "lanczos")
METHODS: tuple[str, ...] = ("sr", *BASELINES)
#: Full-reference metrics from sewar, on reflectance in [0, 1].
FULL_REF: tuple[str, ...] = ("psnr", "ssim", "msssim", "ergas", "sam", "uqi", "scc", "rase")
QUICKLOOK: tuple[str, ...] = ("psnr8", "ssim8")
#: Shift- and bias-tolerant PSNR / SSIM (module doc); extra per-image columns: REGISTERED_EXTRA.
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
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


class EvaluationError(SatsrError, ValueError):
    """Evaluation cannot run on these inputs; the message names the file or pair."""


# ----------------------------------------------------------------------------------- helpers
def crop(img: np.ndarray, border: int) -> np.ndarray:
    """Drop ``border`` px on every side of an (h, w[, c]) image."""
    if border <= 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise EvaluationError(f"image of {img.shape[1]}x{img.shape[0]} px is too small for a {border} px border crop")
    return img[border:-border, border:-border]


def _hwc(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float64)
    return img[:, :, None] if img.ndim == 2 else img


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


# --------------------------------------------------------------------------- full reference
def psnr(gt: np.ndarray, p: np.ndarray, max_val: float = 1.0) -> float:
    """sewar ``psnr``: 10 log10(MAX^2 / MSE) over all pixels and bands; ``inf`` when identical."""
    mse = float(np.mean((np.asarray(gt, np.float64) - np.asarray(p, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(max_val**2 / mse)


#: Reference-side results shared by the methods scored against the same HR image (image_metrics):
#: the blurred HR statistics of SSIM / MS-SSIM, HR's downsampled scales, HR's histogram tables and
#: the LR-to-HR distance of the correctness scores. Keys name the computation; pass one dict per HR.
RefCache = dict


def _cached(cache: RefCache | None, key: tuple, fn: Callable[[], Any]) -> Any:
    if cache is None:
        return fn()
    if key not in cache:
        cache[key] = fn()
    return cache[key]


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
    gt, p = _hwc(gt), _hwc(p)
    if min(gt.shape[:2]) < ws:
        return math.nan
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return _box(x, ws)

    stats = _cached(cache, ("ssim", ws), lambda: (_valid(blur(gt), ws), _valid(blur(gt * gt), ws)))
    return _ssim_terms(gt, p, c1, c2, blur, ws, stats)[0]


def msssim(gt: np.ndarray, p: np.ndarray, max_val: float = 1.0, ws: int = 11, k1: float = 0.01, k2: float = 0.03,
           weights: Iterable[float] = MSSSIM_WEIGHTS, cache: RefCache | None = None) -> float:
    """sewar ``msssim``: Gaussian 11 px (sigma 1.5) SSIM at 5 scales, weights of Wang et al. 2003;
    between scales sewar's ``uniform_filter(img, 2)`` (over all axes, bands included) then ``[::2, ::2]``.
    Scales are capped, as in sewar, so the smallest image still holds the window. NaN below ``ws`` px.
    ``cache`` as for ``ssim``."""
    gt, p = _hwc(gt), _hwc(p)
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
            g_k = _cached(cache, ("msssim_gt", ws, k), lambda prev=g_k: down(prev))
        stats = _cached(cache, ("msssim_stats", ws, k),
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
    gt, p = _hwc(gt), _hwc(p)
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
    gt, p = _hwc(gt), _hwc(p)
    means = np.mean(gt, axis=(0, 1))
    rmse = np.sqrt(np.mean((gt - p) ** 2, axis=(0, 1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100 * ratio * np.sqrt(np.sum(rmse**2 / means**2) / gt.shape[2]))


def sam(gt: np.ndarray, p: np.ndarray) -> float:
    """sewar ``sam``: mean per-pixel spectral angle in radians (zero-norm pixels excluded; NaN if none)."""
    gt, p = _hwc(gt), _hwc(p)
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
    gt, p = _hwc(gt), _hwc(p)
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
    gt, p = _hwc(gt), _hwc(p)
    rmse_map = np.sqrt(_box((gt - p) ** 2, ws))
    m = np.sum(_box(gt, ws), axis=2) / gt.shape[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        rase_map = np.where(m != 0, (100.0 / m) * np.sqrt(np.sum(rmse_map**2, axis=2) / gt.shape[2]), 0.0)
    s = int(np.round(ws / 2))
    return float(np.mean(rase_map[s:-s, s:-s]))


# ------------------------------------------------------------ registration- and bias-tolerant
def _shift_order(max_shift: int) -> list[tuple[int, int]]:
    """Every integer (dy, dx) within +-max_shift, the smallest shifts first (ties go to them)."""
    r = range(-max_shift, max_shift + 1)
    return sorted(((dy, dx) for dy in r for dx in r), key=lambda s: (s[0] ** 2 + s[1] ** 2, s))


def register_shift(gt: np.ndarray, p: np.ndarray, border: int = SCALE,
                   max_shift: int = SCALE) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The integer shift of ``p`` that best matches ``gt`` after per-band bias removal (module doc).

    ``gt`` is cropped by ``border + max_shift`` on every side; for each (dy, dx) within
    +-``max_shift`` the same-size window of ``p`` starting ``(dy, dx)`` px further down / right is
    compared, with the per-band bias ``b = mean(gt - p_window)`` added to the window. Returns
    ``(dy, dx, gt_window, p_window + b, b)`` at the smallest bias-free MSE (ties: smallest shift).

    All shifts are scored at once from the variance identity
    ``MSE_b = mean(g^2) - 2 mean(g q) + mean(q^2) - (mean(g) - mean(q))^2`` with running sums for
    the window means of ``q`` and one dot product per shift, then the winner is recomputed
    directly (so identical images give exactly 0, i.e. cPSNR ``inf``)."""
    gt, p = _hwc(gt), _hwc(p)
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
    a = _hwc(a)
    a = a.reshape(-1, a.shape[-1])
    b = _hwc(b).reshape(a.shape)
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
    sr, lr = _hwc(sr), _hwc(lr)
    if sr.shape[0] != lr.shape[0] * scale or sr.shape[1] != lr.shape[1] * scale:
        raise EvaluationError(f"SR {sr.shape[1]}x{sr.shape[0]} is not {scale}x LR {lr.shape[1]}x{lr.shape[0]}")
    down = area_downsample(sr.transpose(2, 0, 1), scale).transpose(1, 2, 0)
    b = math.ceil(border / scale)
    down, lr = crop(down, b), crop(lr, b)
    dy, dx, _ = phase_shift(lr.transpose(2, 0, 1), down.transpose(2, 0, 1), upsample_factor=upsample_factor)
    return {"lr_l1": float(np.mean(np.abs(down - lr))), "lr_sam_deg": spectral_angle_deg(down, lr),
            "lr_shift_px": float(math.hypot(dy, dx)), "lr_shift_dy": float(dy), "lr_shift_dx": float(dx)}


# -------------------------------------------------------------------------------- correctness
def upsample(img: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Upsample an (h, w, c) float image ``scale`` x with Pillow on float32 bands (pixel-centre
    aligned): ``bicubic`` (Keys a = -0.5), ``lanczos`` (Lanczos-3) or ``bilinear``."""
    filters = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
               "bilinear": Image.Resampling.BILINEAR}
    if method not in filters:
        raise ValueError(f"unknown upsampling method {method!r}; valid: {', '.join(filters)}")
    img = _hwc(img)
    h, w, c = img.shape
    out = np.empty((h * scale, w * scale, c), np.float64)
    for k in range(c):
        band = Image.fromarray(np.ascontiguousarray(img[:, :, k], dtype=np.float32), mode="F")
        out[:, :, k] = np.asarray(band.resize((w * scale, h * scale), filters[method]), dtype=np.float64)
    return out


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
        t_values, t_quantiles = _cached(cache, ("cdf", b), lambda b=b: _cdf_table(reference[..., b]))
        _, s_inverse, s_counts = np.unique(img[..., b].reshape(-1), return_inverse=True, return_counts=True)
        s_quantiles = np.cumsum(s_counts) / s_inverse.size
        out[..., b] = np.interp(s_quantiles, t_quantiles, t_values)[s_inverse].reshape(img.shape[:-1])
    return out


def correctness(sr: np.ndarray, hr: np.ndarray, lr_up: np.ndarray,
                settings: CorrectnessParams = CorrectnessParams(),
                cache: RefCache | None = None) -> dict[str, float]:
    """Improvement, omission and hallucination shares of an SR image after opensr-test
    (Aybar et al. 2024, ``opensr_test.main.Metrics.correctness``) with satsr's settings, which are
    not all opensr-test's defaults (module doc: percent, no spatial alignment, the evaluate border).

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
    sr, hr, lr_up = _hwc(sr), _hwc(hr), _hwc(lr_up)
    if settings.harmonize:
        sr = match_histograms(sr, hr, cache)

    def reference() -> tuple[np.ndarray, float]:
        d = _nd(lr_up, hr)
        k = max(1, int(settings.threshold_quantile * d.size))
        return d, float(np.partition(d.ravel(), k - 1)[k - 1])

    d_ref, threshold = _cached(cache, ("d_ref", settings.threshold_quantile), reference)
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


# ---------------------------------------------------------------------------------- one image
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
    [0, 1] here and border-cropped per the module conventions. ``metrics`` picks a subset (the
    select stage needs only PSNR and hallucination). Adds ``hr_sharpness`` when sharpness is asked,
    and ``{method}_cshift_dy|cshift_dx|cbias`` with cPSNR / cSSIM (``max_shift``: their +-N, HR px).
    """
    want = set(metrics)
    unknown = want - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; valid: {', '.join(ALL_METRICS)}")
    t = timer or _nothing
    lr = np.clip(_hwc(lr), 0.0, 1.0)
    hr_full = np.clip(_hwc(hr), 0.0, 1.0)
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
        pred_full = np.clip(_hwc(pred_full), 0.0, 1.0)
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
