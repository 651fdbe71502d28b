"""The filter stage: screen every raw Landsat/Sentinel-2 pair and say why each one is kept or not.

The seed filtered pairs by eye in a notebook and with hard-coded percentile tests. Here every
check is a threshold from ``params.filter``, every rejection carries a short reason code plus a
sentence naming the file and the measured value against its threshold, and a static HTML contact
sheet (satsr.data.review) lets a person add what the automatic checks missed to a committed
review file. Bad input never stops the stage: a corrupt file, a wrong band count or a missing
partner becomes a reason in the report, and the good pairs go through in the same run.

Outputs in ``out_dir``: ``report.csv`` (one row per manifest pair; later stages read ``lr_path``
and ``hr_path`` of accepted rows), ``summary.json`` (counts, DVC metrics), ``contact_sheet.html``
with ``quicklooks/``, and ``corrected/`` (shift-corrected LR files, when enabled).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio

from satsr.config import SCALE, FilterParams, Params
from satsr.data import review
from satsr.data.geotiff import Raster, RasterError, checked_write, encoding_of, read_raster
from satsr.data.manifest import read_manifest
from satsr.data.radiometry import Encoding
from satsr.data.registration import apply_shift, area_downsample, pearson_r, phase_shift
from satsr.errors import MissingInputError
from satsr.util import atomic_path

log = logging.getLogger(__name__)

REPORT_NAME = "report.csv"
SUMMARY_NAME = "summary.json"
SHEET_NAME = "contact_sheet.html"
QUICKLOOK_DIR = "quicklooks"
CORRECTED_DIR = "corrected"
TAG_SHIFT = "SATSR_SHIFT_CORRECTED"

#: Raw chips are written as uint16 DN or float32 reflectance (uint8 / int16 only with scale tags).
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32")
BANDS = 3  # red, green, blue

#: Every reason code the report can carry, with what it means.
REASONS: dict[str, str] = {
    "missing_lr": "the Landsat file of the pair does not exist",
    "missing_hr": "the Sentinel-2 file of the pair does not exist",
    "unreadable_lr": "the Landsat file is corrupt, truncated or not a GeoTIFF",
    "unreadable_hr": "the Sentinel-2 file is corrupt, truncated or not a GeoTIFF",
    "band_count": "a file does not have exactly 3 bands (red, green, blue)",
    "dtype": f"a file's data type is not one of {', '.join(SUPPORTED_DTYPES)}",
    "encoding": "a file's radiometric encoding (DN -> reflectance) cannot be told",
    "nan": "a file holds NaN/inf values that are not its declared nodata",
    "all_nodata": "a file has no valid pixel at all",
    "crs_mismatch": "the two files are in different coordinate reference systems",
    "origin_mismatch": "the upper-left corners differ by more than half an LR pixel",
    "pixel_size": "the LR pixel is not 3x the HR pixel",
    "size_not_3x": "the HR chip is not exactly 3x the LR chip in both directions",
    "nodata": "the share of fill/NaN pixels exceeds filter.max_nodata_fraction",
    "saturated": "the share of saturated pixels exceeds filter.max_saturated_fraction",
    "cloud": "the share of bright (cloud) pixels exceeds filter.max_cloud_fraction",
    "haze": "the blue haze percentile exceeds filter.max_haze_reflectance",
    "bright": "the visible bright percentile exceeds filter.max_bright_reflectance",
    "flat": "the HR chip is featureless (sharpness below filter.min_sharpness)",
    "misregistered": "LR and HR are shifted by more than filter.max_shift_lr_px",
    "low_correlation": "LR and HR disagree (change on the ground or different scenes)",
    "manual_review": "listed in the review file by a person",
    "internal_error": "the check itself failed; see detail",
}

METRIC_COLUMNS = [
    "lr_nodata_fraction",
    "hr_nodata_fraction",
    "lr_saturated_fraction",
    "hr_saturated_fraction",
    "lr_cloud_fraction",
    "hr_cloud_fraction",
    "lr_haze_reflectance",
    "hr_haze_reflectance",
    "lr_bright_reflectance",
    "hr_bright_reflectance",
    "shift_dy",
    "shift_dx",
    "shift_px",
    "shift_error",
    "correlation",
    "sharpness",
]

#: report.csv columns. ``lr_path``/``hr_path`` are what later stages read (LR may be corrected).
#: ``shift_dy``/``shift_dx`` register LR onto HR (see satsr.data.registration), in LR pixels;
#: ``correlation`` is measured after removing that shift.
REPORT_COLUMNS = [
    "pair_id",
    "status",
    "reasons",
    "detail",
    "note",
    "lr_path",
    "hr_path",
    *METRIC_COLUMNS,
    "demo_defect",
]


@dataclass(frozen=True)
class CheckSettings:
    """What checking one pair needs; small and picklable, so it travels to worker processes."""

    fp: FilterParams
    raw_dir: Path
    out_dir: Path
    ql_max: float
    ql_gamma: float

    @classmethod
    def from_params(cls, params: Params, raw_dir: Path, out_dir: Path) -> CheckSettings:
        png = params.png
        return cls(params.filter, Path(raw_dir), Path(out_dir), png.quicklook_max_reflectance, png.quicklook_gamma)


@dataclass
class _Side:
    key: str  # "lr" | "hr"
    file: str  # as listed in the manifest (relative to the raw folder)
    path: Path | None
    raster: Raster | None = None
    encoding: Encoding | None = None
    refl: np.ndarray | None = None  # (3, h, w) float32 reflectance, NaN = fill
    valid: np.ndarray | None = None  # (h, w) bool, None when every pixel is valid
    grey: np.ndarray | None = None  # (h, w) visible mean, NaN where any band is fill

    @property
    def label(self) -> str:
        return f"{self.key.upper()} {self.file or '(no file listed)'}"


@dataclass
class _Findings:
    codes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, code: str, detail: str) -> None:
        if code not in self.codes:
            self.codes.append(code)
        self.details.append(f"{code}: {detail}.")


# ---------------------------------------------------------------------------------- side checks
def _load_side(side: _Side, found: _Findings, row: dict[str, Any]) -> None:
    """Read and decode one file; structural problems become findings, never exceptions."""
    if side.path is None or not side.path.is_file():
        found.add(
            f"missing_{side.key}",
            f"{side.label} is missing, so the pair has no "
            f"{'Landsat' if side.key == 'lr' else 'Sentinel-2'} partner",
        )
        return
    try:
        r = read_raster(side.path)
    except RasterError as err:
        msg = str(err).removeprefix(f"{side.path}: ")
        found.add(f"unreadable_{side.key}", f"{side.label} could not be read: {msg}")
        return
    except Exception as err:  # noqa: BLE001 - any failure to read is a property of the file
        found.add(f"unreadable_{side.key}", f"{side.label} could not be read: {type(err).__name__}: {err}")
        return
    side.raster = r
    if r.data.shape[0] != BANDS:
        found.add(
            "band_count", f"{side.label} has {r.data.shape[0]} band(s), expected {BANDS} (red, green, blue)"
        )
        return
    dtype = str(r.data.dtype)
    if dtype not in SUPPORTED_DTYPES:
        found.add("dtype", f"{side.label} has data type {dtype}, supported: {', '.join(SUPPORTED_DTYPES)}")
        return
    try:
        enc = encoding_of(r)
    except RasterError as err:
        found.add("encoding", f"{side.label}: {str(err).removeprefix(f'{side.path}: ')}")
        return
    side.encoding = enc
    refl = enc.to_reflectance(r.data)
    if np.issubdtype(r.data.dtype, np.floating):
        nonfinite = ~np.isfinite(r.data)
        if nonfinite.any():
            declared = enc.nodata is not None and math.isnan(enc.nodata)
            if not declared:
                n = int(nonfinite.any(axis=0).sum())
                declared_as = (
                    "declares no nodata" if enc.nodata is None else f"declares nodata {enc.nodata:g}"
                )
                found.add(
                    "nan",
                    f"{side.label} has {n} pixel(s) ({n / nonfinite[0].size:.2%}) with NaN/inf "
                    f"values, but the file {declared_as}",
                )
            refl[nonfinite] = np.nan
    grey = (refl[0] + refl[1] + refl[2]) / np.float32(BANDS)
    invalid = np.isnan(grey)
    frac = float(invalid.mean())
    row[f"{side.key}_nodata_fraction"] = frac
    if frac >= 1.0:
        found.add("all_nodata", f"{side.label} has no valid pixel (all {invalid.size} pixels are nodata/NaN)")
        return
    side.refl = refl
    side.grey = grey
    side.valid = ~invalid if invalid.any() else None


def percentile(x: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) of a 1-D array with one partition.

    Several times faster than numpy's two-point partition on a 795 x 795 x 3 chip, which matters
    when the stage screens thousands of pairs.
    """
    n = x.size
    if n == 0:
        return math.nan
    pos = q / 100.0 * (n - 1)
    k = math.floor(pos)
    frac = pos - k
    part = np.partition(x, k)
    lo = float(part[k])
    if frac == 0 or k + 1 >= n:
        return lo
    return lo + (float(part[k + 1 :].min()) - lo) * frac


