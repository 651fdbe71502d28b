"""The filter stage on real small GeoTIFFs: clean pairs pass, every defect gets its reason and a
detail naming the file, bad input never costs the good pairs, and people can review the result."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage as ndi

from satsr.config import FilterParams, Params, PngParams, SourceParams
from satsr.data.filters import REASONS, REPORT_COLUMNS, checks, percentile, run_filter
from satsr.data.geotiff import read_raster, write_geotiff
from satsr.data.grids import Grid
from satsr.data.manifest import write_manifest
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, REFLECTANCE, S2_SR, Encoding
from satsr.data.registration import area_downsample, phase_shift
from satsr.data.review import read_review_file

LR = 32


def _params(tmp_path: Path, workers: int = 1, **filter_kw) -> Params:
    filter_kw.setdefault("review_file", str(tmp_path / "review.txt"))
    return Params(
        source=SourceParams(lr_size=LR), filter=FilterParams(**filter_kw), png=PngParams(workers=workers)
    )


def _grid(path: Path) -> Grid:
    r = read_raster(path)
    t = r.transform
    return Grid(r.crs.to_string(), t.c, t.f, t.a, r.width, r.height)


def _rewrite(path: Path, refl: np.ndarray, enc: Encoding, grid: Grid | None = None, names=None) -> None:
    """Replace a chip's content (keeping its grid unless given) with reflectance ``refl``."""
    grid = grid or _grid(path)
    grid = Grid(grid.crs, grid.x0, grid.y0, grid.pixel, refl.shape[2], refl.shape[1])
    names = names or tuple(f"b{i}" for i in range(refl.shape[0]))
    path.unlink()
    write_geotiff(path, enc.from_reflectance(refl), grid, enc, names)


def _rewrite_dn(path: Path, edit) -> None:
    """Edit the stored DN of a chip in place."""
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        edit(data)
        dst.write(data)


def _manifest(folder: Path, names: list[str]) -> None:
    write_manifest(
        folder,
        [
            {"pair_id": n, "provider": "demo", "lr_file": f"{n}_L8.tif", "hr_file": f"{n}_S2.tif"}
            for n in names
        ],
    )


def _shifted_lr(hr: np.ndarray, dy_lr: float, dx_lr: float) -> np.ndarray:
    """LR whose content is moved by (dy, dx) LR pixels relative to the HR it was made from."""
    moved = ndi.shift(hr, (0, 3 * dy_lr, 3 * dx_lr), order=3, mode="nearest")
    return area_downsample(moved, 3).astype(np.float32)


