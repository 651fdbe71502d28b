"""predict with what the model carries: its range, harmonization (--harmonize hls|none|FILE) and
detail strength (--detail), the released weights as the default model, and older bare models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from conftest import HI, LO, c2_dn, textured, write_tif  # tests/predict/conftest.py

from satsr import paths
from satsr.cli import main
from satsr.config import Params
from satsr.models import export, harmonize
from satsr.predict import PredictError, PredictWarning, load_model, predict

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
FAST = {"output_dtype": "float32", "output_format": "gtiff", "params": Params()}


def _scene(tmp_path, seed: int = 0, size: int = 30):
    return write_tif(tmp_path / f"s{seed}.tif", c2_dn(textured(np.random.default_rng(seed), size, size)), nodata=0)


def _read(path):
    with rasterio.open(path) as src:
        return src.read().astype(np.float64), src.tags()


def _band_map(h: harmonize.Harmonization) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(h.gain)[:, None, None], np.asarray(h.offset)[:, None, None]


# ------------------------------------------------------------------------------------ harmonize
def test_harmonize_hls_none_and_file_map_the_input_and_are_recorded(tmp_path, bicubic_model):
    """The bicubic model is linear, so harmonizing its input is the same per-band map on its output."""
    src = _scene(tmp_path)
    plain, tags = _read(predict(src, bicubic_model, tmp_path / "none.tif", harmonize="none", **FAST)[0])
    assert json.loads(tags["SATSR_HARMONIZE"]) == {"source": "none", "gain": [1.0] * 3, "offset": [0.0] * 3}
    assert tags["SATSR_MODEL_NORMALIZATION"] == f"model: reflectance range [{LO:g}, {HI:g}]"
    assert "SATSR_DETAIL_STRENGTH" not in tags  # this model has no detail_strength layer

    hls, tags = _read(predict(src, bicubic_model, tmp_path / "hls.tif", harmonize="hls", **FAST)[0])
    h = harmonize.hls()
    gain, offset = _band_map(h)
    np.testing.assert_allclose(hls, gain * plain + offset, atol=2e-5)
    recorded = json.loads(tags["SATSR_HARMONIZE"])
    assert recorded["source"] == "hls"
    np.testing.assert_allclose(recorded["gain"], h.gain, rtol=1e-6)

    spec = tmp_path / "fitted.yaml"
    spec.write_text("gain: [1.1, 1.0, 0.9]\noffset: [0.01, 0.0, -0.01]\n")
    fitted, tags = _read(predict(src, bicubic_model, tmp_path / "file.tif", harmonize=str(spec), **FAST)[0])
    np.testing.assert_allclose(fitted, np.array([1.1, 1.0, 0.9])[:, None, None] * plain
                               + np.array([0.01, 0.0, -0.01])[:, None, None], atol=2e-5)
    assert json.loads(tags["SATSR_HARMONIZE"])["source"] == str(spec)
    # The run restored the model's own map (identity) afterwards.
    assert export.get_harmonization(bicubic_model.keras_model).is_identity


def test_default_harmonization_is_the_one_the_model_carries(tmp_path, bicubic_model_path):
    from satsr.models import load

    carrying = load(bicubic_model_path)
    export.set_harmonization(carrying, harmonize.hls())
    path = tmp_path / "hls_model.keras"
    carrying.save(path)
    src = _scene(tmp_path, 1)
    own, tags = _read(predict(src, path, tmp_path / "own.tif", **FAST)[0])
    assert json.loads(tags["SATSR_HARMONIZE"])["source"] == "hls"
    plain, _ = _read(predict(src, path, tmp_path / "off.tif", harmonize="none", **FAST)[0])
    gain, offset = _band_map(harmonize.hls())
    np.testing.assert_allclose(own, gain * plain + offset, atol=2e-5)


def test_malformed_harmonize_file_fails_before_any_work(tmp_path, bicubic_model):
    src = _scene(tmp_path, 2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gain": [1.0, 1.0], "offset": [0, 0, 0]}))
    out = tmp_path / "never.tif"
    with pytest.raises(PredictError, match=r"bad\.json: gain must be a list of 3 numbers.*expected keys gain, offset"):
        predict(src, bicubic_model, out, harmonize=str(bad), **FAST)
    with pytest.raises(PredictError, match="expected none, hls, or a YAML/JSON file"):
        predict(src, bicubic_model, out, harmonize="hsl", **FAST)
    assert not out.exists() and not list(tmp_path.glob(".never*"))


# --------------------------------------------------------------------------------------- detail
def test_detail_strength_sets_alpha_and_is_recorded(tmp_path, detail_model_path, bicubic_model):
    src = _scene(tmp_path, 3)
    bic, _ = _read(predict(src, bicubic_model, tmp_path / "bic.tif", **FAST)[0])
    zero, tags = _read(predict(src, detail_model_path, tmp_path / "a0.tif", detail=0.0, **FAST)[0])
    assert tags["SATSR_DETAIL_STRENGTH"] == "0"
    np.testing.assert_allclose(zero, bic, atol=1e-5)  # alpha = 0 is bicubic
    own, tags = _read(predict(src, detail_model_path, tmp_path / "own.tif", **FAST)[0])
    assert tags["SATSR_DETAIL_STRENGTH"] == "0.6"  # the model's own alpha
    full, _ = _read(predict(src, detail_model_path, tmp_path / "a1.tif", detail=1.0, **FAST)[0])
    assert np.abs(full - bic).max() > 1e-3  # the detail is really there, and scales with alpha
    np.testing.assert_allclose(own - bic, 0.6 * (full - bic), atol=1e-5)


def test_detail_on_a_model_without_the_layer_or_out_of_range_is_refused(tmp_path, random_model_path):
    src = _scene(tmp_path, 4)
    out = tmp_path / "never.tif"
    with pytest.raises(PredictError, match="no 'detail_strength' layer"):
        predict(src, random_model_path, out, detail=0.5, **FAST)
    with pytest.raises(PredictError, match=r"--detail 1.5: expected a detail strength in \[0, 1\]"):
        predict(src, random_model_path, out, detail=1.5, **FAST)
    assert not out.exists()


# ------------------------------------------------------------------------------- default model
def test_predict_without_a_model_uses_the_released_weights(tmp_path, monkeypatch, detail_model_path, capsys):
    release = tmp_path / "weights" / "release" / "satsr_release_x3.keras"
    release.parent.mkdir(parents=True)
    release.write_bytes(detail_model_path.read_bytes())
    monkeypatch.setattr(paths, "RELEASE_MODEL", release)
    src = _scene(tmp_path, 5)
    out = predict(src, None, tmp_path / "lib.tif", **FAST)[0]
    assert _read(out)[1]["SATSR_MODEL_URI"] == str(release)

    params = tmp_path / "params.yaml"
    params.write_text("seed: 42\n")
    cli_out = tmp_path / "cli.tif"
    assert main(["predict", str(src), "-o", str(cli_out), "--params", str(params), "--format", "gtiff",
                 "--harmonize", "hls", "--detail", "0.25"]) == 0
    assert capsys.readouterr().out.strip() == str(cli_out)
    tags = _read(cli_out)[1]
    assert tags["SATSR_MODEL_URI"] == str(release) and tags["SATSR_DETAIL_STRENGTH"] == "0.25"
    assert json.loads(tags["SATSR_HARMONIZE"])["source"] == "hls"

    monkeypatch.setattr(paths, "RELEASE_MODEL", tmp_path / "nowhere" / "satsr_release_x3.keras")
    with pytest.raises(PredictError, match="no --model given and no released weights at .*nowhere"):
        predict(src, None, tmp_path / "x.tif", **FAST)


# --------------------------------------------------------------------------------- older models
def test_bare_legacy_model_falls_back_to_the_params_range_with_a_warning(tmp_path, legacy_model_path,
                                                                      random_model_path):
    with pytest.warns(PredictWarning, match="saved without its normalization.*png.reflectance_min/max"):
        legacy = load_model(legacy_model_path, Params())
    assert (legacy.lo, legacy.hi) == (LO, HI) and "params png range" in legacy.normalization
    src = _scene(tmp_path, 6)
    old, tags = _read(predict(src, legacy, tmp_path / "old.tif", **FAST)[0])
    assert tags["SATSR_MODEL_NORMALIZATION"].startswith("params png range")
    new, _ = _read(predict(src, random_model_path, tmp_path / "new.tif", **FAST)[0])
    np.testing.assert_allclose(old, new, atol=1e-6)  # the same weights, the same numbers
