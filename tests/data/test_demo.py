"""The offline demo provider: real GeoTIFF pairs, read back with rasterio.

The demo stands in for Earth Engine on machines without an account, so these tests hold it to the
same contract as the real provider (encodings, band names, nested grids, tags, manifest) and check
that its planted defects are strong enough -- and its good pairs clean enough -- for the simple
screens the filter stage applies. The screens are recomputed here, independently of satsr.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.warp import transform as warp_transform
from skimage.registration import phase_cross_correlation

from satsr.config import DemoParams, Params, SourceParams
from satsr.data import grids, manifest
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.data.sources import demo
from satsr.util import sha256_file

LR = 32
N_PAIRS = 20
N_LOCATIONS = 4
N_REGIONS = 2
#: The filter's simple screens (params.yaml filter defaults), recomputed in this file.
CLOUD_REFLECTANCE, MAX_CLOUD_FRACTION = 0.3, 0.01
MAX_SHIFT_LR_PX = 0.5
MIN_CORRELATION = 0.7
HAZE_PERCENTILE, MAX_HAZE_REFLECTANCE = 5.0, 0.12
SCREEN_OF_DEFECT = {"cloud": "cloud", "nodata": "nodata", "misaligned": "shift", "change": "correlation",
                    "haze": "haze"}


def small_params(**demo_overrides) -> Params:
    """20 pairs of 32 px at 4 locations; half of them bad, so every defect kind appears twice."""
    kw = {"n_pairs": N_PAIRS, "n_locations": N_LOCATIONS, "n_regions": N_REGIONS, "bad_fraction": 0.5, "workers": 1}
    kw.update(demo_overrides)
    return Params(source=SourceParams(lr_size=LR, demo=DemoParams(**kw)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One demo dataset shared by the read-only tests (the run takes about a second)."""
    out = tmp_path_factory.mktemp("demo_raw")
    df = demo.run(small_params(), out)
    return out, df


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), {"profile": src.profile, "tags": src.tags(), "descriptions": src.descriptions,
                            "scales": src.scales, "offsets": src.offsets, "transform": src.transform,
                            "crs": src.crs, "nodata": src.nodata}