# ------------------------------------------------------------------------------------- clean pair
def test_clean_pair_is_accepted_with_all_outputs(make_pair, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    make_pair("good", lr_size=LR, folder=raw)
    _manifest(raw, ["good"])
    report = run_filter(_params(tmp_path), raw, out)

    assert list(report.columns) == REPORT_COLUMNS
    row = report.iloc[0]
    assert row.status == "accepted" and row.reasons == "" and row.note == ""
    assert row.lr_path == str(raw / "good_L8.tif") and row.hr_path == str(raw / "good_S2.tif")
    assert abs(row.shift_px) < 0.1 and row.correlation > 0.99 and row.sharpness > 0.002
    assert row.lr_cloud_fraction == 0 and row.hr_nodata_fraction == 0 and row.hr_saturated_fraction == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 1 and summary["accepted"] == 1 and summary["rejected"] == 0
    assert set(summary["reasons"]) == set(REASONS) and not any(summary["reasons"].values())
    assert (out / "report.csv").is_file() and (out / "contact_sheet.html").is_file()
    assert sorted(p.name for p in (out / "quicklooks").iterdir()) == ["good_hr.png", "good_lr.png"]
    assert not list(out.glob(".*.part"))  # atomic writes leave no temporaries


# ------------------------------------------------------------------------------ the defect zoo
#: pair name -> (reason code, the file its detail must name)
EXPECTED = {
    "cloud": ("cloud", "cloud_S2.tif"),
    "haze": ("haze", "haze_S2.tif"),
    "nodata": ("nodata", "nodata_L8.tif"),
    "saturated": ("saturated", "saturated_S2.tif"),
    "shift": ("misregistered", "shift_L8.tif"),
    "change": ("low_correlation", "change_L8.tif"),
    "flat": ("flat", "flat_S2.tif"),
    "trunc": ("unreadable_hr", "trunc_S2.tif"),
    "garbage": ("unreadable_lr", "garbage_L8.tif"),
    "bands4": ("band_count", "bands4_L8.tif"),
    "float64": ("dtype", "float64_S2.tif"),
    "allnodata": ("all_nodata", "allnodata_L8.tif"),
    "nanvals": ("nan", "nanvals_S2.tif"),
    "crs": ("crs_mismatch", "crs_S2.tif"),
    "size29": ("size_not_3x", "size29_S2.tif"),
    "missing": ("missing_hr", "missing_S2.tif"),
    "origin": ("origin_mismatch", "origin_S2.tif"),
}
GOOD = ["good_a", "good_b", "good_c"]


def _build_zoo(make_pair, raw: Path) -> None:
    rng = np.random.default_rng(11)
    paths = {}
    for i, name in enumerate([*GOOD, *EXPECTED]):
        paths[name] = make_pair(name, lr_size=LR, seed=i, folder=raw)
    yy, xx = np.mgrid[: 3 * LR, : 3 * LR]

    lr, hr, refl = paths["cloud"]
    blobs = ((yy - 30) ** 2 + (xx - 40) ** 2 < 64) | ((yy - 70) ** 2 + (xx - 20) ** 2 < 36)
    _rewrite(hr, np.where(blobs, np.float32(0.6), refl), S2_SR)

    lr, hr, refl = paths["haze"]
    _rewrite(hr, refl + np.float32(0.12), S2_SR)  # a veil lifts the dark blue percentile

    _rewrite_dn(paths["nodata"][0], lambda d: d.__setitem__((slice(None), slice(10, 13)), 0))
    _rewrite_dn(
        paths["saturated"][1], lambda d: d.__setitem__((slice(None), slice(40, 52), slice(40, 52)), 65535)
    )

    lr, hr, refl = paths["shift"]
    _rewrite(lr, _shifted_lr(refl, 0.0, 1.5), L8_C2_L2)

    lr, hr, refl = paths["change"]  # another place's LR: change on the ground / wrong scene
    _rewrite(lr, area_downsample(make_pair("other", lr_size=LR, seed=99, folder=raw.parent)[2], 3), L8_C2_L2)

    lr, hr, refl = paths["flat"]
    flat = np.float32(0.08) + rng.normal(0, 1e-4, refl.shape).astype(np.float32)
    _rewrite(hr, flat, S2_SR)
    _rewrite(lr, area_downsample(flat, 3), L8_C2_L2)

    hr = paths["trunc"][1]
    hr.write_bytes(hr.read_bytes()[: hr.stat().st_size // 2])  # cut a real TIF in half
    paths["garbage"][0].write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())

    lr, hr, refl = paths["bands4"]
    lr_refl = area_downsample(refl, 3)
    _rewrite(lr, np.concatenate([lr_refl, lr_refl[:1]]), L8_C2_L2)

    lr, hr, refl = paths["float64"]
    _rewrite(hr, refl.astype(np.float64), Encoding("reflectance", "float64", 1.0, 0.0, None))

    _rewrite_dn(paths["allnodata"][0], lambda d: d.fill(0))

    lr, hr, refl = paths["nanvals"]
    _rewrite(hr, refl, REFLECTANCE)  # float reflectance without a declared nodata, then NaN in it
    _rewrite_dn(hr, lambda d: d.__setitem__((slice(None), slice(5, 9), slice(5, 9)), np.nan))

    lr, hr, refl = paths["crs"]
    g = _grid(hr)
    _rewrite(hr, refl, S2_SR, Grid("EPSG:32721", g.x0, g.y0, g.pixel, g.width, g.height))

    lr, hr, refl = paths["size29"]
    _rewrite(hr, refl[:, :93, :93], S2_SR)  # 2.9x, the seed's 1-3 px mismatch

    paths["missing"][1].unlink()

    lr, hr, refl = paths["origin"]
    g = _grid(hr)
    _rewrite(hr, refl, S2_SR, Grid(g.crs, g.x0 + 60.0, g.y0, g.pixel, g.width, g.height))

    _manifest(raw, [*GOOD, *EXPECTED])


def _sentence(detail: str, code: str) -> str:
    """The part of a detail string that explains ``code``."""
    after = detail.split(f"{code}: ", 1)[-1]
    nxt = re.search(r" ({}): ".format("|".join(REASONS)), after)
    return after[: nxt.start()] if nxt else after


def test_every_defect_gets_its_reason_and_good_pairs_survive(make_pair, tmp_path, caplog):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    _build_zoo(make_pair, raw)
    with caplog.at_level(logging.INFO, logger="satsr.data.filters"):
        report = run_filter(_params(tmp_path, workers=2), raw, out)  # the process pool path
    rows = report.set_index("pair_id")

    problems = []
    for name, (code, fname) in EXPECTED.items():
        r = rows.loc[name]
        codes = r.reasons.split(";")
        if r.status != "rejected" or code not in codes:
            problems.append(f"{name}: expected {code}, got status={r.status} reasons={r.reasons!r}")
        elif fname not in _sentence(r.detail, code):
            problems.append(f"{name}: detail does not name {fname} for {code}: {r.detail!r}")
    assert not problems, "\n".join(problems)
    for name in GOOD:
        assert rows.loc[name, "status"] == "accepted", rows.loc[name, "detail"]
    # measured values behind the reasons
    assert rows.loc["cloud", "hr_cloud_fraction"] > 0.01
    assert rows.loc["haze", "hr_haze_reflectance"] > 0.12
    assert rows.loc["shift", "shift_px"] == pytest.approx(1.5, abs=0.15)
    assert rows.loc["shift", "shift_dx"] == pytest.approx(-1.5, abs=0.15)  # registers LR onto HR
    assert rows.loc["change", "correlation"] < 0.7
    assert rows.loc["nodata", "lr_nodata_fraction"] == pytest.approx(3 / LR)
    assert "threshold" in rows.loc["cloud", "detail"] or "max" in rows.loc["cloud", "detail"]
    # expensive checks were skipped for unusable pairs
    assert np.isnan(rows.loc["size29", "shift_px"]) and np.isnan(rows.loc["trunc", "correlation"])

    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == len(GOOD) + len(EXPECTED)
    assert summary["accepted"] == len(GOOD) and summary["rejected"] == len(EXPECTED)
    for code, _ in EXPECTED.values():
        assert summary["reasons"][code] >= 1
    assert any("filter:" in m and "rejected" in m for m in caplog.messages)

    # the contact sheet lists every rejected pair, before the accepted ones, with existing images
    page = (out / "contact_sheet.html").read_text()
    assert "review file" in page and str(tmp_path / "review.txt") in page
    positions = {n: page.find(f'data-id="{n}"') for n in [*GOOD, *EXPECTED]}
    assert all(p >= 0 for p in positions.values())
    assert max(positions[n] for n in EXPECTED) < min(positions[n] for n in GOOD)
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs and all((out / s).is_file() for s in srcs)
    assert "quicklooks/good_a_hr.png" in srcs and "quicklooks/missing_lr.png" in srcs
    assert "quicklooks/missing_hr.png" not in srcs  # no file, no picture, a placeholder instead


# ---------------------------------------------------------------------------- shift correction
def test_shift_correction_writes_corrected_lr_with_no_residual_shift(make_pair, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    lr, hr, refl = make_pair("moved", lr_size=LR, folder=raw)
    _rewrite(lr, _shifted_lr(refl, 0.5, -0.6), L8_C2_L2, names=LANDSAT_RGB)
    _manifest(raw, ["moved"])

    plain = run_filter(_params(tmp_path), raw, out).iloc[0]
    assert plain.status == "rejected" and plain.reasons == "misregistered"
    assert "correct_shift is off" in plain.detail

    row = run_filter(_params(tmp_path, correct_shift=True), raw, out).iloc[0]
    assert row.status == "accepted" and row.note == "shift_corrected", row.detail
    assert (row.shift_dy, row.shift_dx) == (pytest.approx(-0.5, abs=0.1), pytest.approx(0.6, abs=0.1))
    corrected = Path(row.lr_path)
    assert corrected == out / "corrected" / "moved_L8.tif" and corrected.is_file()
    assert row.hr_path == str(hr)
    fixed, original = read_raster(corrected), read_raster(lr)
    assert fixed.crs == original.crs and fixed.transform == original.transform
    assert fixed.data.dtype == original.data.dtype and fixed.band_names == LANDSAT_RGB
    assert "SATSR_SHIFT_CORRECTED" in fixed.tags
    ref = area_downsample(refl, 3)
    dy, dx, _ = phase_shift(ref, L8_C2_L2.to_reflectance(fixed.data), upsample_factor=50)
    assert abs(dy) < 0.1 and abs(dx) < 0.1


def test_shift_beyond_correctable_is_rejected(make_pair, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    lr, _hr, refl = make_pair("far", lr_size=LR, folder=raw)
    _rewrite(lr, _shifted_lr(refl, 1.5, 0.0), L8_C2_L2)
    _manifest(raw, ["far"])
    row = run_filter(_params(tmp_path, correct_shift=True, max_correctable_shift_lr_px=1.0), raw, out).iloc[0]
    assert row.status == "rejected" and row.reasons == "misregistered"
    assert "only shifts up to 1 px are corrected" in row.detail and "far_L8.tif" in row.detail
    assert not (out / "corrected" / "far_L8.tif").exists()


# ---------------------------------------------------------------------------------- review file
def test_review_file_rejects_listed_ids_and_warns_on_unknown(make_pair, tmp_path, caplog):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        make_pair(name, lr_size=LR, seed=i, folder=raw)
    _manifest(raw, ["a", "b", "c"])
    review = tmp_path / "review.txt"
    review.write_text("# pairs rejected by eye\n\nb   # shadow of a cloud outside the chip\nnot_a_pair\nb\n")
    assert [e.pair_id for e in read_review_file(review)] == ["b", "not_a_pair"]

    with caplog.at_level(logging.WARNING, logger="satsr.data.filters"):
        report = run_filter(_params(tmp_path, review_file=str(review)), raw, out).set_index("pair_id")
    assert report.loc["b", "status"] == "rejected" and report.loc["b", "reasons"] == "manual_review"
    assert str(review) in report.loc["b", "detail"]
    assert (report.loc[["a", "c"], "status"] == "accepted").all()
    warnings = [m for m in caplog.messages if "not_a_pair" in m]
    assert warnings and str(review) in warnings[0]
    assert json.loads((out / "summary.json").read_text())["reasons"]["manual_review"] == 1
    assert read_review_file(tmp_path / "absent.txt") == []


# -------------------------------------------------------------------------------------- robustness
def test_contact_sheet_is_capped_and_stale_outputs_are_removed(make_pair, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    names = ["a", "b", "c", "d"]
    for i, name in enumerate(names):
        make_pair(name, lr_size=LR, seed=i, folder=raw)
    (raw / "c_S2.tif").unlink()
    _manifest(raw, names)
    (out / "quicklooks").mkdir(parents=True)
    (out / "quicklooks" / "stale.png").write_bytes(b"old")
    run_filter(_params(tmp_path, contact_sheet_max_pairs=2), raw, out)
    page = (out / "contact_sheet.html").read_text()
    assert page.count('class="card ') == 2 and 'data-id="c"' in page  # rejected first
    assert "2 more pair(s) not shown" in page
    shown = {p.name.split("_")[0] for p in (out / "quicklooks").iterdir()}
    assert len(shown) == 2 and "c" in shown and not (out / "quicklooks" / "stale.png").exists()


def test_an_unexpected_error_in_one_pair_does_not_stop_the_stage(make_pair, tmp_path, monkeypatch):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    make_pair("ok", lr_size=LR, folder=raw)
    make_pair("boom", lr_size=LR, seed=1, folder=raw)
    _manifest(raw, ["boom", "ok"])
    real = checks._pairwise

    def explode(lr, hr, *args):
        if lr.file.startswith("boom"):
            raise FloatingPointError("synthetic failure")
        return real(lr, hr, *args)

    monkeypatch.setattr(checks, "_pairwise", explode)
    report = run_filter(_params(tmp_path), raw, out).set_index("pair_id")
    assert report.loc["boom", "reasons"] == "internal_error"
    assert "FloatingPointError" in report.loc["boom", "detail"]
    assert report.loc["ok", "status"] == "accepted"


def test_a_crashing_worker_process_costs_only_its_own_pair(make_pair, tmp_path, monkeypatch):
    """A hard crash (as GDAL can on a corrupt file) breaks the pool; the other pairs are retried."""
    if multiprocessing.get_start_method() != "fork":
        pytest.skip("the monkeypatched crash reaches the workers only when they are forked")
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    names = ["a", "boom", "c"]
    for i, name in enumerate(names):
        make_pair(name, lr_size=LR, seed=i, folder=raw)
    _manifest(raw, names)
    real = checks._pairwise

    def crash(lr, hr, *args):
        if lr.file.startswith("boom"):
            os._exit(3)  # no exception, no cleanup: the process just dies
        return real(lr, hr, *args)

    monkeypatch.setattr(checks, "_pairwise", crash)  # inherited by the forked workers
    report = run_filter(_params(tmp_path, workers=2), raw, out).set_index("pair_id")
    assert report.loc["boom", "reasons"] == "internal_error"
    assert "worker process died" in report.loc["boom", "detail"]
    assert (report.loc[["a", "c"], "status"] == "accepted").all()


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        run_filter(_params(tmp_path), tmp_path, tmp_path / "out")


@pytest.mark.parametrize("q", [0.0, 5.0, 37.3, 99.0, 100.0])
def test_percentile_matches_numpy(q):
    x = np.random.default_rng(0).random(1001).astype(np.float32)
    assert percentile(x, q) == pytest.approx(float(np.percentile(x, q)), rel=1e-6)


# ---------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_landsat_sentinel2_pairs_pass_and_are_shift_corrected(realdata, tmp_path):
    """The co-located L8/S2 samples (EPSG:4326, exactly 3x) go through every check; their measured
    sub-pixel offsets are corrected. The files are 8-bit stretched, so they are written here as
    float reflectance with an assumed 0..0.3 stretch (only the stretch is invented)."""
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    rows = []
    for i in (1, 2):
        for sensor in ("Landsat-8", "Sentinel-2"):
            with rasterio.open(realdata / "pairs_l8s2ps" / f"scene_{i}_{sensor}.tif") as src:
                data, t, crs = src.read(), src.transform, src.crs.to_string()
            grid = Grid(crs, t.c, t.f, t.a, data.shape[2], data.shape[1])
            write_geotiff(
                raw / f"scene_{i}_{sensor}.tif",
                (data / 255.0 * 0.3).astype(np.float32),
                grid,
                REFLECTANCE,
                ("red", "green", "blue"),
            )
        rows.append(
            {
                "pair_id": f"scene_{i}",
                "lr_file": f"scene_{i}_Landsat-8.tif",
                "hr_file": f"scene_{i}_Sentinel-2.tif",
            }
        )
    write_manifest(raw, rows)
    report = run_filter(_params(tmp_path, correct_shift=True), raw, out)
    assert (report["status"] == "accepted").all(), report["detail"].tolist()
    assert (report["correlation"] > 0.85).all() and (report["shift_px"] < 1.0).all()
    for row in report.itertuples():
        if row.note == "shift_corrected":
            hr = read_raster(row.hr_path).data.astype(np.float64)
            fixed = read_raster(row.lr_path).data.astype(np.float64)
            dy, dx, _ = phase_shift(area_downsample(hr, 3), fixed, upsample_factor=50)
            assert math.hypot(dy, dx) < 0.1
