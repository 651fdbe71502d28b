"""tf.data input pipeline: (lr, hr) float32 batches in [0, 1] from a PNG dataset folder.

Reads any folder in the PNG dataset layout -- the satellite ``data/png`` stage or the natural
pretraining corpus ``data/natural`` -- i.e. ``index.csv`` (columns pair_id, split, lr_png,
hr_png; paths relative to the folder) and 16-bit RGB PNGs with HR exactly 3x LR. Values are
``png / 65535`` (the PNG stage's normalisation; 8-bit PNGs are widened by ``decode_png`` as
v * 257, i.e. v / 255).

Before any graph is built, every pair is checked in Python from its PNG header (33 bytes, no
decoding): files present, sizes exactly 3x, patch not larger than the smallest image. Errors name
the file, pair or folder (:class:`PipelineError`).

**Training** (``training=True``): image pairs are decoded once (and kept in memory as uint16 when
``params.cache`` allows), repeated forever and shuffled with ``seed``; each draw takes an aligned
random crop -- LR ``lr_patch`` px at offset (y, x), HR ``3 * lr_patch`` px at exactly
(3y, 3x) -- and applies the same random horizontal flip and rot90 to both. All randomness is
stateless, seeded by ``(seed, draw index)``, so a given seed always yields the same batches
whatever the parallelism. Featureless patches are rejected as in idealo ISR: up to
``flatness_tries`` crops are tried per draw, and a draw whose crops all have a grey-HR std below
the current threshold is dropped. The threshold follows the epoch schedule::

    threshold(epoch) = min(flatness_max, flatness_min + flatness_increase * (epoch // flatness_increase_every))

read from the ``epoch`` ``tf.Variable`` inside the graph, so advancing it never retraces (patches
already prefetched when it changes use the previous threshold). A run of 10 000 consecutive
rejected draws stops with an error instead of hanging. Usage::

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    it = iter(make_dataset(png_dir, "train", p, training=True, seed=42, epoch=epoch))
    for e in range(epochs):
        epoch.assign(e)
        for _ in range(steps_per_epoch):
            lr, hr = next(it)        # (B, p, p, 3), (B, 3p, 3p, 3) float32 in [0, 1]

**Validation** (``training=False``): every pair once, in index order, whole images (or the
central ``val_crop`` LR crop and its aligned HR crop) in batches of 1, no augmentation.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import tensorflow as tf

from satsr.config import SCALE, InputParams
from satsr.errors import SatsrError

INDEX_NAME = "index.csv"
REQUIRED_COLUMNS = ("pair_id", "split", "lr_png", "hr_png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Consecutive rejected draws after which training stops with an error (instead of hanging).
MAX_CONSECUTIVE_REJECTS = 10_000
AUTOTUNE = tf.data.AUTOTUNE


class PipelineError(SatsrError, ValueError):
    """The PNG dataset cannot feed the pipeline; the message names the file, pair or folder."""


@dataclass(frozen=True)
class Pair:
    pair_id: str
    lr_path: Path
    hr_path: Path
    lr_size: tuple[int, int]  # (width, height)
    hr_size: tuple[int, int]
    #: The split's spatial group (index.csv ``group``; None when the dataset has none): evaluation's
    #: confidence intervals resample groups, not chips (satsr.evaluate.stats).
    group: str | None = None


# --------------------------------------------------------------------------------------- index
def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding the image."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except FileNotFoundError:
        raise PipelineError(f"{path}: PNG file not found") from None
    except OSError as err:
        raise PipelineError(f"{path}: unreadable ({err})") from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise PipelineError(f"{path}: not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def load_pairs(png_dir: str | Path, split: str) -> list[Pair]:
    """The checked pairs of one split, in index order (sizes read from the PNG headers)."""
    png_dir = Path(png_dir)
    index_path = png_dir / INDEX_NAME
    if not png_dir.is_dir():
        raise PipelineError(f"{png_dir}: PNG dataset folder not found (run the png or natural stage first)")
    if not index_path.is_file():
        raise PipelineError(f"{index_path}: index.csv not found; {png_dir} is not a PNG dataset folder "
                            "(expected index.csv and {split}_{LR,HR}/<pair_id>.png)")
    try:
        index = pd.read_csv(index_path, dtype={"pair_id": str, "split": str, "lr_png": str, "hr_png": str,
                                               "group": str})
    except (ValueError, OSError) as err:
        raise PipelineError(f"{index_path}: unreadable index ({err})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in index.columns]
    if missing:
        raise PipelineError(f"{index_path}: missing column(s) {missing} (needs {list(REQUIRED_COLUMNS)})")
    rows = index[index["split"] == split]
    if rows.empty:
        present = sorted(index["split"].dropna().unique())
        raise PipelineError(f"split {split!r} of {png_dir} is empty (splits present: {present})")
    pairs = []
    for r in rows.itertuples(index=False):
        lr_path, hr_path = png_dir / str(r.lr_png), png_dir / str(r.hr_png)
        lr_size, hr_size = png_size(lr_path), png_size(hr_path)
        if hr_size != (lr_size[0] * SCALE, lr_size[1] * SCALE):
            raise PipelineError(
                f"pair {r.pair_id}: HR {hr_size[0]}x{hr_size[1]} ({hr_path}) is not exactly {SCALE}x "
                f"LR {lr_size[0]}x{lr_size[1]} ({lr_path})")
        group = getattr(r, "group", None)
        pairs.append(Pair(str(r.pair_id), lr_path, hr_path, lr_size, hr_size,
                          str(group) if isinstance(group, str) and group else None))
    return pairs


def _check_patch(pairs: list[Pair], side: int, what: str) -> None:
    smallest = min(pairs, key=lambda p: min(p.lr_size))
    if side > min(smallest.lr_size):
        w, h = smallest.lr_size
        raise PipelineError(f"{what} {side} px is larger than the smallest LR image {smallest.lr_path} "
                            f"({w}x{h}, pair {smallest.pair_id})")


# ------------------------------------------------------------------------------------ schedule
def flatness_threshold(epoch: int, params: InputParams) -> float:
    """The flatness threshold of an epoch (the same formula as in the graph)."""
    step = epoch // params.flatness_increase_every
    return float(min(params.flatness_max, params.flatness_min + params.flatness_increase * step))


def _threshold_tensor(epoch: tf.Variable | None, params: InputParams) -> tf.Tensor:
    e = tf.constant(0, tf.int64) if epoch is None else tf.cast(epoch, tf.int64)
    step = tf.cast(e // params.flatness_increase_every, tf.float64)
    thr = tf.minimum(tf.constant(params.flatness_max, tf.float64),
                     params.flatness_min + params.flatness_increase * step)
    return tf.cast(thr, tf.float32)


# ------------------------------------------------------------------------------------- graph
def _decode(lr_path: tf.Tensor, hr_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    lr = tf.io.decode_png(tf.io.read_file(lr_path), channels=3, dtype=tf.uint16)
    hr = tf.io.decode_png(tf.io.read_file(hr_path), channels=3, dtype=tf.uint16)
    return lr, hr


def _to_unit(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32) * (1.0 / 65535.0)


def _grey_std(hr_patch: tf.Tensor) -> tf.Tensor:
    return tf.math.reduce_std(tf.reduce_mean(_to_unit(hr_patch), axis=-1))


def _make_crop_fn(params: InputParams, seed: int, epoch: tf.Variable | None):
    p, hp, tries = params.lr_patch, params.lr_patch * SCALE, params.flatness_tries

    def crop(i: tf.Tensor, pair: tuple[tf.Tensor, tf.Tensor]):
        lr, hr = pair
        thr = _threshold_tensor(epoch, params)
        u = tf.random.stateless_uniform([tries + 1, 2], seed=tf.stack([tf.constant(seed, tf.int64), i]))
        ny = tf.shape(lr, out_type=tf.int64)[0] - p + 1
        nx = tf.shape(lr, out_type=tf.int64)[1] - p + 1

        def offsets(t):
            oy = tf.minimum(tf.cast(u[t, 0] * tf.cast(ny, tf.float32), tf.int64), ny - 1)
            ox = tf.minimum(tf.cast(u[t, 1] * tf.cast(nx, tf.float32), tf.int64), nx - 1)
            return oy, ox

        def hr_crop(oy, ox):
            return tf.slice(hr, tf.stack([oy * SCALE, ox * SCALE, 0]), [hp, hp, 3])

        def body(t, found, oy, ox):
            oy, ox = offsets(t)
            ok = _grey_std(hr_crop(oy, ox)) >= thr
            return t + 1, ok, oy, ox

        zero = tf.constant(0, tf.int64)
        _, found, oy, ox = tf.while_loop(lambda t, found, oy, ox: tf.logical_and(t < tries, tf.logical_not(found)),
                                         body, (tf.constant(0), tf.constant(False), zero, zero))
        lr_p = tf.slice(lr, tf.stack([oy, ox, 0]), [p, p, 3])
        hr_p = hr_crop(oy, ox)
        # Augmentation from the last row of draws: identical on both, so alignment is kept.
        if params.flips:
            flip = u[tries, 0] < 0.5
            lr_p = tf.cond(flip, lambda: tf.reverse(lr_p, [1]), lambda: lr_p)
            hr_p = tf.cond(flip, lambda: tf.reverse(hr_p, [1]), lambda: hr_p)
        if params.rot90:
            k = tf.minimum(tf.cast(u[tries, 1] * 4.0, tf.int32), 3)
            lr_p = tf.image.rot90(lr_p, k)
            hr_p = tf.image.rot90(hr_p, k)
        lr_p = tf.ensure_shape(_to_unit(lr_p), [p, p, 3])
        hr_p = tf.ensure_shape(_to_unit(hr_p), [hp, hp, 3])
        return lr_p, hr_p, found

    return crop


def _guard(count: tf.Tensor, elem):
    lr, hr, keep = elem
    count = tf.where(keep, tf.constant(0, tf.int64), count + 1)
    check = tf.debugging.assert_less(
        count, tf.constant(MAX_CONSECUTIVE_REJECTS, tf.int64),
        message=f"flatness: {MAX_CONSECUTIVE_REJECTS} consecutive patches were all rejected as flat; "
                "lower flatness_max / flatness_min (InputParams) for this dataset")
    with tf.control_dependencies([check]):
        count = tf.identity(count)
    return count, (lr, hr, keep)


def _pair_to_unit(lr: tf.Tensor, hr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return _to_unit(lr), _to_unit(hr)


def _kept(lr: tf.Tensor, hr: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    return keep


def _drop_flag(lr: tf.Tensor, hr: tf.Tensor, keep: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return lr, hr


def _center_crop_fn(side: int):
    hside = side * SCALE

    def crop(lr: tf.Tensor, hr: tf.Tensor):
        oy = (tf.shape(lr)[0] - side) // 2
        ox = (tf.shape(lr)[1] - side) // 2
        lr_c = tf.slice(lr, tf.stack([oy, ox, 0]), [side, side, 3])
        hr_c = tf.slice(hr, tf.stack([oy * SCALE, ox * SCALE, 0]), [hside, hside, 3])
        return lr_c, hr_c

    return crop


def decoded_bytes(pairs: list[Pair]) -> int:
    """Memory of the decoded uint16 LR + HR images."""
    return sum((p.lr_size[0] * p.lr_size[1] + p.hr_size[0] * p.hr_size[1]) * 3 * 2 for p in pairs)


def make_dataset(png_dir: Path, split: str, params: InputParams, *, training: bool, seed: int,
                 epoch: tf.Variable | None = None) -> tf.data.Dataset:
    """(lr, hr) float32 batches in [0, 1]: shapes (B, p, p, 3), (B, 3p, 3p, 3) when training,
    (1, h, w, 3), (1, 3h, 3w, 3) otherwise. See the module docstring."""
    png_dir = Path(png_dir)
    pairs = load_pairs(png_dir, split)
    lr_paths = [str(p.lr_path) for p in pairs]
    hr_paths = [str(p.hr_path) for p in pairs]
    nbytes = decoded_bytes(pairs)
    cache = params.cache == "memory" or (params.cache == "auto" and nbytes <= params.cache_max_mb * 2**20)
    files = tf.data.Dataset.from_tensor_slices((lr_paths, hr_paths))

    if not training:
        ds = files.map(_decode, num_parallel_calls=AUTOTUNE, deterministic=True)
        if cache:
            ds = ds.cache()
        if params.val_crop is not None:
            _check_patch(pairs, params.val_crop, "val_crop")
            ds = ds.map(_center_crop_fn(params.val_crop), num_parallel_calls=AUTOTUNE, deterministic=True)
        ds = ds.map(_pair_to_unit, num_parallel_calls=AUTOTUNE, deterministic=True)
        return ds.batch(1).prefetch(AUTOTUNE)

    _check_patch(pairs, params.lr_patch, "lr_patch")
    buffer = max(1, min(len(pairs), params.shuffle_buffer))
    if cache:
        ds = files.map(_decode, num_parallel_calls=AUTOTUNE, deterministic=True).cache()
        ds = ds.repeat().shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        ds = files.repeat().shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(_decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    k = params.patches_per_image
    if k > 1:
        def _repeat(lr: tf.Tensor, hr: tf.Tensor) -> tf.data.Dataset:
            return tf.data.Dataset.from_tensors((lr, hr)).repeat(k)

        ds = ds.flat_map(_repeat)
    ds = ds.enumerate()
    crop = _make_crop_fn(params, seed, epoch)
    ds = ds.map(crop, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.scan(tf.constant(0, tf.int64), _guard)
    ds = ds.filter(_kept).map(_drop_flag)
    if k > 1:  # mix patches of different images within a batch
        ds = ds.shuffle(k * params.batch_size, seed=seed + 1, reshuffle_each_iteration=True)
    return ds.batch(params.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


# ------------------------------------------------------------------------------------ benchmark
def pipeline_throughput(ds: tf.data.Dataset, n_batches: int, warmup: int = 2) -> float:
    """Patches per second drawn from ``ds`` over ``n_batches`` batches, after ``warmup`` batches
    (which fill caches and prefetch buffers)."""
    if n_batches < 1:
        raise ValueError("n_batches must be >= 1")
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    n = 0
    t0 = time.perf_counter()
    for _ in range(n_batches):
        lr, _hr = next(it)
        n += int(lr.shape[0])
    return n / (time.perf_counter() - t0)

