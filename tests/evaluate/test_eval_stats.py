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


def _clustered(n_groups: int = 4, per_group: int = 12, seed: int = 4):
    """Gains that vary between regions far more than within one (neighbouring chips agree)."""
    rng = np.random.default_rng(seed)
    region = rng.normal(0.2, 0.5, size=n_groups)
    gains = np.concatenate([r + rng.normal(0, 0.02, per_group) for r in region])
    groups = np.repeat([f"g{k:04d}" for k in range(n_groups)], per_group)
    return gains, groups


def test_cluster_bootstrap_resamples_groups_and_states_its_unit():
    gains, groups = _clustered()
    by_image = paired_gain(gains, np.zeros_like(gains), n_boot=4000, seed=1)
    by_group = paired_gain(gains, np.zeros_like(gains), n_boot=4000, seed=1, groups=groups)
    assert by_image["unit"] == "images" and by_image["n_groups"] == gains.size
    assert by_group["unit"] == "spatial groups" and by_group["n_groups"] == 4
    assert by_group["ci_note"] == "95% CI over 4 spatial groups, cluster bootstrap"
    assert by_image["ci_note"] == f"95% CI over {gains.size} images, bootstrap"
    # 48 correlated chips look like 48 independent samples to an image bootstrap; over 4 regions the
    # interval is several times wider
    assert by_group["ci_high"] - by_group["ci_low"] > 3 * (by_image["ci_high"] - by_image["ci_low"])
    assert by_image["significant"] and not by_group["significant"]
    # the interval lies within the range of the region means (resampled whole regions)
    means = [gains[groups == g].mean() for g in np.unique(groups)]
    assert min(means) - 1e-12 <= by_group["ci_low"] < by_group["mean"] < by_group["ci_high"] <= max(means) + 1e-12


def test_images_as_their_own_groups_give_the_image_bootstrap():
    rng = np.random.default_rng(5)
    g = rng.normal(0.3, 0.4, size=25)
    ids = [f"pair{i}" for i in range(25)]
    assert bootstrap_ci(g, 3000, 0.95, seed=2) == bootstrap_ci(g, 3000, 0.95, seed=2, groups=ids)


def test_fewer_than_two_groups_give_no_ci_and_say_so():
    gains = np.array([0.5, 0.6, 0.7, 0.55])
    one = paired_gain(gains, np.zeros(4), n_boot=500, groups=["g0001"] * 4)
    assert one["n_groups"] == 1 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    assert not one["significant"] and one["ci_note"] == "no CI: 1 spatial group (a CI needs at least 2)"
    assert one["mean"] == pytest.approx(0.5875)
    assert json_safe(one)["ci_low"] is None
    # missing group ids: such an image is its own group
    two = paired_gain(gains, np.zeros(4), n_boot=500, groups=["g0001", "g0001", None, "g0001"])
    assert two["n_groups"] == 2
    with pytest.raises(ValueError, match="group id"):
        paired_gain(gains, np.zeros(4), groups=["g0001"])
