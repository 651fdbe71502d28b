"""One scene through the model strip by strip, with bounded memory: the tiling plan and the loop.

``plan`` resolves ``predict.tile_size`` / ``overlap`` / ``batch_size`` for a scene and a model
(values set explicitly are used as given; ``auto`` follows the rules in satsr.predict.tiles):

* overlap: ``2 * reach + 2``, the reach measured on the model (``SRModel.reach``) at half of
  ``predict.overlap_tolerance`` per edge (a tile corner has two edges), so tiled output equals the
  whole-image output within the tolerance;
* tile side, CPU: the largest whose activations, accumulator window and strip buffers fit
  ``predict.max_memory_gb`` (the fixed cost of TensorFlow, the weights and GDAL's cache, ~1 GB, comes
  on top);
* tile side, GPU: activations fit ``predict.gpu_max_memory_gb`` on the device, strips fit
  ``max_memory_gb`` on the host; ``batch_size: auto`` then batches as many tiles of a grid row as the
  device budget holds (on a CPU a batch is no faster than a bigger tile, so ``auto`` is 1).

``run_strips`` walks the grid one row of tiles (a strip) at a time. The strip below is read in a
background thread while the model runs (one strip ahead), and the finished rows are written in
another (one strip behind), so I/O overlaps compute and memory stays bounded. Within a strip the tiles
are blended into a sliding float32 window two tiles wide; columns no later tile touches are moved out
of it: the finished rows encoded into the strip's output (uint16 or float32), the rows the next strip
still adds to kept as float32 ``carry``. Memory grows with the tile side and the scene width, never
with the scene height (``satsr.predict.tiles.memory_bytes`` counts it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from satsr.predict.errors import PredictError
from satsr.predict.tiles import (
    MIN_TILE,
    Tile,
    TileGrid,
    batched,
    memory_bytes,
    overlap_for_reach,
    tile_for_budget,
)

log = logging.getLogger(__name__)

GB = 2 ** 30


@dataclass(frozen=True)
class Plan:
    """The tiling of one scene and why: ``reach`` (None: overlap set explicitly), the model's
    activation bytes per LR px, the estimated working memory (host; device on a GPU)."""

    tile: int
    overlap: int
    batch: int
    reach: int | None
    bytes_per_px: float
    memory_gb: float
    device: str

    def describe(self) -> str:
        why = f"reach {self.reach} px" if self.reach is not None else "set"
        return (f"{self.device}: tiles {self.tile} px, overlap {self.overlap} ({why}), batch {self.batch}, "
                f"{self.bytes_per_px / 1024:.1f} KiB/px, ~{self.memory_gb:.2f} GB working memory")


def gpu_present() -> bool:
    """True when TensorFlow sees a GPU (only asked once a model is loaded, so TF is imported)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def plan(height: int, width: int, model: Any, p: Any, gpu: bool | None = None) -> Plan:
    """The tile side, overlap and batch size for a ``height x width`` scene (see the module doc).
    ``model``: an SRModel (``reach``, ``bytes_per_px``); ``p``: PredictParams."""
    gpu = gpu_present() if gpu is None else gpu
    reach = None
    if p.overlap == "auto":
        reach = model.reach(p.overlap_tolerance / 2)
        overlap = overlap_for_reach(reach)
    else:
        overlap = p.overlap
    a = model.bytes_per_px()
    host = p.max_memory_gb * GB
    if p.tile_size != "auto":
        tile = p.tile_size
    elif gpu:  # activations on the device, strips on the host
        device_side = int(np.sqrt(p.gpu_max_memory_gb * GB / a)) // 16 * 16
        tile = min(tile_for_budget(host, width, height, overlap, 0.0), max(device_side, MIN_TILE))
    else:
        tile = tile_for_budget(host, width, height, overlap, a, 1 if p.batch_size == "auto" else p.batch_size)
    if 2 * overlap > tile:
        if p.overlap != "auto":
            raise PredictError(f"predict.overlap {overlap} must be at most tile_size / 2 ({tile // 2})")
        log.warning("the model's reach (%d px) needs overlap %d, more than half the %d px tile; using %d: "
                    "tile edges may differ from the whole image by more than %g", reach, overlap, tile,
                    tile // 2, p.overlap_tolerance)
        overlap = tile // 2
    th, tw = min(tile, height), min(tile, width)
    if p.batch_size != "auto":
        batch = p.batch_size
    elif gpu:
        per_row = len(TileGrid(height, width, tile, overlap).xs)
        batch = int(max(1, min(per_row, p.gpu_max_memory_gb * GB // (th * tw * a))))
    else:
        batch = 1
    host_bytes = memory_bytes(tile, width, height, overlap, 0.0 if gpu else a, 1 if gpu else batch)
    if not gpu and host_bytes > host:
        log.warning("predict.max_memory_gb %g: even %d px tiles need ~%.2f GB", p.max_memory_gb, tile,
                    host_bytes / GB)
    device_gb = batch * th * tw * a / GB
    memory = f"{host_bytes / GB:.2f}" if not gpu else f"{host_bytes / GB:.2f} host + {device_gb:.2f} GPU"
    log.debug("tiling memory: %s GB", memory)
    return Plan(tile, overlap, batch, reach, a, host_bytes / GB + (device_gb if gpu else 0.0),
                "gpu" if gpu else "cpu")


@dataclass
class StripStats:
    """What ``run_strips`` did: tiles run, valid input px, seconds in the model and in ``sink``."""

    tiles_run: int = 0
    valid_px: int = 0
    model_seconds: float = 0.0
    write_seconds: float = 0.0


def run_strips(grid: TileGrid, read: Callable[[int], tuple[np.ndarray, np.ndarray]],
               fn: Callable[[np.ndarray], np.ndarray], encode: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
               sink: Callable[[np.ndarray], None], batch: int, progress: Callable[[int], None] = lambda n: None,
               name: str = "model") -> StripStats:
    """Predict the scene of ``grid`` and hand its encoded rows to ``sink`` in order, top to bottom.

    ``read(r)``: grid row ``r``'s input strip, ``(tile_h, width, 3)`` float32 with nodata filled, and
    its ``(tile_h, width)`` nodata mask; ``fn``: the model's batch function; ``encode(rows, hr_mask)``:
    ``(n, m, 3)`` float32 HR reflectance (may be changed in place) -> ``(3, n, m)`` stored values;
    ``sink(rows)``: ``(3, n, width * scale)`` encoded rows, called in a writer thread.
    """
    s, th, tw, width = grid.scale, grid.tile_h, grid.tile_w, grid.width
    cap = min(width, 2 * tw)  # LR columns of the sliding window
    stats = StripStats()
    n_rows = len(grid.ys)

    def write(rows: np.ndarray) -> None:
        t = time.perf_counter()
        sink(rows)
        stats.write_seconds += time.perf_counter() - t

    with ThreadPoolExecutor(1, thread_name_prefix="satsr-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="satsr-write") as writer:
        next_read: Future = reader.submit(read, 0)
        pending: Future | None = None
        carry: np.ndarray | None = None
        try:
            for r in range(n_rows):
                x, mask = next_read.result()
                if r + 1 < n_rows:
                    next_read = reader.submit(read, r + 1)
                fin = grid.final_rows(r) - grid.ys[r]
                stats.valid_px += int(fin * width - np.count_nonzero(mask[:fin]))
                strip = _Strip(s, th, fin, width, cap, carry, mask, encode, last=r + 1 == n_rows)
                tiles: list[Tile] = []
                for t in grid.row(r):
                    if mask[:, t.x:t.x + t.w].all():  # all nodata: nothing to predict
                        progress(1)
                    else:
                        tiles.append(t)
                for group in batched(tiles, batch):
                    tm = time.perf_counter()
                    out = fn(np.stack([x[:, t.x:t.x + t.w] for t in group]))
                    stats.model_seconds += time.perf_counter() - tm
                    if tuple(out.shape[1:]) != (th * s, tw * s, 3):
                        raise PredictError(f"{name}: output {tuple(out.shape[1:])} for input tiles {(th, tw, 3)}; "
                                           f"expected x{s} red,green,blue")
                    for t, y in zip(group, out):
                        strip.add(t, y * grid.weight(t))
                    stats.tiles_run += len(group)
                    progress(len(group))
                rows, carry = strip.finish()
                if pending is not None:
                    pending.result()
                pending = writer.submit(write, rows)
            if pending is not None:
                pending.result()
        except BaseException:
            next_read.cancel()
            raise
    return stats


class _Strip:
    """One grid row's blending: a sliding float32 window over the columns the current tiles cover;
    columns left behind go to ``out`` (the encoded finished rows) and ``carry`` (the rows below)."""

    def __init__(self, s: int, th: int, fin: int, width: int, cap: int, carry: np.ndarray | None,
                 mask: np.ndarray, encode: Callable[[np.ndarray, np.ndarray | None], np.ndarray], last: bool):
        self.s, self.fin, self.width, self.cap = s, fin, width, cap
        self.carry_in, self.mask, self.encode = carry, mask, encode
        self.window = np.zeros((th * s, cap * s, 3), dtype=np.float32)
        self.lo = 0  # LR column of the window's left edge
        self.out: np.ndarray | None = None
        self.carry_out = None if last else np.zeros(((th - fin) * s, width * s, 3), dtype=np.float32)

    def add(self, t: Tile, y: np.ndarray) -> None:
        """Add a weighted tile; tiles come in increasing ``t.x``."""
        if t.x + t.w > self.lo + self.cap:
            self._flush(t.x)  # no later tile reaches left of t.x
        a = (t.x - self.lo) * self.s
        self.window[:, a:a + t.w * self.s] += y

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        self._flush(self.width)
        return self.out, self.carry_out

    def _flush(self, upto: int) -> None:
        """Move the complete columns [lo, upto) out of the window (in window-wide pieces: tiles of
        nodata are skipped, so ``upto`` may lie beyond the window)."""
        while self.lo < upto:
            self._flush_piece(min(upto, self.lo + self.cap))

    def _flush_piece(self, upto: int) -> None:
        s, a, b = self.s, self.lo, upto
        block = self.window[:, :(b - a) * s]
        if self.carry_in is not None:
            block[:self.carry_in.shape[0]] += self.carry_in[:, a * s:b * s]
        if self.carry_out is not None:
            self.carry_out[:, a * s:b * s] = block[self.fin * s:]
        m = self.mask[:self.fin, a:b]
        hr_mask = np.repeat(np.repeat(m, s, axis=0), s, axis=1) if m.any() else None
        enc = self.encode(block[:self.fin * s], hr_mask)
        if self.out is None:
            self.out = np.empty((enc.shape[0], self.fin * s, self.width * s), dtype=enc.dtype)
        self.out[:, :, a * s:b * s] = enc
        keep = self.cap - (b - a)  # window columns right of ``upto``
        if keep > 0:
            self.window[:, :keep * s] = self.window[:, (b - a) * s:].copy()
        self.window[:, max(keep, 0) * s:] = 0.0
        self.lo = b
