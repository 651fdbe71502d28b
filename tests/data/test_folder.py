"""The folder provider: seed TIF / seed PNG / pattern layouts, chip cutting, resume, bad inputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from PIL import Image
from scratch import smooth_field

from satsr.config import FolderParams, Params, PngParams, SourceParams
from satsr.data import grids
from satsr.data.filters import run_filter
from satsr.data.geotiff import encoding_of, read_raster, write_geotiff
from satsr.data.manifest import COLUMNS
from satsr.data.png import read_png16, run_png
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.data.registration import area_downsample
from satsr.data.sources import folder, run_source
from satsr.data.split import run_split


def folder_params(path: Path, layout: str, lr_size: int = 32, **kw) -> Params:
    return Params(
        source=SourceParams(
            provider="folder", lr_size=lr_size, folder=FolderParams(path=str(path), layout=layout, **kw)
        )
    )


def all_accepted_report(manifest: pd.DataFrame, path: Path) -> Path:
    """A minimal filter report: every pair accepted, files from the manifest (empty paths)."""
    pd.DataFrame(
        {
            "pair_id": manifest["pair_id"],
            "status": "accepted",
            "reasons": "",
            "detail": "",
            "lr_path": "",
            "hr_path": "",
        }
    ).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------ real L8S2PS data
@pytest.mark.realdata
def test_pattern_cuts_real_scenes_into_exact_3x_chips(realdata, tmp_path):
    src = realdata / "pairs_l8s2ps"
    params = folder_params(src, "pattern", lr_size=128)
    raw = tmp_path / "raw"
    df = run_source(params, raw)

    assert len(df) == 8
    assert list(df.columns) == COLUMNS
    assert set(df["provider"]) == {"folder"} and not df["is_demo"].any()
    assert set(df["region"]) == {"scene_1", "scene_2"}
    for row in df.itertuples():
        lr, hr = read_raster(raw / row.lr_file), read_raster(raw / row.hr_file)
        assert (lr.width, lr.height) == (128, 128) and (hr.width, hr.height) == (384, 384)
        assert lr.crs.to_epsg() == 4326 and row.crs == "EPSG:4326"
        # Exactly nested: the HR chip covers the LR chip's ground (its window was moved by whole HR px).
        lb, hb = (
            np.array(rasterio.transform.array_bounds(128, 128, lr.transform)),
            np.array(rasterio.transform.array_bounds(384, 384, hr.transform)),
        )
        assert np.all(np.abs(lb - hb) <= 1e-6 * hr.pixel_size)
        # Each chip is exactly its window of the source, with that window's transform.
        scene = row.region
        with rasterio.open(src / f"{scene}_Landsat-8.tif") as s:
            col, r = int(row.pair_id[-5:]), int(row.pair_id.split("_r")[1][:5])
            win = rasterio.windows.Window(col, r, 128, 128)
            np.testing.assert_array_equal(lr.data, s.read(window=win))
            assert lr.transform.almost_equals(rasterio.windows.transform(win, s.transform))
        enc = encoding_of(lr)
        assert lr.tags["SATSR_ENCODING"] == "uint8_stretched" and enc.scale == pytest.approx(1 / 255)
        assert lr.data.dtype == np.uint8
        assert folder.is_pseudo_reflectance(lr) and folder.is_pseudo_reflectance(hr)
    s1 = df[df["region"] == "scene_1"]
    assert s1["lon"].between(117.9, 118.0).all() and s1["lat"].between(37.75, 37.83).all()
    assert df[df["region"] == "scene_2"]["lat"].between(-34.4, -34.3).all()

    # Resume: nothing rewritten on a second run.
    mtimes = {p.name: p.stat().st_mtime_ns for p in raw.glob("*.tif")}
    again = run_source(params, raw)
    pd.testing.assert_frame_equal(again, df)
    assert {p.name: p.stat().st_mtime_ns for p in raw.glob("*.tif")} == mtimes

    # Then the real filter, the split and the PNG stage run on them.
    report_df = run_filter(params, raw, tmp_path / "filter")
    assert set(report_df["pair_id"]) == set(df["pair_id"])
    # 8-bit stretched chips are not reflectance: no absolute-reflectance rejection may hit them
    absolute = {"cloud", "haze", "bright", "saturated", "encoding"}
    for reasons in report_df["reasons"].fillna(""):
        assert not absolute & set(filter(None, reasons.split(";"))), reasons
    accepted = report_df[report_df["status"] == "accepted"]
    assert len(accepted) == 8, report_df[["pair_id", "reasons", "shift_px", "correlation"]]
    report = tmp_path / "filter" / "report.csv"
    # two scenes = two spatial groups: no test split, which split refuses unless allowed (issue 13, 10b)
    params = params.model_copy(update={"split": params.split.model_copy(update={"allow_empty_test": True})})
    split = run_split(params, raw, report, tmp_path / "split")
    assert set(split["pair_id"]) == set(accepted["pair_id"])
    # The four chips of a scene touch each other: each scene is one group in one split.
    merged = split.merge(df[["pair_id", "region"]], on="pair_id")
    assert merged.groupby("region")["split"].nunique().max() == 1
    assert merged.groupby("region")["group"].nunique().max() == 1
    index = run_png(
        params, raw, tmp_path / "split" / "split.csv", report, tmp_path / "png", tmp_path / "stats.json"
    )
    assert len(index) == len(accepted)
    for row in index.itertuples():
        lr = read_png16(tmp_path / "png" / row.lr_png)
        hr = read_png16(tmp_path / "png" / row.hr_png)
        assert lr.shape == (128, 128, 3) and hr.shape == (384, 384, 3) and hr.dtype == np.uint16


# ------------------------------------------------------------------------------------ seed_tif
def _seed_pair(
    folder_: Path, make_pair, pid: str, l8_date: str, s2_date: str, lon: float, lat: float, seed: int
):
    lr, hr, _ = make_pair(name=f"tmp{pid}", seed=seed, folder=folder_)
    lr.rename(folder_ / f"{pid}_{l8_date}_L8_{lon:.4f}_{lat:.4f}.tif")
    hr.rename(folder_ / f"{pid}_{s2_date}_S2_{lon:.4f}_{lat:.4f}.tif")


def test_seed_tif_pairs_by_name_and_reports_problems(tmp_path, make_pair, caplog):
    src = tmp_path / "seed"
    src.mkdir()
    _seed_pair(src, make_pair, "00001", "2020-01-05", "2020-01-05", -62.0, -3.5, 0)
    _seed_pair(src, make_pair, "00002", "2020-02-05", "2020-02-08", -62.1, -3.5, 1)  # S2 three days later
    # 00003: the S2 partner is missing
    lr, hr, _ = make_pair(name="tmp3", seed=2, folder=src)
    lr.rename(src / "00003_2020-03-05_L8_-62.2000_-3.5000.tif")
    hr.unlink()
    # 00004: the seed's size mismatch (HR 3 px short of 3x)
    lr_grid, hr_grid = grids.nested_grids(500000.0, 9600000.0, "EPSG:32720", 32)
    hr_short = grids.Grid(hr_grid.crs, hr_grid.x0, hr_grid.y0, hr_grid.pixel, 93, 93)
    write_geotiff(
        src / "00004_2020-04-05_L8_-62.3000_-3.5000.tif",
        np.full((3, 32, 32), 12000, np.uint16),
        lr_grid,
        L8_C2_L2,
        LANDSAT_RGB,
    )
    write_geotiff(
        src / "00004_2020-04-05_S2_-62.3000_-3.5000.tif",
        np.full((3, 93, 93), 900, np.uint16),
        hr_short,
        S2_SR,
        S2_RGB,
    )
    # 00005: an unreadable L8 file
    lr, hr, _ = make_pair(name="tmp5", seed=5, folder=src)
    lr.unlink()
    (src / "00005_2020-05-05_L8_-62.4000_-3.5000.tif").write_bytes(b"not a tiff at all")
    hr.rename(src / "00005_2020-05-05_S2_-62.4000_-3.5000.tif")
    (src / "notes.tif").write_bytes(b"x")  # does not follow the naming: ignored

    caplog.set_level(logging.INFO)
    raw = tmp_path / "raw"
    df = folder.run(folder_params(src, "seed_tif"), raw).set_index("pair_id")

    assert len(df) == 5
    p1 = df.loc["00001_2020-01-05_-62.0000_-3.5000"]
    assert p1["lr_date"] == "2020-01-05" and p1["days_apart"] == 0 and p1["crs"] == "EPSG:32720"
    assert p1["lr_scene_id"].startswith("00001_") and p1["hr_width"] == 96
    p2 = df.loc["00002_2020-02-05_-62.1000_-3.5000"]
    assert p2["hr_date"] == "2020-02-08" and p2["days_apart"] == 3 and p2["hr_file"]
    p3 = df.loc["00003_2020-03-05_-62.2000_-3.5000"]
    assert p3["lr_file"] and p3["hr_file"] == "" and p3["hr_sha256"] == ""
    p4 = df.loc["00004_2020-04-05_-62.3000_-3.5000"]
    assert (p4["lr_width"], p4["hr_width"]) == (32, 93)  # kept, not fixed: the filter rejects it
    assert read_raster(raw / p4["hr_file"]).width == 93
    p5 = df.loc["00005_2020-05-05_-62.4000_-3.5000"]
    assert p5["lr_file"] == "" and p5["lr_sha256"] == "" and p5["hr_file"]
    assert not folder.is_pseudo_reflectance(read_raster(raw / p1["lr_file"]))
    # chips keep the sensor encodings of the source
    assert read_raster(raw / p1["lr_file"]).tags["SATSR_ENCODING"] == L8_C2_L2.name
    assert read_raster(raw / p1["hr_file"]).tags["SATSR_ENCODING"] == S2_SR.name
    text = caplog.text
    assert "00003_2020-03-05_L8_-62.2000_-3.5000.tif" in text and "no HR partner" in text
    assert "00005_2020-05-05_L8_-62.4000_-3.5000.tif" in text
    assert "not 3x LR" in text and "off by" in text
    assert "do not follow the seed naming" in text


# ------------------------------------------------------------------------------------ seed_png
def _png8(path: Path, size: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(path)


def test_seed_png_layout_keeps_split_and_local_grid(tmp_path, caplog):
    src = tmp_path / "pngs"
    for split, names in (("train", ["a", "b", "c"]), ("val", ["d", "e"])):
        for i, n in enumerate(names):
            _png8(src / f"{split}_LR" / f"{n}.png", 20, i)
            if n != "e":  # val/e has no HR partner
                _png8(src / f"{split}_HR" / f"{n}.png", 60, i + 10)
    caplog.set_level(logging.WARNING)
    raw = tmp_path / "raw"
    df = folder.run(folder_params(src, "seed_png"), raw).set_index("pair_id")

    assert sorted(df.index) == ["train_a", "train_b", "train_c", "val_d", "val_e"]
    assert df.loc["train_a", "source_split"] == "train" and df.loc["val_d", "source_split"] == "val"
    assert df.loc["val_e", "hr_file"] == "" and df.loc["val_e", "hr_sha256"] == ""
    assert "e.png" in caplog.text
    assert (df["crs"].fillna("") == "").all() and df["lon"].isna().all()
    lr, hr = read_raster(raw / df.loc["train_a", "lr_file"]), read_raster(raw / df.loc["train_a", "hr_file"])
    assert lr.crs is None and hr.crs is None
    assert (lr.transform.a, hr.transform.a) == (30.0, 10.0)  # local grid: same extent, LR 30 / HR 10 units
    enc = encoding_of(lr)
    assert enc.scale == pytest.approx(1 / 255) and lr.tags["SATSR_ENCODING"] == "uint8_stretched"
    expected = np.asarray(Image.open(src / "train_LR" / "a.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(lr.data, expected)


# ------------------------------------------------------------------------------------- pattern
def test_pattern_cuts_utm_scene_and_resumes(tmp_path, make_pair):
    src = tmp_path / "scenes"
    src.mkdir()
    make_pair(name="big", lr_size=64, seed=3, folder=src)  # 64 px LR -> 4 chips of 32
    make_pair(name="small", lr_size=32, seed=4, folder=src)  # exactly one chip: imported whole
    params = folder_params(
        src, "pattern", lr_size=32, lr_pattern=r"(?P<key>.+)_L8\.tif$", hr_pattern=r"(?P<key>.+)_S2\.tif$"
    )
    raw = tmp_path / "raw"
    df = folder.run(params, raw).set_index("pair_id")
    assert sorted(df.index) == [
        "big_r00000_c00000",
        "big_r00000_c00032",
        "big_r00032_c00000",
        "big_r00032_c00032",
        "small",
    ]
    big_lr = read_raster(src / "big_L8.tif")
    for _pid, row in df.iterrows():
        lr, hr = read_raster(raw / row["lr_file"]), read_raster(raw / row["hr_file"])
        assert hr.width == 3 * lr.width == 96
        assert tuple(rasterio.transform.array_bounds(32, 32, lr.transform)) == pytest.approx(
            tuple(rasterio.transform.array_bounds(96, 96, hr.transform))
        )
        assert (row["x0"], row["y0"]) == (lr.transform.c, lr.transform.f)
        assert row["crs"] == "EPSG:32720" and -63.1 < row["lon"] < -62.9
    chip = read_raster(raw / df.loc["big_r00032_c00000", "lr_file"])
    np.testing.assert_array_equal(chip.data, big_lr.data[:, 32:64, 0:32])
    assert chip.transform.f == big_lr.transform.f - 32 * 30.0

    # Resume: a damaged chip is rewritten, a removed source is pruned, the rest is kept.
    damaged = raw / df.loc["big_r00000_c00000", "hr_file"]
    damaged.write_bytes(b"truncated")
    keep = raw / df.loc["big_r00032_c00032", "lr_file"]
    mtime = keep.stat().st_mtime_ns
    (src / "small_L8.tif").unlink()
    (src / "small_S2.tif").unlink()
    df2 = folder.run(params, raw).set_index("pair_id")
    assert "small" not in df2.index and not (raw / df.loc["small", "lr_file"]).exists()
    assert read_raster(damaged).width == 96
    assert keep.stat().st_mtime_ns == mtime

    # A different chip size invalidates everything (new ids, old chips pruned).
    df3 = folder.run(
        folder_params(
            src, "pattern", lr_size=64, lr_pattern=r"(?P<key>.+)_L8\.tif$", hr_pattern=r"(?P<key>.+)_S2\.tif$"
        ),
        raw,
    )
    assert list(df3["pair_id"]) == ["big"]
    assert sorted(p.name for p in raw.glob("*.tif")) == ["big_HR.tif", "big_LR.tif"]


def test_forced_and_float_encodings(tmp_path):
    src = tmp_path / "f"
    src.mkdir()
    lr_grid, hr_grid = grids.nested_grids(500000.0, 9600000.0, "EPSG:32720", 16)
    refl = np.full((3, 16, 16), 0.1, np.float32)
    profile = {
        "driver": "GTiff",
        "width": 16,
        "height": 16,
        "count": 3,
        "dtype": "float32",
        "crs": "EPSG:32720",
        "transform": lr_grid.to_rasterio(),
    }
    with rasterio.open(src / "x_Landsat-8.tif", "w", **profile) as dst:
        dst.write(refl)
    with rasterio.open(
        src / "x_Sentinel-2.tif",
        "w",
        **{**profile, "width": 48, "height": 48, "dtype": "uint16", "transform": hr_grid.to_rasterio()},
    ) as dst:
        dst.write(np.full((3, 48, 48), 1000, np.uint16))
    raw = tmp_path / "raw"
    df = folder.run(folder_params(src, "pattern", lr_size=16, hr_encoding="s2_dn"), raw)
    lr, hr = read_raster(raw / df.loc[0, "lr_file"]), read_raster(raw / df.loc[0, "hr_file"])
    assert lr.data.dtype == np.float32 and encoding_of(lr).to_reflectance(lr.data) == pytest.approx(0.1)
    assert encoding_of(hr).to_reflectance(hr.data) == pytest.approx(0.1)


def test_clear_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"nowhere: folder not found \(expected a folder; layout 'seed_tif' expects .*_L8_"
    ):
        folder.run(folder_params(tmp_path / "nowhere", "seed_tif"), tmp_path / "raw")
    (tmp_path / "empty").mkdir()
    for layout, hint in (("seed_tif", "_L8_"), ("seed_png", "train_LR"), ("pattern", "lr_pattern")):
        with pytest.raises(FileNotFoundError, match=hint) as info:
            folder.run(folder_params(tmp_path / "empty", layout), tmp_path / "raw")
        assert str(tmp_path / "empty") in str(info.value)
    with pytest.raises(ValueError, match="source.folder.path: not set"):
        folder.run(Params(source=SourceParams(provider="folder")), tmp_path / "raw")


def test_reimport_of_own_png_export_keeps_reflectance(tmp_path, make_pair):
    """The PNG stage writes the seed layout; seed_png re-imports it with the documented mapping."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        make_pair(name=f"p{i}", seed=i, folder=src)
    params = folder_params(
        src, "pattern", lr_pattern=r"(?P<key>.+)_L8\.tif$", hr_pattern=r"(?P<key>.+)_S2\.tif$"
    )
    raw = tmp_path / "raw"
    df = folder.run(params, raw)
    report = all_accepted_report(df, tmp_path / "report.csv")
    split_csv = tmp_path / "split.csv"
    pd.DataFrame(
        {
            "pair_id": df["pair_id"],
            "split": ["train", "val", "test"],
            "group": ["g0", "g1", "g2"],
            "lon": 0.0,
            "lat": 0.0,
        }
    ).to_csv(split_csv, index=False)
    run_png(params, raw, split_csv, report, tmp_path / "png", tmp_path / "stats.json")

    again = folder.run(folder_params(tmp_path / "png", "seed_png"), tmp_path / "raw2").set_index("pair_id")
    assert sorted(again.index) == ["test_p2", "train_p0", "val_p1"]
    assert again.loc["val_p1", "source_split"] == "val"
    back = read_raster(tmp_path / "raw2" / again.loc["train_p0", "hr_file"])
    orig = read_raster(raw / df.set_index("pair_id").loc["p0", "hr_file"])
    lo, hi = PngParams().reflectance_min, PngParams().reflectance_max
    np.testing.assert_allclose(
        encoding_of(back).to_reflectance(back.data),
        encoding_of(orig).to_reflectance(orig.data),
        atol=(hi - lo) / 65535,
    )


