"""Sensor-model calibration on real pairs (satsr.data.calibrate, `satsr calibrate`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from satsr.config import SCALE, CalibratePair, CalibrateParams, Params, S2SimParams, SourceParams
from satsr.data import sensor
from satsr.data.calibrate import (
    CalibrationError,
    calibrate,
    calibrate_arrays,
    calibrated_sigma,
    nested,
)
from satsr.data.geotiff import write_geotiff
from satsr.data.grids import Grid
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR, UINT8_STRETCHED
from satsr.data.sources import s2sim

#: Stated tolerances of the recovery from pairs simulated with sensor.simulate (LR 120 px).
SIGMA_TOL = 0.1          # HR px
SHIFT_TOL = 0.15         # HR px
GAIN_TOL = 0.02
OFFSET_TOL = 0.003       # reflectance
NOISE_REL_TOL = 0.15


def textured_canvas(seed: int, size: int) -> np.ndarray:
    """Reflectance (3, size, size) with land-cover-like large structure and fine texture down to
    the 10 m pixel, so that the PSF width is identifiable."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=(size, size)), 10) * 5
    fine = ndimage.gaussian_filter(rng.normal(size=(size, size)), 0.8)
    grey = 0.12 + 0.06 * np.tanh(base) + 0.05 * fine
    return np.clip(grey[None] * np.array([1.0, 0.85, 0.65])[:, None, None], 0.005, 0.9).astype(np.float32)


def simulated(sigma: float, seed: int = 0, n: int = 360,
              **kw) -> tuple[np.ndarray, np.ndarray, dict, sensor.SensorParams]:
    p = sensor.SensorParams(psf_sigma_hr_px=sigma, **{"noise_reflectance": 0.002, "gain_jitter": 0.05,
                                                      "offset_jitter": 0.01, "max_shift_lr_px": 0.3, **kw})
    pad = p.margin()
    canvas = textured_canvas(seed, n + 2 * pad)
    lr, info = sensor.simulate(canvas, pad, n, p, np.random.default_rng(seed + 100))
    return lr, canvas[:, pad:pad + n, pad:pad + n].copy(), info, p


@pytest.mark.parametrize("sigma", [0.9, 1.7])
def test_recovers_known_psf_shift_noise_gain_and_offset(sigma):
    lr, hr, truth, p = simulated(sigma, seed=int(sigma * 10))
    res = calibrate_arrays("sim", lr, hr, CalibrateParams())
    assert res["status"] == "fitted" and res["radiometry_refused"] is None
    assert res["psf_sigma_hr_px"] == pytest.approx(sigma, abs=SIGMA_TOL)
    np.testing.assert_allclose(res["shift_hr_px"], truth["shift_hr_px"], atol=SHIFT_TOL)
    np.testing.assert_allclose(res["a"], truth["gain"], atol=GAIN_TOL)
    np.testing.assert_allclose(res["b"], truth["offset"], atol=OFFSET_TOL)
    assert res["noise_reflectance"] == pytest.approx(p.noise_reflectance, rel=NOISE_REL_TOL)
    assert max(res["residual_std_per_band"]) == pytest.approx(p.noise_reflectance, rel=NOISE_REL_TOL)
    # what is left is the noise: the blur model explains more than plain area averaging
    assert res["unexplained_variance"] < res["unexplained_variance_area_average_only"]


def test_pair_window_cuts_known_offsets_not_registration():
    def grid(x0: float, y0: float, pixel: float, rows: int, cols: int) -> dict:
        return {"crs": rasterio.crs.CRS.from_epsg(32735), "transform": rasterio.Affine(pixel, 0, x0, 0, -pixel, y0),
                "shape": (rows, cols)}

    # the homonim pair's georeferences (README): S2 +20 m right of L8, 4 columns and 1 row short of 3x
    lr = grid(-60390, -3722700, 30, 454, 267)
    w = nested(lr, grid(-60370, -3722700, 10, 1361, 797))
    assert (w.lr_row, w.lr_col, w.rows, w.cols, w.hr_row, w.hr_col) == (0, 1, 453, 265, 0, 1)
    assert -60390 + 30 * w.lr_col == -60370 + 10 * w.hr_col == -60360  # as the README states
    # an HR origin 1 HR px below the LR one (the L8S2PS scenes): LR row 1 <-> HR row 2
    w = nested(grid(0, 0, 30, 256, 256), grid(0, -10, 10, 768, 768))
    assert (w.lr_row, w.hr_row, w.rows) == (1, 2, 255)
    with pytest.raises(CalibrationError, match="not a whole number"):
        nested(lr, grid(-60385, -3722700, 10, 768, 768))
    with pytest.raises(CalibrationError, match="not 3x"):
        nested(lr, grid(-60390, -3722700, 15, 512, 512))


def _write_pair(folder: Path, name: str, lr: np.ndarray, hr: np.ndarray, eight_bit: bool = False) -> CalibratePair:
    n = lr.shape[1]
    lr_grid = Grid("EPSG:32633", 300000.0, 5800020.0, 30.0, n, n)
    hr_grid = Grid("EPSG:32633", 300000.0, 5800020.0, 10.0, SCALE * n, SCALE * n)
    lr_path, hr_path = folder / f"{name}_L8.tif", folder / f"{name}_S2.tif"
    if eight_bit:  # two different undocumented stretches, as the shared 8-bit pairs
        write_geotiff(lr_path, np.clip(lr * 900, 0, 255).astype(np.uint8), lr_grid, UINT8_STRETCHED, LANDSAT_RGB)
        write_geotiff(hr_path, np.clip(hr * 700 + 10, 0, 255).astype(np.uint8), hr_grid, UINT8_STRETCHED, S2_RGB)
    else:
        write_geotiff(lr_path, L8_C2_L2.from_reflectance(lr), lr_grid, L8_C2_L2, LANDSAT_RGB)
        write_geotiff(hr_path, S2_SR.from_reflectance(hr), hr_grid, S2_SR, S2_RGB)
    return CalibratePair(name=name, lr=str(lr_path), hr=str(hr_path))


