"""Spatially disjoint split: overlapping/near chips share a split, determinism, fractions, leaks."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rasterio.warp import transform as warp_transform

from satsr.config import Params, SplitParams
from satsr.data import grids
from satsr.data.geotiff import write_geotiff
from satsr.data.manifest import write_manifest
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.data.split import (
    EmptySplitError,
    SplitLeakError,
    assert_disjoint,
    footprints,
    resolve_pair_paths,
    run_split,
)

LR = 8  # LR chip side in px: 240 m chips keep the GeoTIFFs tiny


def chip_row(pid: str, crs: str, x: float, y: float, lr_size: int = LR, source_split: str = "") -> dict:
    lr_grid, _ = grids.nested_grids(x, y, crs, lr_size)
    return {
        "pair_id": pid,
        "provider": "folder",
        "is_demo": False,
        "crs": crs,
        "x0": lr_grid.x0,
        "y0": lr_grid.y0,
        "lr_file": f"{pid}_LR.tif",
        "hr_file": f"{pid}_HR.tif",
        "lr_width": lr_size,
        "lr_height": lr_size,
        "hr_width": 3 * lr_size,
        "hr_height": 3 * lr_size,
        "source_split": source_split,
        "lon": 0.0,
        "lat": 0.0,
    }


def write_chip_files(raw: Path, row: dict) -> None:
    """Real (tiny) GeoTIFFs, so footprints come from the files themselves."""
    lr_grid, hr_grid = grids.nested_grids(row["x0"] + LR * 15.0, row["y0"] - LR * 15.0, row["crs"], LR)
    write_geotiff(raw / row["lr_file"], np.full((3, LR, LR), 9000, np.uint16), lr_grid, L8_C2_L2, LANDSAT_RGB)
    write_geotiff(raw / row["hr_file"], np.full((3, 3 * LR, 3 * LR), 800, np.uint16), hr_grid, S2_SR, S2_RGB)


def setup(
    tmp_path: Path, rows: list[dict], files: bool = False, rejected: set[str] = frozenset()
) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if files:
        for r in rows:
            write_chip_files(raw, r)
    write_manifest(raw, rows)
    report = tmp_path / "report.csv"
    pd.DataFrame(
        {
            "pair_id": [r["pair_id"] for r in rows],
            "status": ["rejected" if r["pair_id"] in rejected else "accepted" for r in rows],
            "reasons": "",
            "detail": "",
            "lr_path": "",
            "hr_path": "",
        }
    ).to_csv(report, index=False)
    return raw, report


def moving_square_lines(n_lines: int, per_line: int, spacing_m: float = 60000.0) -> list[dict]:
    """The seed's scan: centres stepped by 1.95 x buffer (neighbouring chips overlap by 2.5 %)."""
    step = 1.95 * LR * 30.0 / 2.0
    rows = []
    for line in range(n_lines):
        for k in range(per_line):
            x = 300000.0 + (line % 6) * spacing_m + k * step
            y = 9500000.0 - (line // 6) * spacing_m
            rows.append(chip_row(f"l{line:02d}_{k}", "EPSG:32720", x, y))
    return rows


def params(**kw) -> Params:
    return Params(split=SplitParams(**kw))


def test_overlapping_chips_never_straddle(tmp_path):
    rows = moving_square_lines(12, 4)
    # Line 12 runs 500 m beside line 0 (no overlap, but nearer than near_m): same split.
    rows += [chip_row(f"l12_{k}", "EPSG:32720", 300000.0 + k * 234.0, 9500000.0 - 740.0) for k in range(4)]
    raw, report = setup(tmp_path, rows, files=True)
    out = tmp_path / "split"
    df = run_split(params(), raw, report, out)

    df["line"] = df["pair_id"].str[:3]
    assert df.groupby("line")["group"].nunique().max() == 1
    assert df.groupby("line")["split"].nunique().max() == 1
    assert (
        df.set_index("line").loc["l00", "group"].iloc[0] == df.set_index("line").loc["l12", "group"].iloc[0]
    )
    assert df["group"].nunique() == 12
    assert set(df["split"]) == {"train", "val", "test"}
    # the footprints really overlap (seed's step), so a random split would have leaked
    fp = footprints(pd.read_csv(raw / "manifest.csv", dtype={"pair_id": str}), raw)
    a, b = fp.iloc[0], fp.iloc[1]
    assert a["maxx"] > b["minx"]

    written = pd.read_csv(out / "split.csv")
    assert list(written.columns) == ["pair_id", "split", "group", "lon", "lat"]
    assert written["lon"].between(-65, -61).all() and written["lat"].between(-6, -3).all()
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["pairs"].values()) == len(rows) and sum(summary["groups"].values()) == 12
    assert set(summary) >= {"pairs", "groups", "fraction", "total_pairs", "total_groups"}


