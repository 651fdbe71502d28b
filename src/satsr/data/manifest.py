"""The raw dataset's manifest: one row per pair, the same columns whatever the provider.

It is the contract between `source` and everything after it, and the resume log of a download:
a pair counts as complete only when both files exist and match the recorded checksums.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from satsr.data.grids import Grid
from satsr.errors import InputError, MissingInputError
from satsr.util import atomic_path, sha256_file

MANIFEST_NAME = "manifest.csv"

COLUMNS = [
    "pair_id",          # unique, filesystem-safe
    "provider",         # demo | gee | folder
    "is_demo",          # True for the offline demo data, so nobody mistakes it for real imagery
    "region",
    "lon", "lat",       # chip centre, WGS84
    "crs",              # EPSG:326xx / 327xx ...
    "x0", "y0",         # shared upper-left corner of both grids, in crs units
    "lr_file", "hr_file",              # relative to the raw folder
    "lr_sha256", "hr_sha256",
    "lr_width", "lr_height", "hr_width", "hr_height",
    "lr_date", "hr_date", "days_apart",
    "lr_scene_id", "hr_scene_id",
    "lr_cloud", "hr_cloud",            # scene-level cloud metadata, %
    "lr_clear_fraction", "hr_clear_fraction",  # pixel-level, inside the chip
    "demo_defect",      # demo only: the defect planted on purpose ('' for good pairs)
    "source_split",     # folder/seed_png only: the split the imported dataset came with ('' otherwise)
    "extra",            # provider-specific JSON object ('' when none); s2sim: the drawn sensor-model values
]

#: Columns added after the first release: a manifest written before them still reads (as '').
OPTIONAL = ("extra",)


#: Values a provider may leave out: unknown acquisition metadata is empty (text) or NaN (numbers).
DEFAULTS: dict[str, Any] = {
    "is_demo": False, "lr_scene_id": "", "hr_scene_id": "", "lr_cloud": math.nan, "hr_cloud": math.nan,
    "lr_clear_fraction": math.nan, "hr_clear_fraction": math.nan, "demo_defect": "", "source_split": "", "extra": "",
}

#: Columns parsed as numbers; every other column stays text (a pair_id "NA" is not missing data).
NUMERIC = ("lon", "lat", "x0", "y0", "lr_width", "lr_height", "hr_width", "hr_height", "days_apart",
           "lr_cloud", "hr_cloud", "lr_clear_fraction", "hr_clear_fraction")


def grid_columns(lr_grid: Grid, hr_grid: Grid) -> dict[str, Any]:
    """The manifest's georeference columns of a pair on nested grids (both share the upper-left corner)."""
    return {"crs": lr_grid.crs, "x0": lr_grid.x0, "y0": lr_grid.y0,
            "lr_width": lr_grid.width, "lr_height": lr_grid.height,
            "hr_width": hr_grid.width, "hr_height": hr_grid.height}


def pair_row(**values: Any) -> dict[str, Any]:
    """One manifest row, in ``COLUMNS`` order: ``values`` over ``DEFAULTS``.

    Every provider builds its rows here, so the manifest cannot drift between them: a column that is
    neither given nor defaulted, or one that is not a manifest column, is a provider bug (TypeError).
    """
    unknown = sorted(set(values) - set(COLUMNS))
    missing = [c for c in COLUMNS if c not in values and c not in DEFAULTS]
    if unknown or missing:
        raise TypeError(f"manifest row: unknown column(s) {unknown}, missing column(s) {missing}")
    return {c: values[c] if c in values else DEFAULTS[c] for c in COLUMNS}


def read_manifest(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise MissingInputError(f"{path}: manifest not found (expected the source stage's manifest.csv: "
                                "run the 'source' stage first, `dvc repro source`, or `dvc checkout source`)")
    df = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in NUMERIC},
                     dtype={c: str for c in COLUMNS if c not in NUMERIC})
    for col in OPTIONAL:
        if col not in df.columns:
            df[col] = ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: manifest lacks columns {missing}")
    df["is_demo"] = df["is_demo"].str.lower().isin(("true", "1"))
    return df


def write_manifest(folder: str | Path, rows: list[dict] | pd.DataFrame) -> Path:
    """Atomically (re)write the manifest, rows sorted by pair_id for stable diffs and hashes."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df = df[COLUMNS].sort_values("pair_id").reset_index(drop=True)
    path = Path(folder) / MANIFEST_NAME
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6f")
    return path


def is_complete(folder: str | Path, row: dict | pd.Series) -> bool:
    """Both files present and matching the recorded checksums (resume test)."""
    folder = Path(folder)
    for side in ("lr", "hr"):
        name, digest = row.get(f"{side}_file"), row.get(f"{side}_sha256")
        if not isinstance(name, str) or not name or not isinstance(digest, str):
            return False
        p = folder / name
        if not p.is_file() or sha256_file(p) != digest:
            return False
    return True


def prune_unlisted(folder: str | Path, keep: set[str]) -> list[str]:
    """Remove rasters (and stray partial files) that are not in ``keep``; returns what was removed."""
    folder = Path(folder)
    removed = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.name == MANIFEST_NAME or p.is_dir():
            continue
        if p.name not in keep:
            os.unlink(p)
            removed.append(p.name)
    return removed


def chip_name(index: int, date: str, sensor: str, lon: float, lat: float) -> str:
    """The seed's naming: ``<id>_<date>_<sensor>_<lon>_<lat>.tif``."""
    return f"{index:05d}_{date}_{sensor}_{lon:.4f}_{lat:.4f}.tif"
