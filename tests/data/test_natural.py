"""The natural-image pretraining corpus: layout, x3 geometry, values, determinism, DIV2K, download."""

from __future__ import annotations

import urllib.error

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from satsr.config import Params
from satsr.data import natural
from satsr.data.natural import DownloadError, NaturalError, bicubic_down3, download_div2k, run_natural
from satsr.data.png import read_png16

PHOTOS = ["astronaut", "camera", "chelsea", "coffee"]


def _params(**natural_kw) -> Params:
    base = {"skimage_images": PHOTOS, "tile_hr": 192, "tile_stride": 192, "workers": 1, "val_fraction": 0.25}
    base.update(natural_kw)
    return Params.model_validate({"natural": base})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("natural")
    return out, run_natural(_params(), out)


def test_skimage_corpus_layout_and_geometry(corpus):
    out, index = corpus
    assert list(index.columns[:4]) == ["pair_id", "split", "lr_png", "hr_png"]
    on_disk = pd.read_csv(out / "index.csv", dtype={"pair_id": str})
    assert on_disk["pair_id"].tolist() == index["pair_id"].tolist()
    assert set(index["split"]) == {"train", "val"}
    # Whole source images go to one split (tiles overlap, so tile-level splits would leak).
    assert not set(index.loc[index.split == "train", "source"]) & set(index.loc[index.split == "val", "source"])
    assert (out / "encoding.json").is_file()
    for r in index.itertuples():
        assert r.lr_png == f"{r.split}_LR/{r.pair_id}.png" and r.hr_png == f"{r.split}_HR/{r.pair_id}.png"
        lr, hr = read_png16(out / r.lr_png), read_png16(out / r.hr_png)
        assert lr.dtype == np.uint16 and hr.dtype == np.uint16 and hr.shape[2] == 3
        assert hr.shape[:2] == (3 * lr.shape[0], 3 * lr.shape[1]) == (r.hr_height, r.hr_width)
        assert hr.shape[0] % 3 == 0 and hr.shape[1] % 3 == 0
        assert np.all(hr % 257 == 0), "8-bit photo values map to v8 * 257"
    # Greyscale photos are replicated to RGB.
    cam = index[index.source == "skimage:camera.png"].iloc[0]
    hr = read_png16(out / cam.hr_png)
    assert np.array_equal(hr[..., 0], hr[..., 1]) and np.array_equal(hr[..., 0], hr[..., 2])


def test_lr_is_bicubic_x3_of_hr(corpus):
    out, index = corpus
    r = index[index.source == "skimage:astronaut.png"].iloc[0]
    lr, hr = read_png16(out / r.lr_png).astype(int), read_png16(out / r.hr_png)
    # LR was made from the whole photo, so compare away from the tile border (kernel: +-6 HR px).
    ref = bicubic_down3(hr).astype(int)
    assert np.abs(lr[2:-2, 2:-2] - ref[2:-2, 2:-2]).max() <= 1
    # And it is a low-pass of HR: close to the 3x3 area mean.
    area = hr.reshape(lr.shape[0], 3, lr.shape[1], 3, 3).mean(axis=(1, 3))
    assert np.abs(lr - area).mean() < 0.02 * 65535


def test_skimage_corpus_is_deterministic_and_incremental(corpus, tmp_path):
    out, index = corpus
    again = run_natural(_params(), tmp_path)
    pd.testing.assert_frame_equal(index, again)
    for rel in index["hr_png"].tolist()[:5] + index["lr_png"].tolist()[:5]:
        assert (out / rel).read_bytes() == (tmp_path / rel).read_bytes()
    # Rerun: nothing rewritten; a stale file is removed.
    first = tmp_path / index["hr_png"].iloc[0]
    mtime = first.stat().st_mtime_ns
    stale = tmp_path / "train_HR" / "stale.png"
    stale.write_bytes(b"x")
    run_natural(_params(), tmp_path)
    assert first.stat().st_mtime_ns == mtime and not stale.exists()


def test_whole_images_and_unknown_photo(tmp_path):
    index = run_natural(_params(skimage_images=["chelsea"], tile_hr=0, tile_stride=0), tmp_path)
    assert index["pair_id"].tolist() == ["chelsea"]
    assert (index.hr_width.iloc[0], index.hr_height.iloc[0]) == (450, 300)  # 451 x 300 cropped to x3
    with pytest.raises(NaturalError, match="nosuchphoto"):
        run_natural(_params(skimage_images=["nosuchphoto"]), tmp_path)


def _write_rgb8(path, w, h, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path)
    return arr


def test_div2k_layout(tmp_path):
    root = tmp_path / "DIV2K"
    _write_rgb8(root / "DIV2K_train_HR" / "0001.png", 101, 80, 1)
    _write_rgb8(root / "DIV2K_train_HR" / "0002.png", 90, 60, 2)
    _write_rgb8(root / "DIV2K_valid_HR" / "0801.png", 60, 63, 3)
    lr_off = _write_rgb8(root / "DIV2K_train_LR_bicubic" / "X3" / "0001x3.png", 34, 27, 4)  # MATLAB: ceil
    p = Params.model_validate({"natural": {"source": "div2k", "div2k_dir": str(root), "tile_hr": 0,
                                           "tile_stride": 0, "workers": 1, "min_tile_std": 0.0}})
    index = run_natural(p, tmp_path / "out").set_index("pair_id")
    assert index.loc[["div2k_0001", "div2k_0002"], "split"].tolist() == ["train", "train"]
    assert index.loc["div2k_0801", "split"] == "val"
    assert (index.loc["div2k_0001", "hr_width"], index.loc["div2k_0001", "hr_height"]) == (99, 78)
    assert index.loc["div2k_0001", "lr_method"] == natural.LR_METHOD_DIV2K
    assert index.loc["div2k_0002", "lr_method"] == natural.LR_METHOD_PIL
    lr = read_png16(tmp_path / "out" / index.loc["div2k_0001", "lr_png"])
    assert np.array_equal(lr, lr_off[:26, :33].astype(np.uint16) * 257)


def test_div2k_missing_folder_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "DIV2K"
    p = Params.model_validate({"natural": {"source": "div2k", "div2k_dir": str(missing)}})
    with pytest.raises(NaturalError) as err:
        run_natural(p, tmp_path / "out")
    assert str(missing) in str(err.value) and "DIV2K_train_HR" in str(err.value) and "dvc add" in str(err.value)
    (missing / "DIV2K_train_HR").mkdir(parents=True)
    with pytest.raises(NaturalError, match="DIV2K_train_HR is missing or holds no PNGs"):
        run_natural(p, tmp_path / "out")


def test_download_div2k_fails_cleanly_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(natural.urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as err:
        download_div2k(tmp_path / "DIV2K")
    msg = str(err.value)
    assert "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip" in msg and "offline" in msg
    assert not list((tmp_path / "DIV2K").glob("*.part")) and not list((tmp_path / "DIV2K").glob(".*.part"))


def test_pipeline_reads_the_natural_corpus(corpus):
    from satsr.config import InputParams
    from satsr.data.pipeline import make_dataset

    out, _ = corpus
    ds = make_dataset(out, "train", InputParams(lr_patch=16, batch_size=4), training=True, seed=0)
    lr, hr = next(iter(ds))
    assert lr.shape == (4, 16, 16, 3) and hr.shape == (4, 48, 48, 3)
