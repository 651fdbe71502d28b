"""Spatially disjoint train/val/test split of the accepted pairs.

The seed split overlapping chips at random, so test chips shared ground with training chips and its
scores were optimistic. Here chips are first joined into spatial groups (union-find) and whole
groups are assigned to splits:

* chips whose centres share a ``grids.cell_id`` cell of ``split.group_cell_m`` are one group;
* chips whose footprints overlap, touch or lie within ``split.near_m`` of each other are one group
  (the seed's moving square steps 1.95 x buffer, so neighbouring chips overlap and chain up).

Footprints are compared in their CRS when both chips share a projected CRS, else as lon/lat boxes
converted to metres. Non-georeferenced chips (the seed's PNGs) cannot be checked: each is its own
group, with a warning. Pairs imported with a split of their own (``source_split``) keep it.
Assignment is a seeded shuffle of the groups plus a greedy fill towards the fractions, so it is
deterministic for a seed; then every split is topped up to ``split.min_groups`` groups when there are
enough (the smallest groups move from the split with the most), because evaluation and selection
resample groups, not chips, for their confidence intervals (satsr.evaluate.stats).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from rasterio.warp import transform_bounds

from satsr.config import LR_PIXEL_M, Params, SplitParams
from satsr.data import grids
from satsr.data.grids import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQUATOR
from satsr.data.manifest import read_manifest
from satsr.errors import InputError, MissingInputError, SatsrError
from satsr.util import atomic_path

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_NAME = "split.csv"
SUMMARY_NAME = "summary.json"
#: Footprint columns added by :func:`footprints` (native CRS box and lon/lat box).
FOOTPRINT_COLUMNS = ["fp_crs", "minx", "miny", "maxx", "maxy", "lon_min", "lat_min", "lon_max", "lat_max"]


class SplitLeakError(SatsrError, AssertionError):
    """A spatial group or two overlapping footprints straddle two splits."""


# ----------------------------------------------------------------------------------- file paths
def resolve_pair_paths(
    raw_dir: Path, manifest_row: pd.Series | dict, report_row: pd.Series | dict | None
) -> tuple[Path | None, Path | None]:
    """The LR and HR files a later stage must read for a pair.

    The filter report's ``lr_path``/``hr_path`` win (they may point at a registration-corrected
    file), absolute or relative to the repo root (the working directory of DVC stages), or to the
    raw folder; empty or missing entries fall back to the manifest's files under ``raw_dir``.
    """
    out: list[Path | None] = []
    for side in ("lr", "hr"):
        chosen: Path | None = None
        given = report_row.get(f"{side}_path") if report_row is not None else None
        if isinstance(given, str) and given.strip():
            p = Path(given.strip())
            for cand in [p] if p.is_absolute() else [Path.cwd() / p, raw_dir / p, raw_dir.parent / p]:
                if cand.is_file():
                    chosen = cand
                    break
            if chosen is None:
                log.warning("report %s_path %s not found; falling back to the manifest's file", side, given)
        if chosen is None:
            name = manifest_row.get(f"{side}_file")
            if isinstance(name, str) and name:
                chosen = raw_dir / name
        out.append(chosen)
    return out[0], out[1]


def read_report(report_csv: Path) -> pd.DataFrame:
    """The filter report with string columns made safe (empty, not NaN)."""
    report_csv = Path(report_csv)
    if not report_csv.is_file():
        raise MissingInputError(f"{report_csv}: filter report not found (expected the filter stage's report.csv: "
                                "run `dvc repro filter`)")
    text_cols = ("pair_id", "status", "reasons", "detail", "lr_path", "hr_path")
    df = pd.read_csv(report_csv, dtype={c: str for c in text_cols}, keep_default_na=False, na_values={})
    for col in ("pair_id", "status"):
        if col not in df.columns:
            raise InputError(f"{report_csv}: report lacks column {col!r}")
    for col in text_cols:
        if col not in df.columns:
            df[col] = ""
    return df


# ----------------------------------------------------------------------------------- footprints
def _lonlat_box(crs: str, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    c = CRS.from_string(crs)
    if c.is_geographic:
        return box
    return tuple(transform_bounds(c, "EPSG:4326", *box, densify_pts=21))  # type: ignore[return-value]


def _box_from_manifest(row: pd.Series) -> tuple[float, float, float, float] | None:
    """Footprint from x0/y0 and the LR size, assuming 30 m pixels (or their degree equivalent)."""
    try:
        x0, y0, w, h = float(row["x0"]), float(row["y0"]), float(row["lr_width"]), float(row["lr_height"])
        crs = CRS.from_string(str(row["crs"]))
    except (ValueError, TypeError, KeyError, rasterio.errors.CRSError):
        return None
    if any(math.isnan(v) for v in (x0, y0, w, h)):
        return None
    if crs.is_geographic:
        px_y = LR_PIXEL_M / 1000.0 / KM_PER_DEG_LAT
        px_x = LR_PIXEL_M / 1000.0 / (KM_PER_DEG_LON_EQUATOR * max(math.cos(math.radians(y0)), 1e-6))
    else:
        px_x = px_y = LR_PIXEL_M
    return (x0, y0 - h * px_y, x0 + w * px_x, y0)


def footprints(
    manifest: pd.DataFrame, raw_dir: Path | None = None, report: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The manifest plus each chip's footprint (native and lon/lat boxes; NaN if not georeferenced).

    The LR file's own bounds are used when it can be read (exact for any pixel size), else the
    manifest's corner and size at 30 m.
    """
    rep = report.set_index("pair_id") if report is not None and len(report) else None
    recs = []
    for _, row in manifest.iterrows():
        crs = str(row.get("crs") or "") if isinstance(row.get("crs"), str) else ""
        box = None
        if raw_dir is not None:
            rrow = rep.loc[row["pair_id"]] if rep is not None and row["pair_id"] in rep.index else None
            lr_path, _ = resolve_pair_paths(Path(raw_dir), row, rrow)
            if lr_path is not None and lr_path.is_file():
                try:
                    with rasterio.open(lr_path) as src:
                        if src.crs is not None:
                            crs, box = src.crs.to_string(), tuple(src.bounds)
                        else:
                            crs = ""
                except RasterioError as err:
                    log.warning("split: %s unreadable (%s); footprint from the manifest", lr_path, err)
        if box is None and crs:
            box = _box_from_manifest(row)
        if box is None or not crs:
            recs.append({"fp_crs": "", **{c: math.nan for c in FOOTPRINT_COLUMNS[1:]}})
            continue
        ll = _lonlat_box(crs, box)
        recs.append(
            {
                "fp_crs": crs,
                "minx": box[0],
                "miny": box[1],
                "maxx": box[2],
                "maxy": box[3],
                "lon_min": ll[0],
                "lat_min": ll[1],
                "lon_max": ll[2],
                "lat_max": ll[3],
            }
        )
    fp = pd.DataFrame(recs, index=manifest.index, columns=FOOTPRINT_COLUMNS)
    out = manifest.drop(columns=[c for c in FOOTPRINT_COLUMNS if c in manifest.columns]).join(fp)
    return out


