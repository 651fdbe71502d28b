"""The Earth Engine provider, against a fake backend (the only seam faked): requests, matching,
cloud screening, tiling, retries and the concurrency cap, per-pair failures, credentials, and
resume after a kill."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from satsr.config import LR_PIXEL_M, GeeParams
from satsr.data import grids
from satsr.data.geotiff import read_raster
from satsr.data.manifest import COLUMNS, MANIFEST_NAME, is_complete, read_manifest
from satsr.data.radiometry import LANDSAT_RGB, S2_RGB
from satsr.data.sources import gee, run_source
from satsr.util import sha256_file

FAKE_PATH = Path(__file__).with_name("gee_fake.py")
_spec = importlib.util.spec_from_file_location("gee_fake", FAKE_PATH)
fake = importlib.util.module_from_spec(_spec)
sys.modules["gee_fake"] = fake
_spec.loader.exec_module(fake)

L8, L9 = "LANDSAT/LC08/C02/T1_L2", "LANDSAT/LC09/C02/T1_L2"
S2, CS = "COPERNICUS/S2_SR_HARMONIZED", "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7SECRETKEYMATERIAL"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The complete dataset of ``small_params()`` from a healthy fake, built once."""
    return gee.run(fake.small_params(), tmp_path_factory.mktemp("reference"), fake.FakeBackend())


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff sleeps are recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(gee, "_sleep", recorded.append)
    return recorded


def _scenes(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"location": loc, "scene_id": sid, "time": pd.Timestamp(f"{day} 10:30", tz="UTC"), "cloud": c}
         for loc, sid, day, c in rows]
    )


# ------------------------------------------------------------------------------------ matching
def test_match_scenes_window_and_best_per_month() -> None:
    l8 = _scenes([
        ("A", "L_0103", "2020-01-03", 5.0),
        ("A", "L_0119", "2020-01-19", 1.0),
        ("A", "L_0204", "2020-02-04", 0.0),   # nearest S2 is 8 days away: no pair
        ("A", "L_0301", "2020-03-01", 2.0),
    ])
    s2 = _scenes([
        ("A", "S_0101", "2020-01-01", 0.0),
        ("A", "S_0108", "2020-01-08", 0.0),
        ("A", "S_0120", "2020-01-20", 9.0),
        ("A", "S_0212", "2020-02-12", 0.0),
        ("A", "S_0227", "2020-02-27", 3.0),   # 3 days before L_0301, cloud 2 + 3 = 5
        ("A", "S_0305", "2020-03-05", 3.0),   # 4 days after L_0301, same combined cloud: the gap decides
    ])
    every = gee.match_scenes(l8, s2, max_days_apart=7, one_pair_per_month=False)
    assert list(zip(every.lr_scene_id, every.hr_scene_id)) == [
        ("L_0103", "S_0101"), ("L_0103", "S_0108"), ("L_0119", "S_0120"), ("L_0301", "S_0227"), ("L_0301", "S_0305"),
    ]
    assert every.days_apart.tolist() == [2, 5, 1, 3, 4]
    assert (every.days_apart <= 7).all()
    assert every.columns.tolist() == gee.PAIR_COLUMNS

    best = gee.match_scenes(l8, s2, max_days_apart=7, one_pair_per_month=True)
    # January: 5+0 (2 d), 5+0 (5 d), 1+9 -> lowest combined cloud wins, then the smaller gap
    assert list(zip(best.month, best.lr_scene_id, best.hr_scene_id)) == [
        ("2020-01", "L_0103", "S_0101"), ("2020-03", "L_0301", "S_0227"),
    ]
    assert best.combined_cloud.tolist() == [5.0, 5.0]
    assert best.lr_date.tolist() == ["2020-01-03", "2020-03-01"]

    tight = gee.match_scenes(l8, s2, max_days_apart=1, one_pair_per_month=False)
    assert list(zip(tight.lr_scene_id, tight.hr_scene_id)) == [("L_0119", "S_0120")]


