"""The strip loop (bounded memory, nodata tiles skipped), the tiling plan, and the model measurements
that size it: the tile-edge reach and the activation memory."""

from __future__ import annotations

import numpy as np
import pytest
from scratch import box_op

from satsr.config import Params, PredictParams
from satsr.predict.model import activation_bytes_per_px, measure_reach
from satsr.predict.stream import GB, plan, run_strips
from satsr.predict.tiles import TileGrid, margin_px, memory_bytes, overlap_for_reach, tile_for_budget


def identity_encode(rows: np.ndarray, hr_mask: np.ndarray | None) -> np.ndarray:
    out = rows.copy()
    if hr_mask is not None:
        out[hr_mask] = np.nan
    return np.moveaxis(out, -1, 0)


def strips(image: np.ndarray, mask: np.ndarray, op, tile: int, overlap: int, batch: int = 1):
    """run_strips on an in-memory image; returns the (h*3, w*3, 3) output and the stats."""
    h, w, _ = image.shape
    grid = TileGrid(h, w, tile, overlap)
    rows: list[np.ndarray] = []
    done = []
    stats = run_strips(grid, lambda r: (image[grid.ys[r]:grid.ys[r] + grid.tile_h],
                                        mask[grid.ys[r]:grid.ys[r] + grid.tile_h]),
                       op, identity_encode, rows.append, batch, done.append)
    assert sum(done) == len(grid)  # every tile reported, run or skipped
    return np.moveaxis(np.concatenate(rows, axis=1), 0, -1), stats, grid


@pytest.mark.parametrize("tile,overlap,batch", [(40, 8, 1), (32, 6, 3), (64, 16, 2), (200, 8, 1)])
def test_strips_equal_the_whole_image_output(tile, overlap, batch):
    """Many rows (carry) and many tiles per row (the sliding window flushes): still == whole."""
    op = box_op(margin_px(overlap))
    image = np.random.default_rng(tile).random((130, 333, 3)).astype(np.float32)
    out, stats, grid = strips(image, np.zeros(image.shape[:2], bool), op, tile, overlap, batch)
    np.testing.assert_allclose(out, op(image[None])[0], atol=1e-5)
    assert stats.tiles_run == len(grid) and stats.valid_px == 130 * 333


def test_nodata_tiles_are_skipped_and_nodata_stays_nodata():
    op = box_op(2)
    image = np.random.default_rng(1).random((120, 300, 3)).astype(np.float32)
    mask = np.zeros((120, 300), bool)
    mask[:, 100:260] = True  # a band of nodata wider than two tiles: whole tiles are skipped
    mask[5, 7] = True
    out, stats, grid = strips(image, mask, op, 40, 6)
    hr_mask = mask.repeat(3, 0).repeat(3, 1)
    assert np.isnan(out[hr_mask]).all() and not np.isnan(out[~hr_mask]).any()
    assert stats.tiles_run < len(grid) and stats.valid_px == int((~mask).sum())
    whole = op(image[None])[0]
    keep = ~mask.repeat(3, 0).repeat(3, 1)
    keep[:, 95 * 3:265 * 3] = False  # next to the nodata band the skipped tiles' inputs are missing
    np.testing.assert_allclose(out[keep], whole[keep], atol=1e-5)


@pytest.mark.parametrize("reach", [0, 1, 4])
def test_measure_reach_finds_an_operators_reach(reach):
    assert measure_reach(box_op(reach), tol=1e-6) == reach


def test_measure_reach_widens_its_probe_for_far_reaching_models():
    assert measure_reach(box_op(40), tol=1e-6) == 40


class FakeModel:
    def __init__(self, reach: int, bytes_per_px: float):
        self._reach, self._bytes, self.asked = reach, bytes_per_px, []

    def reach(self, tol: float) -> int:
        self.asked.append(tol)
        return self._reach

    def bytes_per_px(self) -> float:
        return self._bytes


