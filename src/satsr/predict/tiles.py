"""Overlapping tiles, their blending weights, and the overlap / tile size rules (pure numpy).

A scene of ``height x width`` LR px is covered by a grid of equal tiles of ``tile_h x tile_w``
(``tile_size``, or the whole axis when it is shorter). Along each axis the tiles are spread evenly
from the first to the last pixel so neighbours share at least ``overlap`` px; every tile has the
same shape, so tiles batch together and the model traces once.

Blending (per axis, in HR px; the 2-D weight is the product of the two axes'):

* on a side that touches a neighbour, the weight is 0 over the outer ``margin = (overlap - 1) // 2``
  LR px: the pixels whose receptive field reaches the tile edge, where the zero-padded convolutions
  differ from a prediction on the whole image;
* it then rises as a raised cosine, ``0.5 - 0.5 cos(pi (i + 0.5) / n)``, over the remaining middle
  ``overlap - 2 margin`` (1 or 2) LR px, a short crossfade, and is 1 beyond; two neighbours' ramps
  at equal spacing are complementary;
* on a side at the scene border the weight stays 1 (the whole-image prediction pads there too).

Weights are divided by their sum over all tiles (which is separable: the tile grid is a product of
the two axes' starts), so any spacing blends to a convex combination and the result equals the
whole-image prediction wherever the model's reach is at most ``margin`` LR px: no seams.

**Overlap rule** (``overlap_for_reach``): ``overlap = 2 * reach + 2``, where ``reach`` is the
model's measured tile-edge reach (``satsr.predict.model.measure_reach``): every pixel then comes
from tiles in which it lies at least ``reach`` px from any cut edge, so tiled equals whole to the
tolerance the reach was measured at.

**Tile size rule** (``tile_for_budget``): the largest tile side whose working memory fits the
budget, ``batch * t^2 * a + t^2 * 216 + width * (162 t + 108 carry(t) + 9234)`` bytes, with ``a`` the
model's activation bytes per LR px (``satsr.predict.model.activation_bytes_per_px``) and the rest
the accumulator window and the strip buffers (``WINDOW_BYTES``, ``STRIP_BYTES``, ``CARRY_BYTES``,
``BAND_BYTES``; ``carry(t)``: rows shared by consecutive strips); then shrunk to the smallest side
that needs the same number of tiles, which recomputes less overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: evenly spread, first at 0, last at ``length - tile``, neighbours
    sharing at least ``overlap`` px. One tile at 0 when the axis is no longer than a tile."""
    if length <= 0:
        raise ValueError(f"axis length must be positive, got {length}")
    if not 0 <= 2 * overlap <= tile:
        raise ValueError(f"overlap {overlap} must be between 0 and tile / 2 ({tile // 2})")
    if length <= tile:
        return [0]
    step = tile - overlap
    n = math.ceil((length - overlap) / step)
    n = max(n, 2)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def raised_cosine(n: int) -> np.ndarray:
    """Rising ramp of ``n`` samples in (0, 1); ``r + r[::-1] == 1``."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)


def margin_px(overlap: int) -> int:
    """LR px at a shared tile side whose output is discarded (weight 0): ``(overlap - 1) // 2``."""
    return max(0, (overlap - 1) // 2)


def overlap_for_reach(reach: int) -> int:
    """The smallest overlap whose discarded margin covers ``reach`` LR px: ``2 * reach + 2``."""
    if reach < 0:
        raise ValueError(f"reach must be >= 0, got {reach}")
    return 2 * reach + 2


def taper(tile: int, overlap: int, scale: int, left: bool, right: bool) -> np.ndarray:
    """One tile's un-normalised weight along one axis, ``tile * scale`` HR px (see module doc)."""
    n = tile * scale
    w = np.ones(n, dtype=np.float64)
    margin = margin_px(overlap) * scale
    ramp = (overlap - 2 * margin_px(overlap)) * scale
    if left:
        w[:margin] = 0.0
        w[margin:margin + ramp] = raised_cosine(ramp)
    if right:
        w[n - margin:] = 0.0
        w[n - margin - ramp:n - margin] = raised_cosine(ramp)[::-1]
    return w


def axis_weights(length: int, tile: int, overlap: int, scale: int,
                 starts: list[int] | None = None) -> list[np.ndarray]:
    """Normalised HR weights of every tile along one axis: at each HR px they sum to 1."""
    starts = axis_starts(length, tile, overlap) if starts is None else starts
    tile = min(tile, length)
    raw = [taper(tile, overlap, scale, left=s > 0, right=s + tile < length) for s in starts]
    total = np.zeros(length * scale, dtype=np.float64)
    for s, w in zip(starts, raw):
        total[s * scale:(s + tile) * scale] += w
    if (total <= 0).any():  # cannot happen for overlap <= tile / 2; guards a future change
        raise AssertionError("tile weights leave pixels uncovered")
    return [(w / total[s * scale:(s + tile) * scale]).astype(np.float32) for s, w in zip(starts, raw)]


@dataclass(frozen=True)
class Tile:
    row: int  # index in the grid
    col: int
    y: int  # LR offset of the tile in the scene
    x: int
    h: int
    w: int


class TileGrid:
    """The tiles covering ``height x width`` LR px and their normalised HR blending weights."""

    def __init__(self, height: int, width: int, tile_size: int, overlap: int, scale: int = 3):
        if 2 * overlap > tile_size:
            raise ValueError(f"overlap {overlap} must be at most tile_size / 2 ({tile_size // 2})")
        self.height, self.width, self.scale, self.overlap = height, width, scale, overlap
        self.tile_h, self.tile_w = min(tile_size, height), min(tile_size, width)
        self.ys = axis_starts(height, tile_size, overlap)
        self.xs = axis_starts(width, tile_size, overlap)
        self.wy = axis_weights(height, tile_size, overlap, scale, self.ys)
        self.wx = axis_weights(width, tile_size, overlap, scale, self.xs)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def row(self, r: int) -> list[Tile]:
        return [Tile(r, c, self.ys[r], x, self.tile_h, self.tile_w) for c, x in enumerate(self.xs)]

    def __iter__(self) -> Iterator[Tile]:
        for r in range(len(self.ys)):
            yield from self.row(r)

    def weight(self, tile: Tile) -> np.ndarray:
        """(tile_h * scale, tile_w * scale, 1) normalised weight of one tile."""
        return (self.wy[tile.row][:, None] * self.wx[tile.col][None, :])[..., None]

    def final_rows(self, r: int) -> int:
        """LR row (scene coordinates) above which every pixel is complete once grid row ``r`` is done."""
        return self.ys[r + 1] if r + 1 < len(self.ys) else self.height


#: Strip buffers per LR px of a strip (tile height x scene width), bytes: the encoded uint16 output
#: rows being filled and the ones being written (2 x 3 bands x 9 HR px x 2 B = 108), the float32 input
#: strip and the one read ahead (2 x 12), their masks (2) and the nodata fill's indices and copy (28).
STRIP_BYTES = 162
#: Per LR px of scene width: the writer's partial block band (< 512 HR rows of uint16, ~171 LR rows).
BAND_BYTES = 54 * 171
#: Float32 HR accumulator per LR px: 9 HR px x 3 bands x 4 B (the rows carried to the next strip).
CARRY_BYTES = 108
#: The sliding accumulator window, per LR px of a tile: 2 tiles wide (2 x 108 B).
WINDOW_BYTES = 216
#: Smallest tile side the budget rule picks (below it, overheads dominate).
MIN_TILE = 64


def memory_bytes(tile: int, width: int, height: int, overlap: int, act_bytes_per_px: float,
                 batch: int = 1) -> float:
    """Working memory of predicting a ``height x width`` scene with ``tile``-px tiles: the model's
    activations (``batch`` tiles), the accumulator window, and the strip buffers (see module doc)."""
    th, tw = min(tile, height), min(tile, width)
    ys = axis_starts(height, tile, overlap)
    carry = max((th - (b - a) for a, b in zip(ys, ys[1:])), default=0)
    return (batch * th * tw * act_bytes_per_px + th * tw * WINDOW_BYTES
            + width * (STRIP_BYTES * th + CARRY_BYTES * carry + BAND_BYTES))


def largest_tile(budget_bytes: float, width: int, height: int, overlap: int, act_bytes_per_px: float,
                 batch: int = 1, multiple: int = 16) -> int:
    """The largest tile side (a multiple of ``multiple``, at least ``2 * overlap`` and ``MIN_TILE``)
    whose ``memory_bytes`` fit ``budget_bytes``; the scene's longer side when it all fits. When not
    even the smallest tile fits, the smallest (the caller warns)."""
    smallest = max(MIN_TILE, -(-2 * overlap // multiple) * multiple)
    whole = max(width, height, smallest)
    if memory_bytes(whole, width, height, overlap, act_bytes_per_px, batch) <= budget_bytes:
        return whole
    lo, hi = smallest // multiple, -(-whole // multiple)  # in units of ``multiple``; fits(lo) assumed
    while hi - lo > 1:  # memory grows with the tile side: bisect for the last one that fits
        mid = (lo + hi) // 2
        if memory_bytes(mid * multiple, width, height, overlap, act_bytes_per_px, batch) <= budget_bytes:
            lo = mid
        else:
            hi = mid
    return lo * multiple


def fewest_px_tile(tile: int, width: int, height: int, overlap: int) -> int:
    """The smallest tile side that needs no more tiles than ``tile`` along either axis: the same tile
    count with less overlap recomputed (10,000 px at 480 / overlap 34: 23 tiles of 468 px)."""
    counts = [len(axis_starts(length, tile, overlap)) for length in (width, height)]
    if counts == [1, 1]:
        return tile  # one tile covers the scene (TileGrid clips it to the scene)
    sides = [-(-(length + (n - 1) * overlap) // n) for length, n in zip((width, height), counts)]
    return max(*sides, 2 * overlap)


def tile_for_budget(budget_bytes: float, width: int, height: int, overlap: int, act_bytes_per_px: float,
                    batch: int = 1) -> int:
    """The tile side of the budget rule: ``largest_tile``, then ``fewest_px_tile``."""
    return fewest_px_tile(largest_tile(budget_bytes, width, height, overlap, act_bytes_per_px, batch),
                          width, height, overlap)


def batched(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def predict_array(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile_size: int, overlap: int,
                  batch_size: int = 1, scale: int = 3) -> np.ndarray:
    """Tiled, blended prediction of a whole in-memory (h, w, c) image with ``fn`` ((n, h, w, c) ->
    (n, h*scale, w*scale, c)). The scene writer does the same strip by strip on disk."""
    h, w, c = image.shape
    grid = TileGrid(h, w, tile_size, overlap, scale)
    out = np.zeros((h * scale, w * scale, c), dtype=np.float32)
    tiles = list(grid)
    for group in batched(tiles, batch_size):
        batch = np.stack([image[t.y:t.y + t.h, t.x:t.x + t.w] for t in group]).astype(np.float32)
        pred = np.asarray(fn(batch), dtype=np.float32)
        for t, p in zip(group, pred):
            out[t.y * scale:(t.y + t.h) * scale, t.x * scale:(t.x + t.w) * scale] += p * grid.weight(t)
    return out