def test_deterministic_by_seed_and_fractions_held(tmp_path):
    # 100 chips 30 km apart: 100 groups of one pair each (manifest-only: footprints from x0/y0).
    rows = [
        chip_row(f"p{i:03d}", "EPSG:32720", 200000.0 + (i % 10) * 30000.0, 9700000.0 - (i // 10) * 30000.0)
        for i in range(100)
    ]
    raw, report = setup(tmp_path, rows)
    a = run_split(params(seed=1), raw, report, tmp_path / "a")
    b = run_split(params(seed=1), raw, report, tmp_path / "b")
    c = run_split(params(seed=2), raw, report, tmp_path / "c")
    assert (tmp_path / "a" / "split.csv").read_bytes() == (tmp_path / "b" / "split.csv").read_bytes()
    pd.testing.assert_frame_equal(a, b)
    assert (a["split"] != c["split"]).sum() > 5
    assert a["group"].nunique() == 100
    counts = a["split"].value_counts()
    assert counts["train"] == 80 and counts["val"] == 10 and counts["test"] == 10
    d = run_split(params(seed=3, train=0.6, val=0.2, test=0.2), raw, report, tmp_path / "d")[
        "split"
    ].value_counts()
    assert (d["train"], d["val"], d["test"]) == (60, 20, 20)


def test_cells_group_chips_and_every_split_gets_a_group(tmp_path, caplog):
    # Two far-apart chips inside one 20 km cell are one group; 3 groups -> one per split.
    rows = [
        chip_row("a0", "EPSG:32720", 401000.0, 9501000.0),
        chip_row("a1", "EPSG:32720", 415000.0, 9515000.0),
        chip_row("b0", "EPSG:32720", 501000.0, 9501000.0),
        chip_row("c0", "EPSG:32720", 601000.0, 9501000.0),
    ]
    raw, report = setup(tmp_path, rows)
    df = run_split(params(), raw, report, tmp_path / "s").set_index("pair_id")
    assert df.loc["a0", "group"] == df.loc["a1", "group"]
    assert sorted(df["split"].unique()) == ["test", "train", "val"]
    # Two groups: test would stay empty, so split stops before any training, with the fix (issue 13, 10b) ...
    raw, report = setup(tmp_path / "two", rows[:3])
    with pytest.raises(EmptySplitError) as info:
        run_split(params(), raw, report, tmp_path / "two" / "s")
    text = str(info.value)
    assert "2 spatial group(s) for 3 pair(s) leave test empty" in text and "split.allow_empty_test: true" in text
    assert "split.group_cell_m" in text and not (tmp_path / "two" / "s").exists()
    # ... unless the user allows it: train and val filled, a warning that evaluate will skip
    caplog.set_level(logging.WARNING)
    df = run_split(params(allow_empty_test=True), raw, report, tmp_path / "two" / "s")
    assert df["group"].nunique() == 2 and sorted(df["split"].unique()) == ["train", "val"]
    assert "evaluate@<arch> will skip" in caplog.text
    summary = json.loads((tmp_path / "two" / "s" / "summary.json").read_text())
    assert summary["allow_empty_test"] is True and summary["pairs"]["test"] == 0


def test_an_empty_val_split_is_never_allowed(tmp_path):
    """One spatial group: val would be empty; training validates and select ranks on val, so even
    split.allow_empty_test does not let it through."""
    raw, report = setup(tmp_path, [chip_row("a0", "EPSG:32720", 401000.0, 9501000.0),
                                   chip_row("a1", "EPSG:32720", 405000.0, 9505000.0)])
    for allow in (False, True):
        with pytest.raises(EmptySplitError, match=r"leave val and test empty \(expected at least one group in "
                                                  r"train and in val"):
            run_split(params(allow_empty_test=allow), raw, report, tmp_path / f"s{allow}")


def _regions(n_groups: int, per_group: int = 4) -> list[dict]:
    """``n_groups`` regions 100 km apart, each ``per_group`` chips inside one 20 km cell."""
    return [chip_row(f"r{g:02d}_{k}", "EPSG:32720", 401000.0 + (g % 6) * 100000.0 + k * 3000.0,
                     9501000.0 - (g // 6) * 100000.0)
            for g in range(n_groups) for k in range(per_group)]


def test_min_groups_tops_up_val_and_test(tmp_path, caplog):
    """Evaluation resamples groups for its CIs: val and test get split.min_groups groups each (the
    smallest groups move from train), where fractions alone would give them one."""
    raw, report = setup(tmp_path, _regions(12))
    one = run_split(params(min_groups=1), raw, report, tmp_path / "one")
    three = run_split(params(), raw, report, tmp_path / "three")

    def n(df: pd.DataFrame) -> dict[str, int]:
        return df.groupby("split")["group"].nunique().to_dict()

    assert n(one) == {"train": 10, "val": 1, "test": 1}
    assert n(three) == {"train": 6, "val": 3, "test": 3}
    assert json.loads((tmp_path / "three" / "summary.json").read_text())["min_groups"] == 3
    assert_disjoint(three, footprints(pd.read_csv(raw / "manifest.csv", dtype={"pair_id": str})))
    # too few groups for 3 each: levelled up as far as possible (no split empty first), with a warning
    raw, report = setup(tmp_path / "five", _regions(5))
    caplog.set_level(logging.WARNING)
    five = run_split(params(), raw, report, tmp_path / "five" / "s")
    assert sorted(n(five).values()) == [1, 2, 2] and "split.min_groups 3" in caplog.text


def test_neighbours_across_utm_zones_are_grouped(tmp_path):
    """Chips either side of a zone boundary are compared in lon/lat."""

    def utm(lon: float, lat: float, epsg: int) -> tuple[float, float]:
        xs, ys = warp_transform("EPSG:4326", f"EPSG:{epsg}", [lon], [lat])
        return xs[0], ys[0]

    rows = [
        chip_row("w", "EPSG:32720", *utm(-60.003, -3.5, 32720)),
        chip_row("e", "EPSG:32721", *utm(-59.997, -3.5, 32721)),
        chip_row("far", "EPSG:32721", *utm(-59.0, -3.5, 32721)),
    ]
    raw, report = setup(tmp_path, rows, files=True)
    # two groups (the point here): no test split, allowed
    df = run_split(params(group_cell_m=1000.0, allow_empty_test=True), raw, report, tmp_path / "s").set_index("pair_id")
    assert df.loc["w", "group"] == df.loc["e", "group"] != df.loc["far", "group"]
    assert df.loc["w", "lon"] == pytest.approx(-60.003, abs=0.01)


def test_only_accepted_source_split_kept_and_ungeoreferenced_warned(tmp_path, caplog):
    rows = moving_square_lines(6, 2)
    rows += [dict(chip_row(f"png{i}", "EPSG:32720", 0, 0, source_split="val"), crs="") for i in range(3)]
    raw, report = setup(tmp_path, rows, rejected={"l00_0", "l00_1"})
    caplog.set_level(logging.WARNING)
    df = run_split(params(), raw, report, tmp_path / "s").set_index("pair_id")
    assert "l00_0" not in df.index and len(df) == len(rows) - 2
    assert (df.loc[["png0", "png1", "png2"], "split"] == "val").all()
    assert df.loc[["png0", "png1", "png2"], "group"].nunique() == 3
    assert "not georeferenced" in caplog.text


def test_assert_disjoint_raises_on_crafted_leaks(tmp_path):
    rows = moving_square_lines(6, 3)
    raw, report = setup(tmp_path, rows, files=True)
    df = run_split(params(), raw, report, tmp_path / "s")
    manifest = footprints(pd.read_csv(raw / "manifest.csv", dtype={"pair_id": str}), raw)
    assert_disjoint(df, manifest)  # the real split is clean

    # 1) a group straddling two splits
    leak = df.copy()
    i = leak.index[leak["pair_id"] == "l00_1"][0]
    leak.loc[i, "split"] = "test" if leak.loc[i, "split"] != "test" else "train"
    with pytest.raises(SplitLeakError, match="straddle"):
        assert_disjoint(leak, manifest)
    # 2) overlapping footprints in different groups and splits (group labels forged)
    leak.loc[i, "group"] = "forged"
    with pytest.raises(SplitLeakError, match="overlaps"):
        assert_disjoint(leak, manifest)
    # without the footprint columns it rebuilds them from x0/y0 and still catches it
    with pytest.raises(SplitLeakError, match="overlaps"):
        assert_disjoint(leak, pd.read_csv(raw / "manifest.csv", dtype={"pair_id": str}))


def test_resolve_pair_paths(tmp_path, monkeypatch):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    (raw / "a_LR.tif").write_bytes(b"x")
    fixed = tmp_path / "data" / "filter" / "a_LR_fixed.tif"
    fixed.parent.mkdir(parents=True)
    fixed.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    m = {"lr_file": "a_LR.tif", "hr_file": "a_HR.tif"}
    assert resolve_pair_paths(raw, m, {"lr_path": "", "hr_path": ""}) == (raw / "a_LR.tif", raw / "a_HR.tif")
    assert resolve_pair_paths(raw, m, None)[0] == raw / "a_LR.tif"
    lr, _ = resolve_pair_paths(raw, m, {"lr_path": "data/filter/a_LR_fixed.tif", "hr_path": ""})
    assert lr.resolve() == fixed.resolve()
    lr, _ = resolve_pair_paths(raw, m, {"lr_path": str(fixed), "hr_path": ""})
    assert lr == fixed


def test_no_accepted_pairs_is_an_error(tmp_path):
    rows = moving_square_lines(1, 2)
    raw, report = setup(tmp_path, rows, rejected={"l00_0", "l00_1"})
    with pytest.raises(ValueError, match="no accepted pairs"):
        run_split(params(), raw, report, tmp_path / "s")