def _footprint_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Numpy views of the footprint columns (computed from the manifest when absent)."""
    if not set(FOOTPRINT_COLUMNS) <= set(df.columns):
        df = footprints(df)
    out = {c: df[c].to_numpy(dtype=float) for c in FOOTPRINT_COLUMNS[1:]}
    crs = df["fp_crs"].fillna("").astype(str).to_numpy()
    out["crs"] = crs
    projected = {c: (bool(c) and not CRS.from_string(c).is_geographic) for c in set(crs)}
    out["projected"] = np.array([projected[c] for c in crs], dtype=bool)
    out["geo"] = crs != ""
    return out


def _gap_and_overlap(a: dict[str, np.ndarray], i: int, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance in metres between footprint i and footprints j (0 if touching/overlapping), and
    the overlap extent (min of the x and y intersection widths, in metres; <= 0 means no overlap)."""
    same = (a["crs"][j] == a["crs"][i]) & a["projected"][j] & a["projected"][i]
    # native (metres) for same projected CRS
    gx = np.maximum(a["minx"][j] - a["maxx"][i], a["minx"][i] - a["maxx"][j])
    gy = np.maximum(a["miny"][j] - a["maxy"][i], a["miny"][i] - a["maxy"][j])
    # lon/lat boxes in metres (seed degree lengths, at the mean latitude)
    lat = np.radians((a["lat_min"][j] + a["lat_max"][j] + a["lat_min"][i] + a["lat_max"][i]) / 4.0)
    mx = KM_PER_DEG_LON_EQUATOR * 1000.0 * np.cos(lat)
    my = KM_PER_DEG_LAT * 1000.0
    lx = np.maximum(a["lon_min"][j] - a["lon_max"][i], a["lon_min"][i] - a["lon_max"][j]) * mx
    ly = np.maximum(a["lat_min"][j] - a["lat_max"][i], a["lat_min"][i] - a["lat_max"][j]) * my
    gx, gy = np.where(same, gx, lx), np.where(same, gy, ly)
    dist = np.hypot(np.maximum(gx, 0.0), np.maximum(gy, 0.0))
    overlap = np.minimum(-gx, -gy)
    return dist, overlap