def test_plan_auto_uses_the_measured_reach_and_the_memory_budget():
    p = Params().predict
    assert (p.tile_size, p.overlap, p.batch_size) == ("auto", "auto", "auto")
    model = FakeModel(14, 6000.0)
    cpu = plan(10000, 10000, model, p, gpu=False)
    assert model.asked == [p.overlap_tolerance / 2]  # half per edge: a corner has two
    assert cpu.overlap == overlap_for_reach(14) == 30 and cpu.reach == 14 and cpu.batch == 1
    assert cpu.tile == tile_for_budget(p.max_memory_gb * GB, 10000, 10000, 30, 6000.0)
    assert memory_bytes(cpu.tile, 10000, 10000, 30, 6000.0) <= p.max_memory_gb * GB
    bigger = plan(10000, 10000, model, p.model_copy(update={"max_memory_gb": 8.0}), gpu=False)
    assert bigger.tile > cpu.tile
    small = plan(300, 200, model, p, gpu=False)  # fits whole: one tile
    assert small.tile >= 300 and len(TileGrid(200, 300, small.tile, small.overlap)) == 1


def test_plan_honours_explicit_values():
    p = PredictParams(tile_size=256, overlap=20, batch_size=3)
    model = FakeModel(14, 6000.0)
    got = plan(10000, 10000, model, p, gpu=False)
    assert (got.tile, got.overlap, got.batch, got.reach) == (256, 20, 3, None)
    assert model.asked == []  # nothing measured when the overlap is given
    # An explicit tile with an auto overlap wider than half of it: the overlap is capped.
    capped = plan(10000, 10000, FakeModel(40, 6000.0), PredictParams(tile_size=64), gpu=False)
    assert capped.overlap == 32


def test_plan_on_a_gpu_batches_tiles_within_the_device_budget():
    p = PredictParams(gpu_max_memory_gb=4.0)
    model = FakeModel(14, 6000.0)
    gpu = plan(10000, 10000, model, p, gpu=True)
    assert gpu.device == "gpu"
    assert gpu.batch * gpu.tile ** 2 * 6000.0 <= 4.0 * GB  # activations fit the device
    assert memory_bytes(gpu.tile, 10000, 10000, gpu.overlap, 0.0) <= p.max_memory_gb * GB  # strips the host
    cpu = plan(10000, 10000, model, p, gpu=False)
    assert gpu.batch > 1 or gpu.tile > cpu.tile
    assert plan(10000, 10000, model, p.model_copy(update={"batch_size": 1}), gpu=True).batch == 1


def test_activation_memory_is_a_multiple_of_the_largest_tensor(random_model):
    """Tiny EDSR (8 filters): the largest tensor is the upsampler conv's 8 x 9 channels, float32."""
    from satsr.predict.model import LIVE_TENSORS

    assert activation_bytes_per_px(random_model.keras_model) == pytest.approx(LIVE_TENSORS * 8 * 9 * 4)
    assert random_model.bytes_per_px() == activation_bytes_per_px(random_model.keras_model)


def test_auto_overlap_keeps_the_scene_equal_to_the_whole_image(tmp_path, random_model):
    """End to end: auto overlap from the tiny model's measured reach; tiled == whole within the
    tolerance, including along every tile edge."""
    from conftest import textured, write_tif
    from test_predict_scene import read_refl

    from satsr.predict import predict

    refl = textured(np.random.default_rng(1), 150, 170)
    src = write_tif(tmp_path / "scene.tif", refl, nodata=None)
    kw = {"params": Params(), "output_dtype": "float32", "output_format": "gtiff", "progress": False}
    whole = read_refl(predict(src, random_model, tmp_path / "whole.tif", tile_size=256, overlap=0, **kw)[0])
    tiled = read_refl(predict(src, random_model, tmp_path / "tiled.tif", tile_size=48, **kw)[0])
    reach = random_model.reach(Params().predict.overlap_tolerance / 2)
    assert 0 < reach <= 8  # the tiny EDSR's nominal reach is 5 LR px (+2 for the bicubic)
    grid = TileGrid(150, 170, 48, overlap_for_reach(reach))
    assert grid.shape[0] > 2 and grid.shape[1] > 2
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(np.diff(tiled, axis=2)).mean() > 1e-3  # the model really adds detail