def test_match_scenes_keeps_locations_apart_and_carries_clear_fractions() -> None:
    l8 = _scenes([("A", "L1", "2021-06-10", 1.0), ("B", "L2", "2021-06-10", 1.0)]).assign(clear_fraction=[1.0, 0.99])
    s2 = _scenes([("B", "S1", "2021-06-11", 2.0)]).assign(clear_fraction=[0.985])
    pairs = gee.match_scenes(l8, s2, 7, True)
    assert pairs[["location", "lr_scene_id", "hr_scene_id"]].values.tolist() == [["B", "L2", "S1"]]
    assert pairs.lr_clear_fraction.tolist() == [0.99] and pairs.hr_clear_fraction.tolist() == [0.985]
    empty = gee.match_scenes(l8, s2.iloc[:0], 7, True)
    assert empty.empty and empty.columns.tolist() == gee.PAIR_COLUMNS


# ------------------------------------------------------------------------------------ grids
def test_locations_are_nested_utm_grids() -> None:
    params = fake.small_params()
    locs = gee.plan_locations(params)
    assert [loc.key for loc in locs] == ["south/000", "south/001", "south/002", "north/000", "north/001"]
    assert {loc.lr_grid.crs for loc in locs if loc.region == "south"} == {"EPSG:32722"}  # 52.5 W, south
    assert {loc.lr_grid.crs for loc in locs if loc.region == "north"} == {"EPSG:32616"}  # 87.2 W, north
    for loc in locs:
        lr, hr = loc.lr_grid, loc.hr_grid
        assert (lr.crs, lr.x0, lr.y0) == (hr.crs, hr.x0, hr.y0)
        assert (lr.pixel, hr.pixel) == (30.0, 10.0)
        assert (lr.width, lr.height, hr.width, hr.height) == (16, 16, 48, 48)
        assert lr.x0 % LR_PIXEL_M == 0 and lr.y0 % LR_PIXEL_M == 0
        assert lr.bounds == hr.bounds
    assert locs[0].lon == pytest.approx(-52.5, abs=0.001) and locs[0].lat == pytest.approx(-3.2, abs=0.001)
    # moving square: centres 1.95 x buffer (240 m) = 468 m apart, snapped to the 30 m lattice
    assert 450 <= locs[1].lr_grid.x0 - locs[0].lr_grid.x0 <= 490


def test_ee_grid_is_a_compute_pixels_pixel_grid() -> None:
    grid = grids.Grid("EPSG:32722", 333060.0, 9646440.0, 10.0, 48, 24)
    assert gee.ee_grid(grid) == {
        "dimensions": {"width": 48, "height": 24},
        "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": 333060.0,
                            "shearY": 0.0, "scaleY": -10.0, "translateY": 9646440.0},
        "crsCode": "EPSG:32722",
    }


