"""Writing a job's chips (GeoTIFF with their encoding) and its manifest row.

A side that is missing or unreadable is logged and left empty in the row, never an error: the filter
stage reports it (``missing_lr`` / ``missing_hr``).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine

from satsr.config import HR_PIXEL_M, LR_PIXEL_M
from satsr.data.geotiff import TAG_ENCODING, TAG_SENSOR, Raster, RasterError, checked_write, write_geotiff
from satsr.data.grids import Grid
from satsr.data.manifest import pair_row
from satsr.data.radiometry import LANDSAT_RGB, S2_RGB, Encoding
from satsr.data.sources.folder.encoding import detect_encoding
from satsr.data.sources.folder.jobs import Job, days_apart
from satsr.data.sources.folder.reading import read_window
from satsr.util import sha256_file

log = logging.getLogger(__name__)


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


def write_side(
    job: Job, side: str, out_dir: Path, forced: str, png_mapping, enc_cache: dict[Path, Encoding]
) -> dict | None:
    """Read, encode-detect and write one side; None (with a warning) if it is missing or unreadable.

    The encoding is decided once per source file, so all chips of a scene share it."""
    spec = job.lr if side == "lr" else job.hr
    if spec.src is None:
        return None
    try:
        r = read_window(spec.src, spec.window)
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


def manifest_row(job: Job, lr: dict | None, hr: dict | None) -> dict:
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
    days = days_apart(job.lr_date, job.hr_date)
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

