"""The one sensor model (satsr.data.sensor): geometry, radiometry, noise and change."""

from __future__ import annotations

import numpy as np
import pytest

from satsr.data import sensor


@pytest.fixture
def scene() -> tuple[np.ndarray, int, int]:
    rng = np.random.default_rng(0)
    pad, n = 12, 30
    return rng.random((3, n + 2 * pad, n + 2 * pad), dtype=np.float32), pad, n


def test_sensor_model_is_area_aggregation_of_the_shifted_blurred_scene(scene):
    canvas, pad, n = scene
    slope = sensor.hls_rgb(sensor.HLS_SLOPE)
    offset = sensor.hls_rgb(sensor.HLS_OFFSET)

    def observed(sigma: float, shift: tuple[float, float]) -> np.ndarray:
        return (sensor.degrade(canvas, pad, n, sigma, shift) - offset) / slope

    box = canvas[:, pad:pad + n, pad:pad + n].reshape(3, n // 3, 3, n // 3, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(observed(0.0, (0.0, 0.0)), box, atol=1e-5)
    moved = observed(0.0, (3.0, -3.0))  # the scene moved one LR pixel down and one left
    np.testing.assert_allclose(moved[:, 1:, :-1], box[:, :-1, 1:], atol=1e-5)
    blurred = observed(1.2, (0.0, 0.0))  # a PSF keeps the mean and removes detail
    assert float(blurred.mean()) == pytest.approx(float(box.mean()), abs=0.01)
    assert float(blurred.std()) < float(box.std())


def test_gain_offset_and_noise_are_applied_per_band(scene):
    canvas, pad, n = scene
    clean = sensor.degrade(canvas, pad, n, 1.0, bandpass=False)
    gain, offset = np.array([0.9, 1.0, 1.1]), np.array([0.01, 0.0, -0.02])
    got = sensor.degrade(canvas, pad, n, 1.0, gain=gain, offset=offset, bandpass=False)
    np.testing.assert_allclose(got, clean * gain[:, None, None] + offset[:, None, None], atol=1e-6)
    rng = np.random.default_rng(1)
    big = np.random.default_rng(2).random((3, 3 * 60 + 2 * pad, 3 * 60 + 2 * pad), dtype=np.float32)
    noisy = sensor.degrade(big, pad, 180, 1.0, noise=0.01, rng=rng, bandpass=False)
    residual = noisy - sensor.degrade(big, pad, 180, 1.0, bandpass=False)
    assert float(residual.std()) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(ValueError, match="random generator"):
        sensor.degrade(canvas, pad, n, 1.0, noise=0.01)


def test_too_small_margin_is_refused(scene):
    canvas, _, n = scene
    with pytest.raises(ValueError, match="margin"):
        sensor.degrade(canvas, 2, n, 1.5, (3.0, 0.0))


def test_simulate_draws_within_the_amplitudes_and_reports_them(scene):
    canvas, pad, n = scene
    p = sensor.SensorParams(psf_sigma_hr_px=1.0, noise_reflectance=0.0, gain_jitter=0.05, offset_jitter=0.01,
                            max_shift_lr_px=0.3, change_fraction=0.2)
    m = p.margin()
    big = np.pad(canvas, ((0, 0), (m, m), (m, m)), mode="reflect")
    assert sensor.simulate(big, pad + m, n, p, np.random.default_rng(0))[0].shape == (3, n // 3, n // 3)
    for seed in range(5):
        lr, info = sensor.simulate(canvas, pad, n, p, np.random.default_rng(seed))
        assert lr.shape == (3, n // 3, n // 3)
        assert all(0.95 <= g <= 1.05 for g in info["gain"])
        assert all(-0.01 <= o <= 0.01 for o in info["offset"])
        assert np.hypot(*info["shift_hr_px"]) <= 0.3 * 3 + 1e-9
        assert 0.0 <= info["changed_fraction"] <= 0.5
    same = [sensor.simulate(canvas, pad, n, p, np.random.default_rng(7))[0] for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])