# ---------------------------------------------------------------- nested windows (satsr.data.nesting)
def _nesting_report(params: Params, raw: Path, df: pd.DataFrame, src: Path, lr_name: str, hr_name: str,
                    tmp: Path) -> pd.DataFrame:
    """Check every chip is exactly nested and is the source window its tags say; run the filter."""
    for row in df.itertuples():
        lr, hr = read_raster(raw / row.lr_file), read_raster(raw / row.hr_file)
        assert (hr.width, hr.height) == (3 * lr.width, 3 * lr.height)
        assert hr.transform.c == pytest.approx(lr.transform.c, abs=1e-9 * abs(lr.transform.a) + 1e-9)
        assert hr.transform.f == pytest.approx(lr.transform.f, abs=1e-9 * abs(lr.transform.a) + 1e-9)
        assert hr.transform.a == pytest.approx(lr.transform.a / 3, rel=1e-9)
        with rasterio.open(src / lr_name.format(key=row.region)) as s:
            col, r, w, h = (int(v) for v in lr.tags["SOURCE_WINDOW"].split(","))
            np.testing.assert_array_equal(lr.data, s.read(window=rasterio.windows.Window(col, r, w, h)))
        with rasterio.open(src / hr_name.format(key=row.region)) as s:
            col, r, w, h = (int(v) for v in hr.tags["SOURCE_WINDOW"].split(","))
            assert (w, h) == (hr.width, hr.height) and min(col, r) >= 0
            assert col + w <= s.width and r + h <= s.height
            np.testing.assert_array_equal(hr.data, s.read(window=rasterio.windows.Window(col, r, w, h)))
        assert "HR cut at" in hr.tags[folder.TAG_NESTING]
    return run_filter(params, raw, tmp / "filter")


