"""The ``folder`` provider: import an existing dataset into the raw layout (GeoTIFF chips + manifest).

Three layouts are understood (``source.folder.layout``):

* ``seed_tif``: the seed project's Earth Engine export, ``<id>_<date>_L8_<lon>_<lat>.tif`` beside
  ``<id>_<date>_S2_<lon>_<lat>.tif``. Imported unchanged (one chip per file): its 1-3 px size
  mismatches are kept and only logged, so the filter stage rejects them with a reason instead of
  this stage hiding them.
* ``seed_png``: the seed's ``train_LR``/``train_HR``/``val_LR``/``val_HR`` folders (8-bit stretched
  or satsr's own 16-bit PNGs). Not georeferenced: chips get a local pixel grid (LR 30 units, HR 10
  units, origin 0,0, no CRS) and keep the dataset's split in ``source_split``.
* ``pattern``: any pairs matched by ``lr_pattern``/``hr_pattern`` (named group ``key``). Large
  co-located scenes are cut into chips of ``source.lr_size`` LR pixels (HR exactly 3x, each chip
  with its own transform) when ``cut_into_chips``, inside the two files' common exactly nested
  window (satsr.data.nesting): an integer HR-pixel origin offset or a non-3x extent that the
  georeferences state is cut at the matching HR offset, refined by content within
  ``coregister_hr_px`` whole HR pixels; only the sub-HR-pixel residual is left to the filter.

Chips keep their source dtype and record their radiometric encoding (satsr tag + GDAL
scale/offset), so later stages decode them with ``geotiff.encoding_of``. A missing partner or an
unreadable file never stops the import: it is logged, and the pair still gets a manifest row with
an empty file name so the filter stage reports it (``missing_lr`` / ``missing_hr``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from satsr.config import HR_PIXEL_M, LR_PIXEL_M, SCALE, Params, ParamsError
from satsr.data import nesting
from satsr.data.geotiff import (
    TAG_ENCODING,
    TAG_SENSOR,
    Raster,
    RasterError,
    checked_write,
    encoding_of,
    write_geotiff,
)
from satsr.data.grids import Grid
from satsr.data.manifest import (
    MANIFEST_NAME,
    is_complete,
    pair_row,
    prune_unlisted,
    read_manifest,
    write_manifest,
)
from satsr.data.radiometry import (
    BY_NAME,
    L8_C2_L2,
    LANDSAT_RGB,
    REFLECTANCE,
    S2_RGB,
    S2_SR,
    UINT8_STRETCHED,
    UINT16_STRETCHED,
    Encoding,
)
from satsr.errors import MissingInputError
from satsr.util import atomic_path, sha256_file

log = logging.getLogger(__name__)



def is_pseudo_reflectance(r: Raster) -> bool:
    """True for chips imported from 8/16-bit stretched imagery (satsr encoding tag)."""
    enc = BY_NAME.get(r.tags.get(TAG_ENCODING, ""))
    return enc is not None and not enc.physical


#: HR chip tag: how its window was nested into the LR chip's (satsr.data.nesting).
TAG_NESTING = "SATSR_NESTING"

#: Written beside the manifest: the import settings the existing chips were made with. A change
#: (other folder, other lr_size, forced encoding...) invalidates every chip instead of resuming.
FINGERPRINT_NAME = ".folder_import.json"

SEED_TIF_RE = re.compile(
    r"^(?P<id>.+?)_(?P<date>[^_]+)_(?P<sensor>L8|S2)_(?P<lon>-?\d+(?:\.\d+)?)_(?P<lat>-?\d+(?:\.\d+)?)\.tiff?$",
    re.IGNORECASE,
)
SEED_PNG_SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DATE_RES = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"),
)

LAYOUT_HELP = {
    "seed_tif": "files named <id>_<date>_L8_<lon>_<lat>.tif and <id>_<date>_S2_<lon>_<lat>.tif",
    "seed_png": "sub-folders train_LR, train_HR, val_LR, val_HR (optionally test_*) with the same file names "
                "in LR and HR",
    "pattern": "files matching source.folder.lr_pattern / hr_pattern (regexes with a named group 'key')",
}


# ------------------------------------------------------------------------------------ plumbing
@dataclass
class _Side:
    """One side (LR or HR) of a planned pair: which file, which window of it."""

    src: Path | None
    window: Window | None = None  # None = the whole file
    local_pixel: float | None = None  # set for non-georeferenced inputs: local grid pixel size
    transform: Affine | None = None  # the chip's grid when it is not the window's own (nested HR chips)
    tags: dict[str, str] = field(default_factory=dict)  # extra chip tags


@dataclass
class _Job:
    """A pair to write: one manifest row, one or two chips."""

    pair_id: str
    lr: _Side
    hr: _Side
    region: str = ""
    lr_date: str = ""
    hr_date: str = ""
    source_split: str = ""
    lonlat_hint: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)


def _safe_id(text: str) -> str:
    """Filesystem-safe pair id (the manifest contract)."""
    return _SAFE.sub("_", text).strip("_.") or "pair"


def parse_date(text: str) -> str:
    """ISO date found in a file name (YYYY-MM-DD or YYYYMMDD), else ''."""
    for rx in _DATE_RES:
        for m in rx.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
            except ValueError:
                continue
    return ""


def _open_quiet(path: Path):
    """rasterio.open without the NotGeoreferencedWarning that every PNG raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def _header(path: Path) -> tuple[int, int, CRS | None, Affine]:
    with _open_quiet(path) as src:
        return src.width, src.height, src.crs, src.transform


