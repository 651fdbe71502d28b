"""Summary statistics over images: mean / median, and the paired gain over a baseline with a
seeded percentile-bootstrap confidence interval over the split's SPATIAL GROUPS.

Paired gain: for every image i, ``gain_i = metric(method, i) - metric(baseline, i)`` on the same
pixels; the summary is the mean and median gain over images, and a 95 % (``level``) CI of the MEAN
gain. Neighbouring chips are not independent (in the demo each test chip overlaps 7-11 others, and
one region gives a dozen chips), so resampling images would describe those few footprints, not new
regions. The CI is therefore a **cluster bootstrap**: ``n_boot`` resamples of the spatial groups
(data/split's ``group`` column: chips that overlap, touch or share a grid cell) with replacement,
each giving the mean over all images of the drawn groups (``numpy.random.default_rng(seed)``, so
the interval is reproducible). Every result names its unit next to the CI (``ci_note``, e.g.
"95% CI over 4 spatial groups, cluster bootstrap"). Without group ids every image is its own group
(unit "images", the plain bootstrap, identical numbers to it). With fewer than 2 groups there is
no interval (``ci_low``/``ci_high`` NaN, null in JSON), the note says so, and nothing is
significant. With few groups (3-5) the percentile interval is coarse (a handful of distinct
resamples) and tends to be too narrow rather than too wide: read it as "over these regions".

A gain is *significant* only when the CI excludes 0. ``better`` says whether the mean gain goes in
the metric's good direction (None for metrics without one, e.g. sharpness).

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


UNIT_GROUPS = "spatial groups"
UNIT_IMAGES = "images"


def group_codes(groups: Sequence[Any] | np.ndarray | None, n: int) -> np.ndarray:
    """Integer cluster code per image, numbered in order of first appearance; None / NaN / empty ids
    (and ``groups=None``) make an image its own cluster."""
    if groups is None:
        return np.arange(n)
    g = list(groups)
    if len(g) != n:
        raise ValueError(f"{len(g)} group id(s) for {n} value(s)")
    keys = [f"\0image{i}" if v is None or (isinstance(v, float) and math.isnan(v)) or str(v) == ""
            else str(v) for i, v in enumerate(g)]
    _, first, inverse = np.unique(np.asarray(keys, dtype=str), return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]  # numbered in order of first appearance (stable resamples)


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 10000, level: float = 0.95,
                 seed: int = 0, groups: Sequence[Any] | np.ndarray | None = None) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (finite values only), resampling the
    clusters of ``groups`` (module doc; None: every image its own cluster); NaN with < 2 clusters."""
    v = np.asarray(values, dtype=np.float64).ravel()
    codes = group_codes(groups, v.size)
    keep = np.isfinite(v)
    v, codes = v[keep], codes[keep]
    _, codes = np.unique(codes, return_inverse=True)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < 2:
        return math.nan, math.nan
    sums = np.bincount(codes, weights=v, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n_groups)  # bounded memory for large test sets
    for start in range(0, n_boot, chunk):
        n = min(chunk, n_boot - start)
        idx = rng.integers(0, n_groups, size=(n, n_groups))
        means[start:start + n] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def ci_note(level: float, n_groups: int, unit: str) -> str:
    """The unit of a CI in words, written next to it in JSON and the leaderboard."""
    what = unit if n_groups != 1 else unit.rstrip("s")
    if n_groups < 2:
        return f"no CI: {n_groups} {what} (a CI needs at least 2)"
    method = "cluster bootstrap" if unit == UNIT_GROUPS else "bootstrap"
    return f"{100 * level:g}% CI over {n_groups} {what}, {method}"


def paired_gain(method: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray, *,
                higher_is_better: bool | None = True, cap: float | None = None, n_boot: int = 10000,
                level: float = 0.95, seed: int = 0,
                groups: Sequence[Any] | np.ndarray | None = None) -> dict[str, Any]:
    """Per-image paired gain ``method - baseline`` with a cluster-bootstrap CI over ``groups``
    (the spatial group of each image; None: images) -- module doc. Also the difference of two
    models on the same images (select's tie rule)."""
    m = np.asarray(method, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if m.shape != b.shape:
        raise ValueError(f"paired values need the same number of images, got {m.shape} and {b.shape}")
    if cap is not None:
        m = np.clip(m, -cap, cap)
        b = np.clip(b, -cap, cap)
    with np.errstate(invalid="ignore"):
        gains = m - b
    codes = group_codes(groups, gains.size)
    finite = np.isfinite(gains)
    g, codes = gains[finite], codes[finite]
    unit = UNIT_IMAGES if groups is None else UNIT_GROUPS
    n_groups = int(np.unique(codes).size)
    out: dict[str, Any] = {"unit": unit, "n_groups": n_groups, "level": level,
                           "ci_method": "cluster bootstrap" if unit == UNIT_GROUPS else "bootstrap",
                           "ci_note": ci_note(level, n_groups, unit)}
    if g.size == 0:
        return {"mean": None, "median": None, "ci_low": None, "ci_high": None, "n": 0,
                "significant": False, "better": None, **out}
    lo, hi = bootstrap_ci(g, n_boot, level, seed, groups=codes)
    significant = bool(math.isfinite(lo) and (lo > 0 or hi < 0))
    mean = float(g.mean())
    better = None if higher_is_better is None or mean == 0 else bool((mean > 0) == higher_is_better)
    return {"mean": mean, "median": float(np.median(g)), "ci_low": lo, "ci_high": hi, "n": int(g.size),
            "significant": significant, "better": better, **out}


def group_means(values: Sequence[float] | np.ndarray, groups: Sequence[Any] | np.ndarray | None) -> np.ndarray:
    """Mean of the finite ``values`` of each group (a model's consistency across regions: their spread)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    codes = group_codes(groups, v.size)
    keep = np.isfinite(v)
    v, codes = v[keep], codes[keep]
    if not v.size:
        return np.empty(0)
    _, codes = np.unique(codes, return_inverse=True)
    return np.bincount(codes, weights=v) / np.bincount(codes)


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
