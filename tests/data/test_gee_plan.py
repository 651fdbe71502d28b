"""The gee provider's offline parts: chips on Landsat's grid (north and south of the equator, near a
zone border), the grids of a pair and the manifest record of the HR resampling, pairing and the
monthly ranking, `satsr source --plan`, and `satsr ee-check` against the fake."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from satsr.config import Region
from satsr.data import grids
from satsr.data.sources import gee

_spec = importlib.util.spec_from_file_location("gee_fake", Path(__file__).with_name("gee_fake.py"))
fake = sys.modules.get("gee_fake") or importlib.util.module_from_spec(_spec)
if "gee_fake" not in sys.modules:
    sys.modules["gee_fake"] = fake
    _spec.loader.exec_module(fake)


def _scenes(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"location": loc, "scene_id": sid, "time": pd.Timestamp(f"{day} 10:30", tz="UTC"), "cloud": c,
          "clear_fraction": f} for loc, sid, day, c, f in rows]
    )


# ------------------------------------------------------------------------------------ matching
def test_match_scenes_window_and_best_per_month_by_chip_clear_fraction() -> None:
    l8 = _scenes([
        ("A", "L_0103", "2020-01-03", 5.0, 1.0),
        ("A", "L_0119", "2020-01-19", 1.0, 0.99),
        ("A", "L_0204", "2020-02-04", 0.0, 1.0),   # nearest S2 is 8 days away: no pair
        ("A", "L_0301", "2020-03-01", 2.0, 1.0),
    ])
    s2 = _scenes([
        ("A", "S_0101", "2020-01-01", 0.0, 0.99),
        ("A", "S_0108", "2020-01-08", 15.0, 1.0),  # cloudy scene, clear chip: the chip is what counts
        ("A", "S_0120", "2020-01-20", 0.0, 1.0),
        ("A", "S_0212", "2020-02-12", 0.0, 1.0),
        ("A", "S_0227", "2020-02-27", 3.0, 1.0),   # 3 days before L_0301
        ("A", "S_0305", "2020-03-05", 0.0, 1.0),   # 4 days after, same chip clear fraction: the gap decides
    ])
    every = gee.match_scenes(l8, s2, max_days_apart=7, one_pair_per_month=False)
    assert list(zip(every.lr_scene_id, every.hr_scene_id)) == [
        ("L_0103", "S_0101"), ("L_0103", "S_0108"), ("L_0119", "S_0120"), ("L_0301", "S_0227"), ("L_0301", "S_0305"),
    ]
    assert every.days_apart.tolist() == [2, 5, 1, 3, 4]
    assert every.columns.tolist() == gee.PAIR_COLUMNS

    best = gee.match_scenes(l8, s2, max_days_apart=7, one_pair_per_month=True)
    # January: (1.0, 0.99) 2 d, (1.0, 1.0) 5 d, (0.99, 1.0) 1 d -> both chips fully clear wins despite
    # the larger gap and the scene cloud cover; March: equal clear fractions, 3 d beats 4 d
    assert list(zip(best.month, best.lr_scene_id, best.hr_scene_id)) == [
        ("2020-01", "L_0103", "S_0108"), ("2020-03", "L_0301", "S_0227"),
    ]
    ranked = gee.rank_pairs(l8, s2, 7)
    jan = ranked[ranked.month == "2020-01"].sort_values("rank")
    assert jan.hr_scene_id.tolist() == ["S_0108", "S_0120", "S_0101"]  # 1.0; then 0.99 ties: 1 d before 2 d
    tight = gee.match_scenes(l8, s2, max_days_apart=1, one_pair_per_month=False)
    assert list(zip(tight.lr_scene_id, tight.hr_scene_id)) == [("L_0119", "S_0120")]


def test_a_same_zone_sentinel2_twin_beats_the_one_from_the_next_zone() -> None:
    l8 = _scenes([("A", "L1", "2021-06-10", 1.0, 1.0)])
    s2 = _scenes([("A", "S_23", "2021-06-11", 0.0, 1.0), ("A", "S_22", "2021-06-11", 0.0, 1.0)])
    s2["foreign"] = [True, False]
    assert gee.match_scenes(l8, s2, 7, True).hr_scene_id.tolist() == ["S_22"]
    s2["foreign"] = [False, True]
    assert gee.match_scenes(l8, s2, 7, True).hr_scene_id.tolist() == ["S_23"]


def test_match_scenes_keeps_locations_apart() -> None:
    l8 = _scenes([("A", "L1", "2021-06-10", 1.0, 1.0), ("B", "L2", "2021-06-10", 1.0, 0.99)])
    s2 = _scenes([("B", "S1", "2021-06-11", 2.0, 0.985)])
    pairs = gee.match_scenes(l8, s2, 7, True)
    assert pairs[["location", "lr_scene_id", "hr_scene_id"]].values.tolist() == [["B", "L2", "S1"]]
    empty = gee.match_scenes(l8, s2.iloc[:0], 7, True)
    assert empty.empty and empty.columns.tolist() == gee.PAIR_COLUMNS


# ------------------------------------------------------------------------------------ grids
def test_locations_lie_on_landsat_grid_north_and_south_of_the_equator() -> None:
    params = fake.small_params()
    locs = gee.plan_locations(params)
    assert [loc.key for loc in locs] == ["south/000", "south/001", "south/002", "north/000", "north/001"]
    # Landsat's zone is always the northern one: 52.5 W, 3.2 S -> EPSG:32622 with negative northings
    assert {loc.lr_grid.crs for loc in locs if loc.region == "south"} == {"EPSG:32622"}
    assert all(loc.lr_grid.y0 < 0 for loc in locs if loc.region == "south")
    assert {loc.lr_grid.crs for loc in locs if loc.region == "north"} == {"EPSG:32616"}
    for loc in locs:
        lr, hr = loc.lr_grid, loc.hr_grid
        assert lr.x0 % 30 == 15 and lr.y0 % 30 == 15  # pixel centres on multiples of 30 m
        assert (lr.crs, lr.x0, lr.y0) == (hr.crs, hr.x0, hr.y0) and lr.bounds == hr.bounds
        assert (lr.pixel, hr.pixel, lr.width, hr.width) == (30.0, 10.0, 16, 48)
    assert locs[0].lon == pytest.approx(-52.5, abs=0.001) and locs[0].lat == pytest.approx(-3.2, abs=0.001)
    assert 450 <= locs[1].lr_grid.x0 - locs[0].lr_grid.x0 <= 490  # 1.95 x 240 m = 468 m apart


def test_ee_grid_is_a_compute_pixels_pixel_grid() -> None:
    grid = grids.Grid("EPSG:32622", 333075.0, -353595.0, 10.0, 48, 24)
    assert gee.ee_grid(grid) == {
        "dimensions": {"width": 48, "height": 24},
        "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": 333075.0,
                            "shearY": 0.0, "scaleY": -10.0, "translateY": -353595.0},
        "crsCode": "EPSG:32622",
    }


@pytest.mark.parametrize("region", ["south", "north"])
def test_the_request_of_a_pair_keeps_landsat_native_and_records_the_hr_offset(region: str) -> None:
    loc = next(loc for loc in gee.plan_locations(fake.small_params()) if loc.region == region)
    backend, start, end = fake.FakeBackend(), fake.dt.date(2020, 1, 1), fake.dt.date(2020, 1, 31)
    l8 = backend.search_scenes(["LANDSAT/LC08/C02/T1_L2"], loc.lr_grid, start, end, "CLOUD_COVER", 100, "SR_B4")[0]
    s2 = backend.search_scenes(["COPERNICUS/S2_SR_HARMONIZED"], loc.hr_grid, start, end, "CLOUDY_PIXEL_PERCENTAGE",
                               100, "B4")[0]
    assert s2["crs"] == ("EPSG:32722" if region == "south" else "EPSG:32616")  # S2: 327xx south
    lr, hr, extra = gee.pair_grids(loc, l8["transform"], s2["crs"], s2["transform"], "bicubic")
    # the LR request is Landsat's own grid: same CRS, 30 m, corner on the scene's pixel edges
    assert lr.crs == l8["crs"] == loc.lr_grid.crs
    tx, ty = l8["transform"][2], l8["transform"][5]
    assert ((lr.x0 - tx) % 30, (ty - lr.y0) % 30) == (0, 0)
    assert lr.x0 % 30 == 15 and lr.y0 % 30 == 15 and (lr.x0, lr.y0) == (loc.lr_grid.x0, loc.lr_grid.y0)
    assert extra["lr_offset_from_convention_m"] == [0.0, 0.0] and extra["lr_lattice"] == "scene crs_transform"
    # the HR is resampled onto the nested grid: 5 m (half an HR pixel) off Sentinel-2's edges, recorded
    assert (hr.x0, hr.y0, hr.pixel) == (lr.x0, lr.y0, 10.0)
    assert extra["hr_offset_m"] == [5.0, 5.0] and extra["hr_offset_hr_px"] == [0.5, 0.5]
    assert extra["hr_resampling"] == "bicubic" and extra["hr_reprojected"] is False  # 327xx vs 326xx: same zone


def test_a_scene_off_the_convention_moves_the_grid_and_says_so() -> None:
    loc = gee.plan_locations(fake.small_params())[0]
    t = [30.0, 0.0, 300_000.0, 0.0, -30.0, -300_000.0]  # edges on multiples of 30 m: not Collection 2's
    lr, hr, extra = gee.pair_grids(loc, t, "EPSG:32722", [10.0, 0, 300_000.0, 0, -10.0, 9_700_000.0], "bilinear")
    assert lr.x0 % 30 == 0 and lr.y0 % 30 == 0 and abs(lr.x0 - loc.lr_grid.x0) == 15
    assert extra["lr_offset_from_convention_m"] == [15.0, 15.0] and extra["hr_offset_m"] == [0.0, 0.0]
    _, _, unknown = gee.pair_grids(loc, None, None, None, "bilinear")
    assert "convention" in unknown["lr_lattice"] and "hr_offset_m" not in unknown


def test_chips_near_a_zone_border() -> None:
    params = fake.small_params(regions=[Region(name="west", start=(-54.0005, -10.0)),
                                        Region(name="east", start=(-53.9995, -10.0))])
    west, east = gee.plan_locations(params)
    assert (west.lr_grid.crs, east.lr_grid.crs) == ("EPSG:32621", "EPSG:32622")
    assert west.lr_grid.x0 > 800_000 and east.lr_grid.x0 < 200_000  # each at the edge of its own zone
    for loc in (west, east):
        assert loc.lr_grid.x0 % 30 == 15 and loc.lr_grid.y0 % 30 == 15 and loc.lr_grid.y0 < 0
    lr, _, extra = gee.pair_grids(west, None, "EPSG:32722", [10.0, 0, 199_980.0, 0, -10.0, 8_900_020.0], "bilinear")
    assert extra["hr_reprojected"] is True and lr.crs == "EPSG:32621"


# ------------------------------------------------------------------------------------ --plan and ee-check
def test_describe_plan_needs_no_earth_engine() -> None:
    text = gee.describe_plan(fake.small_params())
    for part in ("5 chips in 2 regions", "2020-01-01 .. 2020-03-31", "LANDSAT/LC08/C02/T1_L2",
                 "COPERNICUS/S2_SR_HARMONIZED", "south/000", "EPSG:32622", "north/001", "20 getInfo", "computePixels",
                 "bilinear"):
        assert part in text, part


def test_source_plan_cli_prints_without_contacting_anyone(tmp_path: Path, capsys, monkeypatch) -> None:
    from satsr.cli import main

    def no_contact(*a, **k):
        raise AssertionError("Earth Engine contacted")

    monkeypatch.setattr(gee.EarthEngineBackend, "initialize", no_contact)
    (tmp_path / "p.yaml").write_text("source:\n  provider: gee\n  gee:\n    regions:\n"
                                     "      - {name: a, start: [-52.5, -3.2], count: 2}\n")
    assert main(["source", "--plan", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "raw")]) == 0
    out = capsys.readouterr().out
    assert "a/001" in out and "expected requests" in out and not (tmp_path / "raw").exists()


def test_ee_check_reports_native_projections_and_the_requested_grid() -> None:
    from satsr.data.sources.gee.check import ee_check

    backend = fake.FakeBackend()
    report, bad = ee_check(fake.small_params(), backend)
    assert bad == [], report
    assert "EPSG:32622" in report and "EPSG:32722" in report and "(5.0, 5.0)" not in report
    assert "[5.0, 5.0]" in report and "OK" in report
    assert [args[3] for args in backend.of("compute_pixels")] == [None, "bilinear"]
    assert backend.getinfo_calls() == 4 and len(backend.of("compute_pixels")) == 2


def test_ee_check_flags_a_grid_off_the_landsat_convention() -> None:
    from satsr.data.sources.gee.check import ee_check

    _, bad = ee_check(fake.small_params(), fake.FakeBackend(landsat_lattice=(0.0, 0.0)))
    assert any("15 mod 30" in b for b in bad) and any("not on the scene's lattice" in b for b in bad)


def test_ee_check_cli_prints_one_clean_line_on_mismatch(monkeypatch, tmp_path, capsys) -> None:
    from satsr.cli import main
    from satsr.data.sources.gee import check

    real = check.ee_check
    monkeypatch.setattr(check, "ee_check", lambda params: real(params, fake.FakeBackend(landsat_lattice=(0, 0))))
    (tmp_path / "p.yaml").write_text("source:\n  gee:\n    regions:\n      - {name: a, start: [-52.5, -3.2]}\n")
    assert main(["ee-check", "--params", str(tmp_path / "p.yaml")]) == 1
    cap = capsys.readouterr()
    assert "MISMATCH" in cap.out  # the report on stdout, the error as one line on stderr
    assert "satsr: ee-check: " in cap.err and "Traceback" not in cap.err and len(cap.err.strip().splitlines()) == 1
