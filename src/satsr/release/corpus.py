"""Real imagery for the release recipe: co-located pairs cut on their common nested window, and
real Sentinel-2 scenes decoded to reflectance, partnered by the one sensor model.

Arrays here are (H, W, bands) float32. Pseudo-reflectance of 8-bit pairs is multiplied by the
pair's ``pseudo_scale`` to bring it to a reflectance-like range; the release model is
radiometry-equivariant (satsr.models.detail), so this only balances the loss between sources.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from satsr.config import SCALE
from satsr.data import nesting, sensor
from satsr.errors import SatsrError

#: Origins that differ by more than this from a whole number of HR px are not a nested pair.
NON_INTEGER_TOL_HR_PX = 0.25
#: Band files of a per-band Sentinel-2 folder (BigEarthNet), in R, G, B order.
S2_BAND_FILES = ("B04", "B03", "B02")


class CorpusError(SatsrError, ValueError):
    """A release corpus file is missing, undecodable or its pair has no common nested window."""


@dataclass(frozen=True)
class PairArrays:
    name: str
    lr: np.ndarray  # (h, w, 3)
    hr: np.ndarray  # (3h, 3w, 3)
    lr_window: tuple[int, int, int, int]  # row0, col0, rows, cols in the LR file
    hr_offset: tuple[int, int]            # HR row/col of the window's upper-left corner
    residual_hr_px: tuple[float, float]   # sub-pixel offset the georeference states, HR px


def _decode(ds, path: Path, fallback_scale: float | None) -> tuple[np.ndarray, bool]:
    """Reflectance (bands, h, w) and whether it is physical, decoded exactly as the s2sim provider
    decodes (metadata first, never a guess); ``fallback_scale`` only for a file without any."""
    from satsr.data.sources.s2sim import EncodingError, S2Decoding, s2_encoding

    scales, offsets = tuple(ds.scales), tuple(ds.offsets)
    try:
        dec = s2_encoding(path, ds.dtypes[0], scales, offsets, ds.tags(),
                          [ds.tags(i + 1) for i in range(ds.count)], ds.nodata)
    except EncodingError as err:
        if fallback_scale is None:
            raise CorpusError(str(err)) from err
        dec = S2Decoding((fallback_scale,) * ds.count, (0.0,) * ds.count, ds.nodata, True,
                         f"release.s2_fallback_scale {fallback_scale:g}")
    return dec.to_reflectance(ds.read()), dec.physical


def load_pair(lr_path: str | Path, hr_path: str | Path, pseudo_scale: float = 1.0, name: str = "") -> PairArrays:
    lr_path, hr_path = Path(lr_path), Path(hr_path)
    for p in (lr_path, hr_path):
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
    with rasterio.open(lr_path) as a, rasterio.open(hr_path) as b:
        off = nesting.grid_offset(a.crs, a.transform, b.crs, b.transform)
        if isinstance(off, str):
            raise CorpusError(f"{lr_path} / {hr_path}: the grids cannot nest: {off}")
        whole = (round(off[0]), round(off[1]))
        res = (off[0] - whole[0], off[1] - whole[1])
        if max(abs(res[0]), abs(res[1])) > NON_INTEGER_TOL_HR_PX:
            raise CorpusError(f"{lr_path} / {hr_path}: origins differ by a non-integer "
                              f"{off[0]:.2f}, {off[1]:.2f} HR px")
        nest = nesting.nested_window((a.width, a.height), (b.width, b.height), whole, off)
        if nest is None:
            raise CorpusError(f"{lr_path} / {hr_path}: the LR and HR rasters do not overlap")
        lr, lr_phys = _decode(a, lr_path, None)
        hr, hr_phys = _decode(b, hr_path, None)
    win = (nest.lr_row, nest.lr_col, nest.rows, nest.cols)
    hr_off = (nest.hr_row, nest.hr_col)
    r0, c0, rows, cols = win
    lr = lr[:3, r0:r0 + rows, c0:c0 + cols]
    hr = hr[:3, hr_off[0]:hr_off[0] + SCALE * rows, hr_off[1]:hr_off[1] + SCALE * cols]
    if not (lr_phys and hr_phys):
        lr, hr = lr * pseudo_scale, hr * pseudo_scale
    return PairArrays(name or lr_path.stem, np.ascontiguousarray(lr.transpose(1, 2, 0)),
                      np.ascontiguousarray(hr.transpose(1, 2, 0)), win, hr_off, res)


def rows_region(pair: PairArrays, lr_rows: tuple[float, float]) -> PairArrays:
    """The part of a pair between two LR row fractions (spatially disjoint train/val/test parts)."""
    h = pair.lr.shape[0]
    a, b = int(round(lr_rows[0] * h)), int(round(lr_rows[1] * h))
    return PairArrays(f"{pair.name}[{lr_rows[0]:.2f}:{lr_rows[1]:.2f}]", pair.lr[a:b], pair.hr[SCALE * a:SCALE * b],
                      pair.lr_window, pair.hr_offset, pair.residual_hr_px)


def expand(patterns: list[str], base: Path) -> list[Path]:
    files: list[Path] = []
    for pat in patterns:
        hits = sorted(glob.glob(str(base / pat) if not Path(pat).is_absolute() else pat))
        if not hits:
            raise CorpusError(f"{pat}: matches no file under {base}")
        files += [Path(h) for h in hits]
    return files


def source_files(path: Path) -> list[Path]:
    """The files an S2 input reads: itself, or a BigEarthNet folder's R, G, B band files."""
    if not path.is_dir():
        return [path]
    return [hit for b in S2_BAND_FILES for hit in sorted(path.glob(f"*_{b}.tif"))[:1]]