def _screens(lr_dn: np.ndarray, hr_dn: np.ndarray) -> dict[str, bool]:
    """Which simple screens a pair FAILS (True = rejected), computed from the raw DN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-fill pixels of the nodata stripes
        return _screens_nan_ok(lr_dn, hr_dn)


def _screens_nan_ok(lr_dn: np.ndarray, hr_dn: np.ndarray) -> dict[str, bool]:
    lr, hr = L8_C2_L2.to_reflectance(lr_dn), S2_SR.to_reflectance(hr_dn)
    fails = {"nodata": bool((lr_dn == 0).any() or (hr_dn == 0).any())}
    fails["cloud"] = any(float((np.nanmean(x, axis=0) > CLOUD_REFLECTANCE).mean()) > MAX_CLOUD_FRACTION
                         for x in (lr, hr))
    fails["haze"] = any(float(np.nanpercentile(x[2], HAZE_PERCENTILE)) > MAX_HAZE_REFLECTANCE for x in (lr, hr))
    n = lr.shape[-1]
    grey_lr = np.nanmean(lr, axis=0)
    grey_hr = np.nanmean(hr, axis=0).reshape(n, 3, n, 3).mean(axis=(1, 3))  # area-downsampled HR
    ok = np.isfinite(grey_lr) & np.isfinite(grey_hr)
    grey_lr, grey_hr = (np.where(ok, g, np.nanmean(g)) for g in (grey_lr, grey_hr))
    fails["correlation"] = float(np.corrcoef(grey_lr.ravel(), grey_hr.ravel())[0, 1]) < MIN_CORRELATION
    taper = np.outer(np.hanning(n), np.hanning(n))  # keeps the non-periodic chip edges out of the peak
    shift, _, _ = phase_cross_correlation((grey_hr - grey_hr.mean()) * taper, (grey_lr - grey_lr.mean()) * taper,
                                          upsample_factor=20, normalization=None)
    fails["shift"] = float(np.hypot(*shift)) > MAX_SHIFT_LR_PX
    return fails


# ------------------------------------------------------------------------------- manifest
def test_manifest_has_every_column_filled_and_checksums_match(built):
    out, df = built
    assert list(df.columns) == manifest.COLUMNS
    assert len(df) == N_PAIRS and df["pair_id"].is_unique
    assert (df["provider"] == "demo").all() and df["is_demo"].all()
    assert df["region"].str.fullmatch(r"demo_r\d{2}").all() and df["region"].nunique() == N_REGIONS
    assert df.groupby(["lon", "lat"]).ngroups == N_LOCATIONS
    assert (df["source_split"] == "").all()
    assert (df[["lr_width", "lr_height"]] == LR).all().all() and (df[["hr_width", "hr_height"]] == 3 * LR).all().all()
    name = r"\d{5}_\d{4}-\d{2}-\d{2}_SENSOR_-?\d+\.\d{4}_-?\d+\.\d{4}\.tif"
    assert df["lr_file"].str.fullmatch(name.replace("SENSOR", "L8")).all()
    assert df["hr_file"].str.fullmatch(name.replace("SENSOR", "S2")).all()
    assert df["lr_scene_id"].str.fullmatch(r"LANDSAT/LC08/C02/T1_L2/LC08_\d{6}_\d{8}").all()
    s2_id = r"COPERNICUS/S2_SR_HARMONIZED/\d{8}T\d{6}_\d{8}T\d{6}_T\d{2}[C-X][A-Z]{2}"
    assert df["hr_scene_id"].str.fullmatch(s2_id).all()
    for side in ("lr", "hr"):
        assert df[f"{side}_cloud"].between(0, 20).all()
        assert df[f"{side}_clear_fraction"].between(0, 1).all()
    clean = df[df["demo_defect"].isin(["", "misaligned", "change", "haze"])]
    assert (clean[["lr_clear_fraction", "hr_clear_fraction"]] == 1).all().all()
    assert (df[df["demo_defect"].isin(["cloud", "nodata"])][["lr_clear_fraction", "hr_clear_fraction"]]
            .min(axis=1) < 1).all()
    # round(0.5 * 20) = 10 bad pairs, the five kinds in turn
    assert df["demo_defect"].value_counts().to_dict() == {"": 10, **{k: 2 for k in demo.DEFECTS}}
    for r in df.itertuples():
        assert sha256_file(out / r.lr_file) == r.lr_sha256 and sha256_file(out / r.hr_file) == r.hr_sha256
        assert manifest.is_complete(out, r._asdict())
    assert sorted(p.name for p in out.iterdir()) == sorted([manifest.MANIFEST_NAME, *df["lr_file"], *df["hr_file"]])


def test_dates_are_at_most_a_week_apart_one_pair_per_month_per_location(built):
    _, df = built
    lr_d, hr_d = pd.to_datetime(df["lr_date"]), pd.to_datetime(df["hr_date"])
    assert ((hr_d - lr_d).dt.days.abs() == df["days_apart"]).all()
    assert df["days_apart"].between(0, 7).all() and df["days_apart"].nunique() > 1
    assert (lr_d.dt.to_period("M") == hr_d.dt.to_period("M")).all()
    months = df.assign(month=lr_d.dt.strftime("%Y-%m"))
    assert not months.duplicated(["lon", "lat", "month"]).any()
    assert (months.groupby(["lon", "lat"])["month"].nunique() == N_PAIRS // N_LOCATIONS).all()
    change = df["demo_defect"] == "change"  # a new clearing shows on the later (Sentinel-2) image
    assert (hr_d[change] > lr_d[change]).all()


def test_locations_follow_the_moving_square_and_overlap_slightly(built):
    _, df = built
    params = small_params()
    locs = demo.demo_locations(params)
    assert locs[0] == params.source.demo.origin and len(locs) == N_LOCATIONS
    per_loc = df.groupby(["lon", "lat"])[["region", "crs", "x0", "y0"]].nunique()
    assert (per_loc == 1).all().all()  # a location keeps its chip through the months
    crs = f"EPSG:{grids.utm_epsg(*locs[0])}"
    xs, ys = warp_transform("EPSG:4326", crs, [lon for lon, _ in locs], [lat for _, lat in locs])
    step = params.source.demo.step_factor * params.source.buffer_m
    # 2 regions of 2: neighbours on a line one step apart (1 % for the degree lengths) ...
    assert math.hypot(xs[1] - xs[0], ys[1] - ys[0]) == pytest.approx(step, rel=0.01)
    assert math.hypot(xs[3] - xs[2], ys[3] - ys[2]) == pytest.approx(step, rel=0.01)
    # ... and separate regions far apart, beyond the line and the configured gap
    gap_m = params.source.demo.region_gap_km * 1000
    assert math.hypot(xs[2] - xs[0], ys[2] - ys[0]) > gap_m + 2 * params.source.buffer_m
    assert step < 2 * params.source.buffer_m  # neighbouring chips overlap, as in the seed


# ----------------------------------------------------------------------------- the rasters
def test_rasters_carry_the_real_encodings_tags_and_nested_utm_grids(built):
    out, df = built
    for r in df.itertuples():
        lr, lr_meta = _read(out / r.lr_file)
        hr, hr_meta = _read(out / r.hr_file)
        assert lr.dtype == np.uint16 and hr.dtype == np.uint16
        assert lr.shape == (3, LR, LR) and hr.shape == (3, 3 * LR, 3 * LR)
        assert lr_meta["descriptions"] == LANDSAT_RGB and hr_meta["descriptions"] == S2_RGB
        assert lr_meta["scales"] == (L8_C2_L2.scale,) * 3 and lr_meta["offsets"] == (L8_C2_L2.offset,) * 3
        assert hr_meta["scales"] == (S2_SR.scale,) * 3 and hr_meta["offsets"] == (S2_SR.offset,) * 3
        assert lr_meta["nodata"] == 0 and hr_meta["nodata"] == 0
        # same UTM zone as the chip centre, same upper-left corner, 30 m vs 10 m pixels
        epsg = grids.utm_epsg(r.lon, r.lat)
        assert lr_meta["crs"].to_epsg() == epsg and hr_meta["crs"].to_epsg() == epsg and r.crs == f"EPSG:{epsg}"
        lt, ht = lr_meta["transform"], hr_meta["transform"]
        assert (lt.a, lt.e, ht.a, ht.e) == (30.0, -30.0, 10.0, -10.0) and lt.b == lt.d == ht.b == ht.d == 0
        assert (lt.c, lt.f) == (ht.c, ht.f) == (r.x0, r.y0)
        assert r.x0 % 30 == 0 and r.y0 % 30 == 0
        (cx,), (cy,) = warp_transform("EPSG:4326", r.crs, [r.lon], [r.lat])
        assert r.x0 < cx < r.x0 + 30 * LR and r.y0 - 30 * LR < cy < r.y0
        for side, tags, sensor in (("lr", lr_meta["tags"], "L8"), ("hr", hr_meta["tags"], "S2")):
            assert tags["SATSR_DEMO"] == "1" and "SYNTHETIC DEMO DATA" in tags["DESCRIPTION"]
            assert tags["SENSOR"] == sensor and tags["PROVIDER"] == "demo" and tags["PAIR_ID"] == r.pair_id
            assert tags["DATE_ACQUIRED"] == getattr(r, f"{side}_date")
            assert tags["TIME_ACQUIRED"].startswith(getattr(r, f"{side}_date") + "T")
            assert tags["SCENE_ID"] == getattr(r, f"{side}_scene_id")
        assert float(lr_meta["tags"]["CLOUD_COVER"]) == pytest.approx(r.lr_cloud)
        assert float(hr_meta["tags"]["CLOUDY_PIXEL_PERCENTAGE"]) == pytest.approx(r.hr_cloud)
        assert re.fullmatch(r"LC08_L2SP_\d{6}_\d{8}_\d{8}_02_T1", lr_meta["tags"]["PRODUCT_ID"])
        assert re.fullmatch(r"S2[AB]_MSIL2A_\d{8}T\d{6}_N\d{4}_R\d{3}_T\d{2}[C-X][A-Z]{2}_\d{8}T\d{6}",
                            hr_meta["tags"]["PRODUCT_ID"])


def test_good_pairs_look_like_vegetated_surface_reflectance_with_fine_detail(built):
    out, df = built
    for r in df[df["demo_defect"] == ""].itertuples():
        lr_dn, _ = _read(out / r.lr_file)
        hr_dn, _ = _read(out / r.hr_file)
        hr, lr = S2_SR.to_reflectance(hr_dn), L8_C2_L2.to_reflectance(lr_dn)
        assert 0.02 < float(np.median(hr)) < 0.15 and float(np.percentile(hr, 99.9)) < CLOUD_REFLECTANCE
        assert float(np.median(hr[1])) > float(np.median(hr[2]))  # green above blue: vegetation
        # the 10 m image holds detail the 30 m one cannot: what makes super-resolution worth it
        grad_hr = np.hypot(*np.gradient(hr.mean(axis=0))).mean()
        grad_lr_up = np.hypot(*np.gradient(np.kron(lr.mean(axis=0), np.ones((3, 3))))).mean()
        assert grad_hr > 0.002 and grad_hr > 1.5 * grad_lr_up


def test_good_pairs_pass_the_simple_screens_and_each_defect_fails_its_own(built):
    out, df = built
    for r in df.itertuples():
        fails = _screens(_read(out / r.lr_file)[0], _read(out / r.hr_file)[0])
        if r.demo_defect == "":
            assert not any(fails.values()), (r.pair_id, fails)
        else:
            assert fails[SCREEN_OF_DEFECT[r.demo_defect]], (r.pair_id, r.demo_defect, fails)


# --------------------------------------------------------------------- determinism, resume
def test_same_params_give_byte_identical_files_whatever_the_worker_count(built, tmp_path, caplog):
    out, df = built
    with caplog.at_level(logging.WARNING, logger="satsr.data.sources.demo"):
        again = demo.run(small_params(workers=2), tmp_path)
    assert "DEMO DATA" in caplog.text
    pd.testing.assert_frame_equal(again, df)
    for name in [*df["lr_file"], *df["hr_file"], manifest.MANIFEST_NAME]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_rerun_regenerates_only_what_is_missing_and_prunes_the_rest(built, tmp_path):
    out, df = built
    work = tmp_path / "raw"
    shutil.copytree(out, work)
    victim = df["hr_file"].iloc[3]
    (work / victim).unlink()
    (work / "stray.tif").write_bytes(b"not in the plan")
    (work / ".00001_x.tif.abc.part").write_bytes(b"left by a killed run")
    before = {p.name: p.stat().st_mtime_ns for p in work.iterdir() if p.name.endswith(".tif")}

    again = demo.run(small_params(), work)

    pd.testing.assert_frame_equal(again, df)
    assert (work / victim).read_bytes() == (out / victim).read_bytes()
    after = {p.name: p.stat().st_mtime_ns for p in work.iterdir() if p.name.endswith(".tif")}
    assert set(after) == set(df["lr_file"]) | set(df["hr_file"])  # stray and partial files are gone
    assert {k: v for k, v in after.items() if k != victim} == {k: v for k, v in before.items() if k in after}


def test_files_made_under_other_params_are_not_resumed(built, tmp_path):
    out, df = built
    work = tmp_path / "raw"
    shutil.copytree(out, work)
    sharper = demo.run(small_params(psf_sigma_hr_px=0.8), work)  # same plan and names, other pixels
    assert (sharper["lr_file"] == df["lr_file"]).all() and (sharper["lr_sha256"] != df["lr_sha256"]).all()
    with rasterio.open(work / sharper["lr_file"].iloc[0]) as src:
        assert src.tags()[demo.TAG_FINGERPRINT] == demo.fingerprint(small_params(psf_sigma_hr_px=0.8))
    fewer = demo.run(small_params(n_pairs=8), work)  # a smaller plan: the other files go
    assert len(fewer) == 8
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [manifest.MANIFEST_NAME, *fewer["lr_file"], *fewer["hr_file"]])


def test_plan_is_pure_and_dates_follow_the_start_date():
    params = small_params(start_date=dt.date(2021, 6, 1))
    first, second = demo.plan_pairs(params), demo.plan_pairs(params)
    assert first == second
    assert min(p.lr_time.date() for p in first) >= dt.date(2021, 6, 1)
    assert all(p.lr_time.tzinfo is not None for p in first)