# ----------------------------------------------------------------------------------- grouping
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def _cell(a: dict[str, np.ndarray], i: int, cell_m: float) -> str:
    """Cell of a chip centre: in its CRS if projected, else in the UTM zone of the centre."""
    cx, cy = (a["minx"][i] + a["maxx"][i]) / 2.0, (a["miny"][i] + a["maxy"][i]) / 2.0
    if a["projected"][i]:
        return grids.cell_id(cx, cy, a["crs"][i], cell_m)
    lon, lat = (a["lon_min"][i] + a["lon_max"][i]) / 2.0, (a["lat_min"][i] + a["lat_max"][i]) / 2.0
    epsg = f"EPSG:{grids.utm_epsg(lon, lat)}"
    xs, ys = warp_transform("EPSG:4326", epsg, [lon], [lat])
    return grids.cell_id(xs[0], ys[0], epsg, cell_m)


def spatial_groups(fp: pd.DataFrame, cell_m: float, near_m: float) -> np.ndarray:
    """Group label per row (stable: numbered by the smallest pair_id in each group)."""
    n = len(fp)
    a = _footprint_arrays(fp)
    uf = _UnionFind(n)
    geo = np.flatnonzero(a["geo"])
    first_in_cell: dict[str, int] = {}
    for i in geo:
        key = _cell(a, int(i), cell_m)
        if key in first_in_cell:
            uf.union(first_in_cell[key], int(i))
        else:
            first_in_cell[key] = int(i)
    for k, i in enumerate(geo[:-1]):
        j = geo[k + 1 :]
        dist, _ = _gap_and_overlap(a, int(i), j)
        for jj in j[dist <= near_m]:
            uf.union(int(i), int(jj))
    roots = np.array([uf.find(i) for i in range(n)])
    ids = fp["pair_id"].astype(str).to_numpy()
    first = {}
    for r, pid in sorted(zip(roots, ids), key=lambda t: t[1]):
        first.setdefault(r, pid)
    order = {r: k for k, r in enumerate(sorted(first, key=lambda r: first[r]))}
    return np.array([f"g{order[r]:04d}" for r in roots])