@pytest.mark.realdata
@pytest.mark.parametrize("pairs,n_chips", [("pairs_l8s2ps", 8), ("pairs_homonim", 6)])
def test_real_pairs_are_cut_exactly_nested_and_pass_the_filter(realdata, tmp_path, pairs, n_chips):
    """pairs_l8s2ps: S2 origin 1 HR px below L8 (georeference) and the content 1-3 HR px off that;
    homonim: S2 4 columns / 1 row short of 3x L8, edges 10-20 m inside. Both: nested chips, all
    accepted, small measured residual shift (measured: <= 0.30 LR px, most <= 0.15)."""
    src = realdata / pairs
    params = folder_params(src, "pattern", lr_size=128)
    raw = tmp_path / "raw"
    df = folder.run(params, raw)
    assert len(df) == n_chips
    report = _nesting_report(params, raw, df, src, "{key}_Landsat-8.tif", "{key}_Sentinel-2.tif", tmp_path)
    assert (report["status"] == "accepted").all(), report[["pair_id", "reasons", "shift_px"]]
    assert report["shift_px"].max() <= 0.35 and report["shift_px"].median() <= 0.2
    if pairs == "pairs_homonim":  # README's aligned window: L8 cols 1..265, rows 0..452 (content: + 1 HR px down)
        lr_windows = [tuple(int(v) for v in read_raster(raw / f).tags["SOURCE_WINDOW"].split(","))
                      for f in df["lr_file"]]
        assert min(w[0] for w in lr_windows) == 1 and max(w[0] + w[2] for w in lr_windows) <= 266
        assert max(w[1] + w[3] for w in lr_windows) <= 454