def _read(path: Path, window: Window | None) -> Raster:
    """Read a file or a window of it as a Raster (transform of the window); errors name the file."""
    try:
        with _open_quiet(path) as src:
            data = src.read(window=window)
            tr = window_transform(window, src.transform) if window is not None else src.transform
            return Raster(
                path=path,
                data=data,
                crs=src.crs,
                transform=tr,
                nodata=src.nodata,
                band_names=tuple(d or "" for d in src.descriptions),
                tags=src.tags(),
                scales=tuple(src.scales),
                offsets=tuple(src.offsets),
            )
    except (RasterioError, OSError) as err:
        raise RasterError(f"{path}: unreadable raster ({err})") from None


# ----------------------------------------------------------------------------------- encodings
def _forced(name: str, r: Raster) -> Encoding:
    """A forced encoding (params) adapted to the file's dtype and nodata."""
    base = {
        "l8_c2_dn": L8_C2_L2,
        "s2_dn": S2_SR,
        "reflectance": REFLECTANCE,
        "uint8_stretched": UINT8_STRETCHED,
    }[name]
    nodata = r.nodata if r.nodata is not None else base.nodata
    if (
        nodata is not None
        and np.issubdtype(r.data.dtype, np.floating)
        and base.nodata == 0
        and r.nodata is None
    ):
        nodata = None  # float DN exports rarely use 0 as fill; do not invent one
    return dataclasses.replace(base, dtype=str(r.data.dtype), nodata=nodata)