def _radiometry(side: _Side, fp: FilterParams, found: _Findings, row: dict[str, Any]) -> None:
    """Nodata, saturation, cloud, haze and bright tests of one decoded side (cheap)."""
    assert side.refl is not None and side.raster is not None
    refl, valid, k, label = side.refl, side.valid, side.key, side.label

    def pick(a: np.ndarray) -> np.ndarray:  # valid pixels of an (h, w) or (bands, h, w) array
        if valid is None:
            return a.reshape(-1) if a.ndim == 2 else a.reshape(a.shape[0], -1)
        return a[valid] if a.ndim == 2 else a[:, valid]

    frac = row[f"{k}_nodata_fraction"]
    if frac > fp.max_nodata_fraction:
        found.add("nodata", f"{label} has {frac:.2%} nodata/NaN pixels (max {fp.max_nodata_fraction:.2%})")

    if side.encoding is not None and not side.encoding.physical:
        # stretched imagery (e.g. 8-bit quicklook exports): values are not reflectance, so the
        # absolute thresholds below mean nothing; relative checks (shift, correlation) still run
        return
    data = side.raster.data
    sat = (refl >= 1.0).any(axis=0)
    if np.issubdtype(data.dtype, np.integer):
        sat |= (data == np.iinfo(data.dtype).max).any(axis=0)
    sat_frac = float(pick(sat).mean())
    row[f"{k}_saturated_fraction"] = sat_frac
    if sat_frac > fp.max_saturated_fraction:
        found.add(
            "saturated",
            f"{label} has {sat_frac:.2%} saturated pixels (DN at the type maximum or "
            f"reflectance >= 1; max {fp.max_saturated_fraction:.2%})",
        )

    vis = pick(refl)  # (3, n)
    grey = pick(side.grey)
    cloud = float((grey > fp.cloud_reflectance).mean())
    row[f"{k}_cloud_fraction"] = cloud
    if cloud > fp.max_cloud_fraction:
        found.add(
            "cloud",
            f"{label} has {cloud:.2%} of pixels with visible mean reflectance > "
            f"{fp.cloud_reflectance:g} (max {fp.max_cloud_fraction:.2%})",
        )
    haze = percentile(vis[2], fp.haze_percentile)
    row[f"{k}_haze_reflectance"] = haze
    if haze > fp.max_haze_reflectance:
        found.add(
            "haze",
            f"{label}: the {fp.haze_percentile:g}th percentile of blue reflectance is {haze:.3f} "
            f"(max {fp.max_haze_reflectance:g}), a haze veil",
        )
    bright = percentile(vis.reshape(-1), fp.bright_percentile)
    row[f"{k}_bright_reflectance"] = bright
    if bright > fp.max_bright_reflectance:
        found.add(
            "bright",
            f"{label}: the {fp.bright_percentile:g}th percentile of visible reflectance is "
            f"{bright:.3f} (max {fp.max_bright_reflectance:g})",
        )