@pytest.mark.realdata
def test_georeference_only_nesting_cuts_at_the_stated_offset(realdata, tmp_path):
    """coregister_hr_px 0: the HR window is where the georeferences put it (S2 row 0 = L8 sub-row 1)."""
    src = realdata / "pairs_l8s2ps"
    params = folder_params(src, "pattern", lr_size=128, coregister_hr_px=0)
    raw = tmp_path / "raw"
    df = folder.run(params, raw).set_index("pair_id")
    # 255 nested LR rows (row 0 would need S2 row -1): two chips sharing 1 LR row (max_chip_overlap_lr_px 8)
    assert sorted(df.index) == ["scene_1_r00001_c00000", "scene_1_r00001_c00128", "scene_1_r00128_c00000",
                                "scene_1_r00128_c00128", "scene_2_r00001_c00000", "scene_2_r00001_c00128",
                                "scene_2_r00128_c00000", "scene_2_r00128_c00128"]
    hr = read_raster(raw / df.loc["scene_1_r00001_c00000", "hr_file"])
    assert hr.tags["SOURCE_WINDOW"] == "0,2,384,384"  # S2 row 2 = sub-row 3 = the top of L8 row 1
    with rasterio.open(src / "scene_1_Sentinel-2.tif") as s:  # the HR chip's grid is its own georeference
        assert hr.transform.almost_equals(rasterio.windows.transform(rasterio.windows.Window(0, 2, 384, 384),
                                                                     s.transform), precision=1e-12)
    no_overlap = folder.run(folder_params(src, "pattern", lr_size=128, coregister_hr_px=0,
                                          max_chip_overlap_lr_px=0), tmp_path / "raw0")
    assert len(no_overlap) == 4  # one chip row per scene: the nested window is 1 px short of two