def detect_encoding(
    r: Raster, forced: str = "auto", side: str = "lr", png_mapping: tuple[float, float] | None = None
) -> Encoding:
    """The encoding of a source raster: forced by params, else read from the file.

    ``auto``: satsr tag or GDAL scale/offset (``geotiff.encoding_of``); float -> reflectance;
    uint8 -> 8-bit stretched pseudo-reflectance; uint16 PNG with a known satsr mapping -> that
    mapping; other integers without metadata -> a logged guess (C2 DN for LR when the median DN
    is above the 0-reflectance DN 7273, else DN/10000).
    """
    if forced != "auto":
        return _forced(forced, r)
    dtype = str(r.data.dtype)
    tag = r.tags.get(TAG_ENCODING, "")
    if tag == UINT8_STRETCHED.name and r.scales:
        return Encoding(tag, dtype, r.scales[0], r.offsets[0] if r.offsets else 0.0, r.nodata)
    has_scale = any(s != 1.0 for s in r.scales) or any(o != 0.0 for o in r.offsets)
    if tag in BY_NAME or has_scale or np.issubdtype(r.data.dtype, np.floating):
        enc = encoding_of(r)
        return dataclasses.replace(enc, dtype=dtype, nodata=r.nodata if r.nodata is not None else enc.nodata)
    if dtype == "uint8":
        return dataclasses.replace(UINT8_STRETCHED, nodata=r.nodata)
    if dtype == "uint16" and png_mapping is not None:
        lo, hi = png_mapping
        return Encoding("png16_reflectance", "uint16", (hi - lo) / 65535.0, lo, r.nodata)
    if dtype == "uint16" and r.path.suffix.lower() == ".png":
        return dataclasses.replace(UINT16_STRETCHED, nodata=r.nodata)
    valid = r.data[r.data != r.nodata] if r.nodata is not None else r.data
    median = float(np.median(valid)) if valid.size else 0.0
    guess = L8_C2_L2 if side == "lr" and median > 7273 else S2_SR
    log.warning(
        "%s: %s without scale/offset metadata; guessing %s (median DN %.0f). Set source.folder.%s_encoding "
        "to be sure.",
        r.path,
        dtype,
        guess.name,
        median,
        side,
    )
    return dataclasses.replace(guess, dtype=dtype, nodata=r.nodata if r.nodata is not None else guess.nodata)


# ------------------------------------------------------------------------------------ writing
def _is_simple_grid(crs: CRS | None, tr: Affine) -> bool:
    return (
        crs is not None and tr.b == 0 and tr.d == 0 and tr.a > 0 and math.isclose(-tr.e, tr.a, rel_tol=1e-9)
    )


