"""Exactly nested LR / HR windows of two co-located georeferenced rasters, and chips inside them.

Two north-up rasters in one CRS whose pixel sizes differ by exactly ``SCALE`` are *nested* when
every LR pixel covers exactly ``SCALE x SCALE`` HR pixels. Real co-located files often are not, as
files, although their grids are: an HR origin 1 HR px below the LR origin (``pairs_l8s2ps``), or
an HR extent a few HR px short of 3x the LR extent with edges 10-20 m inside (``pairs_homonim``).
Such an offset is an integer number of HR pixels that the georeferences state, i.e. known
geometry, not misregistration: ``nested_window`` finds the largest LR window whose HR partner lies
inside the HR file, so both chips cover the same ground exactly.

Where the georeferences themselves disagree with the content (the two products were not
co-registered), ``content_offset`` searches the integer HR-pixel offsets around the georeferenced
one for the best agreement of LR with the HR block-averaged to LR (Pearson r of the band-mean
grey images, over a central window of at most ``REGISTRATION_WINDOW_LR_PX`` LR px). Moving the
HR window by whole HR pixels is lossless (no resampling); the sub-HR-pixel residual is left to
the filter's registration check.

Offsets are in HR pixels, ``(dy, dx)``: HR-file row ``k`` lies on row ``k + dy`` of the HR-sized
sub-grid of the LR file (its row ``SCALE * r`` is the top of LR row ``r``); positive = the HR
origin lies below / right of the LR origin.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from satsr.config import SCALE
from satsr.data.registration import area_downsample, pearson_r

#: Largest central window (LR px per side) read to measure the content offset (bounded memory).
REGISTRATION_WINDOW_LR_PX = 384
#: The content offset must beat the georeferenced one by this much Pearson r to replace it...
MIN_R_IMPROVEMENT = 1e-3
#: ...and reach this r: below it LR and HR do not clearly show the same ground (change, clouds,
#: noise) and the georeference is kept (real L8 / S2 pairs: 0.86-0.96).
MIN_R_CONTENT = 0.5
#: Georeferenced offsets within this many HR px of an integer count as that integer.
INTEGER_TOL_HR_PX = 0.01


@dataclass(frozen=True)
class Nesting:
    """The common, exactly nested window: LR rows / cols ``[lr_row, lr_row + rows)`` x ``[lr_col,
    lr_col + cols)`` of the LR file and HR rows / cols from ``(hr_row, hr_col)``, SCALE x as many."""

    lr_row: int
    lr_col: int
    rows: int
    cols: int
    hr_row: int
    hr_col: int
    #: The integer HR-px offset (dy, dx) the window was cut at (georeference + content correction).
    offset: tuple[int, int]
    #: The offset the georeferences state (HR px, may be fractional).
    georef_offset: tuple[float, float]

    def lr_window(self, row: int, col: int, height: int, width: int) -> Window:
        """A window of the LR file, ``(row, col)`` relative to the common window."""
        return Window(self.lr_col + col, self.lr_row + row, width, height)

    def hr_window(self, row: int, col: int, height: int, width: int) -> Window:
        """The HR partner of ``lr_window(row, col, height, width)``."""
        return Window(self.hr_col + SCALE * col, self.hr_row + SCALE * row, SCALE * width, SCALE * height)


def grid_offset(lr_crs: CRS | None, lr_tr: Affine, hr_crs: CRS | None, hr_tr: Affine) -> tuple[float, float] | str:
    """The HR origin's offset from the LR origin in HR px ``(dy, dx)``, or why the two grids cannot
    nest (different CRS, rotated or non-square pixels, pixel sizes not exactly SCALE apart)."""
    if lr_crs is None or hr_crs is None:
        return "not georeferenced"
    if lr_crs != hr_crs:
        return f"different CRS ({lr_crs.to_string()} vs {hr_crs.to_string()})"
    for name, tr in (("LR", lr_tr), ("HR", hr_tr)):
        if tr.b != 0 or tr.d != 0 or tr.a <= 0 or not math.isclose(-tr.e, tr.a, rel_tol=1e-6):
            return f"the {name} grid is rotated or its pixels are not square ({tuple(tr)[:6]})"
    ratio = lr_tr.a / hr_tr.a
    if not math.isclose(ratio, SCALE, rel_tol=1e-6):
        return f"the LR pixel is {ratio:.6f}x the HR pixel, not {SCALE}x"
    return (lr_tr.f - hr_tr.f) / -hr_tr.e, (hr_tr.c - lr_tr.c) / hr_tr.a


def _axis(lr_len: int, hr_len: int, off: int) -> tuple[int, int, int]:
    """(first LR index, count, first HR index) of the common nested range along one axis."""
    first = max(0, -(-off // SCALE))  # ceil(off / SCALE): HR index SCALE * first - off >= 0
    last = min(lr_len, (hr_len + off) // SCALE)  # SCALE * last - off <= hr_len
    return first, max(0, last - first), SCALE * first - off


def nested_window(lr_size: tuple[int, int], hr_size: tuple[int, int], offset: tuple[int, int],
                  georef_offset: tuple[float, float] | None = None) -> Nesting | None:
    """The largest exactly nested window of an LR file of ``lr_size`` (width, height) and an HR file
    of ``hr_size`` whose origin lies ``offset`` (integer HR px, (dy, dx)) from the LR origin; None
    when they share no LR pixel."""
    (lw, lh), (hw, hh) = lr_size, hr_size
    r0, rows, hr_r0 = _axis(lh, hh, offset[0])
    c0, cols, hr_c0 = _axis(lw, hw, offset[1])
    if rows == 0 or cols == 0:
        return None
    return Nesting(r0, c0, rows, cols, hr_r0, hr_c0, offset,
                   georef_offset if georef_offset is not None else (float(offset[0]), float(offset[1])))


def place_chips(length: int, n: int, max_overlap: int) -> list[tuple[int, int]]:
    """Chips along one axis of ``length`` px: ``(start, size)`` pairs.

    ``length // n`` chips of ``n`` from 0, the remainder left out, unless one more chip fits with
    at most ``max_overlap`` px shared by neighbours: then the chips spread evenly from 0 to the
    end (a window 1 px short of 2 chips still gives 2). A window shorter than ``n`` is one chip of
    its own length."""
    if length <= n:
        return [(0, length)]
    k = length // n
    if length % n:
        extra = k + 1
        overlap = math.ceil((extra * n - length) / k)
        if overlap <= max_overlap:
            return [(round(i * (length - n) / k), n) for i in range(extra)]
    return [(i * n, n) for i in range(k)]


def _grey(src: rasterio.DatasetReader, window: Window) -> np.ndarray:
    """Band-mean grey of a window, float64, NaN where any band is the file's nodata."""
    data = src.read(window=window).astype(np.float64)
    if src.nodata is not None:
        data[:, np.any(data == src.nodata, axis=0)] = np.nan
    return data.mean(axis=0)


