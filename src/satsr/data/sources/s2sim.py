"""The ``s2sim`` provider: REAL Sentinel-2 10 m chips with a SIMULATED Landsat 30 m partner.

Real pairs are few and never perfectly registered; real Sentinel-2 scenes are many. This provider
cuts real S2 rasters into chips and makes each chip's Landsat partner with the one sensor model
(:mod:`satsr.data.sensor`, the same code the ``demo`` provider and ``satsr calibrate`` use), with
the realistic extras real pairs show: LR noise, a per-band gain/offset mismatch, sub-pixel
misregistration and optionally a share of changed land cover. Every amplitude is a parameter
(``source.s2sim``); the PSF width may come from the calibration on real pairs (``calibrated``).

Inputs (``source.s2sim.inputs``): files, folders or globs of GeoTIFFs whose bands ``bands`` are
red, green, blue. Each file is decoded to reflectance by its own metadata (:func:`s2_encoding`),
never by a guess: GDAL band scale/offset, else satsr's encoding tag, else the Sentinel-2 product
tags (``QUANTIFICATION_VALUE`` / ``BOA_QUANTIFICATION_VALUE`` with ``BOA_ADD_OFFSET`` /
``RADIO_ADD_OFFSET``), else CF tags (``scale_factor`` / ``add_offset``), else a ``scale``/``offset``
given beside the path in params. 8-bit files are decoded (/255 without metadata) but flagged
NON-PHYSICAL: their chips are written in the stretched 16-bit encoding (so the filter skips its
absolute reflectance thresholds) and simulated without the HLS bandpass. Anything else without
metadata is an :class:`EncodingError` naming the file and what to add.

Grids: chips are cut on the file's own pixel grid. The HR chip is ``3 * lr_size`` file pixels;
the LR grid shares its upper-left corner and its pixel is exactly 3 file pixels (30 m for a 10 m
UTM file; for a file in a geographic CRS such as EPSG:4326 it is 3x the file's pixel in degrees,
recorded in the manifest's ``extra``). Chips step by the chip size (no overlap), starting one
kernel margin in from the upper-left corner. ``edge: drop`` (default) keeps only chips whose
margin -- the reach of the sensor kernel at the largest shift -- lies inside the raster;
``edge: reflect`` mirrors the raster by the margin first, so chips reach its edges. Chips with any
nodata or non-finite pixel in their margin are dropped (logged).

Outputs: the common raw layout and manifest (``provider=s2sim``, ``is_demo=False``), LR in the
Landsat C2 L2 encoding, HR in the S2 SR encoding (uint16 stretched for non-physical inputs), every
file tagged ``SATSR_SIMULATED`` on the LR side. The manifest's ``extra`` column holds what was
drawn for the chip (shift in HR px, per-band gain and offset, changed share) and where it came from.

Determinism and resume: chip (row, col) of a file draws from ``default_rng([seed, file, row,
col])`` with ``file`` from the file's sha256, so the output depends on neither worker order nor
paths. A rerun with the same settings and inputs keeps every pair whose files match the manifest
checksums; a change of settings or of an input file remakes them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform

from satsr.config import SCALE, Params, S2SimInput, S2SimParams
from satsr.data import manifest, sensor
from satsr.data.geotiff import TAG_SENSOR, write_geotiff
from satsr.data.grids import Grid
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR, UINT16_STRETCHED
from satsr.errors import InputError, MissingInputError
from satsr.util import atomic_path, sha256_file

log = logging.getLogger(__name__)

PROVIDER = "s2sim"
#: Bump when the chip cutting or the simulation changes: older chips are then made again.
GENERATOR_VERSION = 1
FINGERPRINT_NAME = ".s2sim.json"
TAG_SIMULATED = "SATSR_SIMULATED"
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")
#: Sentinel-2 product metadata names (ESA L1C / L2A), read from dataset or band tags.
QUANTIFICATION_TAGS = ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
ADD_OFFSET_TAGS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
#: CF convention (netCDF/HDF exports): value = DN * scale_factor + add_offset.
CF_TAGS = ("scale_factor", "add_offset")
HOW_TO_DOCUMENT = (
    "set the GDAL band scale/offset (reflectance = DN * scale + offset), e.g. "
    "`gdal_edit.py -scale 0.0001 -offset 0 FILE` for L1C/L2A DN, or the Sentinel-2 tags "
    "QUANTIFICATION_VALUE (+ BOA_ADD_OFFSET / RADIO_ADD_OFFSET), or the CF tags scale_factor/add_offset, "
    "or give it in params: source.s2sim.inputs: [{path: FILE, scale: 0.0001, offset: 0.0}]"
)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_STREAM = 97  # random stream of this provider


class EncodingError(InputError):
    """A Sentinel-2 raster whose DN -> reflectance mapping is not recorded anywhere."""


@dataclass(frozen=True)
class S2Decoding:
    """Per-band reflectance = DN * scale + offset of one input file, and how it was found."""

    scale: tuple[float, ...]
    offset: tuple[float, ...]
    nodata: float | None
    physical: bool
    how: str

    def to_reflectance(self, dn: np.ndarray) -> np.ndarray:
        """(bands, h, w) DN -> float32 reflectance, NaN at nodata and non-finite pixels."""
        refl = dn.astype(np.float32)
        bad = ~np.isfinite(refl)
        if self.nodata is not None and not (isinstance(self.nodata, float) and math.isnan(self.nodata)):
            bad |= dn == self.nodata
        scale, offset = (np.asarray(v, np.float32)[:, None, None] for v in (self.scale, self.offset))
        refl = refl * scale + offset
        refl[bad] = np.nan
        return refl


# ------------------------------------------------------------------------------------ encodings
def _tag_float(tags: dict[str, str], names: tuple[str, ...]) -> float | None:
    lower = {k.lower(): v for k, v in tags.items()}
    for name in names:
        value = lower.get(name.lower())
        if value is None:
            continue
        try:
            return float(str(value).split()[0])
        except (ValueError, IndexError):
            continue
    return None


def s2_encoding(path: Path, dtype: str, scales: tuple[float, ...], offsets: tuple[float, ...],
                tags: dict[str, str], band_tags: list[dict[str, str]], nodata: float | None,
                override: S2SimInput | None = None) -> S2Decoding:
    """How to decode one Sentinel-2 raster (its selected bands) to reflectance; never a guess.

    Order: a ``scale`` given in params for this input; GDAL band scale/offset; satsr's encoding
    tag; Sentinel-2 product tags (reflectance = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE); CF tags.
    8-bit rasters without any of these are decoded as DN / 255 and flagged non-physical (as are
    8-bit rasters with metadata: 256 levels are a display stretch, not a reflectance product).
    """
    from satsr.data.geotiff import TAG_ENCODING
    from satsr.data.radiometry import BY_NAME

    nb = len(scales)
    eight_bit = dtype == "uint8"

    def same(v: float) -> tuple[float, ...]:
        return (float(v),) * nb

    if override is not None and override.scale is not None:
        return S2Decoding(same(override.scale), same(override.offset), nodata, not eight_bit,
                          f"params scale {override.scale:g} / offset {override.offset:g}")
    if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
        return S2Decoding(tuple(map(float, scales)), tuple(map(float, offsets)), nodata, not eight_bit,
                          f"GDAL band scale {scales[0]:g} / offset {offsets[0]:g}")
    named = BY_NAME.get(tags.get(TAG_ENCODING, ""))
    if named is not None:
        return S2Decoding(same(named.scale), same(named.offset), nodata if nodata is not None else named.nodata,
                          named.physical and not eight_bit, f"satsr tag {TAG_ENCODING}={named.name}")
    for where, t in [("dataset", tags)] + [(f"band {i + 1}", bt) for i, bt in enumerate(band_tags)]:
        q = _tag_float(t, QUANTIFICATION_TAGS)
        if q:
            add = _tag_float(t, ADD_OFFSET_TAGS) or 0.0
            return S2Decoding(same(1.0 / q), same(add / q), nodata, not eight_bit,
                              f"Sentinel-2 {where} tags: (DN + {add:g}) / {q:g}")
        cf = _tag_float(t, CF_TAGS[:1])
        if cf is not None:
            add = _tag_float(t, CF_TAGS[1:]) or 0.0
            return S2Decoding(same(cf), same(add), nodata, not eight_bit,
                              f"CF {where} tags scale_factor {cf:g} / add_offset {add:g}")
    if eight_bit:
        return S2Decoding(same(1.0 / 255.0), same(0.0), nodata, False, "8-bit without metadata: DN / 255, NON-PHYSICAL")
    raise EncodingError(
        f"{path}: cannot tell how its {dtype} values map to reflectance (no band scale/offset, no "
        f"{TAG_ENCODING}, Sentinel-2 QUANTIFICATION_VALUE or CF scale_factor tag); satsr never assumes one. "
        f"To fix it, {HOW_TO_DOCUMENT}"
    )


# ------------------------------------------------------------------------------------- inputs
def _expand(entry: S2SimInput) -> list[Path]:
    """A file, a folder (its rasters, recursively) or a glob -> sorted raster paths."""
    raw = str(Path(entry.path).expanduser())
    if any(ch in raw for ch in "*?["):
        hits = [Path(p) for p in sorted(glob.glob(raw, recursive=True))]
    else:
        p = Path(raw)
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.is_file())
        elif p.is_file():
            return [p]
        else:
            raise MissingInputError(f"source.s2sim.inputs: {p} does not exist (expected a raster, a folder or a glob)")
    return [q for q in hits if q.is_file() and q.suffix.lower() in RASTER_SUFFIXES]


def input_files(sp: S2SimParams) -> list[tuple[Path, S2SimInput]]:
    """Every input raster once, with the params entry it came from (for a per-entry scale)."""
    if not sp.inputs:
        raise InputError("source.s2sim.inputs is empty: list Sentinel-2 rasters, folders or globs")
    seen: dict[Path, tuple[Path, S2SimInput]] = {}
    for entry in sp.inputs:
        files = _expand(entry)
        if not files:
            log.warning("s2sim: %s matches no raster (%s)", entry.path, ", ".join(RASTER_SUFFIXES))
        for f in files:
            seen.setdefault(f.resolve(), (f, entry))
    if not seen:
        raise MissingInputError(f"source.s2sim.inputs: no raster found in {[e.path for e in sp.inputs]}")
    return list(seen.values())


def resolved_sigma(sp: S2SimParams) -> float:
    """The PSF sigma (HR px): the number in params, or the calibration's (``calibrated``)."""
    if sp.psf_sigma_hr_px != "calibrated":
        return float(sp.psf_sigma_hr_px)
    from satsr.data.calibrate import calibrated_sigma

    return calibrated_sigma(sp.calibration_file)


