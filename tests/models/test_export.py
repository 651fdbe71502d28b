"""Exported models: the encode/decode/harmonize layers, export round trip, detail strength, and
harmonization maps (hls, files, malformed files, the training-side map)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from scratch import tiny_detail_net

from satsr import models
from satsr.models import blocks, export, harmonize
from satsr.models.harmonize import HarmonizeError

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

LO, HI = -0.1, 1.0
TINY = {"num_blocks": 1, "num_filters": 8}


def _net(seed: int = 0) -> keras.Model:
    """A tiny EDSR whose tail adds nonzero detail (an untrained one is exactly bicubic)."""
    keras.utils.set_random_seed(seed)
    net = models.build("edsr", TINY)
    tail = net.get_layer("tail_conv")
    kernel, bias = tail.get_weights()
    tail.set_weights([np.random.default_rng(seed).normal(0, 0.05, kernel.shape).astype(np.float32), bias])
    return net


def detail_net(alpha: float = 1.0) -> keras.Model:
    """The smallest network with a ``detail_strength`` layer (tests/scratch.py)."""
    return tiny_detail_net(alpha)


def _refl(seed: int = 1, h: int = 10, w: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 0.4, (1, h, w, 3)).astype(np.float32)


# ------------------------------------------------------------------------------------------ layers
def test_encode_clips_and_maps_the_png_range_and_decode_inverts_it():
    enc, dec = blocks.ReflectanceEncode(LO, HI), blocks.ReflectanceDecode(LO, HI)
    r = np.array([[[[-0.5, -0.1, 0.0], [0.45, 1.0, 2.0]]]], np.float32)
    u = np.asarray(enc(r))
    np.testing.assert_allclose(u, [[[[0.0, 0.0, 0.1 / 1.1], [0.55 / 1.1, 1.0, 1.0]]]], atol=1e-6)
    np.testing.assert_allclose(np.asarray(dec(u)), np.clip(r, LO, HI), atol=1e-6)
    # The PNG stage's own mapping: png16 / 65535 of a reflectance is what encode gives.
    from satsr.data.png import reflectance_to_png16

    np.testing.assert_allclose(reflectance_to_png16(r[0], LO, HI) / 65535.0, u[0], atol=1 / 65535)
    with pytest.raises(ValueError, match="hi > lo"):
        blocks.ReflectanceEncode(1.0, 0.0)


def test_band_linear_is_an_identity_with_fixed_weights_until_set():
    layer = blocks.BandLinear(3, name=export.HARMONIZE)
    x = _refl()
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    assert [w.name for w in layer.weights] == ["gain", "offset"] and not layer.trainable_weights
    layer.gain.assign([2.0, 1.0, 0.5])
    layer.offset.assign([0.1, 0.0, -0.1])
    np.testing.assert_allclose(np.asarray(layer(x)), x * [2.0, 1.0, 0.5] + [0.1, 0.0, -0.1], atol=1e-6)
    with pytest.raises(ValueError, match="4 bands"):
        blocks.BandLinear(3)(np.zeros((1, 2, 2, 4), np.float32))


# ------------------------------------------------------------------------------------------ export
def test_exported_model_is_reflectance_in_out_and_round_trips_with_its_range_and_map(tmp_path):
    net = _net()
    h = harmonize.hls()
    model = models.export_model(net, LO, HI, harmonize=h)
    x = _refl()
    # reflectance -> harmonize -> encode -> net -> decode, exactly
    u = (np.clip(h.apply(x), LO, HI) - LO) / (HI - LO)
    expected = LO + np.asarray(net(u)) * (HI - LO)
    out = np.asarray(model(x))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert out.shape == (1, 30, 36, 3) and model.name == "edsr"

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = models.load(path)
    assert models.is_exported(loaded) and not models.is_exported(net)
    assert models.model_range(loaded) == (LO, HI)
    got = export.get_harmonization(loaded)
    assert got.source == "hls"
    np.testing.assert_allclose(got.gain, h.gain, rtol=1e-6)
    np.testing.assert_allclose(got.offset, h.offset, atol=1e-7)
    np.testing.assert_allclose(np.asarray(loaded(x)), out, atol=1e-6)
    # unwrap gives back the png-unit network with the trained weights (what fine-tuning starts from)
    inner = models.unwrap(loaded)
    assert inner.name == "edsr" and not models.is_exported(inner)
    for a, b in zip(inner.get_weights(), net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert models.unwrap(net) is net


def test_bare_networks_have_no_range_and_are_wrapped_on_request():
    net = _net()
    with pytest.raises(export.ModelError, match="carries no normalization"):
        models.model_range(net)
    wrapped, was = export.as_exported(net, LO, HI)
    assert not was and models.model_range(wrapped) == (LO, HI)
    assert export.get_harmonization(wrapped).source == "none"
    assert export.as_exported(wrapped, 0.0, 1.0) == (wrapped, True)
    with pytest.raises(export.ModelError, match="already exported"):
        models.export_model(wrapped, LO, HI)


def test_detail_strength_is_found_inside_the_exported_model_and_set(tmp_path):
    model = models.export_model(detail_net(0.7), LO, HI)
    path = tmp_path / "detail.keras"
    model.save(path)
    model = models.load(path)
    assert export.get_detail(model) == pytest.approx(0.7)
    x = _refl()
    full = np.asarray(model(x))
    export.set_detail(model, 0.0)
    bicubic = np.asarray(model(x))
    export.set_detail(model, 1.0)
    np.testing.assert_allclose(np.asarray(model(x)), full + (full - bicubic) * (1 / 0.7 - 1), atol=1e-5)
    import tensorflow as tf

    u = (x - LO) / (HI - LO)
    ref = LO + tf.image.resize(u, (30, 36), method="bicubic").numpy() * (HI - LO)
    np.testing.assert_allclose(bicubic, ref, atol=1e-5)  # alpha = 0 is bicubic exactly
    with pytest.raises(export.ModelError, match=r"\[0, 1\]"):
        export.set_detail(model, 1.5)
    plain = models.export_model(_net(), LO, HI)
    assert export.get_detail(plain) is None
    with pytest.raises(export.ModelError, match="no 'detail_strength' layer"):
        export.set_detail(plain, 0.5)


# ------------------------------------------------------------------------------------- harmonize
def test_hls_inverts_the_sensor_models_msi_to_oli_bandpass():
    from satsr.data.sensor import HLS_OFFSET, HLS_SLOPE

    msi = np.random.default_rng(0).uniform(0, 0.5, (20, 3)).astype(np.float32)
    oli = msi * np.asarray(HLS_SLOPE, np.float32) + np.asarray(HLS_OFFSET, np.float32)
    h = harmonize.resolve("hls")
    assert h.source == "hls" and not h.is_identity
    np.testing.assert_allclose(h.apply(oli), msi, atol=1e-6)
    assert harmonize.resolve("none").is_identity and harmonize.resolve(None) is None


def test_harmonization_files_yaml_and_json(tmp_path):
    y = tmp_path / "map.yaml"
    y.write_text("description: fitted on scene_1\ngain: [1.02, 0.98, 1.0]\noffset: [0.01, -0.005, 0]\n")
    h = harmonize.resolve(str(y))
    assert h.source == str(y) and h.gain == (1.02, 0.98, 1.0) and h.offset == (0.01, -0.005, 0.0)
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"gain": [1, 1, 1.1], "offset": [0, 0, 0.002]}))
    assert harmonize.resolve(j).gain == (1.0, 1.0, 1.1)


@pytest.mark.parametrize("text, why", [
    ("gain: [1, 1, 1]\n", "missing offset"),
    ("gains: [1, 1, 1]\noffset: [0, 0, 0]\n", "missing gain; unknown gains"),
    ("gain: [1, 1]\noffset: [0, 0, 0]\n", "gain must be a list of 3 numbers"),
    ("gain: [1, a, 1]\noffset: [0, 0, 0]\n", "gain must be a list of 3 numbers"),
    ("gain: [1, 0, 1]\noffset: [0, 0, 0]\n", "gain must be positive"),
    ("gain: [1, 1, 1]\noffset: [0, .nan, 0]\n", "offset must hold finite numbers"),
    ("- 1\n- 2\n", "expected a YAML/JSON mapping"),
    ("gain: [1, 1, 1\n", "not valid YAML"),
])
def test_malformed_harmonization_files_name_the_file_and_the_expected_keys(tmp_path, text, why):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HarmonizeError) as err:
        harmonize.resolve(str(path))
    msg = str(err.value)
    assert str(path) in msg and why in msg and "gain" in msg and "offset" in msg


def test_unknown_spec_says_what_is_accepted(tmp_path):
    with pytest.raises(HarmonizeError, match="expected none, hls, or a YAML/JSON file"):
        harmonize.resolve(str(tmp_path / "missing.yaml"))


def test_training_map_in_png_units_matches_the_exported_front_end():
    """A network trained on png_harmonizer(x) sees at prediction time exactly encode(h(refl))."""
    h = harmonize.Harmonization("file", (1.05, 0.97, 1.2), (0.01, -0.02, 0.0))
    x_png = np.random.default_rng(3).uniform(0, 1, (1, 6, 6, 3)).astype(np.float32)
    hr = np.zeros((1, 18, 18, 3), np.float32)
    trained_on, hr_out = harmonize.png_harmonizer(h, LO, HI)(x_png, hr)
    refl = LO + x_png * (HI - LO)
    layer = blocks.BandLinear(3)
    layer.build((None, None, None, 3))
    layer.gain.assign(h.gain)
    layer.offset.assign(h.offset)
    front = blocks.ReflectanceEncode(LO, HI)(layer(refl))
    np.testing.assert_allclose(np.asarray(trained_on), np.asarray(front), atol=1e-6)
    assert hr_out is hr