# ---------------------------------------------------------------------------------- pair checks
def _geometry(lr: _Side, hr: _Side, found: _Findings) -> None:
    """CRS, origin, pixel size and the exact 3x size relation of two readable rasters."""
    a, b = lr.raster, hr.raster
    assert a is not None and b is not None
    if a.crs and b.crs and a.crs != b.crs:
        found.add(
            "crs_mismatch", f"{lr.label} is in {a.crs.to_string()} but {hr.label} is in {b.crs.to_string()}"
        )
    elif bool(a.crs) == bool(b.crs):
        ddx, ddy = b.transform.c - a.transform.c, b.transform.f - a.transform.f
        tol = a.pixel_size / 2
        if max(abs(ddx), abs(ddy)) > tol:
            found.add(
                "origin_mismatch",
                f"the upper-left corner of {hr.label} is offset by ({ddx:g}, {ddy:g}) "
                f"CRS units from {lr.label} (max {tol:g}, half an LR pixel)",
            )
        if a.crs and b.crs and b.pixel_size > 0:
            ratio = a.pixel_size / b.pixel_size
            if abs(ratio - SCALE) > 0.01 * SCALE:
                found.add(
                    "pixel_size",
                    f"{lr.label} has {a.pixel_size:g} and {hr.label} {b.pixel_size:g} CRS-unit "
                    f"pixels: ratio {ratio:.3f}, expected {SCALE}",
                )
    if (b.height, b.width) != (SCALE * a.height, SCALE * a.width):
        found.add(
            "size_not_3x",
            f"{hr.label} is {b.width}x{b.height} px and {lr.label} {a.width}x{a.height} px: "
            f"ratio {b.width / a.width:.3f} x {b.height / a.height:.3f}, expected exactly {SCALE}x "
            f"({SCALE * a.width}x{SCALE * a.height})",
        )


