"""The demo dataset as a plan: where, when, which defect and which ids for every pair (pure, no pixels).

Locations lie on moving-square lines (one per demo region); each location's pairs fall in distinct
months, and the scene and product ids are well-formed but invented. Every random draw of the demo
comes from ``numpy.random.default_rng([seed, stream, index])``; the streams are all listed here so
that no two of them ever share numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.warp import transform as warp_transform

from satsr.config import Params
from satsr.data import grids, manifest
from satsr.data.grids import Grid
from satsr.data.sources.demo.defects import DEFECTS

#: Bump when the synthesis changes: files of an older generator are then never resumed.
GENERATOR_VERSION = 1

# Random streams: every draw comes from default_rng([seed, STREAM, index]).
_STREAM_PLAN, _STREAM_LOCATION, _STREAM_PAIR, _STREAM_DEFECT, _STREAM_PIXELS = 11, 23, 37, 53, 71

# ------------------------------------------------------------------------------ sensors
#: Mean local solar overpass times (hours) and the scatter of the demo's simulated times (minutes).
L8_LOCAL_TIME_H = 10.17
S2_LOCAL_TIME_H = 10.5
OVERPASS_JITTER_MIN = 8.0
#: Scene-level cloud metadata (%): good scenes, and scenes with the planted clouds. The real
#: provider's scene screen (``gee.max_scene_cloud_*``) passes both.
SCENE_CLOUD_GOOD = (0.0, 15.0)
SCENE_CLOUD_CLOUDY = (5.0, 20.0)
#: Months over which a location's acquisitions are spread (at least as many as its pairs).
MONTH_SPAN = 24
#: Worldwide Reference System 2 (approximation good to a path or two, enough for plausible ids).
WRS2_PATHS, WRS2_ROWS_PER_ORBIT, WRS2_EQUATOR_ROW = 233, 248, 60
WRS2_PATH1_LON = -64.6
S2_RELATIVE_ORBITS = 143
S2_BASELINES = ((dt.date(2000, 1, 1), "N0211"), (dt.date(2019, 12, 1), "N0213"), (dt.date(2020, 2, 1), "N0214"),
                (dt.date(2021, 3, 30), "N0300"), (dt.date(2022, 1, 25), "N0400"), (dt.date(2022, 12, 6), "N0509"))
LANDSAT_C2_START = dt.date(2020, 12, 1)  # Collection 2 reprocessing finished: earlier scenes carry later dates
_MGRS_BANDS = "CDEFGHJKLMNPQRSTUVWX"
_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"


@dataclass(frozen=True)
class PlannedPair:
    """Everything about one pair that is decided before any pixel is made (pure, cheap)."""

    index: int
    pair_id: str
    location: int
    region: str
    lon: float
    lat: float
    lr_grid: Grid
    hr_grid: Grid
    lr_time: dt.datetime
    hr_time: dt.datetime
    defect: str          # '' for good pairs
    defect_side: str     # 'lr' | 'hr' | '' (misaligned and change are by nature lr / hr)
    lr_scene_id: str
    hr_scene_id: str
    lr_product_id: str
    hr_product_id: str
    lr_cloud: float
    hr_cloud: float

    @property
    def lr_date(self) -> str:
        return self.lr_time.date().isoformat()

    @property
    def hr_date(self) -> str:
        return self.hr_time.date().isoformat()

    @property
    def days_apart(self) -> int:
        return abs((self.hr_time.date() - self.lr_time.date()).days)

    @property
    def lr_file(self) -> str:
        return manifest.chip_name(self.index, self.lr_date, "L8", self.lon, self.lat)

    @property
    def hr_file(self) -> str:
        return manifest.chip_name(self.index, self.hr_date, "S2", self.lon, self.lat)


def _per_region(params: Params) -> int:
    demo = params.source.demo
    return math.ceil(demo.n_locations / min(demo.n_regions, demo.n_locations))


def demo_locations(params: Params) -> list[tuple[float, float]]:
    """Chip centres (lon, lat), as the seed scanned them: ``n_regions`` separate regions, each a
    moving-square line eastwards (neighbours overlap slightly when step_factor < 2).

    Regions sit on a grid from ``origin``, ``region_gap_km`` apart beyond the length of a line, so
    a spatially disjoint split has whole regions to distribute (chips of one line always connect).
    """
    src, demo = params.source, params.source.demo
    per_region = _per_region(params)
    n_regions = math.ceil(demo.n_locations / per_region)
    line_km = per_region * demo.step_factor * src.buffer_m / 1000.0 + 2 * src.buffer_m / 1000.0
    pitch_km = line_km + demo.region_gap_km
    cols = math.ceil(math.sqrt(n_regions))
    out: list[tuple[float, float]] = []
    for r in range(n_regions):
        start = grids.offset_lonlat(*demo.origin, east_km=(r % cols) * pitch_km, north_km=-(r // cols) * pitch_km)
        count = min(per_region, demo.n_locations - len(out))
        out.extend(grids.moving_square(start, count, src.buffer_m, demo.step_factor, 90.0))
    return out


def location_region(location: int, params: Params) -> str:
    """The demo region (one moving-square line) a location belongs to."""
    return f"demo_r{location // _per_region(params):02d}"


def _utm_centre(lon: float, lat: float) -> tuple[str, float, float]:
    crs = f"EPSG:{grids.utm_epsg(lon, lat)}"
    xs, ys = warp_transform("EPSG:4326", crs, [lon], [lat])
    return crs, float(xs[0]), float(ys[0])


def wrs2_path_row(lon: float, lat: float) -> tuple[int, int]:
    """Approximate Landsat WRS-2 path/row of a point (descending, daytime)."""
    path = round((WRS2_PATH1_LON - lon) / (360.0 / WRS2_PATHS)) % WRS2_PATHS + 1
    row = WRS2_EQUATOR_ROW + round(-lat / (360.0 / WRS2_ROWS_PER_ORBIT))
    return int(path), int(row)


def mgrs_tile(lon: float, lat: float, x: float, y: float) -> str:
    """Sentinel-2 MGRS tile name (e.g. ``20MRB``) of a point given its UTM easting/northing."""
    zone = grids.utm_epsg(lon, lat) % 100
    band = _MGRS_BANDS[min(max(int((lat + 80.0) // 8.0), 0), len(_MGRS_BANDS) - 1)]
    column = _MGRS_COLUMNS[(zone - 1) % 3][min(max(int(x // 100000.0), 1), 8) - 1]
    row = _MGRS_ROWS[(int(y // 100000.0) + (5 if zone % 2 == 0 else 0)) % len(_MGRS_ROWS)]
    return f"{zone:02d}{band}{column}{row}"


def _s2_baseline(day: dt.date) -> str:
    return [name for start, name in S2_BASELINES if day >= start][-1]


def _overpass(day: dt.date, lon: float, local_h: float, rng: np.random.Generator) -> dt.datetime:
    """UTC time of a sun-synchronous morning overpass at ``lon`` on the UTC date ``day``.

    The time of day wraps within ``day`` (not into the next or previous date), so the planned
    dates -- and with them the month and the gap between the sensors -- hold everywhere."""
    hours = local_h - lon / 15.0 + rng.uniform(-OVERPASS_JITTER_MIN, OVERPASS_JITTER_MIN) / 60.0
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=round((hours % 24.0) * 3600.0) % 86400)


def _add_months(day: dt.date, months: int) -> dt.date:
    m = day.month - 1 + months
    return dt.date(day.year + m // 12, m % 12 + 1, 1)


def _defects(params: Params) -> dict[int, str]:
    """Pair index -> planted defect: round(bad_fraction * n_pairs) pairs, kinds taken in turn."""
    demo = params.source.demo
    n_bad = min(demo.n_pairs, round(demo.bad_fraction * demo.n_pairs))
    chosen = np.random.default_rng([demo.seed, _STREAM_DEFECT]).permutation(demo.n_pairs)[:n_bad]
    return {int(k): DEFECTS[j % len(DEFECTS)] for j, k in enumerate(chosen)}


def plan_pairs(params: Params) -> list[PlannedPair]:
    """The whole demo dataset as a list of pairs (no pixels): where, when, which defect, which ids.

    Pair k goes to location k mod n_locations; each location's pairs fall in distinct months
    spread over ``MONTH_SPAN`` months from ``start_date``; both acquisitions of a pair lie in that
    month, at most ``max_days_apart`` days apart.
    """
    src, demo = params.source, params.source.demo
    locs = demo_locations(params)
    n_loc = len(locs)
    defects = _defects(params)
    per_loc = [len(range(i, demo.n_pairs, n_loc)) for i in range(n_loc)]
    months: list[list[int]] = []
    sites: list[dict[str, Any]] = []
    for i, (lon, lat) in enumerate(locs):
        rng = np.random.default_rng([demo.seed, _STREAM_PLAN, i])
        span = max(MONTH_SPAN, per_loc[i])
        months.append(sorted(int(m) for m in rng.choice(span, size=per_loc[i], replace=False)))
        crs, x, y = _utm_centre(lon, lat)
        lr_grid, hr_grid = grids.nested_grids(x, y, crs, src.lr_size)
        path, row = wrs2_path_row(lon, lat)
        sites.append({"lon": lon, "lat": lat, "lr": lr_grid, "hr": hr_grid, "path": path, "row": row,
                          "tile": mgrs_tile(lon, lat, x, y), "orbit": int(rng.integers(1, S2_RELATIVE_ORBITS + 1))})
    out = []
    for k in range(demo.n_pairs):
        loc = k % n_loc
        site = sites[loc]
        rng = np.random.default_rng([demo.seed, _STREAM_PAIR, k])
        defect = defects.get(k, "")
        side = {"misaligned": "lr", "change": "hr", "": ""}.get(defect, str(rng.choice(["lr", "hr"])))
        first = _add_months(demo.start_date, months[loc][k // n_loc])
        gap = int(rng.integers(1 if defect == "change" else 0, demo.max_days_apart + 1))
        day0 = first + dt.timedelta(days=int(rng.integers(0, 28 - demo.max_days_apart)))
        day1 = day0 + dt.timedelta(days=gap)
        # a planted change must be newer on the Sentinel-2 side; otherwise either sensor comes first
        l8_first = defect == "change" or bool(rng.integers(0, 2))
        l8_day, s2_day = (day0, day1) if l8_first else (day1, day0)
        lr_time = _overpass(l8_day, site["lon"], L8_LOCAL_TIME_H, rng)
        hr_time = _overpass(s2_day, site["lon"], S2_LOCAL_TIME_H, rng)
        cloud_range = {side: SCENE_CLOUD_CLOUDY} if defect == "cloud" else {}
        lr_cloud = round(float(rng.uniform(*cloud_range.get("lr", SCENE_CLOUD_GOOD))), 2)
        hr_cloud = round(float(rng.uniform(*cloud_range.get("hr", SCENE_CLOUD_GOOD))), 2)
        # ids in the formats Earth Engine and the archives use (invented, but well-formed)
        pr = f"{site['path']:03d}{site['row']:03d}"
        processed = max(l8_day, LANDSAT_C2_START) + dt.timedelta(days=int(rng.integers(5, 17)))
        lr_scene_id = f"LANDSAT/LC08/C02/T1_L2/LC08_{pr}_{l8_day:%Y%m%d}"
        lr_product_id = f"LC08_L2SP_{pr}_{l8_day:%Y%m%d}_{processed:%Y%m%d}_02_T1"
        granule = hr_time + dt.timedelta(seconds=int(rng.integers(-6, 7)))
        generated = hr_time + dt.timedelta(seconds=int(rng.integers(2 * 3600, 6 * 3600)))
        hr_scene_id = f"COPERNICUS/S2_SR_HARMONIZED/{hr_time:%Y%m%dT%H%M%S}_{granule:%Y%m%dT%H%M%S}_T{site['tile']}"
        hr_product_id = (f"S2{'AB'[int(rng.integers(0, 2))]}_MSIL2A_{hr_time:%Y%m%dT%H%M%S}_{_s2_baseline(s2_day)}"
                         f"_R{site['orbit']:03d}_T{site['tile']}_{generated:%Y%m%dT%H%M%S}")
        out.append(PlannedPair(
            index=k, pair_id=f"{k:05d}_{l8_day.isoformat()}_{site['lon']:.4f}_{site['lat']:.4f}",
            location=loc, region=location_region(loc, params), lon=site["lon"], lat=site["lat"],
            lr_grid=site["lr"], hr_grid=site["hr"], lr_time=lr_time, hr_time=hr_time,
            defect=defect, defect_side=side, lr_scene_id=lr_scene_id, hr_scene_id=hr_scene_id,
            lr_product_id=lr_product_id, hr_product_id=hr_product_id, lr_cloud=lr_cloud, hr_cloud=hr_cloud,
        ))
    return out


def fingerprint(params: Params) -> str:
    """Hash of everything that shapes the pixels: files made under other params are not resumed."""
    blob = json.dumps({"version": GENERATOR_VERSION, "lr_size": params.source.lr_size,
                       "scale": params.source.scale, "demo": params.source.demo.model_dump(mode="json",
                                                                                        exclude={"workers"})},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