def assign_groups(groups: np.ndarray, source_split: np.ndarray, sp: SplitParams) -> np.ndarray:
    """Split per row: fixed by source_split where given, else seeded shuffle + greedy fill."""
    fracs = {"train": sp.train, "val": sp.val, "test": sp.test}
    wanted = [s for s in SPLITS if fracs[s] > 0]
    sizes: dict[str, int] = {}
    fixed: dict[str, str] = {}
    for g, src in zip(groups, source_split):
        sizes[g] = sizes.get(g, 0) + 1
        src = src if isinstance(src, str) else ""
        if src:
            if src not in SPLITS:
                raise InputError(f"source_split {src!r} of group {g} is not one of {SPLITS}")
            if fixed.setdefault(g, src) != src:
                raise InputError(
                    f"spatial group {g} holds pairs the imported dataset put in both {fixed[g]!r} and {src!r}: its "
                    "own split leaks; re-import without source splits or lower split.group_cell_m / near_m"
                )
    counts = {s: 0 for s in SPLITS}
    assigned: dict[str, str] = {}
    for g, s in fixed.items():
        assigned[g] = s
        counts[s] += sizes[g]
    free = sorted(g for g in sizes if g not in fixed)
    order = [free[k] for k in np.random.default_rng(sp.seed).permutation(len(free))]
    total = len(groups)
    target = {s: fracs[s] * total for s in SPLITS}
    for g in order:
        s = max(wanted, key=lambda s: (target[s] - counts[s], -SPLITS.index(s)))
        assigned[g] = s
        counts[s] += sizes[g]
    # Every wanted split gets split.min_groups groups when possible, levelled up one group at a time
    # (first no split empty, then 2 each, ...): move the smallest free group of the split with the
    # most free groups, if it keeps more than the level itself.
    def n_groups(s: str) -> int:
        return sum(1 for v in assigned.values() if v == s)

    for level in range(1, sp.min_groups + 1):
        for s in wanted:
            while n_groups(s) < level:
                donors = {d: [g for g in order if assigned[g] == d] for d in wanted if d != s}
                donors = {d: gs for d, gs in donors.items() if gs and n_groups(d) > level}
                if not donors:
                    break
                d = max(donors, key=lambda d: (len(donors[d]), -SPLITS.index(d)))
                g = min(reversed(donors[d]), key=lambda g: sizes[g])
                assigned[g] = s
    empty = [s for s in SPLITS if not any(v == s for v in assigned.values())]
    check_not_empty(empty, len(sizes), total, sp)
    few = {s: n_groups(s) for s in wanted if s not in empty and n_groups(s) < sp.min_groups}
    if few:
        log.warning(
            "split: %s spatial group(s) (split.min_groups %d): confidence intervals over so few regions are coarse "
            "(none with 1). Add chips in more regions, or lower split.group_cell_m / split.near_m.",
            ", ".join(f"{s} has {n}" for s, n in few.items()),
            sp.min_groups,
        )
    return np.array([assigned[g] for g in groups])


# ---------------------------------------------------------------------------------- validation
class EmptySplitError(InputError):
    """The pairs form too few spatial groups to fill train, val and test (found before any training)."""


def check_not_empty(empty: list[str], n_groups: int, n_pairs: int, sp: SplitParams) -> None:
    """Fail here, not after hours of training: train and val must hold pairs; test too unless
    ``split.allow_empty_test`` (then evaluate skips and select ranks on val, with a warning here)."""
    if not empty:
        return
    fix = ("add chips from more (or more distant) places, or lower split.group_cell_m / split.near_m "
           "(chips closer than those always share a split)")
    what = (f"split: {n_groups} spatial group(s) for {n_pairs} pair(s) leave {' and '.join(empty)} empty")
    if set(empty) - {"test"}:
        raise EmptySplitError(f"{what} (expected at least one group in train and in val: training validates and "
                              f"select ranks on val); {fix}")
    if not sp.allow_empty_test:
        raise EmptySplitError(f"{what} (expected at least 3 groups: one each for train, val and test); {fix}, or "
                              "set split.allow_empty_test: true to train and select on val with no test score "
                              "(evaluate then skips)")
    log.warning("%s: split.allow_empty_test is true, so evaluate@<arch> will skip (no test score); select still "
                "ranks on val", what)


