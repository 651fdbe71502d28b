"""Per-split, per-band statistics of the PNG stage, accumulated chip by chip and merged across workers.

Counts, mean and M2 (merged with Chan's formula), extremes, clipping counts and a histogram over
the uint16 PNG levels, so percentiles are exact to the PNG quantization without keeping pixels.
"""

from __future__ import annotations

import numpy as np

BANDS = ("R", "G", "B")
#: Histogram bins for the percentiles: one per uint16 PNG level (exact to the PNG quantization).
HIST_BINS = 65536


def empty_acc() -> dict:
    """Per-band running statistics: count, mean and M2 (merged with Chan's formula, so sums of
    many chips stay accurate in float32 per chip), extremes, clipping counts and a histogram."""
    return {
        "n": np.zeros(3, np.int64),
        "mean": np.zeros(3),
        "m2": np.zeros(3),
        "min": np.full(3, np.inf),
        "max": np.full(3, -np.inf),
        "below": np.zeros(3, np.int64),
        "above": np.zeros(3, np.int64),
        "nan": np.zeros(3, np.int64),
        "hist": np.zeros((3, HIST_BINS), np.int64),
    }


def _add_moments(acc: dict, b: int, n: int, mean: float, m2: float) -> None:
    na = int(acc["n"][b])
    tot = na + n
    delta = mean - acc["mean"][b]
    acc["mean"][b] += delta * n / tot
    acc["m2"][b] += m2 + delta * delta * na * n / tot
    acc["n"][b] = tot


def accumulate(acc: dict, refl: np.ndarray, png: np.ndarray, lo: float, hi: float) -> None:
    """Add one chip: ``refl`` and ``png`` are (3, h, w) reflectance and its uint16 mapping."""
    for b in range(3):
        x = refl[b].ravel()
        p = png[b].ravel()
        ok = np.isfinite(x)
        n_ok = int(np.count_nonzero(ok))
        acc["nan"][b] += x.size - n_ok
        if n_ok == 0:
            continue
        if n_ok < x.size:
            x, p = x[ok], p[ok]
        mean = float(x.sum(dtype=np.float64)) / n_ok
        d = x - np.float32(mean)
        _add_moments(acc, b, n_ok, mean, float(np.dot(d, d)))
        acc["min"][b] = min(acc["min"][b], float(x.min()))
        acc["max"][b] = max(acc["max"][b], float(x.max()))
        acc["below"][b] += int(np.count_nonzero(x < lo))
        acc["above"][b] += int(np.count_nonzero(x > hi))
        acc["hist"][b] += np.bincount(p, minlength=HIST_BINS)


def merge_acc(into: dict, acc: dict) -> None:
    for b in range(3):
        if acc["n"][b]:
            _add_moments(into, b, int(acc["n"][b]), float(acc["mean"][b]), float(acc["m2"][b]))
    for k in ("below", "above", "nan", "hist"):
        into[k] += acc[k]
    into["min"] = np.minimum(into["min"], acc["min"])
    into["max"] = np.maximum(into["max"], acc["max"])


def _percentile(hist: np.ndarray, q: float, lo: float, hi: float) -> float:
    """Percentile from the PNG-level histogram, in reflectance (clipped values read as lo/hi)."""
    cum = np.cumsum(hist)
    if cum[-1] == 0:
        return float("nan")
    k = int(np.searchsorted(cum, q / 100.0 * cum[-1], side="left"))
    return float(lo + k / 65535.0 * (hi - lo))


def finish_acc(acc: dict, lo: float, hi: float) -> dict:
    """The JSON summary per band (None where a band had no valid pixel; nodata counts always)."""
    out = {}
    for b, name in enumerate(BANDS):
        n = int(acc["n"][b])
        if n == 0:
            out[name] = {
                "mean": None,
                "std": None,
                "min": None,
                "max": None,
                "p1": None,
                "p99": None,
                "clipped": None,
                "clipped_low": None,
                "clipped_high": None,
                "nodata": int(acc["nan"][b]),
            }
            continue
        out[name] = {
            "mean": round(float(acc["mean"][b]), 6),
            "std": round(float(np.sqrt(acc["m2"][b] / n)), 6),
            "min": round(float(acc["min"][b]), 6),
            "max": round(float(acc["max"][b]), 6),
            "p1": round(_percentile(acc["hist"][b], 1, lo, hi), 6),
            "p99": round(_percentile(acc["hist"][b], 99, lo, hi), 6),
            "clipped": round(float(acc["below"][b] + acc["above"][b]) / n, 8),
            "clipped_low": round(float(acc["below"][b]) / n, 8),
            "clipped_high": round(float(acc["above"][b]) / n, 8),
            "nodata": int(acc["nan"][b]),
        }
    return out
