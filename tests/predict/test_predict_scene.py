"""satsr.predict end to end on GeoTIFFs: grid, encoding, nodata, tiling, inputs, errors, SIGKILL.

A SIGKILL run of ``satsr predict`` on a bigger generated scene starts in a subprocess when this
module starts (it imports TensorFlow meanwhile) and is killed mid-run by the last test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import ORIGIN, c2_dn, textured, write_tif  # tests/predict/conftest.py

from satsr.cli import main
from satsr.config import Params
from satsr.predict import PredictError, PredictWarning, predict, resolve_inputs
from satsr.predict.tiles import TileGrid

REPO = Path(__file__).resolve().parents[2]
C2_SCALE, C2_OFFSET = 2.75e-5, -0.2


def read_refl(path: Path) -> np.ndarray:
    """Reflectance of an output via its own scale/offset (NaN where masked)."""
    with rasterio.open(path) as src:
        data = src.read(masked=True).astype(np.float64)
        scales, offsets = np.array(src.scales)[:, None, None], np.array(src.offsets)[:, None, None]
        refl = data * scales + offsets
        return refl.filled(np.nan)


# --------------------------------------------------------------------------------- SIGKILL run
#: The killed run uses a numpy "model" (nearest x3) through the public predict(): the same tiling,
#: temporary files and renames, without a second TensorFlow import. Its first 16 batches (4 rows of
#: tiles, written to disk) are fast; then it takes 4 s a batch, so the run lasts minutes and the last
#: test of this module catches it mid-run however long the tests before it take.
KILL_SCRIPT = """
import sys, time
from satsr.predict import predict

class SlowNearest:
    calls = 0

    def predict(self, batch):
        self.calls += 1
        if self.calls > 16:
            time.sleep(4.0)
        return batch.repeat(3, axis=1).repeat(3, axis=2)