# ------------------------------------------------------------------------------------ requests and outputs
def test_requests_screening_and_outputs(tmp_path: Path) -> None:
    params = fake.small_params(include_landsat9=True)
    backend = fake.FakeBackend()
    manifest = gee.run(params, tmp_path, backend)
    g = params.source.gee
    locs = {loc.key: loc for loc in gee.plan_locations(params)}
    assert backend.initialized

    # searches: every collection (Landsat 9 included), the configured dates and scene cloud filters
    searches = backend.of("search_scenes")
    assert len(searches) == 3 * len(locs)
    assert {s[0] for s in searches} == {L8, L9, S2}
    for coll, grid, start, end, prop, max_cloud in searches:
        assert (start, end) == (dt.date(2020, 1, 1), dt.date(2020, 3, 31))
        if coll == S2:
            assert (prop, max_cloud, grid.pixel) == ("CLOUDY_PIXEL_PERCENTAGE", g.max_scene_cloud_s2, 10.0)
        else:
            assert (prop, max_cloud, grid.pixel) == ("CLOUD_COVER", g.max_scene_cloud_l8, 30.0)

    # pixel-level screening on the chip's own grids; Cloud Score+ with its threshold
    assert backend.of("landsat_clear_fraction") and backend.of("s2_clear_fraction")
    assert all(grid.pixel == 30.0 and grid.width == 16 for _, grid in backend.of("landsat_clear_fraction"))
    for _, grid, coll, thr in backend.of("s2_clear_fraction"):
        assert (grid.pixel, grid.width, coll, thr) == (10.0, 48, CS, 0.6)

    # downloads: RGB bands of each product on exactly nested grids with one origin
    pixels = backend.of("compute_pixels")
    assert len(pixels) == 2 * len(manifest)
    for row in manifest.itertuples():
        # (neighbouring chips share scenes: pick this chip's requests by their upper-left corner)
        lr = [g for sid, bands, g in pixels
              if (sid, bands, g.x0, g.y0) == (row.lr_scene_id, LANDSAT_RGB, row.x0, row.y0)]
        hr = [g for sid, bands, g in pixels if (sid, bands, g.x0, g.y0) == (row.hr_scene_id, S2_RGB, row.x0, row.y0)]
        assert len(lr) == 1 and len(hr) >= 1
        lr, hr = lr[0], hr[0]
        assert lr.crs == hr.crs == row.crs == f"EPSG:{grids.utm_epsg(row.lon, row.lat)}"
        assert (hr.width, hr.height) == (3 * lr.width, 3 * lr.height)
        assert lr.affine[0] == 30.0 and hr.affine[0] == 10.0 and lr.affine[4] == -30.0

    # the manifest: every column, real data, within the day window, one pair per location and month
    assert manifest.columns.tolist() == COLUMNS
    assert (manifest.provider == "gee").all() and (~manifest.is_demo.astype(bool)).all()
    assert manifest.pair_id.is_unique and (manifest.days_apart <= 7).all()
    assert (manifest.lr_clear_fraction >= 0.98).all() and (manifest.hr_clear_fraction >= 0.98).all()
    assert (manifest.lr_cloud <= 20).all() and (manifest.hr_cloud <= 20).all()
    months = manifest.assign(month=manifest.lr_date.str[:7]).groupby(["region", "x0", "y0", "month"]).size()
    assert (months == 1).all()
    assert manifest.lr_scene_id.str.startswith(L9).any() and manifest.lr_scene_id.str.startswith(L8).any()
    assert manifest.hr_scene_id.str.startswith(S2).all()
    # screening really removed scenes the fake reports as half cloudy
    rejected = {sid for sid, *_ in backend.of("landsat_clear_fraction") if backend._clear(sid) < 0.98}
    assert rejected and not rejected & set(manifest.lr_scene_id)
    assert manifest.iloc[0].region == "south"  # numbered in params order
    assert not (tmp_path / gee.FAILURES_NAME).exists()

    row = manifest.iloc[0]
    assert all(is_complete(tmp_path, r) for r in manifest.to_dict("records"))
    lr, hr = read_raster(tmp_path / row.lr_file), read_raster(tmp_path / row.hr_file)
    assert str(lr.crs) == str(hr.crs) == row.crs
    assert (lr.transform.c, lr.transform.f, lr.transform.a) == (row.x0, row.y0, 30.0)
    assert (hr.transform.c, hr.transform.f, hr.transform.a) == (row.x0, row.y0, 10.0)
    assert lr.nodata == 0 and hr.nodata == 0
    assert lr.band_names == LANDSAT_RGB and hr.band_names == S2_RGB
    assert lr.tags["SCENE_ID"] == row.lr_scene_id and lr.tags["DATE_ACQUIRED"] == row.lr_date
    assert lr.tags["SENSOR"] in ("L8", "L9") and hr.tags["SENSOR"] == "S2"
    assert float(lr.tags["CLOUD_COVER"]) == pytest.approx(row.lr_cloud)
    assert float(hr.tags["CLOUDY_PIXEL_PERCENTAGE"]) == pytest.approx(row.hr_cloud)
    assert float(hr.tags["CLEAR_FRACTION"]) == pytest.approx(row.hr_clear_fraction)
    grid = locs["south/000"].hr_grid
    np.testing.assert_array_equal(hr.data, fake.expected_pixels(row.hr_scene_id, S2_RGB, grid))
    assert row.lr_file.split("_")[2] in ("L8", "L9") and row.hr_file.split("_")[2] == "S2"


def test_landsat9_only_when_asked(tmp_path: Path) -> None:
    backend = fake.FakeBackend()
    gee.run(fake.small_params(one_pair_per_month=False), tmp_path, backend)
    assert {s[0] for s in backend.of("search_scenes")} == {L8, S2}


