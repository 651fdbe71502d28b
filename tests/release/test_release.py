"""The release recipe's pieces: nested windows, the detail model, alpha calibration, and the
committed weights (their card and metrics.json agree with a fresh scoring of the held-out chips)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from satsr import paths
from satsr.config import load_params
from satsr.models.detail import detail_edsr
from satsr.release import alpha as A
from satsr.release import corpus


def test_real_pairs_are_cut_on_their_nested_window(realdata):
    homonim = corpus.load_pair(realdata / "pairs_homonim/homonim_Landsat-8.tif",
                               realdata / "pairs_homonim/homonim_Sentinel-2.tif")
    # the README's aligned window: L8 cols 1..265, rows 0..452; S2 cols 1..795, rows 0..1358
    assert homonim.lr_window == (0, 1, 453, 265) and homonim.hr_offset == (0, 1)
    assert homonim.hr.shape == (3 * 453, 3 * 265, 3)
    s1 = corpus.load_pair(realdata / "pairs_l8s2ps/scene_1_Landsat-8.tif",
                          realdata / "pairs_l8s2ps/scene_1_Sentinel-2.tif")
    assert s1.hr_offset[0] % 3 != 0  # the 1-HR-px origin offset is taken as geometry
    assert s1.hr.shape == (3 * s1.lr.shape[0], 3 * s1.lr.shape[1], 3)


def _with_detail(seed: int = 0) -> keras.Model:
    net = detail_edsr(num_blocks=1, num_filters=8)
    w = net.get_layer("tail_conv").get_weights()[0]
    net.get_layer("tail_conv").set_weights([np.random.default_rng(seed).normal(0, 0.05, w.shape).astype("float32")])
    return net


def test_detail_model_is_bicubic_at_alpha_zero_and_radiometry_equivariant(tmp_path):
    net = _with_detail()
    x = np.random.default_rng(1).random((1, 20, 20, 3), dtype=np.float32)
    y = net(x).numpy()
    np.testing.assert_allclose(net(4.0 * x + 0.3).numpy(), 4.0 * y + 0.3, atol=2e-5)
    net.get_layer("detail_strength").alpha.assign(0.0)
    bic = tf.image.resize(x, (60, 60), method="bicubic").numpy()
    np.testing.assert_allclose(net(x).numpy(), bic, atol=1e-6)
    net.get_layer("detail_strength").alpha.assign(0.4)
    net.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert float(back.get_layer("detail_strength").alpha.numpy()) == pytest.approx(0.4)
    np.testing.assert_allclose(back(x).numpy(), net(x).numpy(), atol=1e-6)


def test_alpha_calibration_picks_zero_for_harmful_detail_and_more_for_helpful():
    rng = np.random.default_rng(0)
    net = _with_detail(seed=3)
    lrs = rng.random((6, 16, 16, 3), dtype=np.float32) * 0.2
    base, detail = A.base_and_detail(net, lrs)
    grid = [0.0, 0.5, 1.0]
    helpful = {"g": [(lr, b + d) for lr, b, d in zip(lrs, base, detail)]}   # the truth HAS the detail
    harmful = {"g": [(lr, b - d) for lr, b, d in zip(lrs, base, detail)]}   # the truth has the opposite
    assert A.calibrate_alpha(net, helpful, grid, n_boot=200)["alpha"] == 1.0
    cal = A.calibrate_alpha(net, harmful, grid, n_boot=200)
    assert cal["alpha"] == 0.0 and cal["val_cpsnr_gain_curve"][0] == max(cal["val_cpsnr_gain_curve"])


@pytest.fixture(scope="module")
def release_doc() -> dict:
    path = paths.RELEASE_MODEL.parent / "metrics.json"
    if not path.exists():
        pytest.skip("no committed release weights")
    return json.loads(path.read_text())


def test_released_weights_load_and_carry_alpha_normalization_and_harmonization(release_doc):
    from satsr.models.export import find_layer, get_harmonization, model_range

    model = keras.saving.load_model(paths.RELEASE_MODEL, compile=False)
    assert float(find_layer(model, "detail_strength").alpha.numpy()) == pytest.approx(release_doc["alpha"])
    assert model_range(model) == (-0.1, 1.0)
    assert get_harmonization(model).source == "hls"
    card = (paths.RELEASE_MODEL.parent / "MODEL_CARD.md").read_text()
    assert f"Default alpha = {release_doc['alpha']:g}" in card


@pytest.mark.slow
def test_card_numbers_match_a_fresh_scoring_of_the_held_out_chips(release_doc, realdata):
    """What bench_real.py and the card report is what the committed weights do on the held-out chips."""
    from satsr.models.export import find_layer, unwrap

    params = load_params()
    if not (realdata.resolve() == (paths.PARAMS.parent / params.release.data_root).resolve()
            or (paths.PARAMS.parent / params.release.data_root).exists()):
        pytest.skip("release.data_root is not the shared folder")
    from satsr.release import recipe

    data = recipe.build_corpus(params.release, include_train_sim=False)
    model = keras.saving.load_model(paths.RELEASE_MODEL, compile=False)
    net = unwrap(model)
    assert find_layer(net, "detail_strength") is not None
    s = A.score_chips(net, data.test, [release_doc["alpha"]])
    fresh = A.summarize(s, 0)
    stored = release_doc["test"][f"alpha_{release_doc['alpha']:g}"]
    for group, v in stored.items():
        assert fresh[group]["cpsnr_gain"]["mean"] == pytest.approx(v["cpsnr_gain"]["mean"], abs=1e-3), group
        assert fresh[group]["psnr_gain"]["mean"] == pytest.approx(v["psnr_gain"]["mean"], abs=1e-3), group
        assert fresh[group]["chips_worse_than_bicubic"] == v["chips_worse_than_bicubic"], group


def test_finetune_start_weights_follow_init_and_the_command_line(tmp_path):
    from satsr.train.errors import TrainError
    from satsr.train.init_weights import start_weights

    assert start_weights("detail", "release") == paths.release_model()
    assert start_weights("edsr", "pretrain") == paths.model_file("pretrain", "edsr")
    assert start_weights("edsr", "none") is None
    assert start_weights("detail", "release", override=tmp_path / "x.keras") == tmp_path / "x.keras"
    assert start_weights("detail", "release", no_init=True) is None
    with pytest.raises(TrainError, match="`detail` architecture"):
        start_weights("edsr", "release")


def test_finetuning_can_start_from_the_released_weights(release_doc):
    from satsr.models import registry
    from satsr.train.init_weights import load_init_weights

    params = load_params()
    net = registry.build("detail", params.release.model)
    load_init_weights(net, paths.RELEASE_MODEL, "detail")
    released = keras.saving.load_model(paths.RELEASE_MODEL, compile=False)
    from satsr.models.export import unwrap

    for a, b in zip(net.get_weights(), unwrap(released).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