predict(sys.argv[1], SlowNearest(), sys.argv[2], tile_size=128, overlap=16, batch_size=4, progress=False)
print("finished")
"""


@pytest.fixture(scope="module", autouse=True)
def killed_run(tmp_path_factory):
    """predict() on a 1500 x 1500 scene in a subprocess, started now, killed by the last test."""
    folder = tmp_path_factory.mktemp("kill")
    rng = np.random.default_rng(9)
    scene = write_tif(folder / "big.tif", c2_dn(np.clip(0.1 + 0.05 * rng.random((3, 1500, 1500)), 0, 1)),
                      nodata=0)
    out = folder / "out" / "big_10m.tif"
    log = folder / "predict.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(scene), str(out)], cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    yield proc, out, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------ grid and tags
def test_small_chip_lies_exactly_on_the_input_grid(tmp_path, random_model_path):
    refl = textured(np.random.default_rng(0), 85, 85)
    src = write_tif(tmp_path / "chip.tif", c2_dn(refl), nodata=0)
    out = predict(src, random_model_path, tmp_path / "sr.tif", params=Params())[0]
    assert out == tmp_path / "sr.tif"
    with rasterio.open(src) as lr, rasterio.open(out) as sr:
        assert (sr.width, sr.height, sr.count) == (255, 255, 3)
        assert sr.crs == lr.crs
        assert sr.transform.a == pytest.approx(10.0) and sr.transform.e == pytest.approx(-10.0)
        assert (sr.transform.c, sr.transform.f) == (lr.transform.c, lr.transform.f) == ORIGIN
        assert sr.dtypes[0] == "uint16" and sr.nodata == 0
        assert sr.scales == (C2_SCALE,) * 3 and sr.offsets == (C2_OFFSET,) * 3
        assert sr.descriptions == ("red (band 1)", "green (band 2)", "blue (band 3)")
        assert sr.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        tags = sr.tags()
        assert tags["SATSR_MODEL_URI"] == str(random_model_path)
        assert tags["SATSR_MODEL_ARCH"] == "edsr" and tags["SATSR_VERSION"]
        assert json.loads(tags["SATSR_INPUTS"]) == [str(src)]
        assert tags["SATSR_ENCODING"] == "landsat_c2_l2_sr"
        assert "2.75e-05" in tags["SATSR_INPUT_ENCODING"]
        assert sr.tags(1) == {"COLOR": "red", "SOURCE_BAND": "band 1"}
    # The decoded output stays close to the input (the model adds small detail to bicubic).
    sr_refl = read_refl(out)
    lr_mean = refl.reshape(3, -1).mean(1)
    np.testing.assert_allclose(np.nanmean(sr_refl.reshape(3, -1), 1), lr_mean, atol=0.02)


def test_tiled_output_equals_the_whole_image_output_without_seams(tmp_path, random_model):
    refl = textured(np.random.default_rng(1), 150, 170)
    src = write_tif(tmp_path / "scene.tif", refl, nodata=None)  # float32 reflectance
    kw = {"params": Params(), "output_dtype": "float32", "output_format": "gtiff", "overlap": 24}
    whole = read_refl(predict(src, random_model, tmp_path / "whole.tif", tile_size=256, **kw)[0])
    tiled = read_refl(predict(src, random_model, tmp_path / "tiled.tif", tile_size=48, batch_size=3, **kw)[0])
    grid = TileGrid(150, 170, 48, 24)
    assert grid.shape[0] > 2 and grid.shape[1] > 2
    assert np.abs(tiled - whole).max() < 1e-4
    # No seam: along every tile edge and every ramp, tiled == whole to the same tolerance.
    for x in grid.xs[1:]:
        band = slice(x * 3 - 3, x * 3 + 3 * 24 + 3)
        assert np.abs(tiled[:, :, band] - whole[:, :, band]).max() < 1e-4
    for y in grid.ys[1:]:
        band = slice(y * 3 - 3, y * 3 + 3 * 24 + 3)
        assert np.abs(tiled[:, band] - whole[:, band]).max() < 1e-4
    # The model really differs from bicubic, so the comparison is not trivially true.
    assert np.abs(np.diff(tiled, axis=2)).mean() > 1e-3


def test_uint16_output_decodes_to_the_float32_output(tmp_path, random_model):
    refl = textured(np.random.default_rng(2), 60, 70)
    src = write_tif(tmp_path / "s.tif", c2_dn(refl), nodata=0)
    f32 = predict(src, random_model, tmp_path / "f.tif", output_dtype="float32", params=Params())[0]
    u16 = predict(src, random_model, tmp_path / "u.tif", params=Params())[0]
    with rasterio.open(f32) as a:
        assert a.dtypes[0] == "float32" and np.isnan(a.nodata) and a.scales == (1.0,) * 3
        assert a.tags()["SATSR_ENCODING"] == "reflectance"
    np.testing.assert_allclose(read_refl(u16), read_refl(f32), atol=C2_SCALE)
    assert np.nanmin(read_refl(f32)) >= -0.1 and np.nanmax(read_refl(f32)) <= 1.0  # clipped to the model range


def test_nodata_becomes_3x3_nodata_blocks_and_nothing_else(tmp_path, bicubic_model):
    refl = textured(np.random.default_rng(3), 64, 64)
    dn = c2_dn(refl)
    dn[:, 10:20, 5:12] = 0  # fill
    dn[:, 40, 50] = 0
    dn[:, :, :3] = 0  # a scene-edge strip
    src = write_tif(tmp_path / "s.tif", dn, nodata=0)
    out = predict(src, bicubic_model, tmp_path / "o.tif", tile_size=32, overlap=8, params=Params())[0]
    with rasterio.open(out) as sr:
        data = sr.read()
        mask = sr.read_masks(1) == 0
    expected = np.repeat(np.repeat((dn[0] == 0), 3, 0), 3, 1)
    assert (mask == expected).all()
    assert (data[:, expected] == 0).all() and (data[:, ~expected] > 0).all()
    # Nearest-valid filling: valid pixels next to the holes stay within the scene's range (no ringing).
    sr_refl = read_refl(out)
    assert np.nanmax(sr_refl) < refl.max() + 0.02 and np.nanmin(sr_refl) > refl.min() - 0.02

    # NaN in float input is nodata too.
    f = refl.copy()
    f[:, 30:33, 30:33] = np.nan
    out = predict(write_tif(tmp_path / "f.tif", f), bicubic_model, tmp_path / "fo.tif", params=Params())[0]
    with rasterio.open(out) as sr:
        assert (sr.read_masks(1)[90:99, 90:99] == 0).all() and (sr.read_masks(1) == 0).sum() == 81


def test_all_nodata_input_gives_nodata_output_and_a_warning(tmp_path, bicubic_model):
    src = write_tif(tmp_path / "empty.tif", np.full((3, 40, 40), -9999, np.int16), nodata=-9999)
    with pytest.warns(PredictWarning, match="every input pixel is nodata"):
        out = predict(src, bicubic_model, tmp_path / "o.tif", input_scale=1e-4, params=Params())[0]
    with rasterio.open(out) as sr:
        assert (sr.read() == 0).all() and sr.nodata == 0


def test_aoi_bounds_lonlat_and_geojson_snap_to_the_input_grid(tmp_path, bicubic_model):
    src = write_tif(tmp_path / "s.tif", c2_dn(textured(np.random.default_rng(4), 50, 60)), nodata=0)
    x0, y0 = ORIGIN
    # Input-CRS bounds, not on pixel edges: snapped outward to cols 2..7 (incl.), rows 3..5.
    bounds = f"{x0 + 65},{y0 - 170},{x0 + 235},{y0 - 95}"
    out = predict(src, bicubic_model, tmp_path / "a.tif", aoi=bounds, params=Params())[0]
    with rasterio.open(out) as sr:
        assert (sr.width, sr.height) == (6 * 3, 3 * 3)
        assert (sr.transform.c, sr.transform.f) == (x0 + 60, y0 - 90)
        assert "col_off=2,row_off=3" in sr.tags()["SATSR_INPUT_WINDOW"]
    # The same area as lon/lat (recognised because it does not fit the UTM bounds) and as GeoJSON.
    from rasterio.warp import transform_bounds

    lonlat = transform_bounds("EPSG:32720", "EPSG:4326", x0 + 61, y0 - 179, x0 + 239, y0 - 91)
    out = predict(src, bicubic_model, tmp_path / "b.tif", aoi=",".join(map(str, lonlat)), params=Params())[0]
    with rasterio.open(out) as sr:
        assert (sr.width, sr.height) == (18, 9) and (sr.transform.c, sr.transform.f) == (x0 + 60, y0 - 90)
    lo_x, lo_y, hi_x, hi_y = lonlat
    ring = [[lo_x, lo_y], [hi_x, lo_y], [hi_x, hi_y], [lo_x, hi_y], [lo_x, lo_y]]
    geojson = tmp_path / "aoi.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    out = predict(src, bicubic_model, tmp_path / "c.tif", aoi=geojson, params=Params())[0]
    with rasterio.open(out) as sr:
        assert (sr.width, sr.height) == (18, 9)
    with pytest.raises(PredictError, match="does not overlap"):
        predict(src, bicubic_model, tmp_path / "d.tif", aoi="0,0,10,10", params=Params())


# ------------------------------------------------------------------------------------ inputs
def _c2_scene(folder: Path, pid: str, bands: dict[str, float], size=(40, 50)) -> Path:
    """Constant-reflectance band files <pid>_<band>.TIF (uint16 C2 DN, fill 0) plus distractors."""
    folder.mkdir(parents=True, exist_ok=True)
    for band, value in bands.items():
        dn = c2_dn(np.full((1, *size), value, np.float32))
        dn[:, 0, 0] = 0
        write_tif(folder / f"{pid}_{band}.TIF", dn)
    write_tif(folder / f"{pid}_QA_PIXEL.TIF", np.zeros((1, *size), np.uint16))
    return folder


def test_collection2_band_files_of_l8_and_l5(tmp_path, bicubic_model):
    l8 = _c2_scene(tmp_path / "l8", "LC08_L2SP_232066_20190727_20200827_02_T1",
                   {"SR_B2": 0.05, "SR_B3": 0.08, "SR_B4": 0.12, "SR_B5": 0.4})
    out = predict(l8 / "LC08_L2SP_232066_20190727_20200827_02_T1_SR_B3.TIF", bicubic_model, tmp_path / "o8.tif",
                  params=Params())[0]
    refl = read_refl(out)
    np.testing.assert_allclose(np.nanmean(refl.reshape(3, -1), 1), [0.12, 0.08, 0.05], atol=1e-4)
    assert np.isnan(refl[:, :3, :3]).all() and not np.isnan(refl[:, 3:, 3:]).any()  # C2 fill 0 = nodata
    with rasterio.open(out) as sr:
        assert sr.descriptions == ("red (SR_B4)", "green (SR_B3)", "blue (SR_B2)")
        assert sr.tags()["SATSR_SENSOR"] == "LC08"
        assert len(json.loads(sr.tags()["SATSR_INPUTS"])) == 3

    l5 = _c2_scene(tmp_path / "l5", "LT05_L2SP_232066_20080727_20200827_02_T1",
                   {"SR_B1": 0.03, "SR_B2": 0.06, "SR_B3": 0.09, "SR_B4": 0.35})
    outs = predict(l5, bicubic_model, f"{tmp_path / 'out5'}/", params=Params())  # the folder: one scene
    assert [o.name for o in outs] == ["LT05_L2SP_232066_20080727_20200827_02_T1_SR10m.tif"]
    np.testing.assert_allclose(np.nanmean(read_refl(outs[0]).reshape(3, -1), 1), [0.09, 0.06, 0.03], atol=1e-4)

    # A glob and several inputs at once: one output per scene in the output folder.
    assert [s.name for s in resolve_inputs(str(l8 / "*.TIF"))] == ["LC08_L2SP_232066_20190727_20200827_02_T1"]
    outs = predict([str(l8 / "*_SR_B*.TIF"), l5], bicubic_model, f"{tmp_path / 'both'}/", params=Params())
    assert sorted(o.name[:4] for o in outs) == ["LC08", "LT05"] and all(o.is_file() for o in outs)
    with pytest.raises(PredictError, match="2 scenes need an output folder"):
        predict([l8, l5], bicubic_model, tmp_path / "one.tif", params=Params())

    (l5 / "LT05_L2SP_232066_20080727_20200827_02_T1_SR_B1.TIF").unlink()
    with pytest.raises(PredictError, match=r"LT05_L2SP_232066_20080727_20200827_02_T1_SR_B1\.TIF: file not found"):
        predict(l5, bicubic_model, f"{tmp_path / 'out5b'}/", params=Params())


def test_three_band_uint16_c2_file_needs_no_options(tmp_path, bicubic_model):
    refl = np.stack([np.full((30, 30), v, np.float32) for v in (0.2, 0.1, 0.05)])
    src = write_tif(tmp_path / "rgb.tif", c2_dn(refl), descriptions=("SR_B4", "SR_B3", "SR_B2"))
    out = predict(src, bicubic_model, tmp_path / "o.tif", params=Params())[0]
    np.testing.assert_allclose(np.nanmean(read_refl(out).reshape(3, -1), 1), [0.2, 0.1, 0.05], atol=1e-4)
    # Band descriptions in blue-first order are honoured without --bands.
    src = write_tif(tmp_path / "bgr.tif", c2_dn(refl[::-1].copy()), descriptions=("SR_B2", "SR_B3", "SR_B4"))
    out = predict(src, bicubic_model, tmp_path / "o2.tif", params=Params())[0]
    np.testing.assert_allclose(np.nanmean(read_refl(out).reshape(3, -1), 1), [0.2, 0.1, 0.05], atol=1e-4)
    # The file's own scale/offset win over the C2 default.
    src = write_tif(tmp_path / "scaled.tif", np.rint(refl * 10000).astype(np.uint16), scales=[1e-4] * 3,
                    offsets=[0.0] * 3)
    out = predict(src, bicubic_model, tmp_path / "o3.tif", params=Params())[0]
    np.testing.assert_allclose(np.nanmean(read_refl(out).reshape(3, -1), 1), [0.2, 0.1, 0.05], atol=1e-4)


def test_real_landsat_inputs(realdata, tmp_path, bicubic_model):
    eo = realdata / "l8_only" / "scikit_eo"
    # int16 SR x 10000 with nodata -9999 (6 bands B2..B7): --bands 3,2,1 --input-scale 1e-4.
    src = eo / "LC08_232066_20190727.tif"
    with pytest.raises(PredictError, match="6 bands.*--bands"):
        predict(src, bicubic_model, tmp_path / "x.tif", params=Params())
    with pytest.raises(PredictError, match="not surface reflectance.*--input-scale"):
        predict(src, bicubic_model, tmp_path / "x.tif", bands="3,2,1", params=Params())
    # Its README promises nodata pixels, but none hold -9999: a copy gets a hole and a ragged edge.
    with rasterio.open(src) as lr:
        data, profile = lr.read(), lr.profile
    data[:, 100:130, 40:90] = -9999
    data[:, :, :7] = -9999
    with rasterio.open(tmp_path / src.name, "w", **profile) as dst:
        dst.write(data)
    src = tmp_path / src.name
    out = predict(src, bicubic_model, tmp_path / "int16.tif", bands="3,2,1", input_scale=1e-4, params=Params())[0]
    with rasterio.open(src) as lr, rasterio.open(out) as sr:
        lr_red = lr.read(3)
        assert (sr.width, sr.height) == (lr.width * 3, lr.height * 3) and sr.crs == lr.crs
        assert sr.transform.a == pytest.approx(lr.transform.a / 3)
        assert (sr.transform.c, sr.transform.f) == (lr.transform.c, lr.transform.f)
        expected = np.repeat(np.repeat(lr_red == -9999, 3, 0), 3, 1)
        assert ((sr.read_masks(1) == 0) == expected).all()
        valid = lr_red[lr_red != -9999] * 1e-4
    sr_red = read_refl(out)[0]
    assert abs(np.nanmedian(sr_red) - np.median(np.clip(valid, -0.1, 1))) < 0.005

    # float32 SR x 10000 with negative values: refused without a scale, fine with one.
    src = eo / "LC08_003069_20180906_clip.tif"
    with pytest.raises(PredictError, match="not surface reflectance"):
        predict(src, bicubic_model, tmp_path / "y.tif", bands="3,2,1", params=Params())
    out = predict(src, bicubic_model, tmp_path / "f32.tif", bands=(3, 2, 1), input_scale=1e-4,
                  output_dtype="float32", params=Params())[0]
    sr = read_refl(out)
    assert not np.isnan(sr).any() and sr.min() >= -0.1  # negatives clipped to the model range

    # 7-band float32 holding Collection 2 DN (an _L2SP_ product): recognised with just --bands.
    src = next((realdata / "l8_only" / "deep_harmonization").glob("LC08_L2SP_*_SR.tif"))
    out = predict(src, bicubic_model, tmp_path / "c2.tif", bands="3,2,1", params=Params())[0]
    with rasterio.open(src) as lr:
        red = lr.read(3) * C2_SCALE + C2_OFFSET
    assert "Collection 2" in rasterio.open(out).tags()["SATSR_INPUT_ENCODING"]
    assert abs(np.nanmedian(read_refl(out)[0]) - np.median(red)) < 0.005


# ------------------------------------------------------------------------------------ errors
def test_bad_inputs_fail_with_what_was_expected(tmp_path, bicubic_model):
    p = Params()
    with pytest.raises(PredictError, match=r"nowhere\.tif: file not found"):
        predict(tmp_path / "nowhere.tif", bicubic_model, tmp_path / "o.tif", params=p)
    four = write_tif(tmp_path / "four.tif", np.ones((4, 20, 20), np.uint16) * 9000)
    with pytest.raises(PredictError, match=r"4 bands .*expected a 3-band red,green,blue GeoTIFF"):
        predict(four, bicubic_model, tmp_path / "o.tif", params=p)
    with pytest.raises(PredictError, match=r"--bands 5,2,1 but the file has 4 band"):
        predict(four, bicubic_model, tmp_path / "o.tif", bands="5,2,1", params=p)
    with pytest.raises(PredictError, match="three 1-based band numbers"):
        predict(four, bicubic_model, tmp_path / "o.tif", bands="3,2", params=p)
    s2 = write_tif(tmp_path / "T20MQA_20200101T140000_B04_10m.tif", np.ones((1, 20, 20), np.uint16))
    with pytest.raises(PredictError, match="Sentinel-2.*LC08, LC09"):
        predict(s2, bicubic_model, tmp_path / "o.tif", params=p)
    one = write_tif(tmp_path / "red_only.tif", np.ones((1, 20, 20), np.uint16))
    with pytest.raises(PredictError, match="a single band.*SR_B4/_SR_B3/_SR_B2"):
        predict(one, bicubic_model, tmp_path / "o.tif", params=p)
    mss = write_tif(tmp_path / "LM05_L1TP_232066_19900727_20200827_02_T2_SR_B4.TIF", np.ones((1, 9, 9), np.uint16))
    with pytest.raises(PredictError, match="LM05 is not a supported Landsat sensor.*LT05"):
        predict(mss, bicubic_model, tmp_path / "o.tif", params=p)
    with pytest.raises(PredictError, match="no file matches"):
        predict(str(tmp_path / "*.jp2"), bicubic_model, tmp_path / "o.tif", params=p)
    with pytest.raises(PredictError, match="model file not found"):
        predict(four, tmp_path / "missing.keras", tmp_path / "o.tif", bands="3,2,1", params=p)


def test_ungeoreferenced_input_needs_the_flag(tmp_path, bicubic_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = write_tif(tmp_path / "plain.tif", c2_dn(textured(np.random.default_rng(5), 20, 20)), crs=None)
    with pytest.raises(PredictError, match="not georeferenced.*--allow-ungeoreferenced"):
        predict(src, bicubic_model, tmp_path / "o.tif", params=Params())
    out = predict(src, bicubic_model, tmp_path / "o.tif", allow_ungeoreferenced=True, params=Params())[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(out) as sr:
            assert sr.crs is None and (sr.width, sr.height) == (60, 60)


def test_existing_output_is_refused_unless_overwrite(tmp_path, bicubic_model):
    src = write_tif(tmp_path / "s.tif", c2_dn(textured(np.random.default_rng(6), 20, 20)))
    out = tmp_path / "o.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(PredictError, match="output exists.*--overwrite"):
        predict(src, bicubic_model, out, params=Params())
    assert out.read_bytes() == b"keep me"
    predict(src, bicubic_model, out, overwrite=True, params=Params())
    with rasterio.open(out) as sr:
        assert sr.width == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif", "s.tif"]  # no temporary left


def test_cli_predict_writes_a_geotiff_and_a_comparison(tmp_path, random_model_path, capsys):
    src = write_tif(tmp_path / "s.tif", c2_dn(textured(np.random.default_rng(7), 40, 40)), nodata=0)
    out = tmp_path / "cli" / "sr.tif"
    assert main(["predict", str(src), "--model", str(random_model_path), "-o", str(out), "--format", "gtiff",
                 "--float32", "--compare", "--tile-size", "32", "--overlap", "8"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with rasterio.open(out) as sr:
        assert sr.dtypes[0] == "float32" and sr.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"
    from PIL import Image

    with Image.open(tmp_path / "cli" / "sr_compare.png") as im:
        assert im.size[0] > 2 * 120 and im.mode == "RGB"
    assert main(["predict", str(src), "--model", str(random_model_path), "-o", str(out)]) == 1
    assert "output exists" in capsys.readouterr().err
    assert main(["predict", str(src), "--model", str(random_model_path), "-o", str(out), "--overwrite",
                 "--overlap", "30", "--tile-size", "32"]) == 1
    assert "overlap" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ SIGKILL
def test_sigkill_mid_run_leaves_no_file_at_the_output_path(killed_run):
    proc, out, log = killed_run
    deadline = time.monotonic() + 300
    started = False
    while time.monotonic() < deadline and proc.poll() is None:
        temps = list(out.parent.glob(".*.tmp.tif")) if out.parent.is_dir() else []
        if temps and temps[0].stat().st_size > 200_000:  # rows of the scene are being written
            started = True
            break
        time.sleep(0.05)
    assert started and proc.poll() is None, f"predict was not caught mid-run:\n{log.read_text()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert all(p.name.startswith(".") for p in out.parent.iterdir())  # only hidden temporaries
    # The next run on this output removes them (issue 13, item 9): the killed writer holds no lock now.
    from satsr.predict.writer import clean_stale

    left = sorted(p.name for p in out.parent.iterdir())
    assert left and sorted(p.name for p in clean_stale(out)) == left
    assert list(out.parent.iterdir()) == []