def test_large_chips_are_tiled_and_mosaicked(tmp_path: Path) -> None:
    # 48 x 48 HR px x 3 bands x 2 bytes = 13.8 kB; a 4 kB limit forces tiles (of at most 26 x 26 px)
    params = fake.small_params(max_request_bytes=4096, max_request_side_px=20)
    params = params.model_copy(update={"source": params.source.model_copy(update={"gee": params.source.gee.model_copy(
        update={"regions": params.source.gee.regions[:1]})})})
    backend = fake.FakeBackend()
    manifest = gee.run(params, tmp_path, backend)
    row = manifest.iloc[0]
    tiles = [grid for sid, _, grid in backend.of("compute_pixels") if sid == row.hr_scene_id]
    assert len(tiles) >= 9  # 48 px at <= 20 px per side
    assert all(t.width * t.height * 3 * 2 <= 4096 and max(t.width, t.height) <= 20 for t in tiles)
    assert sum(t.width * t.height for t in {(t.x0, t.y0, t.width, t.height): t for t in tiles}.values()) >= 48 * 48
    hr_grid = next(loc.hr_grid for loc in gee.plan_locations(params) if loc.lr_grid.x0 == row.x0)
    np.testing.assert_array_equal(read_raster(tmp_path / row.hr_file).data,
                                  fake.expected_pixels(row.hr_scene_id, S2_RGB, hr_grid))


# ------------------------------------------------------------------------------------ network faults
def test_is_retryable() -> None:
    assert gee.is_retryable(fake.FakeHttpError(429, "Too Many Requests"))
    assert gee.is_retryable(fake.FakeHttpError(503, "Service Unavailable"))
    assert not gee.is_retryable(fake.FakeHttpError(400, "Bad request"))
    assert not gee.is_retryable(fake.FakeHttpError(403, "Permission denied"))
    assert gee.is_retryable(fake.FakeEEException("Too many concurrent aggregations."))
    assert gee.is_retryable(fake.FakeEEException("Quota exceeded for quota metric 'Compute requests'"))
    assert gee.is_retryable(fake.FakeEEException("An internal error has occurred (request: 123)."))
    assert gee.is_retryable(ConnectionResetError("reset by peer"))
    assert not gee.is_retryable(fake.FakeEEException("Image.load: Image asset 'X' not found."))
    assert not gee.is_retryable(fake.FakeEEException("User memory limit exceeded."))


def test_429_burst_backs_off_exponentially_and_succeeds(tmp_path: Path, sleeps: list[float],
                                                         reference: pd.DataFrame) -> None:
    params = fake.small_params(max_concurrent_requests=1, backoff_initial_s=0.5, backoff_max_s=4.0, max_retries=6)
    backend = fake.FakeBackend(fail_first=5)
    manifest = gee.run(params, tmp_path, backend)
    assert manifest.pair_id.tolist() == reference.pair_id.tolist()
    assert manifest.hr_sha256.tolist() == reference.hr_sha256.tolist()
    # one request failed five times in a row: 0.5, 1, 2, 4, 4 s (capped), each with jitter in [d/2, d]
    assert len(sleeps) == 5
    for attempt, wait in enumerate(sleeps):
        base = min(4.0, 0.5 * 2**attempt)
        assert base / 2 <= wait <= base
    assert len(backend.of("compute_pixels")) == 2 * len(manifest) + 5


def test_concurrency_never_exceeds_the_cap_under_429s(tmp_path: Path, sleeps: list[float]) -> None:
    backend = fake.FakeBackend(delay_s=0.01, fail_first=8)
    manifest = gee.run(fake.small_params(max_concurrent_requests=3), tmp_path, backend)
    assert 2 <= backend.max_in_flight <= 3
    assert len(sleeps) == 8 and len(manifest) >= 10
    assert all(is_complete(tmp_path, r) for r in manifest.to_dict("records"))