def _synthetic_scene(folder_: Path, name: str, offset: tuple[int, int], lie: tuple[int, int] = (0, 0),
                     lr_size: int = 40, short: tuple[int, int] = (4, 1), seed: int = 0) -> tuple[Path, Path]:
    """An L8 / S2 pair on one UTM grid whose S2 file starts ``offset`` HR px below / right of the L8
    origin and is ``short`` (cols, rows) HR px short of 3x; its georeference is off by ``lie`` HR px."""

    rng = np.random.default_rng(seed)
    field_ = smooth_field(rng, 3 * lr_size + 12)[:, :3 * lr_size, :3 * lr_size]  # HR ground on the LR sub-grid
    lr = area_downsample(field_, 3)
    oy, ox = offset
    hr = field_[:, oy:3 * lr_size - short[1], ox:3 * lr_size - short[0]]
    x0, y0 = 500000.0, 9600000.0
    lr_grid = grids.Grid("EPSG:32720", x0, y0, 30.0, lr_size, lr_size)
    hr_grid = grids.Grid("EPSG:32720", x0 + 10.0 * (ox + lie[1]), y0 - 10.0 * (oy + lie[0]), 10.0,
                         hr.shape[2], hr.shape[1])
    lr_path, hr_path = folder_ / f"{name}_L8.tif", folder_ / f"{name}_S2.tif"
    write_geotiff(lr_path, L8_C2_L2.from_reflectance(lr), lr_grid, L8_C2_L2, LANDSAT_RGB, {})
    write_geotiff(hr_path, S2_SR.from_reflectance(hr), hr_grid, S2_SR, S2_RGB, {})
    return lr_path, hr_path