def sharpness_index(grey: np.ndarray) -> float:
    """The seed's sharpness index: mean gradient magnitude (np.gradient) of a grey image, NaN-aware."""
    gy, gx = np.gradient(grey)
    mag = np.sqrt(gx * gx + gy * gy)
    return float(np.nanmean(mag)) if np.isnan(mag).any() else float(mag.mean())


def _write_corrected(side: _Side, shifted: np.ndarray, dest: Path, dy: float, dx: float) -> None:
    """Write the shift-corrected LR like its source (profile, band names, scale/offset, tags)."""
    assert side.raster is not None and side.encoding is not None
    data = side.encoding.from_reflectance(shifted)
    with rasterio.open(side.raster.path) as src:
        profile = src.profile
        descriptions, scales, offsets, tags = src.descriptions, src.scales, src.offsets, src.tags()
    profile.update(driver="GTiff", dtype=str(data.dtype))
    tags[TAG_SHIFT] = f"dy={dy:.4f} dx={dx:.4f} (LR px, registers LR onto HR)"
    with checked_write(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
        dst.scales = scales
        dst.offsets = offsets
        dst.update_tags(**tags)


def _pairwise(lr: _Side, hr: _Side, s: CheckSettings, found: _Findings, row: dict[str, Any]) -> None:
    """Sharpness, registration, correlation and (optionally) shift correction of a clean pair."""
    assert lr.grey is not None and hr.grey is not None and lr.refl is not None
    fp = s.fp
    hr_grey = hr.grey
    sharp = sharpness_index(hr_grey)
    row["sharpness"] = sharp
    if sharp < fp.min_sharpness:
        found.add(
            "flat",
            f"{hr.label} is featureless: sharpness (mean gradient magnitude of grey reflectance) "
            f"{sharp:.5f} < {fp.min_sharpness:g}",
        )
        return
    ref = area_downsample(hr_grey, SCALE, nan_aware=True)
    lr_grey = lr.grey
    dy, dx, err = phase_shift(ref, lr_grey, fp.upsample_factor)
    shift = math.hypot(dy, dx)
    row.update(shift_dy=dy, shift_dx=dx, shift_px=shift, shift_error=err)
    # Correlate after removing the measured shift, so that low r means change, not misregistration.
    m = math.ceil(max(abs(dy), abs(dx))) + 1 if math.isfinite(shift) else 0
    if math.isfinite(shift) and 2 * m < min(ref.shape) - 4:
        aligned = apply_shift(lr_grey, dy, dx, order=1)
        r = pearson_r(ref[m:-m, m:-m], aligned[m:-m, m:-m])
    else:
        r = pearson_r(ref, lr_grey)
    row["correlation"] = r
    pair = f"grey {lr.label} vs {hr.label} area-downsampled to 30 m"
    if not math.isfinite(r) or r < fp.min_correlation:
        found.add(
            "low_correlation",
            f"{pair}: Pearson r = {r:.3f} after removing the measured shift "
            f"(min {fp.min_correlation:g}); change on the ground or different scenes",
        )
        return
    if not math.isfinite(shift):
        found.add("misregistered", f"{pair}: the shift could not be measured (featureless image)")
        return
    correctable = fp.correct_shift and shift <= fp.max_correctable_shift_lr_px
    if shift > fp.max_shift_lr_px and not correctable:
        hint = (
            f"only shifts up to {fp.max_correctable_shift_lr_px:g} px are corrected"
            if fp.correct_shift
            else "filter.correct_shift is off"
        )
        found.add(
            "misregistered",
            f"{pair}: shifted by {shift:.2f} LR px (dy {dy:+.2f}, dx {dx:+.2f}; "
            f"max {fp.max_shift_lr_px:g}; {hint})",
        )
        return
    if correctable and shift > 0:
        dest = s.out_dir / CORRECTED_DIR / lr.file
        _write_corrected(lr, apply_shift(lr.refl, dy, dx), dest, dy, dx)
        row["lr_path"] = str(dest)
        row["note"] = "shift_corrected"


# ---------------------------------------------------------------------------------- one pair
def _path(raw_dir: Path, name: object) -> tuple[str, Path | None]:
    if not isinstance(name, str) or not name.strip():
        return "", None
    return name, raw_dir / name


def check_pair(pair_id: str, lr_file: object, hr_file: object, s: CheckSettings) -> dict[str, Any]:
    """Run every check on one pair; returns its report row (without the manual review)."""
    lr_name, lr_path = _path(s.raw_dir, lr_file)
    hr_name, hr_path = _path(s.raw_dir, hr_file)
    row: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, math.nan)
    row.update(pair_id=pair_id, note="", lr_path=str(lr_path or ""), hr_path=str(hr_path or ""))
    found = _Findings()
    lr, hr = _Side("lr", lr_name, lr_path), _Side("hr", hr_name, hr_path)
    for side in (lr, hr):
        _load_side(side, found, row)
    if lr.raster is not None and hr.raster is not None:
        _geometry(lr, hr, found)
    for side in (lr, hr):
        if side.refl is not None:
            _radiometry(side, s.fp, found, row)
    if not found.codes and lr.refl is not None and hr.refl is not None:  # expensive checks: usable pairs only
        _pairwise(lr, hr, s, found, row)
    looks = {}
    for side in (lr, hr):
        if side.refl is not None:
            name = f"{review.safe_name(pair_id)}_{side.key}.png"
            review.save_png(
                review.quicklook(side.refl, s.fp.quicklook_px, s.ql_max, s.ql_gamma),
                s.out_dir / QUICKLOOK_DIR / name,
            )
            looks[side.key] = f"{QUICKLOOK_DIR}/{name}"
    row.update(
        reasons=";".join(found.codes),
        detail=" ".join(found.details),
        _ql_lr=looks.get("lr"),
        _ql_hr=looks.get("hr"),
    )
    return row


