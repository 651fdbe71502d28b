"""What a source file's pixel values mean: forced by params, read from its metadata, or guessed (logged)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from satsr.data.geotiff import TAG_ENCODING, Raster, encoding_of
from satsr.data.radiometry import (
    BY_NAME,
    L8_C2_L2,
    REFLECTANCE,
    S2_SR,
    UINT8_STRETCHED,
    UINT16_STRETCHED,
    Encoding,
)

log = logging.getLogger(__name__)


def is_pseudo_reflectance(r: Raster) -> bool:
    """True for chips imported from 8/16-bit stretched imagery (satsr encoding tag)."""
    enc = BY_NAME.get(r.tags.get(TAG_ENCODING, ""))
    return enc is not None and not enc.physical


def read_png_mapping(root: Path) -> tuple[float, float] | None:
    """(lo, hi) of satsr's own 16-bit PNG export, when re-importing it (encoding.json beside)."""
    p = root / "encoding.json"
    try:
        doc = json.loads(p.read_text())
        return float(doc["lo"]), float(doc["hi"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