def write_chip(
    path: Path,
    data: np.ndarray,
    crs: CRS | None,
    tr: Affine,
    enc: Encoding,
    band_names: tuple[str, ...],
    tags: dict[str, object],
) -> str:
    """Write a chip atomically with its encoding; returns its sha256.

    North-up square-pixel georeferenced chips go through ``geotiff.write_geotiff`` (the one raw
    format); others (no CRS, rectangular pixels) get the same profile with their own transform.
    """
    if _is_simple_grid(crs, tr):
        grid = Grid(crs.to_string(), tr.c, tr.f, tr.a, data.shape[2], data.shape[1])
        return write_geotiff(path, data, grid, enc, band_names, tags)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": enc.dtype,
        "transform": tr,
        "nodata": enc.nodata,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    if crs is not None:
        profile["crs"] = crs
    if data.shape[1] >= 256 and data.shape[2] >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with checked_write(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(data.astype(enc.dtype, copy=False))
                dst.descriptions = band_names
                dst.scales = [enc.scale] * len(band_names)
                dst.offsets = [enc.offset] * len(band_names)
                dst.update_tags(**{TAG_ENCODING: enc.name}, **{k: str(v) for k, v in tags.items()})
    return sha256_file(path)


def _band_names(r: Raster, side: str) -> tuple[str, ...]:
    if r.band_names and all(r.band_names) and len(r.band_names) == r.data.shape[0]:
        return r.band_names
    if r.data.shape[0] == 3:
        return LANDSAT_RGB if side == "lr" else S2_RGB
    return tuple(f"band{i + 1}" for i in range(r.data.shape[0]))


def _centre_lonlat(crs: CRS | None, tr: Affine, width: int, height: int) -> tuple[float, float] | None:
    if crs is None:
        return None
    from rasterio.warp import transform as warp_transform

    cx = tr.c + tr.a * width / 2.0 + tr.b * height / 2.0
    cy = tr.f + tr.d * width / 2.0 + tr.e * height / 2.0
    xs, ys = warp_transform(crs, "EPSG:4326", [cx], [cy])
    return float(xs[0]), float(ys[0])


# --------------------------------------------------------------------------------- discovering
def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _nothing_found(root: Path, layout: str, extra: str = "") -> FileNotFoundError:
    return FileNotFoundError(
        f"source.folder.path={root}: nothing matches layout '{layout}' (expected {LAYOUT_HELP[layout]}){extra}"
    )


def _plan_seed_tif(root: Path) -> list[_Job]:
    """Pair the seed's exports by id+date+lon+lat, else by id+location (S2 on another date)."""
    sides: dict[str, dict[tuple, Path]] = {"L8": {}, "S2": {}}
    meta: dict[Path, re.Match] = {}
    ignored = 0
    for p in _files(root, (".tif", ".tiff")):
        m = SEED_TIF_RE.match(p.name)
        if not m:
            ignored += 1
            continue
        key = (m["id"], m["date"], round(float(m["lon"]), 4), round(float(m["lat"]), 4))
        sensor = m["sensor"].upper()
        if key in sides[sensor]:
            log.warning(
                "seed_tif: %s duplicates %s (same id, date and place); ignored", p, sides[sensor][key]
            )
            continue
        sides[sensor][key] = p
        meta[p] = m
    if not sides["L8"] and not sides["S2"]:
        raise _nothing_found(root, "seed_tif")
    if ignored:
        log.info("seed_tif: %d .tif file(s) in %s do not follow the seed naming; ignored", ignored, root)
    pairs: list[tuple[Path | None, Path | None]] = []
    l8_left = dict(sides["L8"])
    s2_left = dict(sides["S2"])
    for key in sorted(set(l8_left) & set(s2_left)):
        pairs.append((l8_left.pop(key), s2_left.pop(key)))
    # S2 taken on another date than L8 (the seed allowed up to 7 days): pair by id + place.
    by_place: dict[tuple, list[tuple]] = {}
    for key in s2_left:
        by_place.setdefault((key[0], key[2], key[3]), []).append(key)
    for key in sorted(l8_left):
        cands = by_place.get((key[0], key[2], key[3]), [])
        if not cands:
            continue
        d_l8 = parse_date(key[1])
        best = min(cands, key=lambda k: _days(d_l8, parse_date(k[1])) if d_l8 else 0)
        cands.remove(best)
        pairs.append((l8_left.pop(key), s2_left.pop(best)))
    pairs += [(p, None) for p in l8_left.values()] + [(None, p) for p in s2_left.values()]

    jobs = []
    for l8, s2 in pairs:
        m = meta[l8 if l8 is not None else s2]
        lr_date = parse_date(meta[l8]["date"]) if l8 else ""
        hr_date = parse_date(meta[s2]["date"]) if s2 else ""
        pid = _safe_id(f"{m['id']}_{m['date']}_{float(m['lon']):.4f}_{float(m['lat']):.4f}")
        jobs.append(
            _Job(
                pid,
                _Side(l8),
                _Side(s2),
                lr_date=lr_date,
                hr_date=hr_date,
                lonlat_hint=(float(m["lon"]), float(m["lat"])),
            )
        )
    return jobs


def _days(a: str, b: str) -> int:
    if not a or not b:
        return 10**6
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)


def _plan_seed_png(root: Path) -> list[_Job]:
    """Pair ``<split>_LR/<name>`` with ``<split>_HR/<name>``; the split is kept as source_split."""
    jobs = []
    found = False
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()} if root.is_dir() else {}
    for split in SEED_PNG_SPLITS:
        lr_dir, hr_dir = subdirs.get(f"{split}_lr"), subdirs.get(f"{split}_hr")
        if lr_dir is None and hr_dir is None:
            continue
        found = True
        lr = {p.name: p for p in _files(lr_dir, IMAGE_SUFFIXES)} if lr_dir else {}
        hr = {p.name: p for p in _files(hr_dir, IMAGE_SUFFIXES)} if hr_dir else {}
        for name in sorted(set(lr) | set(hr)):
            stem = Path(name).stem
            jobs.append(
                _Job(
                    _safe_id(f"{split}_{stem}"),
                    _Side(lr.get(name), local_pixel=LR_PIXEL_M),
                    _Side(hr.get(name), local_pixel=HR_PIXEL_M),
                    lr_date=parse_date(stem),
                    hr_date=parse_date(stem),
                    source_split=split,
                )
            )
    if not found or not jobs:
        raise _nothing_found(root, "seed_png")
    return jobs


