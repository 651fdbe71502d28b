"""The per-pair checks of the filter stage: load both sides, test radiometry and geometry, register.

Every check is a threshold from ``params.filter``; a failed check becomes a reason code (``REASONS``)
plus a sentence naming the file and the measured value against its threshold, never an exception.
``check_pair`` returns one report row and writes the pair's quicklooks (and its shift-corrected LR,
when enabled) under the stage's output folder; satsr.data.filters.run runs it over the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from satsr.config import SCALE, FilterParams, Params
from satsr.data import review
from satsr.data.geotiff import Raster, RasterError, checked_write, encoding_of, read_raster
from satsr.data.radiometry import Encoding
from satsr.data.registration import apply_shift, area_downsample, pearson_r, phase_shift

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


def safe_check(job: tuple[str, object, object], s: CheckSettings) -> dict[str, Any]:
    """check_pair that turns any unexpected exception into an ``internal_error`` row."""
    try:
        return check_pair(*job, s)
    except Exception as err:  # noqa: BLE001 - one broken pair must not stop the stage
        return error_row(job, s, f"unexpected {type(err).__name__} while checking: {err}")


def error_row(job: tuple[str, object, object], s: CheckSettings, detail: str) -> dict[str, Any]:
    """The row of a pair whose check never finished: reported as ``internal_error``, not lost."""
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
