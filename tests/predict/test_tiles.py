"""Tile grid and blending weights (numpy only)."""

from itertools import pairwise

import numpy as np
import pytest

from satsr.predict.tiles import TileGrid, axis_starts, axis_weights, predict_array, taper


@pytest.mark.parametrize("length", [1, 85, 256, 257, 300, 1000, 4097])
def test_tiles_cover_the_axis_with_at_least_the_overlap(length):
    starts = axis_starts(length, 256, 32)
    tile = min(256, length)
    assert starts[0] == 0 and starts[-1] + tile == length
    assert all(b - a <= 256 - 32 for a, b in pairwise(starts))  # neighbours share >= overlap


@pytest.mark.parametrize("length,overlap", [(85, 16), (300, 32), (1000, 32), (777, 0), (1000, 128)])
def test_normalised_weights_sum_to_one_everywhere(length, overlap):
    starts = axis_starts(length, 256, overlap)
    weights = axis_weights(length, 256, overlap, 3, starts)
    total = np.zeros(length * 3)
    for s, w in zip(starts, weights):
        assert w.min() >= 0
        total[s * 3:(s + min(256, length)) * 3] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_taper_discards_the_outer_quarter_and_ramps_smoothly():
    w = taper(64, 32, 3, left=True, right=False)
    assert (w[:8 * 3] == 0).all() and (w[24 * 3:] == 1).all()
    ramp = w[8 * 3:24 * 3]
    assert (np.diff(ramp) > 0).all() and 0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1
    np.testing.assert_allclose(ramp + ramp[::-1], 1.0)  # neighbours' ramps are complementary
    assert (taper(64, 32, 3, left=False, right=False) == 1).all()  # scene borders keep weight 1


def test_overlap_larger_than_half_a_tile_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        TileGrid(100, 100, 32, 17)


def test_blended_tiles_reproduce_a_local_operator_exactly():
    """Any operator whose reach is under overlap // 4 gives the same result tiled and whole."""
    from scipy.ndimage import uniform_filter

    def op(batch):  # 3x3 box blur (reach 1 px, zero padding) then nearest x3, like a tiny network
        blurred = np.stack([uniform_filter(b, size=(3, 3, 1), mode="constant") for b in batch])
        return blurred.repeat(3, axis=1).repeat(3, axis=2)

    image = np.random.default_rng(0).random((100, 131, 3)).astype(np.float32)
    whole = op(image[None])[0]
    tiled = predict_array(op, image, tile_size=40, overlap=16, batch_size=3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