def test_failed_pairs_are_skipped_recorded_and_retried_on_rerun(tmp_path: Path, sleeps: list[float],
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 reference: pd.DataFrame) -> None:
    params = fake.small_params(max_retries=2)
    complete = reference
    bad_lr, bad_hr = complete.lr_scene_id.iloc[2], complete.hr_scene_id.iloc[7]
    broken = {bad_lr: fake.FakeEEException("Image.load: Image asset not found."),  # never retried
              bad_hr: fake.FakeHttpError(503, "Service Unavailable")}             # retries run out
    backend = fake.FakeBackend(broken=broken)
    with caplog.at_level(logging.WARNING, logger="satsr"):
        partial = gee.run(params, tmp_path / "raw", backend)
    lost = complete[(complete.lr_scene_id == bad_lr) | (complete.hr_scene_id == bad_hr)]
    assert len(partial) == len(complete) - len(lost) > 0
    assert set(partial.pair_id) == set(complete.pair_id) - set(lost.pair_id)
    assert all(is_complete(tmp_path / "raw", r) for r in partial.to_dict("records"))
    assert len(sleeps) == 2 * sum(complete.hr_scene_id == bad_hr)  # the 503 pair was retried max_retries times
    failures = pd.read_csv(tmp_path / "raw" / gee.FAILURES_NAME)
    assert set(failures.key) == set(lost.pair_id) and set(failures.stage) == {"download"}
    assert "skipped" in caplog.text and "Image asset not found" in caplog.text
    assert len(partial.attrs["failures"]) == len(lost)

    healed = fake.FakeBackend()
    final = gee.run(params, tmp_path / "raw", healed)
    fetched = {sid for sid, *_ in healed.of("compute_pixels")}
    assert fetched == set(lost.lr_scene_id) | set(lost.hr_scene_id)
    assert final.pair_id.tolist() == complete.pair_id.tolist()
    assert final.lr_sha256.tolist() == complete.lr_sha256.tolist()
    assert final.hr_sha256.tolist() == complete.hr_sha256.tolist()
    assert not (tmp_path / "raw" / gee.FAILURES_NAME).exists()


def test_a_location_whose_search_fails_keeps_its_earlier_pairs(tmp_path: Path, sleeps: list[float]) -> None:
    params = fake.small_params(max_retries=1)
    first = gee.run(params, tmp_path, fake.FakeBackend())

    class SearchDown(fake.FakeBackend):
        def search_scenes(self, collection, grid, *args):
            if grid.x0 == first.x0.iloc[0]:
                raise fake.FakeHttpError(500, "Internal error")
            return super().search_scenes(collection, grid, *args)

    backend = SearchDown()
    again = gee.run(params, tmp_path, backend)
    assert again.pair_id.tolist() == first.pair_id.tolist()  # nothing dropped, nothing fetched
    assert not backend.of("compute_pixels")
    assert (tmp_path / gee.FAILURES_NAME).exists()