def content_offset(lr_path: Path, hr_path: Path, nesting: Nesting, search: int) -> tuple[tuple[int, int], float, float]:
    """The integer HR-px offset within +-``search`` of ``nesting.offset`` at which the LR content
    best matches the HR content block-averaged to LR (Pearson r, central window; module doc).

    Returns ``(offset, r_at_offset, r_at_nesting_offset)``; the nesting's own offset is kept unless
    another beats it by ``MIN_R_IMPROVEMENT`` with r >= ``MIN_R_CONTENT`` (ties: the smallest
    correction). Too small a window
    (< 16 LR px once the search margin is off) returns the nesting's offset with NaN r."""
    oy, ox = nesting.offset
    margin = -(-search // SCALE)
    rows, cols = nesting.rows - 2 * margin, nesting.cols - 2 * margin
    if min(rows, cols) < 16 or search <= 0:
        return nesting.offset, math.nan, math.nan
    h, w = min(rows, REGISTRATION_WINDOW_LR_PX), min(cols, REGISTRATION_WINDOW_LR_PX)
    a = nesting.lr_row + margin + (rows - h) // 2  # central window, LR file rows / cols
    b = nesting.lr_col + margin + (cols - w) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(lr_path) as lr_src, rasterio.open(hr_path) as hr_src:
            lr = _grey(lr_src, Window(b, a, w, h))
            # every candidate's HR window lies inside this one (the margin guarantees it)
            hr = _grey(hr_src, Window(SCALE * b - ox - search, SCALE * a - oy - search,
                                      SCALE * w + 2 * search, SCALE * h + 2 * search))
    scores: dict[tuple[int, int], float] = {}
    for ey in range(-search, search + 1):
        for ex in range(-search, search + 1):
            y0, x0 = search - ey, search - ex
            block = area_downsample(hr[y0:y0 + SCALE * h, x0:x0 + SCALE * w], SCALE, nan_aware=True)
            scores[(ey, ex)] = pearson_r(lr, block)
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    r0 = scores[(0, 0)]
    if not finite:
        return nesting.offset, math.nan, r0
    best = max(finite, key=lambda k: (finite[k], -(k[0] ** 2 + k[1] ** 2)))
    if finite[best] < MIN_R_CONTENT or (math.isfinite(r0) and finite[best] < r0 + MIN_R_IMPROVEMENT):
        best = (0, 0)
    return (oy + best[0], ox + best[1]), scores[best], r0
