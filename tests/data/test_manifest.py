"""The manifest row builder every provider uses: one set of columns, defaults for unknown metadata."""

from __future__ import annotations

import math

import pytest

from satsr.data import manifest
from satsr.data.grids import nested_grids


def _required() -> dict:
    lr, hr = nested_grids(500000.0, 9600000.0, "EPSG:32720", 16)
    return dict(pair_id="p1", provider="folder", region="r", lon=-62.0, lat=-3.5, **manifest.grid_columns(lr, hr),
                lr_file="p1_L8.tif", hr_file="p1_S2.tif", lr_sha256="a" * 64, hr_sha256="b" * 64,
                lr_date="2020-01-01", hr_date="2020-01-03", days_apart=2)


def test_pair_row_has_every_column_in_order_with_defaults():
    row = manifest.pair_row(**_required(), source_split="val")
    assert list(row) == manifest.COLUMNS
    assert row["hr_width"] == 3 * row["lr_width"] == 48 and row["crs"] == "EPSG:32720"
    assert row["is_demo"] is False and row["demo_defect"] == "" and row["source_split"] == "val"
    assert math.isnan(row["lr_cloud"]) and row["lr_scene_id"] == ""


def test_pair_row_rejects_unknown_and_missing_columns():
    with pytest.raises(TypeError, match=r"unknown column\(s\) \['cloud'\]"):
        manifest.pair_row(**_required(), cloud=3.0)
    values = _required()
    del values["lr_sha256"]
    with pytest.raises(TypeError, match=r"missing column\(s\) \['lr_sha256'\]"):
        manifest.pair_row(**values)


def test_rows_round_trip_through_the_manifest_file(tmp_path):
    manifest.write_manifest(tmp_path, [manifest.pair_row(**_required())])
    df = manifest.read_manifest(tmp_path)
    assert df.loc[0, "pair_id"] == "p1" and df.loc[0, "lr_width"] == 16 and not df.loc[0, "is_demo"]
