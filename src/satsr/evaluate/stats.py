"""Summary statistics over images: mean / median, and the paired gain over a baseline with a
seeded percentile-bootstrap confidence interval.

Paired gain: for every image i, ``gain_i = metric(method, i) - metric(baseline, i)`` on the same
pixels; the summary is the mean and median gain, and a 95 % (``level``) percentile-bootstrap CI of
the MEAN gain from ``n_boot`` resamples of the images with replacement (``numpy.random.default_rng(seed)``,
so the interval is reproducible). A gain is *significant* only when the CI excludes 0; with fewer
than 2 images there is no interval and nothing is significant. ``better`` says whether the mean
gain goes in the metric's good direction (None for metrics without one, e.g. sharpness).

Infinite values (PSNR of an image identical to its reference) are replaced by ``cap`` (e.g.
``evaluate.psnr_cap_db``, 100 dB) before averaging and counted in ``n_infinite``; NaN values (a
metric undefined for an image, e.g. SSIM of an image smaller than its window) are left out and
counted in ``n_nan``. In JSON every non-finite number is written as ``null`` (``json_safe``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _clean(values: Sequence[float] | np.ndarray, cap: float | None) -> tuple[np.ndarray, int, int]:
    """(finite values with +-inf capped, n_infinite, n_nan)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n_inf = int(np.isinf(v).sum())
    n_nan = int(np.isnan(v).sum())
    if n_inf:
        if cap is None:
            v = v[~np.isinf(v)]
        else:
            v = np.where(np.isposinf(v), cap, np.where(np.isneginf(v), -cap, v))
    return v[~np.isnan(v)], n_inf, n_nan


def describe(values: Sequence[float] | np.ndarray, cap: float | None = None) -> dict[str, Any]:
    """Mean, median, std, min, max and counts of one metric over images (module doc for inf/NaN)."""
    v, n_inf, n_nan = _clean(values, cap)
    if v.size == 0:
        return {"mean": None, "median": None, "std": None, "min": None, "max": None, "n": 0,
                "n_infinite": n_inf, "n_nan": n_nan}
    return {"mean": float(v.mean()), "median": float(np.median(v)),
            "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size),
            "n_infinite": n_inf, "n_nan": n_nan}


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 10000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (finite values only); NaN when < 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // v.size)  # bounded memory for large test sets
    for start in range(0, n_boot, chunk):
        n = min(chunk, n_boot - start)
        means[start:start + n] = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_gain(method: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray, *,
                higher_is_better: bool | None = True, cap: float | None = None, n_boot: int = 10000,
                level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Per-image paired gain ``method - baseline`` summarised with a bootstrap CI (module doc)."""
    m = np.asarray(method, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if m.shape != b.shape:
        raise ValueError(f"paired values need the same number of images, got {m.shape} and {b.shape}")
    if cap is not None:
        m = np.clip(m, -cap, cap)
        b = np.clip(b, -cap, cap)
    with np.errstate(invalid="ignore"):
        gains = m - b
    g = gains[np.isfinite(gains)]
    if g.size == 0:
        return {"mean": None, "median": None, "ci_low": None, "ci_high": None, "n": 0, "level": level,
                "significant": False, "better": None}
    lo, hi = bootstrap_ci(g, n_boot, level, seed)
    significant = bool(math.isfinite(lo) and (lo > 0 or hi < 0))
    mean = float(g.mean())
    better = None if higher_is_better is None or mean == 0 else bool((mean > 0) == higher_is_better)
    return {"mean": mean, "median": float(np.median(g)), "ci_low": lo, "ci_high": hi, "n": int(g.size),
            "level": level, "significant": significant, "better": better}


def json_safe(obj: Any) -> Any:
    """Recursively turn NaN / inf floats (and numpy scalars) into JSON-safe values (None)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
