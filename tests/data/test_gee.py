"""The Earth Engine provider's runs, against a fake backend (the only seam faked; its errors are
raised as ee raises them): requests and their grids, screening, tiling, retries and the concurrency
cap, per-candidate failures, zones, credentials, the quota circuit breaker, and resume after a
breaker stop or a kill. Offline parts: test_gee_plan.py; error classes: test_gee_retry.py."""

from __future__ import annotations

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

from satsr.config import GeeParams
from satsr.data import grids
from satsr.data.geotiff import read_raster
from satsr.data.manifest import COLUMNS, MANIFEST_NAME, is_complete, read_manifest
from satsr.data.radiometry import LANDSAT_RGB, S2_RGB
from satsr.data.sources import gee, run_source
from satsr.data.sources.gee import retry
from satsr.util import sha256_file

FAKE_PATH = Path(__file__).with_name("gee_fake.py")
_spec = importlib.util.spec_from_file_location("gee_fake", FAKE_PATH)
fake = sys.modules.get("gee_fake") or importlib.util.module_from_spec(_spec)
if "gee_fake" not in sys.modules:
    sys.modules["gee_fake"] = fake
    _spec.loader.exec_module(fake)

L8, L9 = "LANDSAT/LC08/C02/T1_L2", "LANDSAT/LC09/C02/T1_L2"
S2, CS = "COPERNICUS/S2_SR_HARMONIZED", "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7SECRETKEYMATERIAL"
N_CHIPS = 5


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The complete dataset of ``small_params()`` from a healthy fake, built once."""
    return gee.run(fake.small_params(), tmp_path_factory.mktemp("reference"), fake.FakeBackend())


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Backoff sleeps are recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(retry, "_sleep", recorded.append)
    return recorded


# ------------------------------------------------------------------------------------ requests and outputs
def test_requests_screening_and_outputs(tmp_path: Path) -> None:
    params = fake.small_params(include_landsat9=True)
    backend = fake.FakeBackend()
    manifest = gee.run(params, tmp_path, backend)
    g = params.source.gee
    assert backend.initialized

    # searches: one per sensor and chip (Landsat 8 and 9 merged in one), dates and scene cloud filters
    searches = backend.of("search_scenes")
    assert len(searches) == 2 * N_CHIPS
    assert {s[0] for s in searches} == {(L8, L9), (S2,)}
    for colls, grid, start, end, prop, max_cloud, band in searches:
        assert (start, end) == (g.start_date, g.end_date)
        if colls == (S2,):
            assert (prop, max_cloud, grid.pixel, band) == ("CLOUDY_PIXEL_PERCENTAGE", g.max_scene_cloud_s2, 10.0, "B4")
        else:
            assert (prop, max_cloud, grid.pixel, band) == ("CLOUD_COVER", g.max_scene_cloud_l8, 30.0, "SR_B4")

    # screening: one request per sensor and chip for all its candidates, on the chip's own grids
    assert len(backend.of("landsat_clear_fractions")) == len(backend.of("s2_clear_fractions")) == N_CHIPS
    assert all(grid.pixel == 30.0 and grid.width == 16 and len(ids) > 1
               for ids, grid in backend.of("landsat_clear_fractions"))
    for _, grid, coll, thr in backend.of("s2_clear_fractions"):
        assert (grid.pixel, grid.width, coll, thr) == (10.0, 48, CS, 0.6)
    assert backend.getinfo_calls() / N_CHIPS <= 5  # the budget for search and screening

    # downloads: LR native (no resampling, Landsat's own grid), HR resampled onto the nested grid
    pixels = backend.of("compute_pixels")
    assert len(pixels) == 2 * len(manifest)
    for row in manifest.itertuples():
        lr = [(gr, rs) for sid, bands, gr, rs in pixels
              if (sid, bands, gr.x0, gr.y0) == (row.lr_scene_id, LANDSAT_RGB, row.x0, row.y0)]
        hr = [(gr, rs) for sid, bands, gr, rs in pixels
              if (sid, bands, gr.x0, gr.y0) == (row.hr_scene_id, S2_RGB, row.x0, row.y0)]
        assert len(lr) == 1 and len(hr) == 1
        (lr, lr_rs), (hr, hr_rs) = lr[0], hr[0]
        assert (lr_rs, hr_rs) == (None, "bilinear")
        assert lr.crs == hr.crs == row.crs == f"EPSG:{grids.landsat_epsg(row.lon)}"  # 326xx, also in the south
        assert lr.x0 % 30 == 15 and lr.y0 % 30 == 15  # Landsat pixel centres on multiples of 30 m
        assert (hr.width, hr.height) == (3 * lr.width, 3 * lr.height)
        assert lr.affine[0] == 30.0 and hr.affine[0] == 10.0 and lr.affine[4] == -30.0
        extra = json.loads(row.extra)
        assert extra["hr_resampling"] == "bilinear" and extra["hr_offset_m"] == [5.0, 5.0]
        assert extra["lr_offset_from_convention_m"] == [0.0, 0.0] and extra["hr_reprojected"] is False
    assert (manifest[manifest.region == "south"].y0 < 0).all()

    # the manifest: every column, real data, within the day window, one pair per chip and month
    assert manifest.columns.tolist() == COLUMNS
    assert (manifest.provider == "gee").all() and (~manifest.is_demo.astype(bool)).all()
    assert manifest.pair_id.is_unique and (manifest.days_apart <= 7).all()
    assert (manifest.lr_clear_fraction >= 0.98).all() and (manifest.hr_clear_fraction >= 0.98).all()
    assert (manifest.lr_cloud <= 20).all() and (manifest.hr_cloud <= 20).all()
    months = manifest.assign(month=manifest.lr_date.str[:7]).groupby(["region", "x0", "y0", "month"]).size()
    assert (months == 1).all()
    assert manifest.lr_scene_id.str.startswith(L9).any() and manifest.lr_scene_id.str.startswith(L8).any()
    assert manifest.hr_scene_id.str.startswith(S2).all()
    rejected = {sid for ids, _ in backend.of("landsat_clear_fractions") for sid in ids if backend.clear(sid) < 0.98}
    assert rejected and not rejected & set(manifest.lr_scene_id)  # screening removed the half-cloudy scenes
    assert manifest.sort_values("pair_id").iloc[0].region == "south"  # numbered in params order
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
    assert hr.tags["RESAMPLING"] == "bilinear" and "native" in lr.tags["RESAMPLING"]
    assert float(lr.tags["CLOUD_COVER"]) == pytest.approx(row.lr_cloud)
    assert float(hr.tags["CLEAR_FRACTION"]) == pytest.approx(row.hr_clear_fraction)
    hr_grid = grids.Grid(row.crs, row.x0, row.y0, 10.0, 48, 48)
    np.testing.assert_array_equal(hr.data, fake.expected_pixels(row.hr_scene_id, S2_RGB, hr_grid))
    assert row.lr_file.split("_")[2] in ("L8", "L9") and row.hr_file.split("_")[2] == "S2"


def test_the_monthly_pick_ranks_by_chip_clear_fraction_then_days_apart(tmp_path: Path) -> None:
    backend = fake.FakeBackend()
    manifest = gee.run(fake.small_params(), tmp_path, backend)
    every = gee.run(fake.small_params(one_pair_per_month=False), tmp_path / "all", fake.FakeBackend())
    every = every.assign(month=every.lr_date.str[:7], clear=np.fmin(every.lr_clear_fraction, every.hr_clear_fraction))
    for row in manifest.assign(month=manifest.lr_date.str[:7]).itertuples():
        rivals = every[(every.x0 == row.x0) & (every.y0 == row.y0) & (every.month == row.month)]
        best = rivals.sort_values(["clear", "days_apart"], ascending=[False, True]).iloc[0]
        assert (row.lr_scene_id, row.hr_scene_id) == (best.lr_scene_id, best.hr_scene_id)


def test_landsat9_only_when_asked(tmp_path: Path) -> None:
    backend = fake.FakeBackend()
    gee.run(fake.small_params(one_pair_per_month=False), tmp_path, backend)
    assert {s[0] for s in backend.of("search_scenes")} == {(L8,), (S2,)}


def test_large_chips_are_tiled_and_mosaicked(tmp_path: Path) -> None:
    # 48 x 48 HR px x 3 bands x 2 bytes = 13.8 kB; a 4 kB limit forces tiles (of at most 20 x 20 px)
    params = fake.small_params(max_request_bytes=4096, max_request_side_px=20,
                               regions=fake.small_params().source.gee.regions[:1])
    backend = fake.FakeBackend()
    manifest = gee.run(params, tmp_path, backend)
    row = manifest.iloc[0]
    tiles = [(grid, rs) for sid, _, grid, rs in backend.of("compute_pixels") if sid == row.hr_scene_id]
    assert len(tiles) >= 9 and {rs for _, rs in tiles} == {"bilinear"}  # 48 px at <= 20 px per side
    tiles = [t for t, _ in tiles]
    assert all(t.width * t.height * 3 * 2 <= 4096 and max(t.width, t.height) <= 20 for t in tiles)
    hr_grid = grids.Grid(row.crs, row.x0, row.y0, 10.0, 48, 48)
    np.testing.assert_array_equal(read_raster(tmp_path / row.hr_file).data,
                                  fake.expected_pixels(row.hr_scene_id, S2_RGB, hr_grid))


# ------------------------------------------------------------------------------------ zones and projections
def test_scenes_from_another_utm_zone(tmp_path: Path) -> None:
    backend = fake.FakeBackend(other_zone=0.3)
    skipped = gee.run(fake.small_params(), tmp_path / "skip", backend)
    foreign = {sid for sid, p in backend.projections.items() if grids.epsg_zone(p["crs"]) not in (22, 16)}
    assert foreign and not foreign & (set(skipped.lr_scene_id) | set(skipped.hr_scene_id))
    assert not foreign & {sid for ids, _ in backend.of("landsat_clear_fractions") for sid in ids}  # not even screened
    assert not any(json.loads(e)["hr_reprojected"] for e in skipped.extra)

    backend = fake.FakeBackend(other_zone=0.3)
    resampled = gee.run(fake.small_params(s2_other_zone="resample"), tmp_path / "resample", backend)
    foreign_s2 = {sid for sid, p in backend.projections.items() if "S2" in sid and grids.epsg_zone(p["crs"]) == 23}
    used = resampled[resampled.hr_scene_id.isin(foreign_s2)]
    assert len(used) and all(json.loads(e)["hr_reprojected"] for e in used.extra)  # recorded
    assert not {sid for sid in foreign if "LANDSAT" in sid} & set(resampled.lr_scene_id)  # LR: never


def test_scene_transforms_unknown_to_the_search_are_asked_once_per_zone(tmp_path: Path) -> None:
    backend = fake.FakeBackend(with_transforms=False)
    manifest = gee.run(fake.small_params(), tmp_path, backend)
    assert len(backend.of("scene_projection")) == 2  # zones 22 and 16
    assert backend.getinfo_calls() / N_CHIPS <= 5
    assert (manifest.x0 % 30 == 15).all() and (manifest.y0 % 30 == 15).all()
    assert all(json.loads(e)["lr_lattice"] == "scene crs_transform" for e in manifest.extra)


# ------------------------------------------------------------------------------------ network faults
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
    broken = {bad_lr: (404, "Image.load: Image asset not found."),  # permanent: the month's next candidate
              bad_hr: (503, "Service Unavailable")}                  # transient: retries run out, kept for rerun
    backend = fake.FakeBackend(broken=broken)
    with caplog.at_level(logging.WARNING, logger="satsr"):
        partial = gee.run(params, tmp_path / "raw", backend)
    lost_hr = complete[complete.hr_scene_id == bad_hr]
    lost_lr = complete[complete.lr_scene_id == bad_lr]
    assert set(partial.pair_id) >= set(complete.pair_id) - set(lost_hr.pair_id) - set(lost_lr.pair_id)
    assert not set(partial.pair_id) & set(lost_hr.pair_id)
    assert bad_lr not in set(partial.lr_scene_id) and bad_hr not in set(partial.hr_scene_id)
    # the permanently broken pair's chip and month got the next-ranked candidate instead
    for row in lost_lr.itertuples():
        same = partial[(partial.x0 == row.x0) & (partial.lr_date.str[:7] == row.lr_date[:7])]
        alternatives = [sid for sid, _, g, _ in backend.of("compute_pixels") if g.x0 == row.x0 and sid != bad_lr]
        assert len(same) == 1 or not alternatives
    assert all(is_complete(tmp_path / "raw", r) for r in partial.to_dict("records"))
    assert len(sleeps) == 2 * sum(complete.hr_scene_id == bad_hr)  # each 503 pair retried max_retries times
    failures = pd.read_csv(tmp_path / "raw" / gee.FAILURES_NAME)
    assert set(failures.stage) == {"download"} and len(failures) == len(partial.attrs["failures"])
    assert "Image asset not found" in caplog.text
    assert failures.error.str.startswith("EEException").all()  # as ee raises them (the status is chained)

    healed = fake.FakeBackend()
    final = gee.run(params, tmp_path / "raw", healed)
    fetched = {sid for sid, *_ in healed.of("compute_pixels")}
    assert fetched == set(lost_hr.lr_scene_id) | set(lost_hr.hr_scene_id)  # only the transiently failed pairs
    kept = final[final.pair_id.isin(partial.pair_id)]
    assert kept.lr_sha256.tolist() == partial.set_index("pair_id").loc[kept.pair_id].lr_sha256.tolist()
    assert set(lost_hr.pair_id) <= set(final.pair_id)
    assert not (tmp_path / "raw" / gee.FAILURES_NAME).exists()


def test_a_failed_screening_batch_costs_only_the_bad_scene(tmp_path: Path, sleeps: list[float],
                                                           reference: pd.DataFrame) -> None:
    bad = reference.lr_scene_id.iloc[0]
    backend = fake.FakeBackend(broken_screening={bad: (400, "Image.load: Image asset not found.")})
    manifest = gee.run(fake.small_params(), tmp_path, backend)
    failures = pd.read_csv(tmp_path / gee.FAILURES_NAME)
    assert set(failures.stage) == {"clear_l8"} and all(k.endswith(bad) for k in failures.key)
    assert bad not in set(manifest.lr_scene_id)
    # the chip's other candidates were screened one by one and kept
    chip = reference[(reference.x0 == reference.x0.iloc[0]) & (reference.lr_scene_id != bad)]
    assert set(chip.pair_id) <= set(manifest.pair_id)
    singles = [ids for ids, _ in backend.of("landsat_clear_fractions") if len(ids) == 1]
    assert singles and not sleeps  # a 400 is not retried


def test_a_location_whose_search_fails_keeps_its_earlier_pairs(tmp_path: Path, sleeps: list[float]) -> None:
    params = fake.small_params(max_retries=1)
    first = gee.run(params, tmp_path, fake.FakeBackend())
    (tmp_path / gee.PROGRESS_NAME).unlink()  # as after a changed plan: every chip is searched again

    class SearchDown(fake.FakeBackend):
        def search_scenes(self, collections, grid, *args):
            if abs(grid.x0 - first.x0.iloc[0]) < 1:
                fake.raise_http(500, "Internal error")
            return super().search_scenes(collections, grid, *args)

    backend = SearchDown()
    again = gee.run(params, tmp_path, backend)
    assert sorted(again.pair_id) == sorted(first.pair_id)  # nothing dropped, nothing fetched
    assert not backend.of("compute_pixels")
    failures = pd.read_csv(tmp_path / gee.FAILURES_NAME)
    assert set(failures.stage) == {"search"} and len(sleeps) == 1


# ------------------------------------------------------------------------------------ credentials
def _clean_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in (*gee.ENV_KEY_FILES, gee.ENV_PROJECT, "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # google.auth: no metadata-server probe (no network here)


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
    """Nothing is rejected up front: ee.Initialize itself looks for EE credentials, ADC and the
    metadata server, and its refusal is reported with the setup help before anything starts."""
    _clean_env(monkeypatch, tmp_path / "home")
    params = fake.small_params()
    out = tmp_path / "raw"
    with pytest.raises(gee.GeeAuthError) as err:
        gee.run(params, out)  # the real backend and the real ee.Initialize
    msg = str(err.value)
    for hint in ("earthengine authenticate", "EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
                 "EE_PROJECT", "service account", "source.provider=demo", "satsr ee-check",
                 "No Earth Engine credentials found."):
        assert hint in msg
    assert not out.exists()  # nothing was started
    with pytest.raises(gee.GeeAuthError):  # the same through the provider dispatcher
        run_source(params, out)
    assert not any(out.iterdir())

    # a key but no project: a service account defaults to its own project (as ee.Initialize does)
    monkeypatch.setenv("EE_SERVICE_ACCOUNT_KEY_FILE", str(_key_file(tmp_path)))
    auth = gee.resolve_auth(params.source.gee)
    assert auth.project is None and "project from the credentials" in auth.describe()
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
    assert auth.key_file is None and "user / application-default credentials" in auth.describe()
    # application-default credentials of any kind are left to ee.Initialize, not rejected
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps({"type": "external_account", "audience": "x"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    assert gee.resolve_auth(GeeParams()) == gee.EeAuth(project=None)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    creds.unlink()
    assert gee.resolve_auth(GeeParams()).key_file is None  # nothing on disk: Colab / GCE metadata server

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
def test_rerun_of_a_complete_dataset_requests_nothing(tmp_path: Path) -> None:
    first = gee.run(fake.small_params(), tmp_path, fake.FakeBackend())
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")}
    backend = fake.FakeBackend()
    again = gee.run(fake.small_params(), tmp_path, backend)
    assert backend.calls == []  # every chip is finished under this plan: not even a search
    assert again.pair_id.tolist() == first.pair_id.tolist()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")} == mtimes
    # a changed plan searches again, but complete pairs are still not downloaded again
    backend = fake.FakeBackend()
    wider = gee.run(fake.small_params(max_days_apart=8), tmp_path, backend)
    assert backend.of("search_scenes") and set(first.pair_id) <= set(wider.pair_id)
    refetched = {(sid, g.x0) for sid, _, g, _ in backend.of("compute_pixels")} & set(zip(first.lr_scene_id, first.x0))
    assert not refetched
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.tif") if p.name in mtimes} == mtimes


def test_quota_circuit_breaker_stops_cleanly_and_a_rerun_finishes_the_rest(tmp_path: Path, sleeps: list[float],
                                                                          reference: pd.DataFrame,
                                                                          capsys: pytest.CaptureFixture) -> None:
    params = fake.small_params(max_concurrent_requests=1, quota_breaker_errors=3, max_retries=6)
    stopped = fake.FakeBackend(quota_after=20)  # a daily quota runs out after 20 requests
    with pytest.raises(gee.GeeQuotaError) as err:
        gee.run(params, tmp_path, stopped)
    msg = str(err.value)
    assert "quota exhausted" in msg and "3 consecutive quota errors" in msg and "Rerun" in msg
    assert isinstance(err.value, gee.GeeError)
    assert len(sleeps) == 2  # stopped after 3 errors, not after 6 retries of every request
    requests = len(stopped.calls)
    assert requests == 23
    done = read_manifest(tmp_path)
    assert 0 < len(done) < len(reference) and all(is_complete(tmp_path, r) for r in done.to_dict("records"))
    progress = json.loads((tmp_path / gee.PROGRESS_NAME).read_text())
    assert 0 < len(progress["done"]) < N_CHIPS
    mtimes = {name: (tmp_path / name).stat().st_mtime_ns for name in [*done.lr_file, *done.hr_file]}

    # the CLI prints it as one line, no traceback
    from satsr.cli import main

    monkeypatch_run = pytest.MonkeyPatch()
    monkeypatch_run.setattr(gee.provider, "EarthEngineBackend", lambda *a, **k: fake.FakeBackend(quota_after=0))
    monkeypatch_run.setattr(gee.provider, "resolve_auth", lambda g: gee.EeAuth(project="p"))
    try:
        (tmp_path / "p.yaml").write_text(json.dumps({"source": {"provider": "gee", "lr_size": 16, "gee": {
            "regions": [{"name": "a", "start": [-52.5, -3.2]}], "quota_breaker_errors": 2, "max_retries": 1}}}))
        assert main(["source", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "cli")]) == 1
    finally:
        monkeypatch_run.undo()
    cli_err = capsys.readouterr().err
    assert "satsr: Earth Engine quota exhausted" in cli_err and "Traceback" not in cli_err

    healed = fake.FakeBackend()
    final = gee.run(params, tmp_path, healed)
    finished = set(progress["done"])
    assert not any(grid.x0 in {loc.lr_grid.x0 for loc in gee.plan_locations(params) if loc.key in finished}
                   for _, grid, *_ in healed.of("search_scenes"))  # finished chips: not even searched
    fetched = {(sid, grid.x0) for sid, _, grid, _ in healed.of("compute_pixels")}
    refetched = fetched & set(zip(done.lr_scene_id, done.x0))
    assert not refetched and len(healed.of("compute_pixels")) == 2 * (len(reference) - len(done))
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in mtimes} == mtimes
    for col in ("pair_id", "lr_file", "hr_file", "lr_sha256", "hr_sha256"):
        assert sorted(final[col]) == sorted(reference[col])
    assert len(json.loads((tmp_path / gee.PROGRESS_NAME).read_text())["done"]) == N_CHIPS


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
    refetched = [sid for sid, _, grid, _ in backend.of("compute_pixels") if (sid, grid.x0) in done_lr]
    assert not refetched, f"completed pairs downloaded again: {refetched}"
    assert len(backend.of("compute_pixels")) == 2 * (len(reference) - len(killed))
    assert {name: (out / name).stat().st_mtime_ns for name in mtimes} == mtimes
    for col in ("pair_id", "lr_file", "hr_file", "lr_sha256", "hr_sha256"):
        assert final[col].tolist() == reference[col].tolist()
    assert all(sha256_file(out / r.lr_file) == r.lr_sha256 for r in final.itertuples())
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, gee.PROGRESS_NAME, *final.lr_file,
                                                            *final.hr_file])

