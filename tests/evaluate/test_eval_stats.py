"""Summary statistics: paired bootstrap CIs (seeded, significance only when the CI excludes 0),
infinite PSNR capped for averages and written as null in JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from satsr.evaluate.stats import bootstrap_ci, describe, json_safe, paired_gain


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    g = rng.normal(0.5, 0.3, size=40)
    a, b = bootstrap_ci(g, 2000, 0.95, seed=7), bootstrap_ci(g, 2000, 0.95, seed=7)
    assert a == b and a[0] < g.mean() < a[1]
    assert bootstrap_ci(g, 2000, 0.95, seed=8) != a
    narrow = bootstrap_ci(g, 2000, 0.5, seed=7)
    assert a[0] < narrow[0] < narrow[1] < a[1]


def test_paired_gain_significance_and_direction():
    rng = np.random.default_rng(1)
    base = rng.normal(30, 2, size=30)
    better = paired_gain(base + 0.6 + rng.normal(0, 0.1, 30), base, n_boot=2000)
    assert better["significant"] and better["better"] and better["ci_low"] > 0
    noise = paired_gain(base + rng.normal(0, 0.5, 30), base, n_boot=2000)
    assert noise["ci_low"] < 0 < noise["ci_high"] and not noise["significant"]
    lower_is_better = paired_gain(base + 1.0, base, higher_is_better=False, n_boot=500)
    assert lower_is_better["significant"] and lower_is_better["better"] is False
    one = paired_gain([31.0], [30.0], n_boot=500)
    assert one["mean"] == 1.0 and not one["significant"] and math.isnan(one["ci_low"])
    with pytest.raises(ValueError, match="same number of images"):
        paired_gain([1.0, 2.0], [1.0])


def test_infinite_psnr_is_capped_counted_and_json_null():
    psnr = np.array([40.0, math.inf, 42.0])
    d = describe(psnr, cap=100.0)
    assert d["n_infinite"] == 1 and d["max"] == 100.0 and d["mean"] == pytest.approx(182.0 / 3)
    assert describe(psnr)["n"] == 2  # without a cap the infinite value is left out (and counted)
    g = paired_gain(psnr, np.array([39.0, 41.0, 41.0]), cap=100.0, n_boot=500)
    assert g["mean"] == pytest.approx((1 + 59 + 1) / 3)
    doc = json_safe({"a": math.inf, "b": [math.nan, 1.0], "c": np.float32(2.5), "d": {"e": -math.inf}})
    assert doc == {"a": None, "b": [None, 1.0], "c": 2.5, "d": {"e": None}}
    json.dumps(doc, allow_nan=False)
    assert describe([math.nan, math.nan])["mean"] is None