@pytest.mark.parametrize("offset,lie,coregister", [((2, 1), (0, 0), 0), ((1, 2), (0, 0), 3), ((2, 1), (1, -2), 3)])
def test_pattern_nests_offset_and_short_scenes(tmp_path, offset, lie, coregister):
    """Any integer HR offset and non-3x extent nests exactly; a georeference that lies by whole HR
    px is corrected by content (coregister_hr_px) and the HR chip goes on the LR grid."""
    src = tmp_path / "src"
    src.mkdir()
    _synthetic_scene(src, "s", offset, lie)
    params = folder_params(src, "pattern", lr_size=16, coregister_hr_px=coregister, max_chip_overlap_lr_px=0,
                           lr_pattern=r"(?P<key>.+)_L8\.tif$", hr_pattern=r"(?P<key>.+)_S2\.tif$")
    params = params.model_copy(update={"filter": params.filter.model_copy(update={"min_sharpness": 0.0})})
    raw = tmp_path / "raw"
    df = folder.run(params, raw)
    # nested LR rows 1..38 and cols 1..37: two chips of 16 each way, the rest left out
    assert sorted(df["pair_id"]) == ["s_r00001_c00001", "s_r00001_c00017", "s_r00017_c00001", "s_r00017_c00017"]
    report = _nesting_report(params, raw, df, src, "{key}_L8.tif", "{key}_S2.tif", tmp_path)
    for row in df.itertuples():  # the HR chip is the LR chip's ground: block means agree
        lr = read_raster(raw / row.lr_file).data.astype(float) * 2.75e-5 - 0.2
        hr = read_raster(raw / row.hr_file).data.astype(float) * 1e-4

        np.testing.assert_allclose(area_downsample(hr, 3), lr, atol=2e-4)
    assert (report["status"] == "accepted").all() and report["shift_px"].max() <= 0.1
    tag = read_raster(raw / df["hr_file"].iloc[0]).tags[folder.TAG_NESTING]
    assert f"HR cut at ({offset[0]}, {offset[1]})" in tag