# ------------------------------------------------------------------------------------ credentials
def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in (*gee.ENV_KEY_FILES, gee.ENV_PROJECT, "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))


def _key_file(folder: Path) -> Path:
    key = folder / "sa-key.json"
    key.write_text(json.dumps({
        "type": "service_account", "project_id": "proj", "private_key_id": "abc123",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n",
        "client_email": "satsr@proj.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return key


def test_missing_credentials_fail_at_once_with_help(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    params = fake.small_params()
    out = tmp_path / "raw"
    with pytest.raises(gee.GeeAuthError) as err:
        gee.run(params, out)
    msg = str(err.value)
    for hint in ("earthengine authenticate", "EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
                 "EE_PROJECT", "service account", "source.provider=demo"):
        assert hint in msg
    assert not out.exists()  # nothing was started
    with pytest.raises(gee.GeeAuthError):  # the same through the provider dispatcher
        run_source(params, out)
    assert not any(out.iterdir())

    # a key but no project
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY_FILE", str(_key_file(tmp_path)))
    with pytest.raises(gee.GeeAuthError, match="EE_PROJECT"):
        gee.resolve_auth(params.source.gee)
    # a key file that does not exist
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY_FILE", str(tmp_path / "missing.json"))
    monkeypatch.setenv("EE_PROJECT", "proj")
    with pytest.raises(gee.GeeAuthError, match="does not exist"):
        gee.resolve_auth(params.source.gee)


def test_resolve_auth_sources_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    key = _key_file(tmp_path)
    g = GeeParams(project="from-params", credentials_file=str(tmp_path / "params-key.json"))
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY_FILE", str(key))
    monkeypatch.setenv("EE_PROJECT", "from-env")
    auth = gee.resolve_auth(g)  # environment wins over params
    assert (auth.key_file, auth.email, auth.project) == (key, "satsr@proj.iam.gserviceaccount.com", "from-env")
    assert SECRET not in repr(auth) and SECRET not in auth.describe()

    monkeypatch.delenv("EE_SERVICE_ACCOUNT_KEY_FILE")
    monkeypatch.delenv("EE_PROJECT")
    (tmp_path / "params-key.json").write_text(key.read_text())
    auth = gee.resolve_auth(g)
    assert (auth.key_file, auth.project) == (tmp_path / "params-key.json", "from-params")

    # user credentials from `earthengine authenticate`
    creds = tmp_path / "home" / ".config" / "earthengine" / "credentials"
    creds.parent.mkdir(parents=True)
    creds.write_text("{}")
    auth = gee.resolve_auth(GeeParams(project="p"))
    assert auth.key_file is None and "user credentials" in auth.describe()

    # pasting the key itself into params is refused without echoing it
    pasted = GeeParams(project="p", credentials_file=key.read_text())
    with pytest.raises(gee.GeeAuthError, match="path") as err:
        gee.resolve_auth(pasted)
    assert SECRET not in str(err.value)
    # a JSON file that is not a service-account key
    (tmp_path / "other.json").write_text(json.dumps({"type": "something", "private_key": SECRET}))
    with pytest.raises(gee.GeeAuthError, match="not a service-account key") as err:
        gee.resolve_auth(GeeParams(project="p", credentials_file=str(tmp_path / "other.json")))
    assert SECRET not in str(err.value)


def test_the_key_never_reaches_logs_errors_or_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    _clean_env(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY_FILE", str(_key_file(tmp_path)))
    monkeypatch.setenv("EE_PROJECT", "proj")
    params = fake.small_params()
    caplog.set_level(logging.DEBUG)
    # the real backend with a (deliberately invalid) key: initialisation fails before any request
    with pytest.raises(gee.GeeAuthError) as err:
        gee.run(params, tmp_path / "raw")
    assert "satsr@proj.iam.gserviceaccount.com" in str(err.value)
    # a whole run with the credentials in place (fake requests)
    backend = fake.FakeBackend()
    backend.auth = gee.resolve_auth(params.source.gee)
    gee.run(params, tmp_path / "raw", backend)
    assert "sa-key.json" in caplog.text or "satsr@proj" in caplog.text
    for text in (str(err.value), caplog.text):
        assert SECRET not in text and "BEGIN PRIVATE KEY" not in text
    for path in (tmp_path / "raw").iterdir():
        assert SECRET.encode() not in path.read_bytes()
    assert gee.redact(f'{{"private_key": "-----BEGIN PRIVATE KEY-----\\n{SECRET}\\n-----END PRIVATE KEY-----"}}') \
        .count(SECRET) == 0


# ------------------------------------------------------------------------------------ resume
def test_rerun_of_a_complete_dataset_downloads_nothing(tmp_path: Path) -> None:
    first = gee.run(fake.small_params(), tmp_path, fake.FakeBackend())
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")}
    backend = fake.FakeBackend()
    again = gee.run(fake.small_params(), tmp_path, backend)
    assert not backend.of("compute_pixels")
    assert again.pair_id.tolist() == first.pair_id.tolist()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")} == mtimes


def test_resume_after_kill(tmp_path: Path, reference: pd.DataFrame) -> None:
    """SIGKILL a real child process mid-download; the rerun fetches only what was not finished."""
    out, calls = tmp_path / "raw", tmp_path / "calls_killed.log"
    src = str(Path(gee.__file__).parents[3])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(FAKE_PATH), str(out), str(calls)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if (out / MANIFEST_NAME).is_file():
                done = len(read_manifest(out))
                if done >= 3:
                    break
            time.sleep(0.02)
        assert child.poll() is None, f"child ended before the kill: {child.stderr.read().decode()[-2000:]}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    killed = read_manifest(out)
    assert 3 <= len(killed) < len(reference)
    assert all(is_complete(out, r) for r in killed.to_dict("records"))
    mtimes = {name: (out / name).stat().st_mtime_ns for name in [*killed.lr_file, *killed.hr_file]}

    backend = fake.FakeBackend()
    final = gee.run(fake.small_params(), out, backend)
    done_lr = set(zip(killed.lr_scene_id, killed.x0))  # a Landsat scene serves one pair per location
    refetched = [sid for sid, bands, grid in backend.of("compute_pixels") if (sid, grid.x0) in done_lr]
    assert not refetched, f"completed pairs downloaded again: {refetched}"
    assert len(backend.of("compute_pixels")) == 2 * (len(reference) - len(killed))
    assert {name: (out / name).stat().st_mtime_ns for name in mtimes} == mtimes
    for col in ("pair_id", "lr_file", "hr_file", "lr_sha256", "hr_sha256"):
        assert final[col].tolist() == reference[col].tolist()
    assert all(sha256_file(out / r.lr_file) == r.lr_sha256 for r in final.itertuples())
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, *final.lr_file, *final.hr_file])