def sensor_params(sp: S2SimParams, physical: bool) -> sensor.SensorParams:
    return sensor.from_amplitudes(sp, resolved_sigma(sp), bandpass=physical)


# ----------------------------------------------------------------------------------- one file
@dataclass
class _Source:
    path: Path
    entry: S2SimInput
    sha: str
    decoding: S2Decoding
    crs: CRS
    transform: rasterio.Affine
    width: int
    height: int
    tags: dict[str, str]
    key: str = ""  # pair-id prefix and region: the file stem, made unique in run()

    @property
    def pixel(self) -> float:
        return float(self.transform.a)

    @property
    def geographic(self) -> bool:
        return bool(self.crs.is_geographic)


def _open_source(path: Path, entry: S2SimInput, bands: list[int]) -> _Source:
    try:
        with rasterio.open(path) as src:
            if max(bands) > src.count:
                raise InputError(f"{path}: has {src.count} band(s); source.s2sim.bands asks for {bands} "
                                 "(1-based red, green, blue)")
            tr, crs = src.transform, src.crs
            if crs is None:
                raise InputError(f"{path}: no CRS; s2sim needs a georeferenced Sentinel-2 raster")
            if tr.b != 0 or tr.d != 0 or tr.a <= 0 or not math.isclose(-tr.e, tr.a, rel_tol=1e-6):
                raise InputError(f"{path}: rotated or non-square pixels ({tr.a:g} x {-tr.e:g}); reproject it to a "
                                 "north-up grid with square pixels first")
            idx = [b - 1 for b in bands]
            dec = s2_encoding(path, src.dtypes[idx[0]], tuple(src.scales[i] for i in idx),
                              tuple(src.offsets[i] for i in idx), src.tags(), [src.tags(b) for b in bands],
                              src.nodata, entry)
            return _Source(path, entry, sha256_file(path), dec, crs, tr, src.width, src.height, src.tags(),
                           _SAFE.sub("_", path.stem).strip("_.") or "s2")
    except RasterioError as err:
        raise InputError(f"{path}: unreadable raster ({err})") from None