def test_nested_window_and_chip_placement():
    from satsr.data import nesting

    # the homonim geometry: L8 267 x 454, S2 797 x 1361 starting 20 m (2 HR px) right of L8
    w = nesting.nested_window((267, 454), (797, 1361), (0, 2))
    assert (w.lr_col, w.cols, w.lr_row, w.rows) == (1, 265, 0, 453)  # README: L8 cols 1..265, rows 0..452
    assert (w.hr_col, w.hr_row) == (1, 0)  # README: S2 cols 1..795, rows 0..1358
    hw = w.hr_window(0, 0, w.rows, w.cols)
    assert (hw.col_off + hw.width, hw.row_off + hw.height) == (796, 1359)
    assert nesting.nested_window((10, 10), (30, 30), (31, 0)) is None  # no shared LR pixel
    assert nesting.place_chips(255, 128, 8) == [(0, 128), (127, 128)]
    assert nesting.place_chips(255, 128, 0) == [(0, 128)]
    assert nesting.place_chips(453, 128, 8) == [(0, 128), (128, 128), (256, 128)]
    assert nesting.place_chips(100, 128, 8) == [(0, 100)]
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    utm = CRS.from_epsg(32633)
    assert nesting.grid_offset(utm, Affine(30, 0, 0, 0, -30, 0), utm, Affine(10, 0, 20, 0, -10, -10)) == (1.0, 2.0)
    assert "different CRS" in nesting.grid_offset(utm, Affine(30, 0, 0, 0, -30, 0), CRS.from_epsg(4326),
                                                  Affine(10, 0, 0, 0, -10, 0))
    assert "not 3x" in nesting.grid_offset(utm, Affine(30, 0, 0, 0, -30, 0), utm, Affine(20, 0, 0, 0, -20, 0))


def test_pattern_cuts_non_georeferenced_scenes_on_the_same_window(tmp_path):
    src = tmp_path / "pngs"
    _png8(src / "x_LR.png", 64, 1)
    _png8(src / "x_HR.png", 192, 2)
    params = folder_params(src, "pattern", lr_size=32, lr_pattern=r"(?P<key>.+)_LR\.png$",
                           hr_pattern=r"(?P<key>.+)_HR\.png$")
    df = folder.run(params, tmp_path / "raw")
    assert sorted(df["pair_id"]) == ["x_r00000_c00000", "x_r00000_c00032", "x_r00032_c00000", "x_r00032_c00032"]
    hr = read_raster(tmp_path / "raw" / df.loc[df["pair_id"] == "x_r00032_c00000", "hr_file"].iloc[0])
    assert hr.tags["SOURCE_WINDOW"] == "0,96,96,96" and hr.crs is None