def _plan_pattern(root: Path, params: Params) -> list[_Job]:
    """Pair files by the ``key`` group of the two regexes; cut large scenes into chips."""
    fp = params.source.folder
    try:
        lr_re, hr_re = re.compile(fp.lr_pattern), re.compile(fp.hr_pattern)
    except re.error as err:
        raise ParamsError(f"source.folder.lr_pattern/hr_pattern: invalid regex ({err})") from None
    for name, rx in (("lr_pattern", lr_re), ("hr_pattern", hr_re)):
        if "key" not in rx.groupindex:
            raise ParamsError(f"source.folder.{name}: {rx.pattern!r} needs a named group (?P<key>...)")
    lr: dict[str, Path] = {}
    hr: dict[str, Path] = {}
    for p in _files(root, IMAGE_SUFFIXES):
        for rx, side in ((lr_re, lr), (hr_re, hr)):
            m = rx.search(p.name)
            if m:
                key = m["key"]
                if key in side:
                    log.warning("pattern: %s has the same key %r as %s; ignored", p, key, side[key])
                else:
                    side[key] = p
                break
    if not lr and not hr:
        raise _nothing_found(root, "pattern", f"; lr_pattern={fp.lr_pattern!r}, hr_pattern={fp.hr_pattern!r}")
    jobs = []
    for key in sorted(set(lr) | set(hr)):
        jobs += _plan_scene(key, lr.get(key), hr.get(key), params)
    return jobs


