"""The tf.data input pipeline: shapes, alignment under augmentation, flatness, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from satsr.config import InputParams
from satsr.data.pipeline import PipelineError, flatness_threshold, make_dataset, pipeline_throughput
from satsr.data.png import write_png16


def write_dataset(root: Path, pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> Path:
    """A PNG dataset folder in the png stage's layout: {split}_{LR,HR}/<id>.png + index.csv."""
    rows = []
    for split, items in pairs.items():
        for k, (lr, hr) in enumerate(items):
            pid = f"{split}{k:02d}"
            rel = {"lr_png": f"{split}_LR/{pid}.png", "hr_png": f"{split}_HR/{pid}.png"}
            write_png16(root / rel["lr_png"], lr)
            write_png16(root / rel["hr_png"], hr)
            rows.append({"pair_id": pid, "split": split, **rel})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return root


def area_pair(rng: np.random.Generator, lr_h: int, lr_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Random HR whose every 3x3 block sums to a multiple of 9, and LR = the exact block mean."""
    hr = rng.integers(8, 60000, (lr_h * 3, lr_w * 3, 3)).astype(np.int64)
    blocks = hr.reshape(lr_h, 3, lr_w, 3, 3)
    blocks[:, 0, :, 0, :] -= blocks.sum(axis=(1, 3)) % 9
    lr = blocks.sum(axis=(1, 3)) // 9
    return lr.astype(np.uint16), hr.astype(np.uint16)


def block_mean(hr: np.ndarray) -> np.ndarray:
    b, h, w, c = hr.shape
    return hr.reshape(b, h // 3, 3, w // 3, 3, c).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def area_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    pairs = {"train": [area_pair(rng, 40, 48), area_pair(rng, 36, 36), area_pair(rng, 50, 44)],
             "val": [area_pair(rng, 20, 24), area_pair(rng, 18, 18)]}
    return write_dataset(tmp_path_factory.mktemp("png"), pairs)


def test_training_batches_shapes_and_range(area_dir):
    ds = make_dataset(area_dir, "train", InputParams(lr_patch=12, batch_size=5), training=True, seed=1)
    for lr, hr in ds.take(3):
        assert lr.shape == (5, 12, 12, 3) and hr.shape == (5, 36, 36, 3)
        assert lr.dtype == tf.float32 and hr.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(hr)) and float(tf.reduce_max(hr)) <= 1.0
    assert pipeline_throughput(ds, 2, warmup=1) > 0


def test_crops_stay_aligned_under_flips_and_rot90(area_dir):
    """LR is the exact 3x3 mean of HR on disk; every crop must keep that after augmentation."""
    ds = make_dataset(area_dir, "train", InputParams(lr_patch=10, batch_size=8), training=True, seed=3)
    for lr, hr in ds.take(8):
        np.testing.assert_allclose(lr.numpy(), block_mean(hr.numpy().astype(np.float64)), atol=1e-6)


def test_augmentation_is_the_same_dihedral_transform_on_both(tmp_path):
    rng = np.random.default_rng(5)
    lr0, hr0 = area_pair(rng, 8, 8)
    root = write_dataset(tmp_path, {"train": [(lr0, hr0)]})
    ds = make_dataset(root, "train", InputParams(lr_patch=8, batch_size=16), training=True, seed=0)
    lr, hr = (t.numpy() for t in next(iter(ds)))

    def dihedral(x):
        return [np.rot90(np.fliplr(x) if f else x, k) for f in (0, 1) for k in range(4)]

    seen = set()
    for a, b in zip(lr, hr):
        ka = [i for i, t in enumerate(dihedral(lr0 / 65535.0)) if np.allclose(a, t)]
        kb = [i for i, t in enumerate(dihedral(hr0 / 65535.0)) if np.allclose(b, t)]
        assert len(ka) == 1 and ka == kb
        seen.add(ka[0])
    assert len(seen) > 2, "flips / rot90 should vary"


def half_flat_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 65535, (144, 144, 3)).astype(np.uint16)
    hr[:, :72] = 30000  # left half featureless
    lr = hr.reshape(48, 3, 48, 3, 3).mean(axis=(1, 3)).round().astype(np.uint16)
    return write_dataset(tmp_path, {"train": [(lr, hr)]})


def _hr_stds(ds, n):
    return np.concatenate([hr.numpy().mean(axis=-1).std(axis=(1, 2)) for _, hr in ds.take(n)])


def test_flatness_rejection_and_schedule(tmp_path):
    root = half_flat_dir(tmp_path)
    p = InputParams(lr_patch=16, batch_size=16, flatness_min=0.0, flatness_max=0.05, flatness_increase=0.05,
                    flatness_increase_every=2, flatness_tries=1)
    assert [flatness_threshold(e, p) for e in range(5)] == [0.0, 0.0, 0.05, 0.05, 0.05]
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    ds = make_dataset(root, "train", p, training=True, seed=0, epoch=epoch)
    assert (_hr_stds(ds, 4) < 1e-9).any(), "threshold 0 keeps flat patches"
    epoch.assign(2)  # threshold 0.05: no retrace, the same dataset object now rejects them
    stds = _hr_stds(ds, 4)
    assert stds.min() >= 0.05
    assert len(stds) == 64


def test_same_seed_same_batches(area_dir):
    p = InputParams(lr_patch=8, batch_size=4)

    def first(seed):
        return [(a.numpy(), b.numpy()) for a, b in make_dataset(area_dir, "train", p, training=True, seed=seed).take(3)]

    a, b, c = first(7), first(7), first(8)
    for (x1, y1), (x2, y2) in zip(a, b):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert not all(np.array_equal(x1, x3) for (x1, _), (x3, _) in zip(a, c))


def test_validation_whole_images_and_center_crops(area_dir):
    p = InputParams(lr_patch=8, batch_size=4)
    shapes = [(lr.shape, hr.shape) for lr, hr in make_dataset(area_dir, "val", p, training=False, seed=0)]
    assert shapes == [((1, 20, 24, 3), (1, 60, 72, 3)), ((1, 18, 18, 3), (1, 54, 54, 3))]
    again = [lr.numpy() for lr, _ in make_dataset(area_dir, "val", p, training=False, seed=1)]
    first = [lr.numpy() for lr, _ in make_dataset(area_dir, "val", p, training=False, seed=0)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    pc = InputParams(lr_patch=8, batch_size=4, val_crop=10)
    for lr, hr in make_dataset(area_dir, "val", pc, training=False, seed=0):
        assert lr.shape == (1, 10, 10, 3) and hr.shape == (1, 30, 30, 3)
        np.testing.assert_allclose(lr.numpy(), block_mean(hr.numpy().astype(np.float64)), atol=1e-6)


def test_errors_name_the_file(tmp_path, area_dir):
    p = InputParams(lr_patch=8, batch_size=2)
    with pytest.raises(PipelineError, match="index.csv not found"):
        make_dataset(tmp_path, "train", p, training=True, seed=0)
    with pytest.raises(PipelineError, match=r"split 'test' of .* is empty"):
        make_dataset(area_dir, "test", p, training=True, seed=0)
    with pytest.raises(PipelineError) as err:
        make_dataset(area_dir, "train", InputParams(lr_patch=40), training=True, seed=0)
    assert "smallest LR image" in str(err.value) and "train01.png" in str(err.value)
    with pytest.raises(PipelineError, match="val_crop 19 px .*val01.png"):
        make_dataset(area_dir, "val", InputParams(val_crop=19), training=False, seed=0)

    rng = np.random.default_rng(1)
    lr, hr = area_pair(rng, 10, 10)
    bad = write_dataset(tmp_path / "bad", {"train": [(lr, hr), (lr, hr[:-1])]})
    with pytest.raises(PipelineError) as err:
        make_dataset(bad, "train", p, training=True, seed=0)
    assert "pair train01" in str(err.value) and "train_HR/train01.png" in str(err.value)
    assert "not exactly 3x" in str(err.value)

    (bad / "train_HR" / "train01.png").unlink()
    with pytest.raises(PipelineError, match=r"train_HR/train01.png: PNG file not found"):
        make_dataset(bad, "train", p, training=True, seed=0)
    (bad / "train_HR" / "train01.png").write_bytes(b"not a png at all, just text")
    with pytest.raises(PipelineError, match=r"train01.png: not a PNG file"):
        make_dataset(bad, "train", p, training=True, seed=0)
