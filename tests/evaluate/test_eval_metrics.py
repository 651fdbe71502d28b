"""Metric sanity: the fast SSIM / MS-SSIM / SCC equal sewar's; identical images; a known shift;
a known spectral rotation; sharpness of a ramp; opensr-test correctness classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluate_fixtures import texture
from scipy import ndimage as ndi
from sewar import full_ref as sewar_fr

from satsr.config import CorrectnessParams
from satsr.data.registration import area_downsample
from satsr.evaluate import metrics as m


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    hr = texture(rng, 150)[:, :141]  # not square, not a power of 2
    noisy = np.clip(hr + 0.01 * rng.standard_normal(hr.shape) + 0.004, 0, 1)
    return hr, noisy


@pytest.mark.filterwarnings("ignore:Image is too small")
@pytest.mark.parametrize("name", ["ssim", "msssim", "scc", "psnr", "ergas", "sam", "uqi", "rase"])
def test_metrics_equal_sewar(pair, name):
    gt, p = pair
    ours = {"ssim": lambda: m.ssim(gt, p), "msssim": lambda: m.msssim(gt, p), "scc": lambda: m.scc(gt, p),
            "psnr": lambda: m.psnr(gt, p), "ergas": lambda: m.ergas(gt, p, 1 / 3), "sam": lambda: m.sam(gt, p),
            "uqi": lambda: m.uqi(gt, p), "rase": lambda: m.rase(gt, p)}[name]()
    ref = {"ssim": lambda: sewar_fr.ssim(gt, p, MAX=1.0)[0], "msssim": lambda: sewar_fr.msssim(gt, p, MAX=1.0),
           "scc": lambda: sewar_fr.scc(gt, p), "psnr": lambda: sewar_fr.psnr(gt, p, MAX=1.0),
           "ergas": lambda: sewar_fr.ergas(gt, p, r=1 / 3), "sam": lambda: sewar_fr.sam(gt, p),
           "uqi": lambda: sewar_fr.uqi(gt, p), "rase": lambda: sewar_fr.rase(gt, p)}[name]()
    assert ours == pytest.approx(float(np.real(ref)), rel=1e-8, abs=1e-9)


def test_8bit_ssim_and_small_msssim_equal_sewar(pair):
    gt, p = (np.round(x * 255 * 3).clip(0, 255).astype(np.uint8) for x in pair)
    assert m.ssim(gt, p, 255.0) == pytest.approx(sewar_fr.ssim(gt, p)[0], rel=1e-10)
    assert m.psnr(gt, p, 255.0) == pytest.approx(sewar_fr.psnr(gt, p), rel=1e-12)
    small_gt, small_p = pair[0][:40, :40], pair[1][:40, :40]  # sewar caps the scales (warns): so do we
    with pytest.warns(UserWarning):
        ref = sewar_fr.msssim(small_gt, small_p, MAX=1.0)
    assert m.msssim(small_gt, small_p) == pytest.approx(float(np.real(ref)), rel=1e-10)
    assert math.isnan(m.ssim(small_gt[:8, :8], small_p[:8, :8]))  # smaller than the window: NaN, no crash


def test_identical_images_infinite_psnr_and_unit_ssim(pair):
    hr = pair[0]
    assert m.psnr(hr, hr) == math.inf
    assert m.ssim(hr, hr) == pytest.approx(1.0)
    assert m.msssim(hr, hr) == pytest.approx(1.0)
    lr = area_downsample(hr[:141, :141].transpose(2, 0, 1), 3).transpose(1, 2, 0)
    out = m.image_metrics(lr, hr[:141, :141], {"sr": hr[:141, :141]})
    assert out["sr_psnr"] == math.inf and out["sr_psnr8"] == math.inf
    assert out["sr_ssim"] == pytest.approx(1.0) and out["sr_sam"] == pytest.approx(0.0, abs=1e-7)
    assert out["sr_improvement"] == pytest.approx(1.0)  # SR == HR: every counted pixel is an improvement
    assert out["sr_lr_l1"] == pytest.approx(0.0, abs=1e-12) and out["sr_lr_shift_px"] < 0.05


def test_known_subpixel_shift_is_measured_against_lr():
    rng = np.random.default_rng(3)
    hr = texture(rng, 192)
    lr = area_downsample(hr.transpose(2, 0, 1), 3).transpose(1, 2, 0)
    # SR = HR with its content moved 1.5 HR px right and 3 px down = (1.0, 0.5) LR px
    sr = np.stack([ndi.shift(hr[..., b], (3.0, 1.5), order=3, mode="reflect") for b in range(3)], axis=-1)
    cons = m.lr_consistency(sr, lr, scale=3, border=12)
    # registering SR_30m onto LR means moving it back: (-1.0, -0.5) LR px
    assert cons["lr_shift_dy"] == pytest.approx(-1.0, abs=0.06)
    assert cons["lr_shift_dx"] == pytest.approx(-0.5, abs=0.06)
    assert cons["lr_shift_px"] == pytest.approx(math.hypot(1.0, 0.5), abs=0.06)


def _rotate(v: np.ndarray, axis: np.ndarray, theta: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return (v * math.cos(theta) + np.cross(axis, v) * math.sin(theta) + axis * np.dot(axis, v) * (1 - math.cos(theta)))


def test_known_spectral_rotation_gives_known_angle():
    v = np.array([0.12, 0.10, 0.08])
    theta = math.radians(7.0)
    w = _rotate(v, np.cross(v, [0.0, 0.0, 1.0]), theta)
    assert (w > 0).all() and np.linalg.norm(w) == pytest.approx(np.linalg.norm(v))
    hr = np.broadcast_to(v, (30, 30, 3)).copy()
    sr = np.broadcast_to(w, (30, 30, 3)).copy()
    assert m.sam(hr, sr) == pytest.approx(theta, rel=1e-6)
    lr = np.broadcast_to(v, (10, 10, 3)).copy()
    assert m.lr_consistency(sr, lr)["lr_sam_deg"] == pytest.approx(7.0, rel=1e-6)
    assert m.spectral_angle_deg(sr, hr) == pytest.approx(7.0, rel=1e-6)


def test_sharpness_of_a_ramp_is_its_slope():
    ramp = np.tile(np.arange(50, dtype=float) * 0.002, (40, 1))
    assert m.sharpness(np.stack([ramp] * 3, -1)) == pytest.approx(0.002)
    assert m.sharpness(np.full((20, 20, 3), 0.3)) == 0.0


def test_correctness_classes():
    rng = np.random.default_rng(5)
    hr = texture(rng, 120)
    lr = area_downsample(hr.transpose(2, 0, 1), 3).transpose(1, 2, 0)
    lr_up = m.upsample(lr, 3, "bilinear")
    plain = CorrectnessParams(harmonize=False)
    assert m.correctness(hr, hr, lr_up, plain)["improvement"] == pytest.approx(1.0)
    assert m.correctness(lr_up, hr, lr_up, plain)["omission"] == pytest.approx(1.0)  # no detail added
    wild = np.clip(hr + 0.08 * rng.standard_normal(hr.shape), 0, 1)  # detail that is in neither LR nor HR
    out = m.correctness(wild, hr, lr_up, plain)
    assert out["hallucination"] > 0.5
    assert sum(out.values()) == pytest.approx(1.0)
    soft = m.correctness(wild, hr, lr_up, CorrectnessParams(norm="softmin"))
    assert sum(soft.values()) == pytest.approx(1.0) and all(0 <= v <= 1 for v in soft.values())


def test_upsampling_baselines_and_bad_sizes():
    flat = np.full((10, 12, 3), 0.2)
    for method in ("bicubic", "lanczos", "bilinear"):
        up = m.upsample(flat, 3, method)
        assert up.shape == (30, 36, 3) and np.allclose(up, 0.2, atol=1e-6)
    with pytest.raises(m.EvaluationError, match="differs from HR"):
        m.image_metrics(flat, np.zeros((30, 36, 3)), {"sr": np.zeros((33, 36, 3))})
    with pytest.raises(m.EvaluationError, match="not 3x LR"):
        m.lr_consistency(np.zeros((30, 30, 3)), np.zeros((11, 10, 3)))


def test_reference_cache_changes_nothing(pair):
    from skimage.exposure import match_histograms

    hr, noisy = pair
    other = np.clip(hr * 1.05, 0, 1)
    cache: dict = {}
    for p in (noisy, other, noisy):  # the second use of the cache returns the first's numbers exactly
        assert m.ssim(hr, p, cache=cache) == m.ssim(hr, p)
        assert m.msssim(hr[:141, :141], p[:141, :141], cache=cache) == m.msssim(hr[:141, :141], p[:141, :141])
    assert np.array_equal(m.match_histograms(noisy, hr, {}), match_histograms(noisy, hr, channel_axis=-1))
    lr_up = m.upsample(area_downsample(hr[:141, :141].transpose(2, 0, 1), 3).transpose(1, 2, 0), 3, "bilinear")
    shared: dict = {}
    for p in (noisy, other):
        assert m.correctness(p[:141, :141], hr[:141, :141], lr_up, cache=shared) == \
            m.correctness(p[:141, :141], hr[:141, :141], lr_up)


# ------------------------------------------------------------------- cPSNR / cSSIM (PROBA-V convention)
def _brute_cpsnr(gt: np.ndarray, p: np.ndarray, border: int, n: int) -> tuple[float, int, int]:
    """The convention written out naively: every shift, bias removed, plain PSNR, best kept."""
    k = border + n
    g = gt[k:-k, k:-k]
    best = (math.inf, 0, 0)
    for dy in range(-n, n + 1):
        for dx in range(-n, n + 1):
            q = p[k + dy:k + dy + g.shape[0], k + dx:k + dx + g.shape[1]]
            d = g - q
            mse = float(np.mean((d - d.mean(axis=(0, 1))) ** 2))
            if mse < best[0] - 1e-15:
                best = (mse, dy, dx)
    return 10 * math.log10(1 / best[0]), best[1], best[2]


def test_cpsnr_equals_psnr_at_zero_shift_and_zero_bias(pair):
    hr, _ = pair
    rng = np.random.default_rng(3)
    noise = 0.01 * rng.standard_normal(hr.shape)
    noisy = hr + (noise - noise.mean(axis=(0, 1)))  # no bias over the image...
    # ...and no shift to gain from: with max_shift 0 cPSNR is PSNR on the border-cropped pixels up to
    # the per-band mean of the noise on those pixels (tiny, but removed)
    g, q = m.crop(hr, 3), m.crop(noisy, 3)
    q0 = q + (g - q).mean(axis=(0, 1))
    assert m.cpsnr(hr, noisy, border=3, max_shift=0) == pytest.approx(m.psnr(g, q0), rel=1e-12)
    assert m.cpsnr(hr, noisy, border=3, max_shift=0) == pytest.approx(m.psnr(g, q), abs=0.01)
    # white noise: every other shift is far worse, so the search keeps (0, 0) and the same number
    reg = m.registered_metrics(hr, noisy, border=3, max_shift=3)
    assert (reg["cshift_dy"], reg["cshift_dx"]) == (0.0, 0.0)
    g6, q6 = m.crop(hr, 6), m.crop(noisy, 6)
    assert reg["cpsnr"] == pytest.approx(m.psnr(g6, q6 + (g6 - q6).mean(axis=(0, 1))), rel=1e-12)
    assert reg["cpsnr"] == pytest.approx(m.psnr(g6, q6), abs=0.01)
    assert m.cpsnr(hr, hr) == math.inf and m.registered_metrics(hr, hr)["cssim"] == pytest.approx(1.0)


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, -2), (-3, 3), (2, 0)])
def test_cpsnr_finds_a_planted_integer_shift_and_bias(dy, dx):
    rng = np.random.default_rng(abs(dy * 7 + dx))
    big = texture(rng, 120)
    hr = big[10:106, 10:106]
    # prediction pixel (y + dy, x + dx) shows HR pixel (y, x), plus a per-band offset and a little noise
    sr = big[10 - dy:106 - dy, 10 - dx:106 - dx] + np.array([0.02, -0.015, 0.03])
    sr = sr + 0.001 * rng.standard_normal(sr.shape)
    reg = m.registered_metrics(hr, sr, border=3, max_shift=3)
    assert (reg["cshift_dy"], reg["cshift_dx"]) == (dy, dx)
    assert reg["cbias"] == pytest.approx(-np.mean([0.02, -0.015, 0.03]), abs=2e-4)
    assert reg["cpsnr"] == pytest.approx(20 * math.log10(1 / 0.001), abs=0.3)  # only the noise is left
    assert reg["cpsnr"] > m.psnr(m.crop(hr, 3), m.crop(sr, 3)) + 20  # plain PSNR pays for shift and bias
    assert reg["cssim"] > 0.99 > m.ssim(m.crop(hr, 3), m.crop(sr, 3))
    assert (reg["cpsnr"], reg["cshift_dy"], reg["cshift_dx"]) == pytest.approx(_brute_cpsnr(hr, sr, 3, 3))
    if (dy, dx) != (0, 0):  # a shift beyond the range is not found: the best in range is far worse
        assert m.cpsnr(hr, sr, border=3, max_shift=max(abs(dy), abs(dx)) - 1) < reg["cpsnr"] - 10


def test_cpsnr_removes_a_per_band_bias_only(pair):
    hr, _ = pair
    biased = hr + np.array([0.05, -0.03, 0.01])
    assert m.cpsnr(hr, biased) > 200  # a pure per-band offset is removed entirely (float rounding left)
    assert m.psnr(hr, biased) < 30
    scaled = hr * 1.2  # a gain is not a bias: it stays (cPSNR is not a correlation)
    assert m.cpsnr(hr, scaled) < 60


def test_cssim_sanity(pair):
    hr, noisy = pair
    rng = np.random.default_rng(5)
    noisier = hr + 0.05 * rng.standard_normal(hr.shape)
    a, b = m.registered_metrics(hr, noisy), m.registered_metrics(hr, noisier)
    assert 0 < b["cssim"] < a["cssim"] < 1
    assert a["cpsnr"] > b["cpsnr"]
    # cSSIM is SSIM of the registered, bias-corrected window
    g, q = m.crop(hr, 6), m.crop(noisy, 6)
    assert a["cssim"] == pytest.approx(m.ssim(g, q + (g - q).mean(axis=(0, 1))), rel=1e-12)


def test_image_metrics_report_cpsnr_and_bad_sizes():
    rng = np.random.default_rng(1)
    big = texture(rng, 80)
    hr = big[4:76, 4:76]
    lr = area_downsample(hr.transpose(2, 0, 1), 3).transpose(1, 2, 0)
    shifted = big[3:75, 5:77] + 0.01  # content moved (dy, dx) = (1, -1), brighter
    out = m.image_metrics(lr, hr, {"sr": shifted, "bicubic": m.upsample(lr, 3, "bicubic")},
                          metrics=("psnr", "cpsnr", "cssim"), max_shift=3)
    assert (out["sr_cshift_dy"], out["sr_cshift_dx"]) == (1.0, -1.0)
    assert out["sr_cpsnr"] > out["bicubic_cpsnr"] > out["bicubic_psnr"] > out["sr_psnr"]
    assert "sr_ssim" not in out and 0 < out["sr_cssim"] <= 1
    with pytest.raises(m.EvaluationError, match="too small"):
        m.cpsnr(hr[:20, :20], hr[:20, :20], border=3, max_shift=8)
