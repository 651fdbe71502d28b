"""16-bit training PNGs: invertible mapping, quicklooks, stats, index, resume and stale files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from satsr.config import Params, PngParams
from satsr.data.geotiff import encoding_of, read_raster
from satsr.data.manifest import write_manifest
from satsr.data.png import (
    encode_png,
    png16_to_reflectance,
    read_png16,
    reflectance_to_png16,
    run_png,
)
from satsr.data.radiometry import from_png16, to_png16

LO, HI = PngParams().reflectance_min, PngParams().reflectance_max
STEP = (HI - LO) / 65535


@pytest.fixture
def dataset(tmp_path, make_pair):
    """Four real GeoTIFF pairs in a raw folder, an all-accepted report and a split file."""
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = []
    for i in range(4):
        lr, hr, _ = make_pair(name=f"p{i}", seed=i, folder=raw)
        rows.append(
            {
                "pair_id": f"p{i}",
                "provider": "demo",
                "is_demo": True,
                "crs": "EPSG:32720",
                "lr_file": lr.name,
                "hr_file": hr.name,
                "lr_width": 32,
                "lr_height": 32,
                "hr_width": 96,
                "hr_height": 96,
            }
        )
    write_manifest(raw, rows)
    report = tmp_path / "report.csv"
    pd.DataFrame(
        {
            "pair_id": [f"p{i}" for i in range(4)],
            "status": "accepted",
            "reasons": "",
            "detail": "",
            "lr_path": "",
            "hr_path": "",
        }
    ).to_csv(report, index=False)
    split = tmp_path / "split.csv"
    write_split(split, {"p0": "train", "p1": "train", "p2": "val", "p3": "test"})
    return raw, report, split


def write_split(path: Path, assignment: dict[str, str]) -> None:
    pd.DataFrame(
        {
            "pair_id": list(assignment),
            "split": list(assignment.values()),
            "group": [f"g{i}" for i in range(len(assignment))],
            "lon": 0.0,
            "lat": 0.0,
        }
    ).to_csv(path, index=False)


def run(tmp_path: Path, dataset, params: Params | None = None) -> pd.DataFrame:
    raw, report, split = dataset
    return run_png(
        params or Params(), raw, split, report, tmp_path / "png", tmp_path / "metrics" / "png_stats.json"
    )


def test_round_trip_and_layout(tmp_path, dataset):
    raw, _, _ = dataset
    index = run(tmp_path, dataset)
    out = tmp_path / "png"
    assert len(index) == 4 and set(index["split"]) == {"train", "val", "test"}
    assert {"pair_id", "split", "lr_png", "hr_png", "lr_width", "lr_height", "hr_width", "hr_height"} <= set(
        index
    )
    assert (out / "train_LR" / "p0.png").is_file() and (out / "val_HR" / "p2.png").is_file()
    assert (out / "test_LR" / "p3.png").is_file()
    for row in index.itertuples():
        for side, fname in (("LR", row.lr_png), ("HR", row.hr_png)):
            png = read_png16(out / fname)
            assert png.dtype == np.uint16 and png.ndim == 3 and png.shape[2] == 3
            src = read_raster(raw / f"{row.pair_id}_{'L8' if side == 'LR' else 'S2'}.tif")
            refl = encoding_of(src).to_reflectance(src.data).transpose(1, 2, 0)
            assert png.shape == refl.shape
            back = png16_to_reflectance(png, LO, HI)
            assert np.abs(back - refl).max() <= STEP
            # the library's inverse agrees
            np.testing.assert_allclose(from_png16(png, LO, HI), back, atol=1e-7)
        assert (row.lr_width, row.hr_width) == (32, 96)
    # quicklooks: 8-bit RGB, same size
    ql = Image.open(out / "quicklook" / "train_HR" / "p0.png")
    assert ql.mode == "RGB" and ql.size == (96, 96) and np.asarray(ql).dtype == np.uint8
    assert Image.open(out / "quicklook" / "val_LR" / "p2.png").size == (32, 32)
    # no GDAL side files
    assert not list(out.rglob("*.aux.xml")) and not list(out.rglob("*.part"))
    # index.csv and encoding.json
    written = pd.read_csv(out / "index.csv")
    assert list(written["pair_id"]) == list(index["pair_id"])
    # each pair's spatial group from split.csv (evaluation's CIs resample groups)
    assert {r.pair_id: r.group for r in written.itertuples()} == {f"p{i}": f"g{i}" for i in range(len(written))}
    enc = json.loads((out / "encoding.json").read_text())
    assert (
        enc["lo"] == LO and enc["hi"] == HI and enc["dtype"] == "uint16" and enc["bands"] == ["R", "G", "B"]
    )
    assert "65535" in enc["formula"] and "65535" in enc["inverse"]


def test_stats_json(tmp_path, dataset):
    run(tmp_path, dataset)
    stats = json.loads((tmp_path / "metrics" / "png_stats.json").read_text())
    assert set(stats) == {"mapping", "train", "val", "test"}
    assert stats["train"]["pairs"] == 2 and stats["test"]["pairs"] == 1
    for split in ("train", "val", "test"):
        for side in ("LR", "HR"):
            for band in ("R", "G", "B"):
                s = stats[split][side][band]
                assert set(s) >= {"mean", "std", "min", "max", "p1", "p99", "clipped"}
                assert s["min"] <= s["p1"] <= s["mean"] <= s["p99"] <= s["max"]
                assert 0.0 < s["mean"] < 0.3 and s["std"] > 0 and s["clipped"] == 0.0
    # the mean matches a direct computation over the train HR reflectance
    raw = dataset[0]
    vals = np.concatenate(
        [
            encoding_of(r := read_raster(raw / f"p{i}_S2.tif")).to_reflectance(r.data)[0].ravel()
            for i in (0, 1)
        ]
    )
    assert stats["train"]["HR"]["R"]["mean"] == pytest.approx(float(vals.mean()), abs=1e-6)
    assert stats["train"]["HR"]["R"]["std"] == pytest.approx(float(vals.std()), abs=1e-6)
    assert stats["train"]["HR"]["R"]["p99"] == pytest.approx(float(np.percentile(vals, 99)), abs=3 * STEP)


def test_clipping_is_counted(tmp_path, dataset):
    # A narrow mapping clips most pixels: the share is reported, PNG values saturate.
    params = Params(png=PngParams(reflectance_min=0.0, reflectance_max=0.1, workers=1))
    index = run(tmp_path, dataset, params)
    stats = json.loads((tmp_path / "metrics" / "png_stats.json").read_text())
    assert stats["train"]["HR"]["R"]["clipped"] > 0.1
    png = read_png16(tmp_path / "png" / index.loc[0, "hr_png"])
    assert png.max() == 65535


def test_resume_and_stale_files_removed(tmp_path, dataset):
    _raw, _report, split = dataset
    run(tmp_path, dataset)
    out = tmp_path / "png"
    p0 = out / "train_HR" / "p0.png"
    mtime = p0.stat().st_mtime_ns
    (out / "train_LR" / "stray.png").write_bytes(b"old")
    (out / "quicklook" / "val_HR" / ".x.png.123.part").write_bytes(b"partial")

    # p3 leaves the split, p1 moves from train to val
    write_split(split, {"p0": "train", "p1": "val", "p2": "val"})
    index = run(tmp_path, dataset)
    assert sorted(index["pair_id"]) == ["p0", "p1", "p2"]
    assert p0.stat().st_mtime_ns == mtime  # unchanged inputs: not rewritten
    assert not (out / "train_LR" / "stray.png").exists()
    assert not (out / "quicklook" / "val_HR" / ".x.png.123.part").exists()
    assert (
        not (out / "test_LR" / "p3.png").exists() and not (out / "quicklook" / "test_HR" / "p3.png").exists()
    )
    assert not (out / "train_HR" / "p1.png").exists() and (out / "val_HR" / "p1.png").is_file()
    assert (out / "test_LR").is_dir()  # the seed layout stays complete
    stats = json.loads((tmp_path / "metrics" / "png_stats.json").read_text())
    assert stats["test"]["pairs"] == 0 and stats["test"]["HR"]["R"]["mean"] is None

    # a changed mapping rewrites everything
    run(tmp_path, dataset, Params(png=PngParams(reflectance_max=0.9)))
    assert p0.stat().st_mtime_ns != mtime


def test_report_paths_win_and_rejected_are_skipped(tmp_path, dataset, monkeypatch):
    raw, report, _split = dataset
    # A registration-corrected LR file from the filter, given relative to the repo root.
    fixed_dir = tmp_path / "data" / "filter"
    fixed_dir.mkdir(parents=True)
    (fixed_dir / "p0_L8_fixed.tif").write_bytes((raw / "p1_L8.tif").read_bytes())
    rep = pd.read_csv(report)
    rep["lr_path"] = rep["lr_path"].astype(object)
    rep.loc[rep["pair_id"] == "p0", "lr_path"] = "data/filter/p0_L8_fixed.tif"
    rep.loc[rep["pair_id"] == "p3", "status"] = "rejected"
    rep.to_csv(report, index=False)
    monkeypatch.chdir(tmp_path)
    index = run(tmp_path, dataset).set_index("pair_id")
    assert "p3" not in index.index
    assert index.loc["p0", "lr_source"] == "data/filter/p0_L8_fixed.tif"
    np.testing.assert_array_equal(
        read_png16(tmp_path / "png" / "train_LR" / "p0.png"),
        read_png16(tmp_path / "png" / "train_LR" / "p1.png"),
    )


def test_png_encoder_and_mapping():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 1.3, (3, 40, 50)).astype(np.float32)
    x[0, 0, :4] = [np.nan, np.inf, -np.inf, 0.5]
    # the fast in-place mapping is bit-identical to the documented one
    np.testing.assert_array_equal(reflectance_to_png16(x, LO, HI), to_png16(x, LO, HI))
    np.testing.assert_array_equal(reflectance_to_png16(x, 0.0, 0.3), to_png16(x, 0.0, 0.3))
    img = rng.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    data = encode_png(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img8 = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    import io

    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(img8)))), img8)
    with pytest.raises(ValueError):
        encode_png(img[..., :2])


def test_png16_written_readable(tmp_path):
    from satsr.data.png import write_png16

    rng = np.random.default_rng(1)
    img = rng.integers(0, 65536, (33, 17, 3), dtype=np.uint16)
    write_png16(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_png16(tmp_path / "a.png"), img)
    # a transposed (non-contiguous) view is encoded the same
    write_png16(tmp_path / "b.png", np.ascontiguousarray(img.transpose(2, 0, 1)).transpose(1, 2, 0))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_compress_levels_decode_identically_and_quicklook_lut(tmp_path):
    from satsr.data.png import write_png16
    from satsr.data.png.stage import _quicklook_lut
    from satsr.data.radiometry import to_quicklook8

    rng = np.random.default_rng(2)
    refl = rng.uniform(-0.2, 1.2, (3, 30, 20)).astype(np.float32)
    refl[:, :15] = np.linspace(0.0, 0.3, 20, dtype=np.float32)  # a smooth half that compresses
    png = to_png16(refl, LO, HI).transpose(1, 2, 0)
    sizes = {}
    for level in (0, 1, 6):
        write_png16(tmp_path / f"{level}.png", png, level)
        np.testing.assert_array_equal(read_png16(tmp_path / f"{level}.png"), png)
        sizes[level] = (tmp_path / f"{level}.png").stat().st_size
    assert sizes[0] > sizes[1]
    lut = _quicklook_lut({"lo": LO, "hi": HI, "ql_max": 0.3, "ql_gamma": 1.8})
    direct = to_quicklook8(refl, 0.3, 1.8).transpose(1, 2, 0)
    assert np.abs(lut[png].astype(int) - direct).max() <= 1