def _safe_check(job: tuple[str, object, object], s: CheckSettings) -> dict[str, Any]:
    """check_pair that turns any unexpected exception into an ``internal_error`` row."""
    try:
        return check_pair(*job, s)
    except Exception as err:  # noqa: BLE001 - one broken pair must not stop the stage
        return _error_row(job, s, f"unexpected {type(err).__name__} while checking: {err}")


def _error_row(job: tuple[str, object, object], s: CheckSettings, detail: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(METRIC_COLUMNS, math.nan)
    lr, hr = _path(s.raw_dir, job[1])[1], _path(s.raw_dir, job[2])[1]
    row.update(
        pair_id=job[0],
        note="",
        lr_path=str(lr or ""),
        hr_path=str(hr or ""),
        reasons="internal_error",
        detail=f"internal_error: {detail}.",
        _ql_lr=None,
        _ql_hr=None,
    )
    return row


def _limit_blas_threads() -> Any:
    """One BLAS thread per process: the pairs are the parallel unit, and OpenBLAS threads on small
    matrices (phase correlation, dot products) are several times slower here than one thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it only speed suffers
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _init_worker() -> None:
    global _WORKER_LIMITS
    _WORKER_LIMITS = _limit_blas_threads()


_WORKER_LIMITS: Any = None


def _run_jobs(jobs: list[tuple[str, object, object]], s: CheckSettings, workers: int) -> list[dict[str, Any]]:
    """Check pairs in parallel; a crashed worker costs only the pairs it was given, retried alone."""
    if workers <= 1 or len(jobs) <= 1:
        with _limit_blas_threads():
            return [_safe_check(j, s) for j in jobs]
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_init_worker) as ex:
        futures = [ex.submit(_safe_check, j, s) for j in jobs]
        for i, fut in enumerate(futures):
            try:
                results[i] = fut.result()
            except Exception:  # noqa: BLE001 - BrokenProcessPool: retried below, one by one
                results[i] = None
    for i, res in enumerate(results):
        if res is None:
            try:
                with ProcessPoolExecutor(max_workers=1, initializer=_init_worker) as ex:
                    results[i] = ex.submit(_safe_check, jobs[i], s).result()
            except Exception as err:  # noqa: BLE001 - the pair itself kills its worker
                results[i] = _error_row(
                    jobs[i],
                    s,
                    f"the worker process died ({type(err).__name__}), "
                    "probably a crash in GDAL on a corrupt file",
                )
    return [r for r in results if r is not None]


# ---------------------------------------------------------------------------------- the stage
def _apply_review(report: pd.DataFrame, review_file: str) -> int:
    """Reject the pairs listed in the review file; warn on ids not in the manifest."""
    entries = review.read_review_file(review_file)
    if not entries:
        return 0
    index = {pid: i for i, pid in enumerate(report["pair_id"])}
    n = 0
    for e in entries:
        if e.pair_id not in index:
            log.warning("%s:%d: pair_id %r is not in the manifest; ignored", review_file, e.line, e.pair_id)
            continue
        i = report.index[index[e.pair_id]]
        reasons = report.at[i, "reasons"]
        report.at[i, "reasons"] = f"{reasons};manual_review" if reasons else "manual_review"
        detail = f"manual_review: listed in the review file {review_file} (line {e.line})."
        report.at[i, "detail"] = f"{report.at[i, 'detail']} {detail}".strip()
        n += 1
    return n


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def summarize(report: pd.DataFrame) -> dict[str, Any]:
    """Counts for summary.json (DVC metrics): totals, per reason (every code, zeros too)."""
    n = len(report)
    accepted = report[report["status"] == "accepted"]
    counts = Counter(c for r in report["reasons"].fillna("") for c in r.split(";") if c)
    out: dict[str, Any] = {
        "pairs": n,
        "accepted": len(accepted),
        "rejected": n - len(accepted),
        "accepted_fraction": round(len(accepted) / n, 4) if n else 0.0,
        "shift_corrected": int((report["note"] == "shift_corrected").sum()),
        "reasons": {code: int(counts.get(code, 0)) for code in REASONS},
        "accepted_median_shift_px": _nan_to_none(accepted["shift_px"].median()) if len(accepted) else None,
        "accepted_median_correlation": _nan_to_none(accepted["correlation"].median())
        if len(accepted)
        else None,
    }
    planted = report["demo_defect"].fillna("").astype(str) != ""
    if planted.any():
        rejected = report["status"] == "rejected"
        out["demo"] = {
            "planted_defects": int(planted.sum()),
            "planted_rejected": int((planted & rejected).sum()),
            "clean_rejected": int((~planted & rejected).sum()),
        }
    return out


def _check_some_files(raw_dir: Path, jobs: list[tuple[str, Any, Any]]) -> None:
    """A pair whose file is missing is *rejected* (a partial download); a raw folder with none of its
    files is a missing input (not checked out, wrong folder), not 100 % rejections."""
    files = [raw_dir / str(f) for _, lr, hr in jobs for f in (lr, hr) if isinstance(f, str) and f]
    if jobs and not any(f.is_file() for f in files):
        first = files[0] if files else raw_dir / "manifest.csv"
        raise MissingInputError(
            f"{first}: raw file not found (none of the {len(jobs)} pair(s) of {raw_dir / 'manifest.csv'} has its "
            "GeoTIFFs; expected the source stage's files: run `dvc checkout source` or `dvc repro source`)")


def run_filter(params: Params, raw_dir: Path, out_dir: Path) -> pd.DataFrame:
    """Screen every pair of ``raw_dir/manifest.csv``; write report, summary, contact sheet."""
    t0 = time.perf_counter()
    fp = params.filter
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = read_manifest(raw_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in (QUICKLOOK_DIR, CORRECTED_DIR):  # owned by this stage: no stale files from older runs
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    s = CheckSettings.from_params(params, raw_dir, out_dir)
    jobs = list(zip(manifest["pair_id"].astype(str), manifest["lr_file"], manifest["hr_file"]))
    _check_some_files(raw_dir, jobs)
    workers = params.png.workers
    rows = _run_jobs(jobs, s, workers)

    report = pd.DataFrame(rows)
    report["demo_defect"] = manifest["demo_defect"].fillna("").astype(str).to_numpy()
    looks = {r["pair_id"]: (r["_ql_lr"], r["_ql_hr"]) for r in rows}
    report = report.drop(columns=["_ql_lr", "_ql_hr"])
    manual = _apply_review(report, fp.review_file)
    report["status"] = np.where(report["reasons"] == "", "accepted", "rejected")
    report = report[REPORT_COLUMNS]

    with atomic_path(out_dir / REPORT_NAME) as tmp:
        report.to_csv(tmp, index=False, float_format="%.6g")
    summary = summarize(report)
    with atomic_path(out_dir / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")

    shown = review.select_for_sheet(report, fp.contact_sheet_max_pairs)
    keep = set(shown["pair_id"])
    for pid, pngs in looks.items():
        if pid not in keep:
            for p in pngs:
                if p:
                    (out_dir / p).unlink(missing_ok=True)
    top = ", ".join(f"{c} {k}" for c, k in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]) if k)
    review.write_contact_sheet(
        shown,
        out_dir / SHEET_NAME,
        {pid: looks[pid] for pid in keep},
        fp.review_file,
        fp.quicklook_px,
        stretch=(
            f"fixed stretch 0..{params.png.quicklook_max_reflectance:g} reflectance, gamma "
            f"{params.png.quicklook_gamma:g}; LR and HR shown at the same size"
        ),
        hidden=len(report) - len(shown),
        summary_lines=[
            f"{summary['pairs']} pairs: {summary['accepted']} accepted, {summary['rejected']} rejected",
            f"reasons: {top or 'none'}",
        ],
    )
    dt = time.perf_counter() - t0
    log.info(
        "filter: %d pairs -> %d accepted, %d rejected (%s)%s%s; %.3f s/pair with %d worker(s); report %s",
        summary["pairs"],
        summary["accepted"],
        summary["rejected"],
        top or "no rejections",
        f"; {summary['shift_corrected']} shift-corrected" if summary["shift_corrected"] else "",
        f"; {manual} by manual review" if manual else "",
        dt / max(1, len(report)),
        workers,
        out_dir / REPORT_NAME,
    )
    return report