def _plan_scene(key: str, lr: Path | None, hr: Path | None, params: Params) -> list[_Job]:
    """One job for the whole pair, or one per chip of the scene's exactly nested window.

    The chips are cut from the common window of the two files on their nested grids
    (satsr.data.nesting): an integer HR-pixel origin offset or a non-3x extent that the
    georeferences state is known geometry, so the HR window is cut at the matching offset. With
    ``source.folder.coregister_hr_px`` > 0 the offset is then refined by content (whole HR px, no
    resampling); the HR chip is written on the LR chip's grid and tagged with both offsets. The
    sub-HR-pixel residual is left to the filter's registration check."""
    base = _safe_id(key)
    d_lr, d_hr = (parse_date(lr.name) if lr else ""), (parse_date(hr.name) if hr else "")
    whole = [_Job(base, _Side(lr), _Side(hr), region=base, lr_date=d_lr, hr_date=d_hr)]
    fp = params.source.folder
    n = params.source.lr_size
    if not fp.cut_into_chips or lr is None or hr is None:
        return whole
    try:
        lw, lh, lcrs, ltr = _header(lr)
        hw, hh, hcrs, htr = _header(hr)
    except (RasterioError, OSError):
        return whole  # the unreadable file is reported when the job runs
    exact = (hw, hh) == (lw * SCALE, lh * SCALE)
    # Not georeferenced (PNG scenes): the same pixel window on both, when exactly 3x.
    georef = (0.0, 0.0) if lcrs is None and hcrs is None and exact else nesting.grid_offset(lcrs, ltr, hcrs, htr)
    if isinstance(georef, str):
        if not exact or lw > n or lh > n:
            log.warning("%s: LR and HR grids cannot nest (%s); imported whole (the filter will judge it)", key, georef)
        return whole
    oy, ox = round(georef[0]), round(georef[1])
    whole_px = max(abs(georef[0] - oy), abs(georef[1] - ox)) <= nesting.INTEGER_TOL_HR_PX
    if not whole_px:
        log.warning("%s: the HR grid origin is offset from LR by (%.2f, %.2f) HR px, not a whole number; cut at "
                    "(%d, %d) and the rest is left to the filter's registration check", key, *georef, oy, ox)
    if exact and (oy, ox) == (0, 0) and lw <= n and lh <= n:
        return whole  # already one exactly nested chip
    nest = nesting.nested_window((lw, lh), (hw, hh), (oy, ox), georef)
    if nest is None:
        log.warning("%s: LR and HR share no ground (HR offset (%d, %d) HR px); imported whole", key, oy, ox)
        return whole
    r_note = ""
    if fp.coregister_hr_px > 0:
        try:
            best, r_best, r_geo = nesting.content_offset(lr, hr, nest, fp.coregister_hr_px)
        except (RasterioError, OSError):
            return whole
        if best != nest.offset:
            moved = nesting.nested_window((lw, lh), (hw, hh), best, georef)
            if moved is not None:
                log.warning("%s: by content the HR lies %+d, %+d HR px from its georeferenced position (r %.3f -> %.3f "
                            "over the central window); HR chips are cut there, on the LR grid", key,
                            best[0] - oy, best[1] - ox, r_geo, r_best)
                nest = moved
        r_note = f"; content check r {r_geo:.4f} at the georeferenced offset, {r_best:.4f} at the one used"
    if (oy, ox) != (0, 0) or not exact:
        log.info("%s: HR origin (%.2f, %.2f) HR px from LR, HR %dx%d vs LR %dx%d: exactly nested common window LR "
                 "rows %d..%d, cols %d..%d", key, *georef, hw, hh, lw, lh, nest.lr_row, nest.lr_row + nest.rows - 1,
                 nest.lr_col, nest.lr_col + nest.cols - 1)
    rows = nesting.place_chips(nest.rows, n, fp.max_chip_overlap_lr_px)
    cols = nesting.place_chips(nest.cols, n, fp.max_chip_overlap_lr_px)
    left = (nest.rows - (rows[-1][0] + rows[-1][1]), nest.cols - (cols[-1][0] + cols[-1][1]))
    if any(left):
        log.info("%s: the %d x %d LR px common window does not divide by %d; %d bottom / %d right px left out",
                 key, nest.cols, nest.rows, n, left[0], left[1])
    tag = {TAG_NESTING: f"HR offset from LR by georeference (dy, dx) = ({georef[0]:.3f}, {georef[1]:.3f}) HR px; "
                        f"HR cut at ({nest.offset[0]}, {nest.offset[1]}) HR px{r_note}"}
    jobs = []
    for r, h in rows:
        for c, w in cols:
            lwin, hwin = nest.lr_window(r, c, h, w), nest.hr_window(r, c, h, w)
            lwt = window_transform(lwin, ltr)
            # The HR chip on the LR chip's grid: the same ground, exactly nested (equal to its own
            # georeference up to float rounding unless the content moved it). A fractional
            # georeferenced offset keeps the HR window's own grid: the filter sees the truth.
            hr_tr = (Affine(htr.a, 0.0, lwt.c, 0.0, htr.e, lwt.f) if whole_px or nest.offset != (oy, ox)
                     else None)
            jobs.append(_Job(f"{base}_r{int(lwin.row_off):05d}_c{int(lwin.col_off):05d}", _Side(lr, lwin),
                             _Side(hr, hwin, transform=hr_tr, tags=tag), region=base, lr_date=d_lr, hr_date=d_hr))
    log.info("%s: cut into %d chips of up to %d LR / %d HR px", key, len(jobs), n, n * SCALE)
    return jobs