def test_bad_pairs_are_reported_and_skipped_and_8bit_radiometry_refused(tmp_path):
    sigma = 1.3
    lr, hr, truth, p = simulated(sigma, seed=3, n=192)
    pad = p.margin() + 9
    canvas = textured_canvas(3, 192 + 2 * pad)
    far = sensor.degrade(canvas, pad, 192, sigma, (6.0, -1.0), bandpass=True)  # 2 LR px off: misaligned
    other, *_ = simulated(sigma, seed=9, n=192)  # another scene
    pairs = [
        _write_pair(tmp_path, "good", lr, hr),
        _write_pair(tmp_path, "misaligned", far, canvas[:, pad:pad + 192, pad:pad + 192]),
        _write_pair(tmp_path, "unrelated", other, hr),
        _write_pair(tmp_path, "stretched8", lr, hr, eight_bit=True),
        CalibratePair(name="absent", lr=str(tmp_path / "nope_L8.tif"), hr=str(tmp_path / "nope_S2.tif")),
    ]
    out = tmp_path / "cal" / "calibration.json"
    params = Params(calibrate=CalibrateParams(pairs=pairs, out=str(out)))
    doc = calibrate(params, use_mlflow=False)
    assert json.loads(out.read_text()) == doc
    res = {r["name"]: r for r in doc["pairs"]}

    assert res["good"]["status"] == "fitted"
    assert res["good"]["psf_sigma_hr_px"] == pytest.approx(sigma, abs=SIGMA_TOL)
    np.testing.assert_allclose(res["good"]["a"], truth["gain"], atol=GAIN_TOL)
    assert res["misaligned"]["status"] == "skipped" and "misaligned" in res["misaligned"]["reason"]
    assert "psf_sigma_hr_px" not in res["misaligned"]  # reported, not fitted
    assert res["unrelated"]["status"] == "skipped" and "psf_sigma_hr_px" not in res["unrelated"]
    assert res["unrelated"]["reason"].startswith(("misaligned", "too low correlation"))
    assert res["absent"]["status"] == "skipped" and "nope_L8.tif" in res["absent"]["reason"]
    # 8-bit: geometry fitted, radiometry refused with the reason
    eight = res["stretched8"]
    assert eight["status"] == "fitted" and not eight["physical"]
    assert eight["a"] is None and eight["b"] is None and eight["noise_reflectance"] is None
    assert "NON-PHYSICAL" in eight["radiometry_refused"] and "refused" in eight["radiometry_refused"]
    assert eight["psf_sigma_hr_px"] == pytest.approx(sigma, abs=0.25)
    np.testing.assert_allclose(eight["shift_hr_px"], truth["shift_hr_px"], atol=0.3)

    s = doc["summary"]
    assert (s["n_fitted"], s["n_skipped"], s["n_radiometric"]) == (2, 3, 1)
    assert s["noise_reflectance"] == res["good"]["noise_reflectance"]
    # a pair whose model does not explain the LR well enough is not fitted either
    strict = calibrate_arrays("good", lr, hr, CalibrateParams(min_correlation=0.999))
    assert strict["status"] == "skipped" and strict["reason"].startswith("too low correlation")
    assert "a" not in strict and 0.9 < strict["attempted_correlation"] < 0.999
    # the s2sim provider reads the calibrated sigma
    assert calibrated_sigma(out) == pytest.approx(s["psf_sigma_hr_px"])
    sp = S2SimParams(psf_sigma_hr_px="calibrated", calibration_file=str(out))
    assert s2sim.sensor_params(sp, True).psf_sigma_hr_px == pytest.approx(s["psf_sigma_hr_px"])
    with pytest.raises(FileNotFoundError, match="satsr calibrate"):
        calibrated_sigma(tmp_path / "missing.json")


@pytest.mark.realdata
def test_real_shared_pairs_give_a_plausible_psf(realdata, tmp_path):
    pairs = [CalibratePair(name=f"scene_{k}", lr=str(realdata / f"pairs_l8s2ps/scene_{k}_Landsat-8.tif"),
                           hr=str(realdata / f"pairs_l8s2ps/scene_{k}_Sentinel-2.tif")) for k in (1, 2)]
    pairs.append(CalibratePair(name="homonim", lr=str(realdata / "pairs_homonim/homonim_Landsat-8.tif"),
                               hr=str(realdata / "pairs_homonim/homonim_Sentinel-2.tif")))
    params = Params(source=SourceParams(), calibrate=CalibrateParams(pairs=pairs, out=str(tmp_path / "c.json")))
    doc = calibrate(params, use_mlflow=False)
    for r in doc["pairs"]:
        assert r["status"] == "fitted", r
        assert 1.0 <= r["psf_sigma_hr_px"] <= 1.8           # GUIDE: about 1.2-1.6 HR px
        assert 0.03 <= r["unexplained_variance"] <= 0.25    # GUIDE: 6-15 % unexplained
        assert r["a"] is None and "NON-PHYSICAL" in r["radiometry_refused"]  # all three are 8-bit
        assert max(abs(s) for s in r["shift_hr_px"]) < params.calibrate.max_shift_hr_px
    hom = next(r for r in doc["pairs"] if r["name"] == "homonim")
    assert hom["window"]["lr_row_col_h_w"] == [0, 1, 453, 265]  # the README's aligned window
