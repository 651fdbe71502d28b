"""GeoTIFF writing (atomic, tagged) and reading (errors name the file), and the manifest."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from satsr.data import manifest
from satsr.data.geotiff import (
    RasterError,
    RasterWriteError,
    checked_write,
    encoding_of,
    read_raster,
    verify_raster,
    write_geotiff,
)
from satsr.data.grids import nested_grids
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB
from satsr.util import sha256_file


def _chip(tmp_path, name="a.tif"):
    lr, _ = nested_grids(500000.0, 9600000.0, "EPSG:32720", 16)
    data = np.full((3, 16, 16), 10000, dtype=np.uint16)
    digest = write_geotiff(tmp_path / name, data, lr, L8_C2_L2, LANDSAT_RGB, {"DATE_ACQUIRED": "2020-01-02"})
    return tmp_path / name, digest, lr


def test_written_chip_carries_georeference_encoding_and_tags(tmp_path):
    path, digest, grid = _chip(tmp_path)
    assert digest == sha256_file(path)
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32720
        assert src.transform.a == 30 and src.transform.c == grid.x0 and src.transform.f == grid.y0
        assert src.nodata == 0 and src.dtypes[0] == "uint16"
        assert src.descriptions == LANDSAT_RGB
        assert src.scales == (2.75e-5,) * 3 and src.offsets == (-0.2,) * 3
        assert src.tags()["DATE_ACQUIRED"] == "2020-01-02"
    r = read_raster(path)
    assert encoding_of(r) == L8_C2_L2
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]  # no temp files left behind


def test_failed_write_leaves_nothing_under_the_final_name(tmp_path):
    lr, _ = nested_grids(500000.0, 9600000.0, "EPSG:32720", 16)
    with pytest.raises(ValueError, match="does not match grid"):
        write_geotiff(tmp_path / "b.tif", np.zeros((3, 8, 8), np.uint16), lr, L8_C2_L2, LANDSAT_RGB)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    path, _, _ = _chip(tmp_path)
    truncated = tmp_path / "cut.tif"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(RasterError, match="cut.tif"):
        read_raster(truncated)
    with pytest.raises(RasterError, match="nope.tif: file not found"):
        read_raster(tmp_path / "nope.tif")


def test_manifest_round_trip_and_completeness(tmp_path):
    path, digest, _ = _chip(tmp_path, "x_L8.tif")
    hr, hr_digest, _ = _chip(tmp_path, "x_S2.tif")
    row = {"pair_id": "x", "lr_file": path.name, "hr_file": hr.name, "lr_sha256": digest, "hr_sha256": hr_digest}
    manifest.write_manifest(tmp_path, [row])
    df = manifest.read_manifest(tmp_path)
    assert list(df.columns) == manifest.COLUMNS and df.loc[0, "pair_id"] == "x"
    assert manifest.is_complete(tmp_path, df.iloc[0])
    hr.write_bytes(b"changed")
    assert not manifest.is_complete(tmp_path, df.iloc[0])
    (tmp_path / "stray.tif").write_bytes(b"")
    assert manifest.prune_unlisted(tmp_path, {"x_L8.tif", "x_S2.tif"}) == ["stray.tif"]
    with pytest.raises(FileNotFoundError, match="run the 'source' stage"):
        manifest.read_manifest(tmp_path / "empty")
    pd.DataFrame({"pair_id": ["y"]}).to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="lacks columns"):
        manifest.read_manifest(tmp_path)


def test_chip_name_follows_the_seed_layout():
    assert manifest.chip_name(7, "2021-03-14", "L8", -62.12346, -3.5) == "00007_2021-03-14_L8_-62.1235_-3.5000.tif"


# ------------------------------------------------------------------ checked writes (issue 13, item 1)
def _dev_full_temp(monkeypatch):
    """Every atomic temporary is a symlink to /dev/full: GDAL's writes fail with ENOSPC, as on a full disk."""
    import satsr.util

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")

    def fake(dest):
        tmp = dest.with_name(f".{dest.name}.0badf00d{satsr.util.PART_SUFFIX}")
        tmp.symlink_to("/dev/full")
        return tmp

    monkeypatch.setattr(satsr.util, "_create_temp", fake)


def test_a_full_disk_fails_the_chip_write_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path, digest, grid = _chip(tmp_path)
    _dev_full_temp(monkeypatch)
    with pytest.raises(RasterWriteError, match=r"a\.tif: writing failed: .*\(expected a writable folder"):
        write_geotiff(path, np.full((3, 16, 16), 7, np.uint16), grid, L8_C2_L2, LANDSAT_RGB)
    assert sha256_file(path) == digest
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]


def test_a_gdal_error_that_is_only_logged_fails_the_write(tmp_path):
    """GDAL reports e.g. a failed block flush at close only through its error handler (rasterio logs it)."""
    import logging

    dest = tmp_path / "x.tif"
    with pytest.raises(RasterWriteError, match=r"x\.tif: writing failed: TIFFAppendToStrip:Write error"):
        with checked_write(dest) as tmp:
            with rasterio.open(tmp, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8") as dst:
                dst.write(np.ones((1, 4, 4), np.uint8))
            logging.getLogger("rasterio._env").info("GDAL signalled an error: err_no=1, msg=%r",
                                                    "TIFFAppendToStrip:Write error at scanline 0")
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_file_does_not_read_back(tmp_path):
    data = np.random.default_rng(0).integers(1, 60000, (3, 600, 600), dtype=np.uint16)
    whole = tmp_path / "whole.tif"
    with rasterio.open(whole, "w", driver="GTiff", width=600, height=600, count=3, dtype="uint16", tiled=True,
                       blockxsize=256, blockysize=256) as dst:
        dst.write(data)
    verify_raster(whole, full=True)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(RasterWriteError, match=r"cut\.tif: the written file does not read back"):
        verify_raster(cut)
    with pytest.raises(RasterWriteError, match=r"copy\.tif: the written file does not read back \(.*IReadBlock failed"):
        with checked_write(tmp_path / "copy.tif") as tmp:
            tmp.write_bytes(cut.read_bytes())  # a writer that "succeeded" with a truncated file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tif", "whole.tif"]
