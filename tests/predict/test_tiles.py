"""Tile grid and blending weights (numpy only)."""

from itertools import pairwise

import numpy as np
import pytest
from scratch import box_op

from satsr.predict.tiles import (
    MIN_TILE,
    TileGrid,
    axis_starts,
    axis_weights,
    largest_tile,
    margin_px,
    memory_bytes,
    overlap_for_reach,
    predict_array,
    taper,
    tile_for_budget,
)


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


def test_taper_discards_the_margin_and_crossfades_in_the_middle():
    w = taper(64, 32, 3, left=True, right=False)
    assert margin_px(32) == 15
    assert (w[:15 * 3] == 0).all() and (w[17 * 3:] == 1).all()
    ramp = w[15 * 3:17 * 3]  # 2 LR px = 6 HR px
    assert (np.diff(ramp) > 0).all() and 0 < ramp[0] < 0.1 and 0.9 < ramp[-1] < 1
    np.testing.assert_allclose(ramp + ramp[::-1], 1.0)  # neighbours' ramps are complementary
    assert (taper(64, 32, 3, left=False, right=False) == 1).all()  # scene borders keep weight 1
    assert (taper(64, 0, 3, left=True, right=True) == 1).all()  # no overlap: nothing discarded


def test_overlap_larger_than_half_a_tile_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        TileGrid(100, 100, 32, 17)


def test_blended_tiles_reproduce_a_local_operator_exactly():
    """Any operator whose reach is at most the margin gives the same result tiled and whole."""
    op = box_op(1)
    image = np.random.default_rng(0).random((100, 131, 3)).astype(np.float32)
    whole = op(image[None])[0]
    tiled = predict_array(op, image, tile_size=40, overlap=16, batch_size=3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("reach", [0, 1, 3, 6])
def test_overlap_rule_is_the_smallest_that_reproduces_the_whole_image(reach):
    """overlap = 2 reach + 2 keeps tiled == whole; one px less of margin does not (for reach > 0)."""
    op = box_op(reach)
    image = np.random.default_rng(reach).random((90, 120, 3)).astype(np.float32)
    whole = op(image[None])[0]
    overlap = overlap_for_reach(reach)
    assert margin_px(overlap) == reach
    np.testing.assert_allclose(predict_array(op, image, 40, overlap), whole, atol=1e-5)
    if reach:
        too_small = predict_array(op, image, 40, overlap - 2)  # margin reach - 1
        assert np.abs(too_small - whole).max() > 1e-3


def test_tile_for_budget_is_the_largest_tile_that_fits_shrunk_to_its_tile_count():
    a = 5760.0  # EDSR-baseline's activation bytes per LR px
    budget = 2 * 2 ** 30
    big = largest_tile(budget, 10000, 10000, 34, a)
    assert big % 16 == 0 and memory_bytes(big, 10000, 10000, 34, a) <= budget
    assert memory_bytes(big + 16, 10000, 10000, 34, a) > budget
    assert 350 < big < 600  # activations t^2 a dominate; strips add width * 162 B per row
    t = tile_for_budget(budget, 10000, 10000, 34, a)
    n = len(axis_starts(10000, big, 34))
    assert t <= big and len(axis_starts(10000, t, 34)) == n  # same tile count ...
    assert len(axis_starts(10000, t - 1, 34)) > n  # ... and no smaller tile keeps it
    # More budget -> bigger tiles; a wider scene (bigger strips) or a batch of 2 -> smaller ones.
    assert tile_for_budget(2 * budget, 10000, 10000, 34, a) > t
    assert largest_tile(budget, 40000, 10000, 34, a) < big
    assert largest_tile(budget, 10000, 10000, 34, a, batch=2) < big
    # A scene that fits whole is one tile; a budget too small for anything gets the smallest tile.
    assert tile_for_budget(budget, 300, 200, 30, a) == 300
    assert len(TileGrid(3, 6, tile_for_budget(budget, 6, 3, 6, a), 6)) == 1  # smaller than the overlap
    assert largest_tile(1, 10000, 10000, 30, a) == MIN_TILE
    assert largest_tile(1, 10000, 10000, 50, a) == 112  # at least 2 x overlap, a multiple of 16


def test_memory_estimate_counts_the_carry_rows():
    """The rows carried between strips grow with the overlap (and with uneven tile spacing)."""
    base = memory_bytes(512, 10000, 10000, 0, 0.0)
    more = memory_bytes(512, 10000, 10000, 64, 0.0)
    assert more - base >= 10000 * 108 * 64
