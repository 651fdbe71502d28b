"""Co-registration helpers shared by the filter stage and evaluation.

The filter uses them to find Landsat/Sentinel-2 pairs that do not lie on top of each other (and
to fix small offsets); evaluation reuses them to check that SR output, brought back to 30 m, has
no sub-pixel shift against its LR input. Everything works on (bands, h, w) or (h, w) float
arrays in reflectance, with NaN marking fill.

Sign convention (the one of ``scipy.ndimage.shift`` and skimage): a shift ``(dy, dx)`` moves the
image *content* by ``dy`` rows down and ``dx`` columns right, ``out[y, x] = img[y - dy, x - dx]``.
``phase_shift(reference, moving)`` returns the shift that registers ``moving`` onto
``reference``, so ``apply_shift(moving, dy, dx)`` ~= ``reference``. If ``moving`` is
``reference`` with its content moved 1.5 px to the right, ``phase_shift`` returns ``dx = -1.5``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi
from skimage.registration import phase_cross_correlation

__all__ = ["apply_shift", "area_downsample", "pearson_r", "phase_shift", "to_grey"]


def to_grey(img: np.ndarray) -> np.ndarray:
    """Band-mean grey image of (bands, h, w); (h, w) passes through. NaN-aware, float64 out."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 2:
        return img
    if img.ndim != 3:
        raise ValueError(f"expected (h, w) or (bands, h, w), got shape {img.shape}")
    if not np.isnan(img).any():
        return img.mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        return np.nanmean(img, axis=0)


def area_downsample(img: np.ndarray, factor: int, nan_aware: bool = False, trim: bool = False) -> np.ndarray:
    """Block-mean downsampling by an integer ``factor`` over the last two axes.

    This is what a coarser sensor with a box footprint sees, and exactly how the nested 10 m -> 30 m
    grids relate, so it is the fair way to compare HR (or SR) with LR. With ``nan_aware`` a block
    averages its finite pixels only (NaN where none); otherwise NaN propagates. Sizes must be
    multiples of ``factor`` unless ``trim`` drops the trailing remainder.
    """
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    arr = np.asarray(img)
    if arr.ndim < 2:
        raise ValueError(f"expected at least 2 dimensions, got shape {arr.shape}")
    h, w = arr.shape[-2:]
    if h % factor or w % factor:
        if not trim:
            raise ValueError(
                f"size {h}x{w} is not a multiple of {factor} (pass trim=True to drop the remainder)"
            )
        arr = arr[..., : h - h % factor, : w - w % factor]
        h, w = arr.shape[-2:]
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    if not nan_aware or dtype != arr.dtype or not np.isnan(arr).any():
        return (_block_sum(arr, factor, dtype) / (factor * factor)).astype(dtype, copy=False)
    finite = np.isfinite(arr)
    total = _block_sum(np.where(finite, arr, 0), factor, dtype)
    count = _block_sum(finite, factor, np.dtype(np.int32))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return out.astype(dtype, copy=False)


def _block_sum(arr: np.ndarray, f: int, dtype: np.dtype) -> np.ndarray:
    """Sum of f x f blocks via 2f strided adds (a reshape + mean over two axes is ~15x slower)."""
    rows = arr[..., 0::f, :].astype(dtype, copy=True)
    for i in range(1, f):
        rows += arr[..., i::f, :]
    out = np.ascontiguousarray(rows[..., 0::f])
    for j in range(1, f):
        out += rows[..., j::f]
    return out


def _fill_nan(a: np.ndarray) -> np.ndarray:
    """Replace NaN/inf by the mean of the finite pixels (0 where there are none)."""
    finite = np.isfinite(a)
    if finite.all():
        return a
    fill = a[finite].mean() if finite.any() else 0.0
    return np.where(finite, a, fill)