def load_s2(path: Path, fallback_scale: float | None = None) -> np.ndarray:
    """A real Sentinel-2 10 m raster as (H, W, 3) reflectance (R, G, B). A BigEarthNet-style folder of
    per-band files (``*_B04.tif``, ``*_B03.tif``, ``*_B02.tif``) is read as one image."""
    if path.is_dir():
        bands = []
        for b in S2_BAND_FILES:
            hits = sorted(path.glob(f"*_{b}.tif"))
            if not hits:
                raise CorpusError(f"{path}: no *_{b}.tif band file")
            with rasterio.open(hits[0]) as ds:
                bands.append(_decode(ds, hits[0], fallback_scale)[0][0])
        return np.stack(bands, -1)
    if path.suffix == ".npy":  # eo-learn example: (scenes, h, w, 13) L1C reflectance
        arr = np.load(path).astype(np.float32)
        return arr[0][..., [3, 2, 1]]
    with rasterio.open(path) as ds:
        refl, _ = _decode(ds, path, fallback_scale)
    return np.ascontiguousarray(refl[:3].transpose(1, 2, 0))


def simulate_chips(hr: np.ndarray, lr_size: int, p: sensor.SensorParams, rng: np.random.Generator,
                   stride: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut an S2 image into HR chips of 3*lr_size with the sensor model's margin and simulate each
    chip's Landsat partner. Chips whose margin would leave the image are dropped."""
    n, pad = SCALE * lr_size, p.margin()
    stride = stride or n
    canvas = hr.transpose(2, 0, 1)
    out = []
    for y in range(pad, hr.shape[0] - n - pad + 1, stride):
        for x in range(pad, hr.shape[1] - n - pad + 1, stride):
            block = canvas[:, y - pad:y + n + pad, x - pad:x + n + pad]
            if not np.isfinite(block).all():
                continue
            lr, _ = sensor.simulate(block, pad, n, p, rng)
            out.append((lr.transpose(1, 2, 0), block[:, pad:pad + n, pad:pad + n].transpose(1, 2, 0)))
    return out


def pair_chips(pair: PairArrays, lr_size: int, stride: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    stride = stride or lr_size
    out = []
    for y in range(0, pair.lr.shape[0] - lr_size + 1, stride):
        for x in range(0, pair.lr.shape[1] - lr_size + 1, stride):
            out.append((pair.lr[y:y + lr_size, x:x + lr_size],
                        pair.hr[SCALE * y:SCALE * (y + lr_size), SCALE * x:SCALE * (x + lr_size)]))
    return out
