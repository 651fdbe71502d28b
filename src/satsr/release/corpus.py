"""Real imagery for the release recipe: co-located pairs cut on their common nested window, and
real Sentinel-2 scenes decoded to reflectance, partnered by the one sensor model.

Arrays here are (H, W, bands) float32. Pseudo-reflectance of 8-bit pairs is multiplied by the
pair's ``pseudo_scale`` to bring it to a reflectance-like range; the release model is
radiometry-equivariant (satsr.models.detail), so this only balances the loss between sources.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from satsr.config import SCALE
from satsr.data import sensor
from satsr.errors import SatsrError


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


def nested_window(lr_transform, lr_shape: tuple[int, int], hr_transform, hr_shape: tuple[int, int],
                  tol: float = 0.25) -> tuple[tuple[int, int, int, int], tuple[int, int], tuple[float, float]]:
    """The largest exactly nested window of an LR raster and an HR raster at 1/3 of its pixel.

    An origin offset that is a whole number of HR pixels is known geometry, not misregistration:
    the HR window starts at that offset. Returns ((row0, col0, rows, cols) in LR px, (hr_row0,
    hr_col0), the sub-pixel remainder in HR px).
    """
    lr_res, hr_res = (lr_transform.a, -lr_transform.e), (hr_transform.a, -hr_transform.e)
    for axis in range(2):
        if not math.isclose(lr_res[axis], SCALE * hr_res[axis], rel_tol=1e-3):
            raise CorpusError(f"LR pixel {lr_res} is not {SCALE}x the HR pixel {hr_res}")
    # LR origin in HR pixel units of the HR raster (rows down, cols right)
    oy = (hr_transform.f - lr_transform.f) / hr_res[1]
    ox = (lr_transform.c - hr_transform.c) / hr_res[0]
    ry, rx = round(oy), round(ox)
    res = (oy - ry, ox - rx)
    if abs(res[0]) > tol or abs(res[1]) > tol:
        raise CorpusError(f"origins differ by a non-integer {oy:.2f}, {ox:.2f} HR px: not a nested pair")
    r0 = max(0, math.ceil(-ry / SCALE))
    c0 = max(0, math.ceil(-rx / SCALE))
    hr_r0, hr_c0 = ry + SCALE * r0, rx + SCALE * c0
    rows = min(lr_shape[0] - r0, (hr_shape[0] - hr_r0) // SCALE)
    cols = min(lr_shape[1] - c0, (hr_shape[1] - hr_c0) // SCALE)
    if rows <= 0 or cols <= 0:
        raise CorpusError("the LR and HR rasters do not overlap")
    return (r0, c0, rows, cols), (hr_r0, hr_c0), (float(res[0]), float(res[1]))


def _decode(ds, path: Path, fallback_scale: float | None) -> tuple[np.ndarray, bool]:
    """Reflectance (bands, h, w) from band scale/offset metadata; 8-bit is pseudo-reflectance."""
    data = ds.read().astype(np.float32)
    scales, offsets = np.asarray(ds.scales, np.float32), np.asarray(ds.offsets, np.float32)
    if ds.dtypes[0] == "uint8":
        return data / 255.0, False
    if np.all(scales == 1.0) and np.all(offsets == 0.0) and np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        if fallback_scale is None:
            raise CorpusError(f"{path}: integer raster without band scale/offset metadata; set the GDAL band "
                              "scale/offset (e.g. 0.0001 for Sentinel-2 L2A DN) or give `scale:` in params.yaml")
        return data * np.float32(fallback_scale), True
    return data * scales[:, None, None] + offsets[:, None, None], True


def load_pair(lr_path: str | Path, hr_path: str | Path, pseudo_scale: float = 1.0, name: str = "") -> PairArrays:
    lr_path, hr_path = Path(lr_path), Path(hr_path)
    for p in (lr_path, hr_path):
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
    with rasterio.open(lr_path) as a, rasterio.open(hr_path) as b:
        win, hr_off, res = nested_window(a.transform, a.shape, b.transform, b.shape)
        lr, lr_phys = _decode(a, lr_path, None)
        hr, hr_phys = _decode(b, hr_path, None)
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


def load_s2(path: Path, fallback_scale: float | None = None) -> np.ndarray:
    """A real Sentinel-2 10 m raster as (H, W, 3) reflectance (R, G, B). A BigEarthNet-style folder of
    per-band files (``*_B04.tif``, ``*_B03.tif``, ``*_B02.tif``) is read as one image."""
    if path.is_dir():
        bands = []
        for b in ("B04", "B03", "B02"):
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