def phase_shift(
    reference: np.ndarray, moving: np.ndarray, upsample_factor: int = 20, refine: int = 1
) -> tuple[float, float, float]:
    """Sub-pixel shift ``(dy, dx, error)`` that registers ``moving`` onto ``reference``.

    Multi-band inputs are reduced to grey first; NaN is filled with the image mean. Both images are
    mean-removed and tapered with a Hann window before an (unnormalised) cross-correlation via
    ``skimage.registration.phase_cross_correlation``: the taper keeps the chip edges (which are not
    periodic) from pulling the peak towards zero, and plain cross-correlation is less sensitive
    than phase normalisation to the different blur of two sensors. The taper itself biases the
    estimate towards zero by a few per cent of the shift on smooth scenes, so ``refine`` times the
    moving image is shifted by the running estimate (band-limited) and the residual is added.
    Precision is ``1 / upsample_factor`` px. ``error`` is skimage's translation-invariant
    normalised RMS error of the last pass (0 for a perfect match). Featureless input returns NaN.
    """
    ref = to_grey(reference)
    mov = to_grey(moving)
    if ref.shape != mov.shape:
        raise ValueError(f"reference {ref.shape} and moving {mov.shape} must have the same shape")
    ref = _fill_nan(ref)
    mov = _fill_nan(mov)
    if ref.min() == ref.max() or mov.min() == mov.max():
        return math.nan, math.nan, math.nan
    ref = ref - ref.mean()
    h, w = ref.shape
    taper = np.outer(np.hanning(h + 2)[1:-1], np.hanning(w + 2)[1:-1])
    # The taper makes zero padding harmless, so pad to a fast FFT size (265 = 5 x 53 is slow).
    shape = (sfft.next_fast_len(h), sfft.next_fast_len(w))
    fa = sfft.fft2(ref * taper, shape, workers=1)

    def estimate(m: np.ndarray) -> tuple[float, float, float]:
        fb = sfft.fft2((m - m.mean()) * taper, shape, workers=1)
        shift, error, _ = phase_cross_correlation(
            fa, fb, upsample_factor=upsample_factor, space="fourier", normalization=None
        )
        return float(shift[0]), float(shift[1]), float(error)

    dy, dx, error = estimate(mov)
    for _ in range(refine):
        if math.hypot(dy, dx) < 1.0 / upsample_factor:
            break
        ry, rx, error = estimate(_fourier_shift(mov, dy, dx))
        dy, dx = dy + ry, dx + rx
    return dy, dx, error


def _fourier_shift(a: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Exact band-limited shift of a 2-D array; edges reflect-padded to limit wrap-around."""
    pad = math.ceil(max(abs(dy), abs(dx))) + 8
    p = np.pad(a, pad, mode="reflect") if min(a.shape) > pad else np.pad(a, pad, mode="edge")
    ky = sfft.fftfreq(p.shape[0])[:, None]
    kx = sfft.rfftfreq(p.shape[1])[None, :]
    spec = sfft.rfft2(p) * np.exp(-2j * np.pi * (ky * dy + kx * dx))
    out = sfft.irfft2(spec, s=p.shape)
    return out[pad:-pad, pad:-pad]


def apply_shift(img: np.ndarray, dy: float, dx: float, method: str = "spline", order: int = 3) -> np.ndarray:
    """Move the content of (bands, h, w) or (h, w) ``img`` by ``(dy, dx)`` pixels (sub-pixel).

    ``spline`` (default): cubic-spline resampling; pixels that enter from outside repeat the
    nearest edge pixel, so no fill appears at the borders. ``fourier``: exact band-limited shift on
    a reflect-padded copy. NaN pixels are filled for resampling and come back as NaN wherever the
    shifted fill mask touches. Returns float (the input's float dtype, else float64).
    """
    if method not in ("spline", "fourier"):
        raise ValueError(f"method must be 'spline' or 'fourier', got {method!r}")
    arr = np.asarray(img)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    planes = arr.reshape(-1, *arr.shape[-2:]).astype(np.float64)
    out = np.empty_like(planes)
    for i, plane in enumerate(planes):
        bad = ~np.isfinite(plane)
        filled = _fill_nan(plane)
        if method == "spline":
            out[i] = ndi.shift(filled, (dy, dx), order=order, mode="nearest")
        else:
            out[i] = _fourier_shift(filled, dy, dx)
        if bad.any():
            moved = ndi.shift(bad.astype(np.float64), (dy, dx), order=1, mode="nearest")
            out[i][moved > 1e-3] = np.nan
    return out.reshape(arr.shape).astype(dtype, copy=False)


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two same-shaped arrays over pixels finite in both.

    Used to tell change on the ground (or a wrong partner scene) from a good pair: it ignores
    offset and gain differences between the sensors. NaN when fewer than 2 pixels or no variance.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.all():
        a, b = a[ok], b[ok]
    if a.size < 2 or a.min() == a.max() or b.min() == b.max():
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    # Element-wise sums rather than BLAS dot products: no thread start-up cost on small chips.
    denom = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return float(np.sum(a * b)) / denom if denom > 0 else math.nan
