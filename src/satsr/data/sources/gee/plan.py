"""Offline planning: chip locations on Landsat's grid, scene tables, pairing and ranking, and the
grids of one pair. Pure functions (no requests), so ``satsr source --plan`` and the tests use them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from satsr.config import HR_PIXEL_M, LR_PIXEL_M, GeeParams, Params
from satsr.data import grids
from satsr.data.grids import Grid
from satsr.data.sources.gee.common import BYTES_PER_PIXEL, LANDSAT9_COLLECTION


@dataclass(frozen=True)
class Location:
    """One chip of a region's moving-square scan, planned on Landsat's grid convention in the
    northern UTM zone of its centre (the zone Landsat products use there)."""

    region: str
    index: int  # within the region
    ordinal: int  # over all regions, in params order (pair numbers follow it)
    lon: float  # centre of the snapped grid, WGS84
    lat: float
    lr_grid: Grid
    hr_grid: Grid

    @property
    def key(self) -> str:
        return f"{self.region}/{self.index:03d}"

    @property
    def zone(self) -> int:
        zone = grids.epsg_zone(self.lr_grid.crs)
        assert zone is not None
        return zone


def _transform(src: str, dst: str, x: float, y: float) -> tuple[float, float]:
    from rasterio.warp import transform

    xs, ys = transform(src, dst, [x], [y])
    return float(xs[0]), float(ys[0])


def centre(grid: Grid) -> tuple[float, float]:
    xmin, ymin, xmax, ymax = grid.bounds
    return (xmin + xmax) / 2, (ymin + ymax) / 2


def plan_locations(params: Params) -> list[Location]:
    """Chip locations of every region (pure, offline): EPSG:326xx of the centre's zone (negative
    northings south of the equator), LR corner on Landsat's lattice (edges at 15 mod 30 m)."""
    src = params.source
    out: list[Location] = []
    for region in src.gee.regions:
        centres = grids.moving_square(
            region.start, region.count, buffer_m=src.buffer_m, step_factor=src.gee.step_factor,
            heading_deg=region.heading_deg, end=region.end if region.mode == "between" else None,
        )
        for i, (lon, lat) in enumerate(centres):
            crs = f"EPSG:{grids.landsat_epsg(lon)}"
            lr, hr = grids.landsat_grids(*_transform("EPSG:4326", crs, lon, lat), crs, src.lr_size)
            clon, clat = _transform(crs, "EPSG:4326", *centre(lr))
            out.append(Location(region.name, i, len(out), clon, clat, lr, hr))
    return out


def landsat_collections(gee: GeeParams) -> list[str]:
    colls = list(dict.fromkeys(gee.landsat_collections))
    if gee.include_landsat9 and LANDSAT9_COLLECTION not in colls:
        colls.append(LANDSAT9_COLLECTION)
    return colls


def landsat_sensor(scene_id: str) -> str:
    """'L9' for Landsat 9 scenes, else 'L8' (the LR chip's label in names and tags)."""
    return "L9" if "LC09" in scene_id.upper() else "L8"


# ------------------------------------------------------------------------------------ scenes
SCENE_COLUMNS = ["location", "scene_id", "time", "cloud", "crs", "transform", "mgrs"]
PAIR_COLUMNS = [
    "location", "lr_scene_id", "hr_scene_id", "lr_time", "hr_time", "lr_date", "hr_date", "days_apart",
    "month", "lr_cloud", "hr_cloud", "combined_cloud", "lr_clear_fraction", "hr_clear_fraction",
]


def scenes_table(location: str, scenes: Iterable[Mapping[str, Any]], max_cloud: float) -> pd.DataFrame:
    """Backend search results -> a scene table; drops unknown (< 0) or too high cloud cover again."""
    df = pd.DataFrame(
        [{"location": location, "scene_id": s["id"], "time": pd.to_datetime(int(s["time"]), unit="ms", utc=True),
          "cloud": float(s["cloud"]), "crs": s.get("crs"), "transform": s.get("transform"), "mgrs": s.get("mgrs")}
         for s in scenes],
        columns=SCENE_COLUMNS,
    )
    return df[(df["cloud"] >= 0) & (df["cloud"] <= max_cloud)].reset_index(drop=True)


def scene_zone(crs: Any, mgrs: Any = None) -> int | None:
    """UTM zone a scene is projected in: Sentinel-2's MGRS_TILE ('22MBT' -> 22), else its CRS."""
    if isinstance(mgrs, str) and mgrs[:2].isdigit():
        return int(mgrs[:2])
    return grids.epsg_zone(crs) if crs else None


def same_zone(table: pd.DataFrame, zone: int) -> pd.Series:
    """Rows of a scene table projected in ``zone`` (unknown projection: assumed to be)."""
    zones = [scene_zone(c, m) for c, m in zip(table["crs"], table["mgrs"])]
    return pd.Series([z is None or z == zone for z in zones], index=table.index, dtype=bool)


