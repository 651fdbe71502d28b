"""Calibrate the sensor model on real co-located Landsat / Sentinel-2 pairs (`satsr calibrate`).

A simulator that only blurs teaches a network to sharpen more than real pairs allow (issue 11), so
its amplitudes should come from real pairs. For each pair this fits the forward model of
:mod:`satsr.data.sensor` (the same code the providers simulate with) per band::

    LR ~ a * area3(G_sigma * shift(HR)) + b

over the pair's common exactly nested window: PSF sigma (HR px), the residual sub-pixel shift (HR
px), the per-band linear radiometric map (a, b), then the LR noise from the residual. The fit
minimises the mean over bands of the unexplained variance 1 - R^2 (a and b in closed form for each
trial sigma/shift: 1 - R^2 = 1 - corr^2), starting from a phase-correlation shift and a coarse grid
over sigma, refined by bounded Nelder-Mead. Physical pairs are fitted with the HLS bandpass in the
forward model, so a and b are directly the simulator's per-band gain and offset.

Reported per pair (JSON, MLflow): sigma, shift, a/b, noise (high-frequency estimate of Immerkaer
1996 on the residual, and the residual std as its upper bound), RMSE, R^2 and 1 - R^2 per band, the
correlation of model and LR, and 1 - R^2 of plain 3x3 area averaging for reference.

Refusals, never silent: a pair whose shift ends on the search bound, or whose model correlates less
than ``min_correlation`` with the LR, is skipped with its reason (misaligned, different scenes).
A pair with a non-physical (8-bit stretched) or undocumented side gets its geometry fitted (sigma,
shift, relative noise) but a, b and the noise in reflectance are null, with the reason: a stretch
is not a radiometric map of the sensors.

Grids: an integer HR-pixel offset between the two georeferences is known geometry, not
misregistration: the fit uses the largest window where every LR pixel covers exactly 3x3 HR pixels
of the file (:func:`nested_window`). Pairs in a geographic CRS (EPSG:4326) are taken on their own
pixel grids (S2 pixel = L8 pixel / 3).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from scipy import ndimage, optimize

from satsr.config import SCALE, CalibratePair, CalibrateParams, Params
from satsr.data import sensor
from satsr.data.nesting import INTEGER_TOL_HR_PX, Nesting, grid_offset, nested_window
from satsr.data.registration import area_downsample, pearson_r, phase_shift
from satsr.errors import InputError, MissingInputError
from satsr.util import write_text_atomic

log = logging.getLogger(__name__)

#: Version of the JSON layout.
FORMAT_VERSION = 1
#: A fitted shift within this distance (HR px) of the search bound counts as "on the bound".
BOUND_TOLERANCE = 0.05
#: Coarse sigma grid points before the simplex refinement.
SIGMA_GRID = 5


#: What a skipped pair keeps in the JSON (besides the attempted shift and correlation).
SKIP_KEYS = ("name", "status", "reason", "physical", "units", "phase_correlation_shift_hr_px", "radiometry_refused")


class CalibrationError(InputError):
    """A pair cannot be calibrated (not nested, unreadable); the message names the files."""


# ------------------------------------------------------------------------------------- geometry
def nested(lr: dict[str, Any], hr: dict[str, Any], where: str = "pair") -> Nesting:
    """The pair's exactly nested window from its georeferences (``satsr.data.nesting``, as the folder
    provider cuts chips): the HR pixel must be 1/3 of the LR pixel and the HR origin a whole number
    of HR pixels from the LR origin; that offset is known geometry, cut away, not left to the fit.
    ``lr``/``hr``: {crs, transform, shape (rows, cols)}."""
    off = grid_offset(lr["crs"], lr["transform"], hr["crs"], hr["transform"])
    if isinstance(off, str):
        raise CalibrationError(f"{where}: the grids cannot nest: {off}")
    if max(abs(o - round(o)) for o in off) > INTEGER_TOL_HR_PX:
        raise CalibrationError(f"{where}: HR origin is offset from LR by ({off[0]:.3f}, {off[1]:.3f}) HR px (rows, "
                               "cols), not a whole number of HR pixels: the grids are not nested")
    (lh, lw), (hh, hw) = lr["shape"], hr["shape"]
    win = nested_window((lw, lh), (hw, hh), (round(off[0]), round(off[1])), off)
    if win is None or min(win.rows, win.cols) < 8:
        raise CalibrationError(f"{where}: LR and HR overlap on fewer than 8x8 nested LR pixels")
    return win


def _window_info(win: Nesting) -> dict[str, list[int]]:
    return {"lr_row_col_h_w": [win.lr_row, win.lr_col, win.rows, win.cols],
            "hr_row_col_h_w": [win.hr_row, win.hr_col, SCALE * win.rows, SCALE * win.cols],
            "georef_offset_hr_px": [round(o, 4) + 0.0 for o in win.georef_offset]}


# -------------------------------------------------------------------------------------- loading
@dataclass
class PairData:
    """Decoded arrays of one pair on its nested window (float32, NaN = nodata)."""

    name: str
    lr: np.ndarray            # (bands, h, w)
    hr: np.ndarray            # (bands, 3h, 3w)
    physical: bool
    refusal: str | None       # why the radiometry is not fitted (None when physical)
    units: str
    info: dict[str, Any]


def _read(path: Path) -> tuple[np.ndarray, dict[str, Any], str, str | None]:
    """(reflectance, or DN when undocumented; header {crs, transform, shape}; how it was decoded;
    why its radiometry cannot be fitted, or None)."""
    from satsr.data.sources.s2sim import EncodingError, s2_encoding

    try:
        with rasterio.open(path) as src:
            if src.count < 3:
                raise CalibrationError(f"{path}: {src.count} band(s), expected red, green, blue")
            dn = src.read([1, 2, 3])
            header = {"crs": src.crs, "transform": src.transform, "shape": (src.height, src.width)}
            try:
                dec = s2_encoding(path, src.dtypes[0], tuple(src.scales[:3]), tuple(src.offsets[:3]), src.tags(),
                                  [src.tags(b) for b in (1, 2, 3)], src.nodata)
            except EncodingError:
                dec = None
            nodata = src.nodata
    except RasterioError as err:
        raise CalibrationError(f"{path}: unreadable raster ({err})") from None
    if dec is None:  # geometry only: raw DN, no radiometric meaning
        data = dn.astype(np.float32)
        if nodata is not None:
            data[dn == nodata] = np.nan
        return data, header, "undocumented DN", f"{path.name}: encoding unknown (no scale/offset metadata)"
    data = dec.to_reflectance(dn)
    refusal = None if dec.physical else f"{path.name} is {dn.dtype} NON-PHYSICAL ({dec.how})"
    return data, header, dec.how, refusal


def load_pair(pair: CalibratePair) -> PairData:
    """Read, decode and cut one pair to its nested window; CalibrationError when impossible."""
    lr_path, hr_path = Path(pair.lr), Path(pair.hr)
    for p in (lr_path, hr_path):
        if not p.is_file():
            raise MissingInputError(f"calibrate.pairs[{pair.name}]: {p} not found")
    lr, lh, lr_how, lr_refusal = _read(lr_path)
    hr, hh, hr_how, hr_refusal = _read(hr_path)
    win = nested(lh, hh, f"{pair.name} ({lr_path.name} / {hr_path.name})")
    lr = lr[:, win.lr_row:win.lr_row + win.rows, win.lr_col:win.lr_col + win.cols]
    hr = hr[:, win.hr_row:win.hr_row + SCALE * win.rows, win.hr_col:win.hr_col + SCALE * win.cols]
    refusal = "; ".join(r for r in (lr_refusal, hr_refusal) if r) or None
    if refusal:
        refusal = f"radiometric fit refused: {refusal}; a stretch is not a radiometric map of the sensors"
    geographic = bool(lh["crs"] and lh["crs"].is_geographic)
    info = {"lr_file": str(lr_path), "hr_file": str(hr_path), "lr_encoding": lr_how, "hr_encoding": hr_how,
            "window": _window_info(win), "geographic_crs": geographic,
            "hr_pixel_crs_units": float(hh["transform"].a), "lr_pixel_crs_units": float(lh["transform"].a)}
    return PairData(pair.name, np.ascontiguousarray(lr), np.ascontiguousarray(hr), refusal is None, refusal,
                    "reflectance" if refusal is None else "decoded pseudo-units", info)


# ------------------------------------------------------------------------------------------ fit
def forward(hr: np.ndarray, k: int, sigma: float, shift: tuple[float, float], bandpass: bool) -> np.ndarray:
    """Model LR of LR pixels k..h-k, k..w-k of the HR window (the outer k hold the kernel's reach)."""
    pad = SCALE * k
    n = (hr.shape[1] - 2 * pad, hr.shape[2] - 2 * pad)
    return sensor.degrade(hr, pad, n, sigma, shift, bandpass=bandpass)


def _margin(cp: CalibrateParams) -> int:
    """LR pixels left out at each edge so the kernel at the largest sigma and shift stays inside."""
    return math.ceil((sensor.kernel_reach(cp.sigma_range[1], cp.max_shift_hr_px) - 1) / SCALE) + 1


def _linear(model: np.ndarray, lr: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per band closed-form least squares lr ~ a * model + b over valid pixels: (a, b, R^2)."""
    a, b, r2 = (np.empty(model.shape[0]) for _ in range(3))
    every = bool(valid.all())
    for i in range(model.shape[0]):
        x = (model[i] if every else model[i][valid]).astype(np.float64).ravel()
        y = (lr[i] if every else lr[i][valid]).astype(np.float64).ravel()
        xm, ym = x - x.mean(), y - y.mean()
        # element-wise sums, not BLAS dot products: no thread start-up cost (cf. registration.pearson_r)
        sxx, sxy, syy = float(np.sum(xm * xm)), float(np.sum(xm * ym)), float(np.sum(ym * ym))
        a[i] = sxy / sxx if sxx > 0 else 0.0
        b[i] = y.mean() - a[i] * x.mean()
        r2[i] = sxy * sxy / (sxx * syy) if sxx > 0 and syy > 0 else 0.0
    return a, b, r2


def noise_hf(residual: np.ndarray) -> float:
    """Noise std of a 2-D residual from its high frequencies (Immerkaer 1996): the Laplacian-difference
    mask cancels smooth structure; for white noise E|M * n| = 6 sigma sqrt(2/pi)."""
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    conv = ndimage.convolve(residual.astype(np.float64), mask, mode="constant", cval=np.nan)[1:-1, 1:-1]
    conv = conv[np.isfinite(conv)]
    return float(np.sqrt(np.pi / 2) * np.abs(conv).mean() / 6.0) if conv.size else math.nan


@dataclass
class Fit:
    sigma: float
    shift: tuple[float, float]
    objective: float
    evaluations: int


def fit_geometry(lr: np.ndarray, hr: np.ndarray, cp: CalibrateParams, bandpass: bool,
                 start_shift: tuple[float, float] = (0.0, 0.0)) -> Fit:
    """Minimise mean(1 - R^2) over (sigma, dy, dx) within the bounds of ``cp``."""
    k = _margin(cp)
    target = lr[:, k:lr.shape[1] - k, k:lr.shape[2] - k]
    lo, hi, bound = cp.sigma_range[0], cp.sigma_range[1], cp.max_shift_hr_px
    calls = 0

    def objective(theta: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        sigma = float(np.clip(theta[0], lo, hi))
        shift = (float(np.clip(theta[1], -bound, bound)), float(np.clip(theta[2], -bound, bound)))
        model = forward(hr, k, sigma, shift, bandpass)
        valid = np.isfinite(model).all(axis=0) & np.isfinite(target).all(axis=0)
        if valid.sum() < 16:
            return 1.0
        return float(1.0 - _linear(model, target, valid)[2].mean())

    sy, sx = (float(np.clip(s, -bound, bound)) for s in start_shift)
    grid = np.linspace(lo, hi, SIGMA_GRID)
    scores = [objective(np.array([s, sy, sx])) for s in grid]
    s0 = float(grid[int(np.argmin(scores))])
    step = (hi - lo) / (SIGMA_GRID - 1)
    simplex = np.array([[s0, sy, sx], [min(s0 + step, hi), sy, sx], [s0, sy + 0.5, sx], [s0, sy, sx + 0.5]])
    res = optimize.minimize(objective, simplex[0], method="Nelder-Mead",
                            bounds=[(lo, hi), (-bound, bound), (-bound, bound)],
                            options={"initial_simplex": simplex, "xatol": 0.01, "fatol": 1e-6, "maxiter": 300})
    return Fit(float(res.x[0]), (float(res.x[1]), float(res.x[2])), float(res.fun), calls)


def sigma_per_band(lr: np.ndarray, hr: np.ndarray, cp: CalibrateParams, shift: tuple[float, float],
                   bandpass: bool) -> list[float]:
    """PSF sigma fitted band by band at the common shift: their spread says how well the one sigma
    is determined (and whether red, green and blue blur alike)."""
    k = _margin(cp)
    out = []
    for i in range(lr.shape[0]):
        target = lr[i:i + 1, k:lr.shape[1] - k, k:lr.shape[2] - k]

        def objective(sigma: float, i: int = i, target: np.ndarray = target) -> float:
            model = forward(hr[i:i + 1], k, float(sigma), shift, False)
            if bandpass:  # the per-band bandpass is linear: a and b absorb it
                model = model * sensor.HLS_SLOPE[i] + sensor.HLS_OFFSET[i]
            valid = np.isfinite(model[0]) & np.isfinite(target[0])
            return float(1.0 - _linear(model, target, valid)[2][0]) if valid.sum() >= 16 else 1.0

        res = optimize.minimize_scalar(objective, bounds=cp.sigma_range, method="bounded", options={"xatol": 0.01})
        out.append(float(res.x))
    return out


def _phase_start(lr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    """Shift (HR px) of the LR scene relative to the area-averaged HR, by phase correlation."""
    dy, dx, _ = phase_shift(area_downsample(hr, SCALE, nan_aware=True), lr)
    # phase_shift registers LR onto HR: the LR content sits at -(dy, dx) LR px, the sensor model's +shift
    return (-SCALE * dy, -SCALE * dx) if math.isfinite(dy) else (0.0, 0.0)


def calibrate_arrays(name: str, lr: np.ndarray, hr: np.ndarray, cp: CalibrateParams, physical: bool = True,
                     refusal: str | None = None, units: str = "reflectance") -> dict[str, Any]:
    """Fit one pair given as arrays (LR (bands, h, w) and HR (bands, 3h, 3w) on nested grids)."""
    out: dict[str, Any] = {"name": name, "status": "skipped", "reason": None, "physical": physical, "units": units}
    if hr.shape[1:] != (SCALE * lr.shape[1], SCALE * lr.shape[2]):
        out["reason"] = f"HR {hr.shape[1:]} is not {SCALE}x LR {lr.shape[1:]}"
        return out
    k = _margin(cp)
    if min(lr.shape[1:]) - 2 * k < 8:
        out["reason"] = f"window of {lr.shape[1]}x{lr.shape[2]} LR px is too small for a {k} px kernel margin"
        return out
    start = _phase_start(lr, hr)
    out["phase_correlation_shift_hr_px"] = [round(start[0], 4), round(start[1], 4)]
    bound = cp.max_shift_hr_px
    if max(abs(start[0]), abs(start[1])) > bound:
        out["reason"] = (f"misaligned: phase correlation finds a shift of ({start[0]:+.2f}, {start[1]:+.2f}) HR px, "
                         f"beyond calibrate.max_shift_hr_px={bound:g}; register the pair first")
        return out
    fit = fit_geometry(lr, hr, cp, bandpass=physical, start_shift=start)
    target = lr[:, k:lr.shape[1] - k, k:lr.shape[2] - k]
    model = forward(hr, k, fit.sigma, fit.shift, physical)
    valid = np.isfinite(model).all(axis=0) & np.isfinite(target).all(axis=0)
    a, b, r2 = _linear(model, target, valid)
    fitted = a[:, None, None] * model + b[:, None, None]
    residual = np.where(valid[None], target - fitted, np.nan)
    grey_r = pearson_r(np.where(valid, fitted.mean(axis=0), np.nan), np.where(valid, target.mean(axis=0), np.nan))
    box = forward(hr, k, 0.0, (0.0, 0.0), physical)
    box_valid = np.isfinite(box).all(axis=0) & np.isfinite(target).all(axis=0)
    r2_box = _linear(box, target, box_valid)[2]
    noise = np.array([noise_hf(residual[i]) for i in range(residual.shape[0])])
    rmse = np.sqrt(np.nanmean(residual ** 2, axis=(1, 2)))
    lr_std = np.array([float(np.std(target[i][valid])) for i in range(target.shape[0])])
    on_bound = max(abs(fit.shift[0]), abs(fit.shift[1])) >= bound - BOUND_TOLERANCE
    per_band = sigma_per_band(lr, hr, cp, fit.shift, physical) if not on_bound else [math.nan] * lr.shape[0]
    sigma_on_bound = fit.sigma <= cp.sigma_range[0] + 1e-3 or fit.sigma >= cp.sigma_range[1] - 1e-3

    def r(x: Any, d: int = 5) -> Any:  # rounded, NaN -> null (strict JSON)
        if np.ndim(x):
            return [r(v, d) for v in x]
        return round(float(x), d) if math.isfinite(float(x)) else None

    out.update({
        "psf_sigma_hr_px": r(fit.sigma, 4), "sigma_on_search_bound": sigma_on_bound,
        "psf_sigma_per_band": r(per_band, 4), "psf_sigma_band_spread": r(np.ptp(per_band), 4),
        "shift_hr_px": r(fit.shift, 4), "shift_lr_px": r(np.array(fit.shift) / SCALE, 4),
        "a": r(a) if physical else None, "b": r(b) if physical else None,
        "radiometry_refused": refusal,
        "noise_reflectance": r(float(np.median(noise)), 6) if physical else None,
        "noise_hf_per_band": r(noise, 6), "noise_relative_per_band": r(noise / lr_std, 4),
        "residual_std_per_band": r(rmse, 6), "fit_rmse_per_band": r(rmse, 6),
        "r2_per_band": r(r2, 4), "unexplained_variance_per_band": r(1 - r2, 4),
        "unexplained_variance": r(float(np.mean(1 - r2)), 4),
        "unexplained_variance_area_average_only": r(float(np.mean(1 - r2_box)), 4),
        "correlation": r(grey_r, 4), "n_lr_pixels": int(valid.sum()), "edge_margin_lr_px": k,
        "bandpass_in_model": physical, "evaluations": fit.evaluations,
    })
    if on_bound:
        out["reason"] = (f"misaligned: the fitted shift ({fit.shift[0]:+.2f}, {fit.shift[1]:+.2f}) HR px is on the "
                         f"search bound calibrate.max_shift_hr_px={bound:g}; not a fit")
    elif not math.isfinite(grey_r) or grey_r < cp.min_correlation:
        out["reason"] = (f"too low correlation: model vs LR r = {grey_r:.3f} < calibrate.min_correlation="
                         f"{cp.min_correlation:g} (different scenes, change or clouds)")
    else:
        out["status"] = "fitted"
        return out
    # skipped: keep what shows why (the attempted shift and the correlation), drop the would-be fit
    attempt = {"attempted_shift_hr_px": out["shift_hr_px"], "attempted_correlation": out["correlation"]}
    return {k: v for k, v in out.items() if k in SKIP_KEYS} | attempt


# ------------------------------------------------------------------------------------------ run
def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Across fitted pairs: the values the simulator uses (median sigma, noise of physical pairs)."""
    ok = [p for p in pairs if p["status"] == "fitted"]
    phys = [p for p in ok if p["physical"]]

    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"median": None, "min": None, "max": None}
        return {"median": round(float(np.median(values)), 6), "min": round(min(values), 6),
                "max": round(max(values), 6)}

    sig = stats([p["psf_sigma_hr_px"] for p in ok])
    return {
        "n_pairs": len(pairs), "n_fitted": len(ok), "n_skipped": len(pairs) - len(ok),
        "n_radiometric": len(phys),
        "psf_sigma_hr_px": sig["median"], "psf_sigma_hr_px_range": [sig["min"], sig["max"]],
        "unexplained_variance": stats([p["unexplained_variance"] for p in ok]),
        "shift_hr_px_abs_max": max((max(abs(s) for s in p["shift_hr_px"]) for p in ok), default=None),
        "noise_reflectance": stats([p["noise_reflectance"] for p in phys])["median"],
        "noise_relative": stats([float(np.mean(p["noise_relative_per_band"])) for p in ok])["median"],
        "noise_note": None if phys else "no physical pair: the noise in reflectance is not calibrated",
    }


def calibrate(params: Params, out: str | Path | None = None, use_mlflow: bool | None = None) -> dict[str, Any]:
    """Fit every pair of ``calibrate.pairs``; write the JSON (and log it to MLflow); return it."""
    cp = params.calibrate
    if not cp.pairs:
        raise InputError("calibrate.pairs is empty: list co-located pairs as {name, lr, hr} in params.yaml")
    results = []
    for pair in cp.pairs:
        try:
            data = load_pair(pair)
        except (CalibrationError, MissingInputError) as err:
            log.warning("calibrate: %s skipped: %s", pair.name, err)
            results.append({"name": pair.name, "status": "skipped", "reason": str(err), "lr_file": pair.lr,
                            "hr_file": pair.hr})
            continue
        res = calibrate_arrays(pair.name, data.lr, data.hr, cp, data.physical, data.refusal, data.units)
        res.update(data.info)
        results.append(res)
        if res["status"] == "fitted":
            log.info("calibrate: %s: sigma %.3f HR px, shift (%+.2f, %+.2f) HR px, 1-R^2 %.3f (area average only "
                     "%.3f), r %.3f%s", pair.name, res["psf_sigma_hr_px"], *res["shift_hr_px"],
                     res["unexplained_variance"], res["unexplained_variance_area_average_only"], res["correlation"],
                     "" if data.physical else "; a, b refused (non-physical)")
        else:
            log.warning("calibrate: %s skipped: %s", pair.name, res["reason"])
    doc = {"format": FORMAT_VERSION, "model": "LR ~ a * area3(G_sigma * shift(HR)) + b per band "
           "(satsr.data.sensor.degrade; HLS bandpass inside for physical pairs, so a, b = simulator gain, offset)",
           "units": {"psf_sigma_hr_px": "10 m pixels (Gaussian sigma)", "shift_hr_px": "10 m pixels (dy, dx), the "
                     "LR scene's displacement", "noise_reflectance": "std, reflectance"},
           "settings": cp.model_dump(mode="json"), "summary": summarize(results), "pairs": results}
    path = Path(out or cp.out)
    write_text_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")
    log.info("calibrate: %d of %d pairs fitted; median sigma %s HR px -> %s", doc["summary"]["n_fitted"],
             len(results), doc["summary"]["psf_sigma_hr_px"], path)
    if cp.mlflow if use_mlflow is None else use_mlflow:
        _log_mlflow(params, doc, path)
    return doc


def _log_mlflow(params: Params, doc: dict[str, Any], path: Path) -> None:
    from satsr import tracking

    tracking.configure(params)
    with tracking.stage_run("calibrate", None, {"calibrate": params.calibrate.model_dump(mode="json")}, data_path=None):
        metrics: dict[str, float] = {}
        for p in doc["pairs"]:
            if p["status"] != "fitted":
                continue
            for key in ("psf_sigma_hr_px", "unexplained_variance", "correlation", "noise_reflectance"):
                if p.get(key) is not None:
                    metrics[f"{p['name']}_{key}"] = p[key]
            metrics[f"{p['name']}_shift_hr_px_dy"], metrics[f"{p['name']}_shift_hr_px_dx"] = p["shift_hr_px"]
        s = doc["summary"]
        if s["psf_sigma_hr_px"] is not None:
            metrics["psf_sigma_hr_px"] = s["psf_sigma_hr_px"]
            metrics["unexplained_variance_median"] = s["unexplained_variance"]["median"]
        metrics["n_fitted"], metrics["n_skipped"] = s["n_fitted"], s["n_skipped"]
        tracking.log_metrics(metrics)
        tracking.log_artifact(path, "calibration")


def calibrated_sigma(path: str | Path) -> float:
    """The PSF sigma a calibration file recommends (median over its fitted pairs)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"{path}: calibration file not found; run `satsr calibrate` (params calibrate.*) "
                                "or set source.s2sim.psf_sigma_hr_px to a number")
    try:
        sigma = json.loads(path.read_text())["summary"]["psf_sigma_hr_px"]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a satsr calibration file (expected summary.psf_sigma_hr_px): {err}") from None
    if sigma is None:
        raise InputError(f"{path}: no pair was fitted, so it has no PSF sigma; see its 'pairs' reasons")
    return float(sigma)