def _read_reflectance(s: _Source, bands: list[int]) -> np.ndarray:
    with rasterio.open(s.path) as src:
        return s.decoding.to_reflectance(src.read(bands))


def chip_origins(width: int, height: int, n: int, pad: int, edge: str) -> list[tuple[int, int]]:
    """Upper-left (row, col) of every HR chip in file pixels; the margin ``pad`` around each lies
    inside the raster (``drop``) or inside the raster mirrored by ``pad`` (``reflect``)."""
    lo = pad if edge == "drop" else 0
    hi_w, hi_h = (width - pad, height - pad) if edge == "drop" else (width, height)
    rows = range(lo, hi_h - n + 1, n)
    cols = range(lo, hi_w - n + 1, n)
    return [(r, c) for r in rows for c in cols]


def _acq_date(s: _Source) -> str:
    from satsr.data.sources.folder import parse_date

    for key in ("acquisition_date", "DATE_ACQUIRED", "ACQUISITION_DATE", "PRODUCT_START_TIME", "SENSING_TIME"):
        for k, v in s.tags.items():
            if k.lower() == key.lower():
                d = parse_date(str(v))
                if d:
                    return d
    return parse_date(s.path.name)


def _lonlat(crs: CRS, x: float, y: float) -> tuple[float, float]:
    if crs.is_geographic:
        return float(x), float(y)
    xs, ys = warp_transform(crs, "EPSG:4326", [x], [y])
    return float(xs[0]), float(ys[0])