def match_scenes(l8: pd.DataFrame, s2: pd.DataFrame, max_days_apart: int, one_pair_per_month: bool) -> pd.DataFrame:
    """Pair Landsat and Sentinel-2 scenes of the same location at most ``max_days_apart`` apart.

    Inputs have ``location, scene_id, time`` (UTC), ``cloud`` (scene %), optionally
    ``clear_fraction`` (inside the chip). The gap is counted in calendar days (UTC). With
    ``one_pair_per_month`` only the best pair per location and month (of the Landsat date) is kept,
    by :func:`rank_pairs`. Output: :data:`PAIR_COLUMNS`, sorted by location and date. Pure.
    """
    pairs = rank_pairs(l8, s2, max_days_apart)
    if one_pair_per_month:
        pairs = pairs[pairs["rank"] == 0]
    pairs = pairs.sort_values(["location", "lr_time", "hr_time", "lr_scene_id", "hr_scene_id"])
    return pairs[PAIR_COLUMNS].reset_index(drop=True)


def rank_pairs(l8: pd.DataFrame, s2: pd.DataFrame, max_days_apart: int) -> pd.DataFrame:
    """Every pair within ``max_days_apart``, with its ``rank`` inside its location and month.

    Best first: the higher chip clear fraction (the worse of the two chips), then the smaller gap,
    then a Sentinel-2 scene in the chip's own zone (``foreign`` False, when the table has it) over
    its twin from the next zone, then the scene ids (stable ties). Scene-wide cloud cover does not
    rank: the chip is what counts.
    """
    cols = [*PAIR_COLUMNS, "rank"]
    if l8.empty or s2.empty:
        return pd.DataFrame(columns=cols)

    def side(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
        keep = ["location", "scene_id", "time", "cloud"] + [c for c in ("clear_fraction", "foreign") if c in table]
        out = table[keep].rename(columns={c: f"{prefix}_{c}" for c in keep if c != "location"})
        out[f"{prefix}_day"] = pd.to_datetime(out[f"{prefix}_time"], utc=True).dt.normalize().dt.tz_localize(None)
        return out.reset_index(drop=True)

    lr, hr = side(l8, "lr"), side(s2, "hr")
    # one Landsat row per allowed day offset, then an exact join on (location, day): no cross product
    offsets = np.arange(-max_days_apart, max_days_apart + 1)
    lr = lr.iloc[np.repeat(np.arange(len(lr)), len(offsets))].reset_index(drop=True)
    lr["join_day"] = lr["lr_day"] + pd.to_timedelta(np.tile(offsets, len(lr) // len(offsets)), unit="D")
    pairs = lr.merge(hr, left_on=["location", "join_day"], right_on=["location", "hr_day"])
    if pairs.empty:
        return pd.DataFrame(columns=cols)
    pairs["lr_date"] = pairs["lr_day"].dt.strftime("%Y-%m-%d")
    pairs["hr_date"] = pairs["hr_day"].dt.strftime("%Y-%m-%d")
    pairs["days_apart"] = (pairs["hr_day"] - pairs["lr_day"]).dt.days.abs().astype(int)
    pairs["month"] = pairs["lr_day"].dt.strftime("%Y-%m")
    for col in ("lr_cloud", "hr_cloud", "lr_clear_fraction", "hr_clear_fraction"):
        pairs[col] = pairs[col].astype(float) if col in pairs else np.nan
    pairs["combined_cloud"] = pairs["lr_cloud"] + pairs["hr_cloud"]
    pairs["_clear"] = -np.fmin(pairs["lr_clear_fraction"], pairs["hr_clear_fraction"]).fillna(0.0)
    pairs["_foreign"] = pairs["hr_foreign"].astype(bool) if "hr_foreign" in pairs else False
    pairs = pairs.sort_values(["location", "month", "_clear", "days_apart", "_foreign", "lr_scene_id", "hr_scene_id"])
    pairs["rank"] = pairs.groupby(["location", "month"], sort=False).cumcount()
    return pairs[cols].reset_index(drop=True)


# ------------------------------------------------------------------------------------ one pair's grids
def pair_grids(loc: Location, lr_transform: Sequence[float] | None, hr_crs: str | None,
               hr_transform: Sequence[float] | None, resampling: str) -> tuple[Grid, Grid, dict[str, Any]]:
    """LR and HR grids of one pair, and what was done to each side (the manifest's ``extra``).

    The LR corner is put on the Landsat scene's own lattice (its ``crs_transform``), so the LR
    request returns native pixels; without a usable transform the Collection 2 convention is used
    (and said so). The HR grid nests exactly; its offset from Sentinel-2's native lattice (5 m in
    x and y for Collection 2) is recorded, with the kernel that resamples it.
    """
    native = (lr_transform is not None and len(lr_transform) == 6 and lr_transform[1] == 0 and lr_transform[3] == 0
              and math.isclose(lr_transform[0], LR_PIXEL_M) and math.isclose(-lr_transform[4], LR_PIXEL_M))
    lattice = (lr_transform[2], lr_transform[5]) if native else (grids.LANDSAT_EDGE_MOD_M,) * 2
    lr, hr = grids.landsat_grids(*centre(loc.lr_grid), loc.lr_grid.crs, loc.lr_grid.width, lattice)
    conv = grids.lattice_offset(lr.x0, lr.y0, grids.LANDSAT_EDGE_MOD_M, grids.LANDSAT_EDGE_MOD_M, LR_PIXEL_M)
    extra: dict[str, Any] = {
        "lr_resampling": "none (native Landsat pixels)",
        "lr_lattice": "scene crs_transform" if native else "Collection 2 convention (scene transform unknown)",
        "lr_offset_from_convention_m": list(conv),
        "hr_resampling": resampling,
        "hr_native_crs": hr_crs,
    }
    if hr_transform is not None and len(hr_transform) == 6:
        dx, dy = grids.lattice_offset(hr.x0, hr.y0, hr_transform[2], hr_transform[5], HR_PIXEL_M)
        extra["hr_offset_m"] = [round(dx, 6), round(dy, 6)]  # grid corner east / south of S2's pixel edges
        extra["hr_offset_hr_px"] = [round(dx / HR_PIXEL_M, 6), round(dy / HR_PIXEL_M, 6)]
    extra["hr_reprojected"] = bool(hr_crs) and grids.epsg_zone(hr_crs) != grids.epsg_zone(lr.crs)
    return lr, hr, extra


# ------------------------------------------------------------------------------------ --plan
def expected_requests(params: Params, loc: Location) -> dict[str, int]:
    """Requests one chip costs at most: 4 getInfo (2 searches + 2 screenings) and, per pair, the
    computePixels tiles of both chips; a month without a pair costs no download."""
    gee = params.source.gee
    months = (gee.end_date.year - gee.start_date.year) * 12 + gee.end_date.month - gee.start_date.month + 1
    tiles = sum(len(grids.split_request(g, 3, BYTES_PER_PIXEL, gee.max_request_bytes, gee.max_request_side_px))
                for g in (loc.lr_grid, loc.hr_grid))
    return {"getinfo": 4, "compute_pixels_max": months * tiles if gee.one_pair_per_month else -1, "months": months}


def describe_plan(params: Params) -> str:
    """What ``satsr source --plan`` prints: chips, date window, collections, expected requests."""
    gee = params.source.gee
    locs = plan_locations(params)
    lines = [
        f"Earth Engine plan (no request made): {len(locs)} chips in {len(gee.regions)} regions, "
        f"LR {params.source.lr_size} px at 30 m / HR {params.source.hr_size} px at 10 m",
        f"dates: {gee.start_date} .. {gee.end_date}; pairs at most {gee.max_days_apart} days apart"
        + (", one pair per chip and month" if gee.one_pair_per_month else ", every pair"),
        f"collections: Landsat {', '.join(landsat_collections(gee))} (CLOUD_COVER <= {gee.max_scene_cloud_l8:g} %, "
        f"QA_PIXEL clear >= {gee.min_clear_fraction_l8:g}); Sentinel-2 {gee.s2_collection} "
        f"(CLOUDY_PIXEL_PERCENTAGE <= {gee.max_scene_cloud_s2:g} %, {gee.cloud_score_collection} "
        f"cs_cdf >= {gee.cs_clear_threshold:g} on >= {gee.min_clear_fraction_s2:g})",
        f"grids: LR native Landsat (EPSG:326xx, pixel edges at 15 mod 30 m); HR resampled with {gee.hr_resampling} "
        f"onto the exactly nested 10 m grid; Sentinel-2 from another UTM zone: {gee.s2_other_zone}",
        "",
        f"{'chip':<24} {'lon':>10} {'lat':>9} {'crs':<11} {'x0':>11} {'y0':>12}",
    ]
    total_pixels = 0
    for loc in locs:
        g = loc.lr_grid
        lines.append(f"{loc.key:<24} {loc.lon:>10.4f} {loc.lat:>9.4f} {g.crs:<11} {g.x0:>11.1f} {g.y0:>12.1f}")
        total_pixels += max(0, expected_requests(params, loc)["compute_pixels_max"])
    per = expected_requests(params, locs[0]) if locs else {"months": 0}
    lines += [
        "",
        f"expected requests: 1 initialisation + {4 * len(locs)} getInfo (4 per chip: 2 searches, 2 screenings) "
        + (f"+ at most {total_pixels} computePixels ({per['months']} months x LR and HR tiles per chip)"
           if gee.one_pair_per_month else "+ 2 computePixels (or more tiles) per matched pair"),
        f"at most {gee.max_concurrent_requests} requests in flight; deadline {gee.request_deadline_s:g} s; "
        f"stop after {gee.quota_breaker_errors} consecutive quota errors (resumable)",
    ]
    return "\n".join(lines)