# ------------------------------------------------------------------------------------- running
def _png_mapping(root: Path) -> tuple[float, float] | None:
    """(lo, hi) of satsr's own 16-bit PNG export, when re-importing it (encoding.json beside)."""
    p = root / "encoding.json"
    try:
        doc = json.loads(p.read_text())
        return float(doc["lo"]), float(doc["hi"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_side(
    job: _Job, side: str, out_dir: Path, forced: str, png_mapping, enc_cache: dict[Path, Encoding]
) -> dict | None:
    """Read, encode-detect and write one side; None (with a warning) if it is missing or unreadable.

    The encoding is decided once per source file, so all chips of a scene share it."""
    spec = job.lr if side == "lr" else job.hr
    if spec.src is None:
        return None
    try:
        r = _read(spec.src, spec.window)
        if r.data.ndim != 3 or r.data.shape[0] == 0:
            raise RasterError(f"{spec.src}: no bands")
        if spec.src.suffix.lower() == ".png" and r.data.shape[0] == 4:
            r.data = r.data[:3]  # drop the alpha band of RGBA PNGs
            r.band_names = r.band_names[:3]
        if spec.src not in enc_cache:
            enc_cache[spec.src] = detect_encoding(r, forced, side, png_mapping)
        enc = enc_cache[spec.src]
        crs, tr = r.crs, spec.transform or r.transform
        if spec.local_pixel is not None or crs is None:
            # Not georeferenced: a local grid where LR and HR cover the same extent.
            pix = spec.local_pixel or (LR_PIXEL_M if side == "lr" else HR_PIXEL_M)
            crs, tr = None, Affine(pix, 0.0, 0.0, 0.0, -pix, 0.0)
        name = f"{job.pair_id}_{side.upper()}.tif"
        tags = {
            TAG_SENSOR: "L8" if side == "lr" else "S2",
            "SOURCE_FILE": spec.src.name,
            "ACQUISITION_DATE": job.lr_date if side == "lr" else job.hr_date,
            **spec.tags,
        }
        if spec.window is not None:
            w = spec.window
            tags["SOURCE_WINDOW"] = f"{int(w.col_off)},{int(w.row_off)},{int(w.width)},{int(w.height)}"
        digest = write_chip(out_dir / name, r.data, crs, tr, enc, _band_names(r, side), tags)
    except (RasterError, RasterioError, OSError, ValueError) as err:
        log.warning(
            "folder: %s file %s could not be imported (%s); pair %s will be reported as missing_%s",
            side.upper(),
            spec.src,
            err,
            job.pair_id,
            side,
        )
        return None
    return {"file": name, "sha": digest, "width": r.width, "height": r.height, "crs": crs, "transform": tr}


def _row(job: _Job, lr: dict | None, hr: dict | None) -> dict:
    """The manifest row of a job (empty file + checksum for a missing side)."""
    ref = lr or hr
    lonlat = None
    crs_str, x0, y0 = "", math.nan, math.nan
    if ref is not None:
        lonlat = _centre_lonlat(ref["crs"], ref["transform"], ref["width"], ref["height"])
        crs_str = ref["crs"].to_string() if ref["crs"] is not None else ""
        x0, y0 = ref["transform"].c, ref["transform"].f
    if lonlat is None and job.lonlat_hint is not None:
        lonlat = job.lonlat_hint
    days = _days(job.lr_date, job.hr_date)
    return pair_row(
        pair_id=job.pair_id, provider="folder", region=job.region,
        lon=lonlat[0] if lonlat else math.nan, lat=lonlat[1] if lonlat else math.nan, crs=crs_str, x0=x0, y0=y0,
        lr_file=lr["file"] if lr else "", hr_file=hr["file"] if hr else "",
        lr_sha256=lr["sha"] if lr else "", hr_sha256=hr["sha"] if hr else "",
        lr_width=lr["width"] if lr else math.nan, lr_height=lr["height"] if lr else math.nan,
        hr_width=hr["width"] if hr else math.nan, hr_height=hr["height"] if hr else math.nan,
        lr_date=job.lr_date, hr_date=job.hr_date, days_apart=days if days < 10**6 else math.nan,
        lr_scene_id=job.lr.src.stem if job.lr.src else "", hr_scene_id=job.hr.src.stem if job.hr.src else "",
        source_split=job.source_split,
    )


def _fingerprint(params: Params, root: Path) -> str:
    fp = params.source.folder.model_dump(mode="json")
    doc = {"root": str(root), "folder": fp, "lr_size": params.source.lr_size, "version": 2}  # 2: nested windows
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def run(params: Params, out_dir: Path) -> pd.DataFrame:
    """Import ``source.folder.path`` into ``out_dir`` (resumable); returns the manifest written."""
    fp = params.source.folder
    if not fp.path or not str(fp.path).strip():
        raise ParamsError(
            f"source.folder.path: not set (expected the folder to import: layout '{fp.layout}' expects "
            f"{LAYOUT_HELP[fp.layout]})"
        )
    root = Path(fp.path).expanduser()
    if not root.is_dir():
        what = "a file, not a folder" if root.exists() else "folder not found"
        raise MissingInputError(
            f"source.folder.path: {root}: {what} (expected a folder; layout '{fp.layout}' expects "
            f"{LAYOUT_HELP[fp.layout]}; a relative path starts at the repository root)"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if root.resolve() == out_dir.resolve():
        raise ParamsError(f"source.folder.path={root} is the output folder itself; import from another folder")

    if fp.layout == "seed_tif":
        jobs = _plan_seed_tif(root)
    elif fp.layout == "seed_png":
        jobs = _plan_seed_png(root)
    else:
        jobs = _plan_pattern(root, params)
    seen: dict[str, int] = {}
    for job in jobs:  # keep ids unique even if two names sanitise alike
        k = seen.get(job.pair_id, 0)
        seen[job.pair_id] = k + 1
        if k:
            job.pair_id = f"{job.pair_id}-{k + 1}"

    fingerprint = _fingerprint(params, root)
    fp_path = out_dir / FINGERPRINT_NAME
    old: dict[str, dict] = {}
    if (
        fp_path.is_file()
        and fp_path.read_text().strip() == fingerprint
        and (out_dir / MANIFEST_NAME).is_file()
    ):
        try:
            old = {r["pair_id"]: r for r in read_manifest(out_dir).to_dict("records")}
        except (ValueError, OSError) as err:
            log.warning("folder: existing manifest unusable (%s); re-importing everything", err)
    png_mapping = _png_mapping(root) if fp.layout == "seed_png" else None

    rows, reused, mismatched, missing = [], 0, 0, 0
    enc_cache: dict[Path, Encoding] = {}
    for job in jobs:
        prev = old.get(job.pair_id)
        if prev is not None and is_complete(out_dir, prev):
            rows.append(prev)
            reused += 1
            continue
        lr = _write_side(job, "lr", out_dir, fp.lr_encoding, png_mapping, enc_cache)
        hr = _write_side(job, "hr", out_dir, fp.hr_encoding, png_mapping, enc_cache)
        if job.lr.src is None or job.hr.src is None:
            present = job.lr.src or job.hr.src
            log.warning(
                "folder: %s has no %s partner; kept so the filter reports it",
                present,
                "HR" if job.hr.src is None else "LR",
            )
        if lr is None or hr is None:
            missing += 1
        elif (hr["width"], hr["height"]) != (lr["width"] * SCALE, lr["height"] * SCALE):
            mismatched += 1
            log.warning(
                "folder: %s: HR %dx%d is not %dx LR %dx%d (off by %d x %d HR px); kept as is, the filter "
                "rejects non-%dx pairs",
                job.pair_id,
                hr["width"],
                hr["height"],
                SCALE,
                lr["width"],
                lr["height"],
                hr["width"] - SCALE * lr["width"],
                hr["height"] - SCALE * lr["height"],
                SCALE,
            )
        rows.append(_row(job, lr, hr))

    keep = {MANIFEST_NAME, FINGERPRINT_NAME}
    for r in rows:
        keep.update(x for x in (r["lr_file"], r["hr_file"]) if isinstance(x, str) and x)
    removed = prune_unlisted(out_dir, keep)
    write_manifest(out_dir, rows)
    with atomic_path(fp_path) as tmp:
        tmp.write_text(fingerprint + "\n")
    log.info(
        "folder: %d pairs from %s (%s): %d reused, %d written, %d with a missing/unreadable side, "
        "%d not exactly %dx, %d stale files removed",
        len(rows),
        root,
        fp.layout,
        reused,
        len(rows) - reused,
        missing,
        mismatched,
        SCALE,
        len(removed),
    )
    return _with_empty_strings(read_manifest(out_dir))


def _with_empty_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Missing files / checksums / dates as '' (not NaN), the contract with the filter stage."""
    for col in ("lr_file", "hr_file", "lr_sha256", "hr_sha256", "crs", "lr_date", "hr_date"):
        df[col] = df[col].astype(object).where(df[col].notna(), "")
    return df