def assert_disjoint(split_df: pd.DataFrame, manifest_df: pd.DataFrame) -> None:
    """Raise SplitLeakError if a group, or two overlapping footprints, straddle two splits.

    ``manifest_df`` may carry the footprint columns of :func:`footprints`; without them the
    footprints are rebuilt from x0/y0 and the LR size (30 m pixels).
    """
    per_group = split_df.groupby("group")["split"].nunique()
    bad = per_group[per_group > 1]
    if len(bad):
        detail = (
            split_df[split_df["group"].isin(bad.index)].groupby("group")["split"].unique().head(5).to_dict()
        )
        raise SplitLeakError(f"{len(bad)} spatial group(s) straddle splits: {detail}")
    df = manifest_df.merge(split_df[["pair_id", "split"]], on="pair_id", how="inner")
    if len(df) < 2:
        return
    a = _footprint_arrays(df)
    splits = df["split"].to_numpy()
    ids = df["pair_id"].to_numpy()
    geo = np.flatnonzero(a["geo"])
    for k, i in enumerate(geo[:-1]):
        j = geo[k + 1 :]
        j = j[splits[j] != splits[i]]
        if not len(j):
            continue
        # overlap by more than a millimetre-scale tolerance (touching edges are not overlap)
        _, overlap = _gap_and_overlap(a, int(i), j)
        hit = j[overlap > 1e-3]
        if len(hit):
            raise SplitLeakError(
                f"pair {ids[i]} ({splits[i]}) overlaps {len(hit)} pair(s) in other splits, e.g. "
                f"{ids[hit[0]]} ({splits[hit[0]]})"
            )


# ------------------------------------------------------------------------------------- running
def run_split(params: Params, raw_dir: Path, report_csv: Path, out_dir: Path) -> pd.DataFrame:
    """Split the filter's accepted pairs; write split.csv and summary.json into ``out_dir``."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    sp = params.split
    manifest = read_manifest(raw_dir)
    report = read_report(report_csv)
    accepted = report.loc[report["status"].astype(str).str.strip() == "accepted", "pair_id"].astype(str)
    unknown = sorted(set(accepted) - set(manifest["pair_id"]))
    if unknown:
        log.warning(
            "split: %d accepted pair(s) are not in the manifest (stale report?), e.g. %s; ignored",
            len(unknown),
            unknown[:3],
        )
    m = manifest[manifest["pair_id"].isin(set(accepted))].sort_values("pair_id").reset_index(drop=True)
    if m.empty:
        raise InputError(f"{report_csv}: no accepted pairs to split ({len(report)} in the report)")

    fp = footprints(m, raw_dir, report[report["pair_id"].isin(set(m["pair_id"]))])
    n_nogeo = int((fp["fp_crs"] == "").sum())
    if n_nogeo:
        log.warning(
            "split: %d of %d pairs are not georeferenced; each is its own group and spatial "
            "disjointness cannot be checked for them",
            n_nogeo,
            len(fp),
        )
    groups = spatial_groups(fp, sp.group_cell_m, sp.near_m)
    splits = assign_groups(groups, fp["source_split"].fillna("").astype(str).to_numpy(), sp)
    lon = np.where(
        np.isfinite(fp["lon_min"]),
        (fp["lon_min"] + fp["lon_max"]) / 2.0,
        pd.to_numeric(fp["lon"], errors="coerce"),
    )
    lat = np.where(
        np.isfinite(fp["lat_min"]),
        (fp["lat_min"] + fp["lat_max"]) / 2.0,
        pd.to_numeric(fp["lat"], errors="coerce"),
    )
    split_df = pd.DataFrame(
        {"pair_id": fp["pair_id"], "split": splits, "group": groups, "lon": lon, "lat": lat}
    )
    assert_disjoint(split_df, fp)

    summary = {
        "pairs": {s: int((split_df["split"] == s).sum()) for s in SPLITS},
        "groups": {s: int(split_df.loc[split_df["split"] == s, "group"].nunique()) for s in SPLITS},
        "fraction": {s: round(float((split_df["split"] == s).mean()), 4) for s in SPLITS},
        "total_pairs": len(split_df),
        "total_groups": int(split_df["group"].nunique()),
        "min_groups": sp.min_groups,
        "allow_empty_test": sp.allow_empty_test,
        "ungeoreferenced_pairs": n_nogeo,
        "seed": sp.seed,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / SPLIT_NAME) as tmp:
        split_df.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(out_dir / SUMMARY_NAME) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("split: %s pairs in %s groups (train/val/test)", summary["pairs"], summary["groups"])
    return split_df
