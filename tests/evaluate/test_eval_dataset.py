"""How a PNG dataset decodes for the metric stack: reflectance with params' range (checked against
the dataset's encoding.json), photo units for the natural corpus; the split loader's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evaluate_fixtures import write_dataset

from satsr.config import PngParams
from satsr.evaluate import EvaluationError
from satsr.evaluate.dataset import load_split, png_decoding, read_reflectance, split_fingerprint


def test_reflectance_decoding_from_params_checked_against_encoding_json(tmp_path):
    png = PngParams(reflectance_min=-0.1, reflectance_max=1.0)
    d = png_decoding(tmp_path, png)  # no encoding.json: params' range
    assert (d.lo, d.hi, d.units, d.tag) == (-0.1, 1.0, "reflectance", "refl")
    (tmp_path / "encoding.json").write_text(json.dumps({"lo": -0.1, "hi": 1.0, "formula": "..."}))
    assert png_decoding(tmp_path, png) == d
    other = PngParams(reflectance_min=0.0, reflectance_max=1.0)
    with pytest.raises(EvaluationError, match=r"encoding\.json: the PNGs were written with reflectance range "
                                              r"\[-0\.1, 1\] but params\.yaml has png\.reflectance_min/max = \[0, 1\]"):
        png_decoding(tmp_path, other)
    (tmp_path / "encoding.json").write_text("{broken")
    with pytest.raises(EvaluationError, match="encoding.json: unreadable"):
        png_decoding(tmp_path, png)


def test_natural_corpus_decodes_to_photo_units(tmp_path):
    (tmp_path / "encoding.json").write_text(json.dumps({"formula": "png = v8 * 257", "dtype": "uint16"}))
    d = png_decoding(tmp_path)
    assert (d.lo, d.hi, d.units, d.tag) == (0.0, 1.0, "photo", "photo")
    assert d.decode(np.array([0, 257 * 128, 65535], np.uint16)).tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_both_routes_give_the_same_values():
    d = png_decoding("nowhere", PngParams())
    png = np.array([[0, 1, 32768, 65534, 65535]], np.uint16)
    unit = png.astype(np.float32) * np.float32(1.0 / 65535.0)  # what the tf.data pipeline yields
    assert np.array_equal(d.decode_unit(unit), d.decode(png))
    assert d.decode(png)[0, 0] == pytest.approx(-0.1) and d.decode(png)[0, -1] == pytest.approx(1.0)


def test_load_split_reads_pairs_through_the_pipeline_loader(tmp_path):
    data = write_dataset(tmp_path / "png", {"val": 3, "test": 2}, lr_size=8)
    pairs, lo, hi = load_split(data, "val", max_images=2)
    assert [p.pair_id for p in pairs] == ["val0", "val1"] and (lo, hi) == (-0.1, 1.0)
    assert pairs[0].hr_size == (24, 24)
    hr = read_reflectance(pairs[0].hr_path, lo, hi)
    assert hr.shape == (24, 24, 3) and hr.dtype == np.float64 and 0.0 < hr.mean() < 0.3
    assert len(split_fingerprint(pairs)) == 64 and split_fingerprint(pairs) != split_fingerprint(pairs[:1])
    with pytest.raises(EvaluationError, match=r"split 'train' of .* is empty .*nothing to evaluate"):
        load_split(data, "train")
    with pytest.raises(EvaluationError, match="not found"):
        load_split(tmp_path / "absent", "val")
    (data / "val_HR" / "val2.png").unlink()
    with pytest.raises(EvaluationError, match=r"val_HR/val2\.png: PNG file not found"):
        load_split(data, "val")
    (data / "val_LR" / "val0.png").write_bytes(b"not a png")
    with pytest.raises(EvaluationError, match=r"val_LR/val0\.png"):
        read_reflectance(data / "val_LR" / "val0.png", lo, hi)
