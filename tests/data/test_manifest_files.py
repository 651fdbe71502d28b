"""The manifest file itself: reading (types, errors naming the file), writing (sorted, every
column), the resume test on checksums, pruning of unlisted files, and the seed's chip names.
(The row builder is tested in test_manifest.py.)"""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import pytest

from satsr.data import manifest


def _row(pair_id: str, lr_file: str = "", hr_file: str = "", **kw) -> dict:
    return {"pair_id": pair_id, "provider": "folder", "is_demo": False, "region": "r", "lon": -62.0, "lat": -3.5,
            "crs": "EPSG:32720", "x0": 500000.0, "y0": 9600000.0, "lr_file": lr_file, "hr_file": hr_file,
            "lr_width": 16, "lr_height": 16, "hr_width": 48, "hr_height": 48, "days_apart": 2, **kw}


def test_write_sorts_fills_columns_and_read_keeps_types(tmp_path):
    path = manifest.write_manifest(tmp_path, [_row("b2", lr_cloud=12.5), _row("NA", is_demo=True), _row("a1")])
    assert path == tmp_path / manifest.MANIFEST_NAME
    header = path.read_text().splitlines()[0].split(",")
    assert header == manifest.COLUMNS
    df = manifest.read_manifest(tmp_path)
    assert list(df["pair_id"]) == ["NA", "a1", "b2"]  # sorted; "NA" is an id, not missing data
    assert df["is_demo"].tolist() == [True, False, False]
    assert df["lr_width"].tolist() == [16, 16, 16] and df.loc[2, "lr_cloud"] == 12.5
    assert math.isnan(df.loc[0, "lr_cloud"])  # numeric column left empty -> NaN
    assert df.loc[0, "demo_defect"] == "" and df.loc[0, "crs"] == "EPSG:32720"
    assert not list(tmp_path.glob(".*.part"))


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / manifest.MANIFEST_NAME}: manifest not found"):
        manifest.read_manifest(tmp_path)
    pd.DataFrame([{"pair_id": "p", "provider": "demo"}]).to_csv(tmp_path / manifest.MANIFEST_NAME, index=False)
    with pytest.raises(ValueError, match=r"manifest\.csv: manifest lacks columns \[.*'lr_file'"):
        manifest.read_manifest(tmp_path)


def test_is_complete_needs_both_files_with_their_checksums(tmp_path):
    (tmp_path / "p_L8.tif").write_bytes(b"landsat bytes")
    (tmp_path / "p_S2.tif").write_bytes(b"sentinel bytes")
    row = _row("p", "p_L8.tif", "p_S2.tif", lr_sha256=hashlib.sha256(b"landsat bytes").hexdigest(),
               hr_sha256=hashlib.sha256(b"sentinel bytes").hexdigest())
    assert manifest.is_complete(tmp_path, row)
    assert manifest.is_complete(tmp_path, pd.Series(row))
    assert not manifest.is_complete(tmp_path, {**row, "hr_sha256": "0" * 64})  # truncated / other download
    assert not manifest.is_complete(tmp_path, {**row, "lr_sha256": math.nan})  # checksum never recorded
    assert not manifest.is_complete(tmp_path, {**row, "hr_file": ""})
    (tmp_path / "p_S2.tif").unlink()
    assert not manifest.is_complete(tmp_path, row)


def test_prune_unlisted_removes_only_stray_files(tmp_path):
    for name in ("keep_L8.tif", "old_L8.tif", ".keep_S2.tif.1a2b.part"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    manifest.write_manifest(tmp_path, [_row("keep", "keep_L8.tif")])
    removed = manifest.prune_unlisted(tmp_path, {"keep_L8.tif"})
    assert removed == [".keep_S2.tif.1a2b.part", "old_L8.tif"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep_L8.tif", manifest.MANIFEST_NAME, "sub"]
    assert manifest.prune_unlisted(tmp_path / "absent", set()) == []


def test_chip_name_follows_the_seed():
    assert manifest.chip_name(7, "2021-03-04", "L8", -62.123456, -3.5) == "00007_2021-03-04_L8_-62.1235_-3.5000.tif"