def _make_file(s: _Source, sp: S2SimParams, params: Params, out_dir: Path, keep: dict[str, dict]) -> list[dict]:
    """Cut, simulate and write every chip of one source file; rows of the manifest."""
    n = params.source.hr_size
    p = sensor_params(sp, s.decoding.physical)
    pad = p.margin()
    origins = chip_origins(s.width, s.height, n, pad, sp.edge)
    if not origins:
        log.warning("s2sim: %s (%dx%d px) holds no %d px chip with its %d px kernel margin (edge=%s); "
                    "lower source.lr_size or use edge: reflect", s.path, s.width, s.height, n, pad, sp.edge)
        return []
    refl = _read_reflectance(s, sp.bands)
    if sp.edge == "reflect":
        refl = np.pad(refl, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    off = pad if sp.edge == "reflect" else 0  # file pixel (r, c) is refl[:, r + off, c + off]
    if s.geographic:
        log.info("s2sim: %s is in geographic %s: chips on its own pixel grid (%.3g deg); the LR grid pixel "
                 "is 3x that (%.3g deg), not a metric 30 m", s.path.name, s.crs.to_string(), s.pixel, SCALE * s.pixel)
    elif abs(s.pixel - 10.0) > 0.5:
        log.warning("s2sim: %s has %.3g m pixels, not 10 m: the simulated LR pixel is %.3g m", s.path, s.pixel,
                    SCALE * s.pixel)
    enc_lr, enc_hr = (L8_C2_L2, S2_SR) if s.decoding.physical else (UINT16_STRETCHED, UINT16_STRETCHED)
    file_seed = int(s.sha[:12], 16)
    crs_str = s.crs.to_string()
    date = _acq_date(s)
    rows, dropped = [], 0
    for r, c in origins:
        pair_id = f"{s.key}_r{r:05d}_c{c:05d}"
        canvas = refl[:, r + off - pad:r + off + n + pad, c + off - pad:c + off + n + pad]
        if not np.isfinite(canvas).all():
            dropped += 1
            continue
        if pair_id in keep:  # intact from an earlier run with the same settings: deterministic, not remade
            rows.append(keep[pair_id])
            continue
        x0 = s.transform.c + c * s.pixel
        y0 = s.transform.f - r * s.pixel
        lr_grid = Grid(crs_str, x0, y0, SCALE * s.pixel, n // SCALE, n // SCALE)
        hr_grid = Grid(crs_str, x0, y0, s.pixel, n, n)
        rng = np.random.default_rng([sp.seed, _STREAM, file_seed, r, c])
        lr, info = sensor.simulate(np.ascontiguousarray(canvas, np.float32), pad, n, p, rng)
        hr = canvas[:, pad:pad + n, pad:pad + n]
        extra = {**info, "source_file": str(s.path), "source_sha256": s.sha, "source_window": [c, r, n, n],
                 "source_encoding": s.decoding.how, "physical": s.decoding.physical,
                 "geographic_crs": s.geographic, "hr_pixel_crs_units": s.pixel,
                 "lr_pixel_crs_units": SCALE * s.pixel, "margin_hr_px": pad, "edge": sp.edge}
        lr_file, hr_file = f"{pair_id}_LR.tif", f"{pair_id}_HR.tif"
        common = {"PROVIDER": PROVIDER, "PAIR_ID": pair_id, "SOURCE_FILE": s.path.name,
                  "SOURCE_WINDOW": f"{c},{r},{n},{n}", "SOURCE_ENCODING": s.decoding.how,
                  "ACQUISITION_DATE": date}
        lr_tags = {**common, TAG_SENSOR: "L8", "SENSOR": "L8", TAG_SIMULATED: "1",
                   "DESCRIPTION": "SIMULATED Landsat-8 OLI 30 m partner made by satsr s2sim from a real Sentinel-2 "
                                  "chip (satsr.data.sensor); not a Landsat acquisition",
                   "SENSOR_MODEL": json.dumps(info)}
        hr_tags = {**common, TAG_SENSOR: "S2", "SENSOR": "S2",
                   "DESCRIPTION": f"Real Sentinel-2 chip of {s.path.name} ({s.decoding.how})"}
        for k in ("product_level", "PRODUCT_LEVEL", "sensor", "SPACECRAFT_NAME"):
            if k in s.tags:
                hr_tags[f"SOURCE_{k.upper()}"] = s.tags[k]
        lr_sha = write_geotiff(out_dir / lr_file, enc_lr.from_reflectance(lr), lr_grid, enc_lr, LANDSAT_RGB, lr_tags)
        hr_sha = write_geotiff(out_dir / hr_file, enc_hr.from_reflectance(hr), hr_grid, enc_hr, S2_RGB, hr_tags)
        lon, lat = _lonlat(s.crs, x0 + n * s.pixel / 2, y0 - n * s.pixel / 2)
        rows.append(manifest.pair_row(
            pair_id=pair_id, provider=PROVIDER, is_demo=False, region=s.key, lon=lon, lat=lat,
            **manifest.grid_columns(lr_grid, hr_grid), lr_file=lr_file, hr_file=hr_file,
            lr_sha256=lr_sha, hr_sha256=hr_sha, lr_date=date, hr_date=date, days_apart=0 if date else math.nan,
            lr_scene_id=f"simulated_from_{s.path.stem}", hr_scene_id=s.path.stem,
            lr_clear_fraction=1.0, hr_clear_fraction=1.0, extra=json.dumps(extra, sort_keys=True),
        ))
    if dropped:
        log.info("s2sim: %s: %d chip(s) dropped for nodata/non-finite pixels in chip or margin", s.path.name, dropped)
    log.info("s2sim: %s (%s%s): %d chip(s) of %d HR px, margin %d px, sigma %.3g HR px",
             s.path.name, s.decoding.how, "" if s.decoding.physical else "; NON-PHYSICAL", len(rows), n, pad,
             p.psf_sigma_hr_px)
    return rows


# ----------------------------------------------------------------------------------------- run
def _fingerprint(params: Params, sources: list[_Source]) -> str:
    sp = params.source.s2sim
    doc = {"version": GENERATOR_VERSION, "s2sim": sp.model_dump(mode="json"), "lr_size": params.source.lr_size,
           "sigma": resolved_sigma(sp), "files": sorted((str(s.path), s.sha) for s in sources)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _kept(out_dir: Path, fp: str) -> dict[str, dict]:
    """Rows of an earlier run with the same fingerprint whose two files match their checksums."""
    fp_path = out_dir / FINGERPRINT_NAME
    if not fp_path.is_file() or fp_path.read_text().strip() != fp or not (out_dir / manifest.MANIFEST_NAME).is_file():
        return {}
    try:
        old = manifest.read_manifest(out_dir)
    except (ValueError, OSError) as err:
        log.warning("s2sim: earlier manifest unusable (%s); every chip is made again", err)
        return {}
    return {r["pair_id"]: r for r in old.to_dict("records")
            if r.get("provider") == PROVIDER and manifest.is_complete(out_dir, r)}


def run(params: Params, out_dir: Path) -> pd.DataFrame:
    """Write (or complete) the s2sim dataset in ``out_dir``; returns the manifest it wrote."""
    sp = params.source.s2sim
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [_open_source(path, entry, sp.bands) for path, entry in input_files(sp)]
    stems = [s.key for s in sources]
    for s in sources:  # two files with one stem (e.g. B04.tif in several folders) keep distinct ids
        if stems.count(s.key) > 1:
            s.key = f"{s.key}_{s.sha[:8]}"
    for s in sources:
        if not s.decoding.physical:
            log.warning("s2sim: %s is NON-PHYSICAL (%s): its chips are pseudo-reflectance, written in the "
                        "uint16_stretched encoding, without the HLS bandpass", s.path, s.decoding.how)
    fp = _fingerprint(params, sources)
    keep = _kept(out_dir, fp)
    with atomic_path(out_dir / FINGERPRINT_NAME) as tmp:
        tmp.write_text(fp + "\n")
    rows: list[dict] = []
    for s in sources:
        rows += _make_file(s, sp, params, out_dir, keep)
        manifest.write_manifest(out_dir, rows)  # a killed run resumes from here
    if not rows:
        raise InputError(f"s2sim: no chip could be cut from {len(sources)} input raster(s) at source.lr_size="
                         f"{params.source.lr_size}; see the warnings above")
    removed = manifest.prune_unlisted(out_dir, {FINGERPRINT_NAME, manifest.MANIFEST_NAME}
                                      | {r[k] for r in rows for k in ("lr_file", "hr_file")})
    manifest.write_manifest(out_dir, rows)
    log.info("s2sim: %d pairs from %d Sentinel-2 raster(s) (%d kept from an earlier run, %d stale files removed)",
             len(rows), len(sources), sum(r["pair_id"] in keep for r in rows), len(removed))
    return manifest.read_manifest(out_dir)


