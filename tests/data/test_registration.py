"""Registration helpers: known shifts are recovered with the documented sign, resampling
round-trips, block averaging is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scratch import smooth_field

from satsr.data.registration import apply_shift, area_downsample, pearson_r, phase_shift, to_grey


@pytest.fixture
def scene() -> np.ndarray:
    """A textured (3, 96, 96) LR-sized reflectance image."""
    return smooth_field(np.random.default_rng(3), 96)


# --------------------------------------------------------------------------------- area_downsample
def test_area_downsample_exact_on_block_image():
    small = np.arange(2 * 4 * 5, dtype=np.float64).reshape(2, 4, 5)
    big = np.kron(small, np.ones((1, 3, 3)))
    assert big.shape == (2, 12, 15)
    np.testing.assert_array_equal(area_downsample(big, 3), small)
    # integers come back as float means, 2-D works too
    np.testing.assert_array_equal(area_downsample(big[0].astype(np.uint16), 3), small[0])


def test_area_downsample_equals_block_mean(scene):
    b, h, w = scene.shape
    want = scene.reshape(b, h // 4, 4, w // 4, 4).mean(axis=(2, 4))
    got = area_downsample(scene, 4)
    assert got.dtype == scene.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_area_downsample_nan_handling_and_sizes():
    img = np.ones((6, 6), dtype=np.float32)
    img[0, 0] = np.nan  # one NaN in the first block
    img[3:6, 3:6] = np.nan  # a whole block of NaN
    aware = area_downsample(img, 3, nan_aware=True)
    assert aware[0, 0] == pytest.approx(1.0) and np.isnan(aware[1, 1]) and aware[0, 1] == 1.0
    plain = area_downsample(img, 3)
    assert np.isnan(plain[0, 0]) and np.isnan(plain[1, 1])
    with pytest.raises(ValueError, match="not a multiple of 3"):
        area_downsample(np.zeros((7, 6)), 3)
    assert area_downsample(np.zeros((7, 8)), 3, trim=True).shape == (2, 2)
    with pytest.raises(ValueError):
        area_downsample(np.zeros((6, 6)), 0)


# ------------------------------------------------------------------------------------- phase_shift
@pytest.mark.parametrize("shift", [(2.0, -3.0), (0.3, -0.7), (-1.5, 0.0), (0.05, 0.45)])
def test_phase_shift_recovers_known_shift_with_documented_sign(scene, shift):
    """moving = reference with its content moved by +s, so the registering shift is -s."""
    moving = apply_shift(scene, *shift, method="fourier")
    dy, dx, err = phase_shift(scene, moving, upsample_factor=100)
    assert dy == pytest.approx(-shift[0], abs=0.05)
    assert dx == pytest.approx(-shift[1], abs=0.05)
    assert 0 <= err < 0.5
    # ... and applying the returned shift to moving registers it onto reference
    back = apply_shift(moving, dy, dx, method="fourier")
    m = 6
    assert np.abs(back - scene)[:, m:-m, m:-m].max() < 0.01


def test_phase_shift_across_sensors(scene):
    """HR shifted on its own grid and blurred, vs the unshifted HR averaged to 30 m (the filter's case)."""
    hr = smooth_field(np.random.default_rng(5), 288)
    reference = area_downsample(hr, 3)
    moved = ndi.gaussian_filter(ndi.shift(hr, (0, 3 * 0.4, 3 * -1.2), order=3, mode="nearest"), (0, 1.2, 1.2))
    lr = area_downsample(moved, 3) + np.random.default_rng(0).normal(0, 0.002, reference.shape)
    dy, dx, _ = phase_shift(reference, lr, upsample_factor=50)
    assert (dy, dx) == (pytest.approx(-0.4, abs=0.05), pytest.approx(1.2, abs=0.05))


def test_phase_shift_zero_nan_and_featureless(scene):
    dy, dx, err = phase_shift(scene, scene)
    assert (dy, dx) == (0.0, 0.0) and err == pytest.approx(0.0, abs=1e-6)
    holed = scene.copy()
    holed[:, 40:44, 10:20] = np.nan
    dy, dx, _ = phase_shift(scene, apply_shift(holed, 0.0, 1.0, method="fourier"), upsample_factor=20)
    assert (dy, dx) == (pytest.approx(0.0, abs=0.1), pytest.approx(-1.0, abs=0.1))
    flat = np.full((32, 32), 0.1)
    assert all(math.isnan(v) for v in phase_shift(flat, scene[0, :32, :32]))
    with pytest.raises(ValueError, match="same shape"):
        phase_shift(scene, scene[:, :10, :10])


# ------------------------------------------------------------------------------------- apply_shift
@pytest.mark.parametrize("method, tol", [("spline", 2e-3), ("fourier", 1e-3)])
def test_apply_shift_round_trip(scene, method, tol):
    there = apply_shift(scene, 0.37, -1.6, method=method)
    back = apply_shift(there, -0.37, 1.6, method=method)
    assert back.shape == scene.shape and back.dtype == scene.dtype
    m = 4  # pixels that left the chip cannot come back
    assert np.abs(back - scene)[:, m:-m, m:-m].max() < tol


def test_apply_shift_moves_content_by_sign_and_handles_edges_and_nan():
    img = np.zeros((20, 20))
    img[5, 5] = 1.0
    moved = apply_shift(img, 2, 3, order=1)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (7, 8)  # content moves down/right
    assert np.isfinite(apply_shift(np.ones((10, 10)), 2.5, -2.5)).all()  # edges repeat, no fill
    holed = np.ones((10, 10))
    holed[4, 4] = np.nan
    out = apply_shift(holed, 0, 2)
    assert np.isnan(out[4, 6]) and not np.isnan(out[4, 4])
    with pytest.raises(ValueError):
        apply_shift(img, 1, 1, method="lanczos")


# ------------------------------------------------------------------------------------ pearson, grey
def test_pearson_r():
    a = np.random.default_rng(0).random((16, 16))
    assert pearson_r(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson_r(a, -a) == pytest.approx(-1.0)
    assert math.isnan(pearson_r(a, np.full_like(a, 0.3)))
    b = a.copy()
    b[0, :] = np.nan  # ignored, not propagated
    assert pearson_r(a, b) == pytest.approx(1.0)
    assert abs(pearson_r(a, np.random.default_rng(1).random((16, 16)))) < 0.3


def test_to_grey():
    img = np.stack([np.full((2, 2), v) for v in (0.1, 0.2, 0.3)])
    np.testing.assert_allclose(to_grey(img), 0.2)
    img[0, 0, 0] = np.nan
    assert to_grey(img)[0, 0] == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
@pytest.mark.parametrize("scene_no", [1, 2])
def test_known_shift_recovered_on_a_real_landsat_sentinel2_pair(realdata, scene_no):
    """Real cross-sensor pairs (different blur, colour, dates): an added shift is measured exactly."""
    rasterio = pytest.importorskip("rasterio")
    folder = realdata / "pairs_l8s2ps"
    with rasterio.open(folder / f"scene_{scene_no}_Landsat-8.tif") as src:
        lr = src.read().astype(np.float64) / 255.0
    with rasterio.open(folder / f"scene_{scene_no}_Sentinel-2.tif") as src:
        hr = src.read().astype(np.float64) / 255.0
    reference = area_downsample(to_grey(hr), 3)
    grey = to_grey(lr)
    dy0, dx0, _ = phase_shift(reference, grey, upsample_factor=50)
    assert math.hypot(dy0, dx0) < 1.0  # the pairs are co-located within a pixel
    assert pearson_r(reference[4:-4, 4:-4], apply_shift(grey, dy0, dx0)[4:-4, 4:-4]) > 0.85
    dy1, dx1, _ = phase_shift(reference, apply_shift(grey, 0.7, -0.4, method="fourier"), upsample_factor=50)
    assert (dy1 - dy0, dx1 - dx0) == (pytest.approx(-0.7, abs=0.05), pytest.approx(0.4, abs=0.05))
