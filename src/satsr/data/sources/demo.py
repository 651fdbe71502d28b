"""Offline demo provider: SYNTHETIC Sentinel-2-like landscapes with a simulated Landsat-8 partner.

Nothing here is real imagery. The provider exists so that a fresh machine without an Earth Engine
account can run the whole pipeline (``make demo``, the tests). It writes the same raw layout as the
``gee`` provider -- uint16 DN in the real encodings, the real band names, seed-style file names,
nested 30 m / 10 m UTM grids, acquisition tags and the common manifest -- so every later stage
runs unchanged. Every file says what it is: tag ``SATSR_DEMO=1``, a ``DESCRIPTION`` tag, and
``is_demo=True`` / ``provider=demo`` in the manifest. Scene ids look like real ones but are made
up.

Scene (the 10 m "Sentinel-2" truth)
    A procedural humid-tropics landscape in surface reflectance, built per location from fixed
    land-cover reflectances (module constants) and FFT-filtered noise: forest canopy with
    crown-scale texture, secondary forest, pasture that dries with the season, fields (a rotated
    grid of polygons with their own crop state and streaks), clear-cuts along a fishbone road
    network (straight and curved, laterite or paved), and a meandering river with riparian
    forest. Each location keeps its landscape across months; fields, pasture and canopy change
    with the calendar month. The HR chip is the crop of a canvas that is a margin wider than the
    chip, encoded as Sentinel-2 SR harmonized DN = round(rho * 10000).

Sensor model (the 30 m "Landsat-8 OLI" partner, from the same canvas)
    1. Point-spread function and misregistration: a Gaussian PSF with ``sigma = psf_sigma_hr_px``
       (10 m pixels), displaced by a translation ``t`` of uniform length in
       [0, ``max_good_shift_lr_px``] LR pixels in a random direction.
    2. 30 m area aggregation: each detector integrates its 3 x 3 block of 10 m pixels (both grids
       share the upper-left corner, so LR pixel (i, j) covers HR pixels 3i..3i+2, 3j..3j+2).
       Steps 1-2 are one separable kernel, Gaussian * box(3 px) integrated over each 10 m pixel
       (closed form with the normal CDF), evaluated only at the LR pixels; the canvas margin
       holds its reach, so nothing wraps or is padded.
    3. Spectral bandpass MSI -> OLI with the HLS v2 coefficients for Sentinel-2A.
    Steps 1-3 are ``satsr.data.sensor.degrade``, the one sensor model shared with ``s2sim`` and
    ``calibrate``.
    4. Sensor noise: + N(0, ``noise_reflectance``^2) per pixel and band.
    5. Landsat Collection 2 Level-2 encoding: DN = round((rho + 0.2) / 2.75e-5), fill 0.
    The two acquisitions are 0..``max_days_apart`` days apart within one calendar month (one pair
    per month per location, as the seed); the ground does not change between them in good pairs.

Deliberately bad pairs (``bad_fraction`` of them, chosen deterministically; ``demo_defect``)
    cloud       bright soft cumulus (reflectance 0.45-0.8) with displaced shadows on one side
    nodata      a stripe of fill (DN 0) across the chip on one side
    misaligned  the Landsat translation is ``bad_shift_lr_px`` LR pixels instead of sub-pixel
    change      the Sentinel-2 side shows a large fresh clear-cut over the darker half of the chip
    haze        a strong additive, bluish haze veil on one side
    Each is strong enough for the simple screens in ``filter`` (bright-pixel share, fill,
    phase-correlation shift, LR/HR correlation, blue 5th percentile) and good pairs pass them.

Determinism: every random draw comes from ``numpy.random.default_rng([seed, stream, index])``
with ``seed = source.demo.seed``, so the files are byte-identical for the same params whatever
the number of workers. Resume: pairs whose files match the manifest checksums and carry this
generator's parameter fingerprint are not generated again; files outside the plan are removed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import math
import multiprocessing as mp
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import scipy.fft as sfft
from rasterio.errors import RasterioError
from rasterio.warp import transform as warp_transform
from scipy import ndimage
from tqdm import tqdm

from satsr.config import HR_PIXEL_M, SCALE, Params
from satsr.data import grids, manifest, sensor
from satsr.data.geotiff import TAG_SENSOR, write_geotiff
from satsr.data.grids import Grid
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.util import sha256_file

log = logging.getLogger(__name__)

PROVIDER = "demo"
#: Bump when the synthesis changes: files of an older generator are then never resumed.
GENERATOR_VERSION = 1
DEFECTS = ("cloud", "nodata", "misaligned", "change", "haze")
TAG_DEMO = "SATSR_DEMO"
TAG_FINGERPRINT = "SATSR_DEMO_FINGERPRINT"
DESCRIPTION = (
    "SYNTHETIC DEMO DATA made by satsr.data.sources.demo: a procedural landscape and a simulated "
    "sensor, NOT a real {sensor} acquisition. Scene ids are invented. Use only to exercise the pipeline."
)

# Random streams: every draw comes from default_rng([seed, STREAM, index]).
_STREAM_PLAN, _STREAM_LOCATION, _STREAM_PAIR, _STREAM_DEFECT, _STREAM_PIXELS = 11, 23, 37, 53, 71

# ------------------------------------------------------------------ land-cover reflectances (R, G, B)
# Typical Sentinel-2 L2A surface reflectance of humid-tropics covers (visible bands only).
FOREST = (0.030, 0.050, 0.028)
SECONDARY_FOREST = (0.038, 0.064, 0.033)
PASTURE_WET = (0.055, 0.085, 0.042)
PASTURE_DRY = (0.100, 0.102, 0.066)
BARE_SOIL = (0.165, 0.125, 0.085)   # fresh clear-cut on oxisol: red > green > blue
BURN_SCAR = (0.045, 0.040, 0.033)
REGROWTH = (0.048, 0.075, 0.038)
ROAD_LATERITE = (0.205, 0.150, 0.108)
ROAD_PAVED = (0.140, 0.140, 0.135)
WATER_BLACK = (0.018, 0.026, 0.022)
WATER_SEDIMENT = (0.085, 0.080, 0.052)
#: Crop states a field cycles through over the months.
CROPS = (
    (0.035, 0.085, 0.035),  # green canopy
    (0.070, 0.095, 0.055),  # young crop
    (0.120, 0.112, 0.072),  # ripening
    (0.140, 0.106, 0.076),  # tilled soil
    (0.170, 0.150, 0.112),  # stubble
)
#: Cloud tops are nearly white, a touch bluish in SR; haze is bluish (aerosol + Rayleigh).
CLOUD_TINT = (0.97, 0.99, 1.00)
HAZE_TINT = (0.72, 0.85, 1.00)

# ---------------------------------------------------------------- scene geometry (metres, ground)
CROWN_M = (15.0, 60.0)            # canopy crown texture wavelengths
CANOPY_MID_M = (60.0, 1000.0)     # stand-scale canopy variation; pasture moisture pattern
FINE_M = (12.0, 200.0)            # soil / crop texture
ZONE_M = (300.0, 12000.0)         # land-use zones
EDGE_M = (20.0, 300.0)            # ragged edge of a planted clear-cut
FIELD_SIDE_M = (250.0, 700.0)
FIELD_STREAK_M = (40.0, 100.0)
FIELD_EDGE_HALF_M = 5.0           # tracks / hedges between fields
MAIN_ROAD_WIDTH_M = (12.0, 25.0)
SIDE_ROAD_WIDTH_M = (7.0, 12.0)
SIDE_ROAD_SPACING_M = (500.0, 1600.0)
SIDE_ROAD_LENGTH_M = (400.0, 2500.0)
ROAD_CLEARANCE_M = (60.0, 200.0)  # pasture kept open along main roads
CLEARCUT_SIDE_M = (150.0, 800.0)
CLEARCUTS_PER_KM2 = 1.5
RIVER_PROBABILITY = 0.6
RIVER_WIDTH_M = (30.0, 150.0)
RIVER_MEANDER_M = (600.0, 2500.0)
RIPARIAN_M = (40.0, 150.0)
#: Texture amplitudes (relative): crowns, stand-scale canopy, soil/crop, field streaks.
CROWN_AMPLITUDE = 0.28
CANOPY_MID_AMPLITUDE = 0.10
FINE_AMPLITUDE = 0.12
STREAK_AMPLITUDE = 0.05
SEASONAL_AMPLITUDE = 0.06         # canopy brightness over the year
ATMOSPHERE_RESIDUAL = 0.015       # per-acquisition gain error of the atmospheric correction
REFLECTANCE_RANGE = (0.002, 0.95)

# ----------------------------------------------------------------------- defect strengths
CLOUD_CORE_FRACTION = (0.05, 0.20)   # chip share under opaque cloud (+ as much soft edge)
CLOUD_TOP = (0.45, 0.80)
CLOUD_M = (60.0, 2000.0)
SHADOW_DARKENING = (0.35, 0.55)
SHADOW_OFFSET_M = (100.0, 300.0)
NODATA_STRIPE_FRACTION = (0.08, 0.25)
HAZE_BLUE = (0.16, 0.24)             # added blue path reflectance (>= 0.136 after modulation)
HAZE_MODULATION = 0.15
HAZE_M = (500.0, 5000.0)
CHANGE_AREA = (0.50, 0.65)           # chip share cleared in the Sentinel-2 image
CHANGE_DIRECTIONS = 8                # candidate orientations of the cleared half

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

# Land-cover classes of the layout.
_FOREST, _PASTURE, _FIELD, _CUT, _SECONDARY = 0, 1, 2, 3, 4
_ROAD_MAIN, _ROAD_SIDE = 1, 2
_PATH_STEP_PX = 0.5
_PATH_KNOTS = 7
#: The Gaussian PSF is cut at this many sigmas (the weight beyond is < 1e-8).


# =============================================================================== planning
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


# ============================================================================ random fields
class _Spectrum:
    """Frequency grid of an M x M canvas for FFT-filtered noise (band filters cached per size)."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.shape = (m, m // 2 + 1)

    def noise(self, rng: np.random.Generator, band_m: tuple[float, float], beta: float) -> np.ndarray:
        """Unit-variance Gaussian field with power ~ f^-beta between the wavelengths ``band_m`` (m)."""
        spec = rng.standard_normal((*self.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
        spec *= _band_filter(self.m, band_m, beta)
        field = sfft.irfft2(spec, s=(self.m, self.m))
        field -= field.mean()
        field /= max(float(field.std()), 1e-12)
        return field


@functools.lru_cache(maxsize=64)
def _band_filter(m: int, band_m: tuple[float, float], beta: float) -> np.ndarray:
    """Amplitude f^(-beta/2), rolled off smoothly outside the wavelength band (rfft2 layout)."""
    fy = sfft.fftfreq(m).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(m).astype(np.float32)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0 / (4 * m)  # finite power at DC; the mean is removed anyway
    lo, hi = band_m[0] / HR_PIXEL_M, band_m[1] / HR_PIXEL_M
    amp = f ** (-beta / 2) * np.exp(-((f * lo / 2) ** 2)) * -np.expm1(-((f * hi) ** 2))
    return amp.astype(np.float32)


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _px(metres: float) -> float:
    return metres / HR_PIXEL_M


def _rgb(color: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(color, np.float32)


# =================================================================================== layout
@dataclass
class _Layout:
    """One location's landscape, fixed across months.

    A month's image is ``palette[idx] * tex * keep + lines``: only the small palette (forest tint,
    pasture dryness per soil level, each field's crop state) changes with the month, so a pair
    costs a few whole-image operations.
    """

    idx: np.ndarray          # int32 palette index per pixel
    tex: np.ndarray          # float32 multiplicative texture
    keep: np.ndarray         # float32 share of the pixel not covered by roads, water, field edges
    lines: np.ndarray        # float32 (3, M, M) reflectance contributed by those linear features
    fine: np.ndarray         # float32 soil texture (reused by the 'change' defect)
    field_state: np.ndarray  # crop state of each field at month 0
    field_cycle: np.ndarray  # 0 = permanent crop, 1 = changes every month
    field_gain: np.ndarray
    wet_peak_month: float


# palette rows: forest, secondary forest, clear-cut kinds, pasture soil levels, fields
_P_FOREST, _P_SECONDARY, _P_CUT = 0, 1, 2
_CUT_COLORS = (BARE_SOIL, BURN_SCAR, REGROWTH)
_P_PASTURE = _P_CUT + len(_CUT_COLORS)
_PASTURE_LEVELS = 128
_SOIL_RANGE = (-3.5, 3.5)
_P_FIELDS = _P_PASTURE + _PASTURE_LEVELS


def _path(rng: np.random.Generator, start: tuple[float, float], heading: float, length: float,
          wander: float, meander_amp: float = 0.0,
          meander_len: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random path (y, x, heading per sample), sampled every half pixel."""
    n = max(int(length / _PATH_STEP_PX), 2)
    # heading wanders smoothly: random turns at a few knots, linearly interpolated (cheap, and a
    # piecewise-constant curvature is what road and river bends look like at 10 m)
    knots = rng.standard_normal(_PATH_KNOTS)
    walk = np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, _PATH_KNOTS), knots)
    walk *= wander / max(float(np.abs(walk).max()), 1e-9)
    s = np.arange(n) * _PATH_STEP_PX
    theta = heading + walk + meander_amp * np.sin(2 * np.pi * s / meander_len + rng.uniform(0, 2 * np.pi))
    ys = start[0] + np.cumsum(_PATH_STEP_PX * np.sin(theta))
    xs = start[1] + np.cumsum(_PATH_STEP_PX * np.cos(theta))
    return ys, xs, theta


class _LineCanvas:
    """Rasterises centre lines, then turns them into anti-aliased coverage with one distance transform."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.seed = np.zeros((m, m), bool)
        self.sy = np.zeros((m, m), np.float32)
        self.sx = np.zeros((m, m), np.float32)
        self.half = np.zeros((m, m), np.float32)
        self.kind = np.zeros((m, m), np.uint8)

    def draw(self, ys: np.ndarray, xs: np.ndarray, half_width: np.ndarray | float, kind: int) -> None:
        iy, ix = np.rint(ys).astype(int), np.rint(xs).astype(int)
        ok = (iy >= 0) & (iy < self.m) & (ix >= 0) & (ix < self.m)
        iy, ix = iy[ok], ix[ok]
        self.seed[iy, ix] = True
        self.sy[iy, ix], self.sx[iy, ix] = ys[ok], xs[ok]
        self.half[iy, ix] = np.broadcast_to(half_width, ys.shape)[ok]
        self.kind[iy, ix] = kind

    def render(self, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(coverage, distance beyond the line's edge, kind of the nearest line) per pixel."""
        if not self.seed.any():
            inf = np.full((self.m, self.m), np.inf, np.float32)
            return np.zeros((self.m, self.m), np.float32), inf, self.kind
        iy, ix = ndimage.distance_transform_edt(~self.seed, return_distances=False, return_indices=True)
        flat = iy * self.m + ix
        d = np.hypot(yy - self.sy.ravel()[flat], xx - self.sx.ravel()[flat])
        d -= self.half.ravel()[flat]
        cov = np.clip(0.5 - d, 0.0, 1.0)
        return cov, d, self.kind.ravel()[flat]


def _rect_fill(target: np.ndarray, value: int, allowed: np.ndarray, cy: float, cx: float,
               half_a: float, half_b: float, theta: float) -> None:
    """Set ``target`` to ``value`` inside a rotated rectangle, only where ``allowed``."""
    m = target.shape[0]
    r = math.hypot(half_a, half_b) + 1
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, m)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, m)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
    v = -(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)
    inside = (np.abs(u) <= half_a) & (np.abs(v) <= half_b) & allowed[y0:y1, x0:x1]
    target[y0:y1, x0:x1][inside] = value


def _build_layout(rng: np.random.Generator, spec: _Spectrum, yy: np.ndarray, xx: np.ndarray) -> _Layout:
    """Procedural landscape of one location on the canvas (land use, fields, roads, river)."""
    m = spec.m
    crown = spec.noise(rng, CROWN_M, beta=1.0)
    fine = spec.noise(rng, FINE_M, beta=1.5)
    zone = spec.noise(rng, ZONE_M, beta=3.0)
    zone += 0.15 * fine  # ragged zone boundaries
    # one stand-scale field serves the canopy (forest pixels) and the soil moisture (pasture
    # pixels): the classes never overlap, so sharing it costs no realism and saves an FFT
    mid = soil = spec.noise(rng, CANOPY_MID_M, beta=2.5)

    # land use by zone quantiles: fields lowest, then pasture, forest highest
    forest_share = rng.uniform(0.35, 0.85)
    field_share = rng.uniform(0.0, 0.45) * (rng.random() < 0.6)
    q_field, q_pasture = np.quantile(zone[::4, ::4], [min(field_share, 1.0 - forest_share), 1.0 - forest_share])
    cls = np.where(zone < q_pasture, _PASTURE, _FOREST).astype(np.uint8)
    cls[(cls == _FOREST) & (mid > 1.2)] = _SECONDARY

    # fields: a rotated grid of polygons; a field is farmed when its centre lies in the field zone
    c = m / 2
    main_heading = rng.uniform(0, np.pi)
    theta = main_heading if rng.random() < 0.6 else rng.uniform(0, np.pi)
    cos_t, sin_t = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    u = (xx - c) * cos_t + (yy - c) * sin_t
    v = (yy - c) * cos_t - (xx - c) * sin_t
    lo_px, hi_px = _px(FIELD_SIDE_M[0]), _px(FIELD_SIDE_M[1])
    n_edges = int(2 * m / lo_px) + 2
    eu = (-m + np.cumsum(rng.uniform(lo_px, hi_px, n_edges))).astype(np.float32)
    ev = (-m + np.cumsum(rng.uniform(lo_px, hi_px, n_edges))).astype(np.float32)
    iu = np.clip(np.searchsorted(eu, u), 1, n_edges - 1)
    iv = np.clip(np.searchsorted(ev, v), 1, n_edges - 1)
    field_id = iu * n_edges + iv
    n_fields = n_edges * n_edges
    gu, gv = np.meshgrid(np.arange(n_edges), np.arange(n_edges), indexing="ij")
    uc = (eu[np.clip(gu - 1, 0, None)] + eu[gu]).ravel() / 2
    vc = (ev[np.clip(gv - 1, 0, None)] + ev[gv]).ravel() / 2
    fx = np.clip(np.rint(c + uc * math.cos(theta) - vc * math.sin(theta)), 0, m - 1).astype(int)
    fy = np.clip(np.rint(c + uc * math.sin(theta) + vc * math.cos(theta)), 0, m - 1).astype(int)
    farmed = zone[fy, fx] < q_field
    is_field = farmed[field_id] & (cls != _SECONDARY)
    cls[is_field] = _FIELD

    # roads: one or two main roads (straight or curved) with side roads off them (fishbone)
    lines = _LineCanvas(m)
    side_paths = []
    for r in range(1 + int(rng.random() < 0.4)):
        heading = main_heading + r * rng.uniform(np.pi / 4, 3 * np.pi / 4)
        wander = rng.uniform(0.5, 1.0) if rng.random() < 0.5 else rng.uniform(0.0, 0.08)
        pc = (rng.uniform(0.2, 0.8) * m, rng.uniform(0.2, 0.8) * m)
        length = 2.0 * m
        start = (pc[0] - length / 2 * math.sin(heading), pc[1] - length / 2 * math.cos(heading))
        ys, xs, th = _path(rng, start, heading, length, wander)
        lines.draw(ys, xs, _px(_u(rng, MAIN_ROAD_WIDTH_M)) / 2, _ROAD_MAIN)
        spacing = _px(_u(rng, SIDE_ROAD_SPACING_M)) / _PATH_STEP_PX
        for at in np.arange(rng.uniform(0, spacing), len(ys), spacing).astype(int):
            for side in (-1, 1):
                if rng.random() < 0.3:
                    continue
                h = th[at] + side * (np.pi / 2 + rng.uniform(-0.2, 0.2))
                sy, sx, sth = _path(rng, (ys[at], xs[at]), h, _px(_u(rng, SIDE_ROAD_LENGTH_M)),
                                    rng.uniform(0.0, 0.5))
                lines.draw(sy, sx, _px(_u(rng, SIDE_ROAD_WIDTH_M)) / 2, _ROAD_SIDE)
                side_paths.append((sy, sx, sth))
    road_cov, road_d, road_kind = lines.render(yy, xx)
    clearance = _px(_u(rng, ROAD_CLEARANCE_M))
    cls[(road_d < clearance) & (road_kind == _ROAD_MAIN) & np.isin(cls, (_FOREST, _SECONDARY))] = _PASTURE

    # clear-cuts, mostly along side roads, only in forest
    cut_kind = np.zeros((m, m), np.uint8)
    area_km2 = (m * HR_PIXEL_M / 1000.0) ** 2
    forested = np.isin(cls, (_FOREST, _SECONDARY))
    for _ in range(rng.poisson(CLEARCUTS_PER_KM2 * area_km2)):
        a, b = _px(_u(rng, CLEARCUT_SIDE_M)) / 2, _px(_u(rng, CLEARCUT_SIDE_M)) / 2
        if side_paths and rng.random() < 0.7:
            sy, sx, sth = side_paths[int(rng.integers(len(side_paths)))]
            j = int(rng.integers(len(sy)))
            off = (b + 2) * (1 if rng.random() < 0.5 else -1)
            cy, cx, t = sy[j] + off * math.cos(sth[j]), sx[j] - off * math.sin(sth[j]), sth[j]
        else:
            cy, cx, t = rng.uniform(0, m), rng.uniform(0, m), rng.uniform(0, np.pi)
        _rect_fill(cut_kind, int(rng.integers(1, len(_CUT_COLORS) + 1)), forested, cy, cx, a, b, t)
    cls[cut_kind > 0] = _CUT

    # a meandering river with riparian forest (drawn on its own so roads can bridge it)
    water_cov = np.zeros((m, m), np.float32)
    water_color = _rgb(WATER_BLACK) + rng.uniform(0, 1) * (_rgb(WATER_SEDIMENT) - _rgb(WATER_BLACK))
    if rng.random() < RIVER_PROBABILITY:
        river = _LineCanvas(m)
        heading = rng.uniform(0, 2 * np.pi)
        pc = (rng.uniform(0.25, 0.75) * m, rng.uniform(0.25, 0.75) * m)
        length = 3.0 * m
        start = (pc[0] - length / 2 * math.sin(heading), pc[1] - length / 2 * math.cos(heading))
        ys, xs, _ = _path(rng, start, heading, length, rng.uniform(0.2, 0.6),
                          rng.uniform(0.4, 1.1), _px(_u(rng, RIVER_MEANDER_M)))
        width = _px(_u(rng, RIVER_WIDTH_M)) * (1 + 0.2 * np.sin(np.arange(len(ys)) / len(ys) * 6 * np.pi))
        river.draw(ys, xs, width / 2, 1)
        water_cov, water_d, _ = river.render(yy, xx)
        cls[water_d < _px(_u(rng, RIPARIAN_M))] = _FOREST

    # palette index and texture per pixel
    idx = np.full((m, m), _P_FOREST, np.int32)
    idx[cls == _SECONDARY] = _P_SECONDARY
    sel = cls == _CUT
    idx[sel] = _P_CUT + cut_kind[sel].astype(np.int32) - 1
    sel = cls == _PASTURE
    level = (soil[sel] - _SOIL_RANGE[0]) / (_SOIL_RANGE[1] - _SOIL_RANGE[0]) * (_PASTURE_LEVELS - 1)
    idx[sel] = _P_PASTURE + np.clip(np.rint(level), 0, _PASTURE_LEVELS - 1).astype(np.int32)
    sel = cls == _FIELD
    idx[sel] = _P_FIELDS + field_id[sel]
    forest_like = (cls == _FOREST) | (cls == _SECONDARY)
    tex = 1 + FINE_AMPLITUDE * fine
    tex[forest_like] = ((1 + CROWN_AMPLITUDE * crown[forest_like]) * (1 + CANOPY_MID_AMPLITUDE * mid[forest_like]))
    along_u = rng.random(n_fields) < 0.5
    period = rng.uniform(_px(FIELD_STREAK_M[0]), _px(FIELD_STREAK_M[1]), n_fields).astype(np.float32)
    fid = field_id[sel]
    coord = np.where(along_u[fid], u[sel], v[sel])
    tex[sel] += STREAK_AMPLITUDE * np.sin(2 * np.pi * coord / period[fid])

    # linear features, blended in order: field edges, then water, then roads on top (bridges)
    edge_cov = np.zeros((m, m), np.float32)
    iu_s, iv_s, u_s, v_s = iu[sel], iv[sel], u[sel], v[sel]
    edge_dist = np.minimum(np.minimum(u_s - eu[iu_s - 1], eu[iu_s] - u_s),
                           np.minimum(v_s - ev[iv_s - 1], ev[iv_s] - v_s))
    edge_cov[sel] = np.clip(_px(FIELD_EDGE_HALF_M) + 0.5 - edge_dist, 0, 1)
    road_color = _rgb(ROAD_LATERITE if rng.random() < 0.7 else ROAD_PAVED)
    edge_color = road_color * 0.8 if rng.random() < 0.5 else _rgb(FOREST)
    side_dim = np.where(road_kind == _ROAD_SIDE, np.float32(0.85), np.float32(1.0))
    road_tex = (1 + 0.5 * FINE_AMPLITUDE * fine) * side_dim
    water_tex = 1 + 0.3 * FINE_AMPLITUDE * fine
    keep = (1 - edge_cov) * (1 - water_cov) * (1 - road_cov)
    out = np.empty((3, m, m), np.float32)
    for b in range(3):
        out[b] = ((edge_color[b] * edge_cov * tex * (1 - water_cov) + water_color[b] * water_tex * water_cov)
                  * (1 - road_cov) + road_color[b] * road_tex * road_cov)
    return _Layout(
        idx=idx, tex=tex.astype(np.float32), keep=keep.astype(np.float32), lines=out, fine=fine,
        field_state=rng.integers(0, len(CROPS), n_fields), field_cycle=(rng.random(n_fields) < 0.5).astype(int),
        field_gain=rng.uniform(0.9, 1.1, n_fields), wet_peak_month=float(rng.uniform(1, 13)),
    )


def _palette(lay: _Layout, month: int, months_since_start: int) -> np.ndarray:
    """(3, K) reflectance of every palette entry in a calendar month."""
    wet = math.cos(2 * math.pi * (month - lay.wet_peak_month) / 12.0)
    soil = np.linspace(*_SOIL_RANGE, _PASTURE_LEVELS, dtype=np.float32)[:, None]
    dry = 1 / (1 + np.exp(-(1.5 * soil - 1.5 * wet)))
    pasture = _rgb(PASTURE_WET) + dry * (_rgb(PASTURE_DRY) - _rgb(PASTURE_WET))
    pasture += np.clip(soil - 1.8, 0, 1) * (_rgb(BARE_SOIL) - pasture)
    state = (lay.field_state + lay.field_cycle * months_since_start) % len(CROPS)
    fields = np.asarray(CROPS, np.float32)[state] * lay.field_gain[:, None].astype(np.float32)
    forest = np.stack([_rgb(FOREST), _rgb(SECONDARY_FOREST)]) * (1 - SEASONAL_AMPLITUDE * wet)
    cuts = np.stack([_rgb(cc) for cc in _CUT_COLORS])
    return np.concatenate([forest, cuts, pasture, fields]).astype(np.float32).T.copy()


def _render(lay: _Layout, month: dt.date, months_since_start: int, rng: np.random.Generator) -> np.ndarray:
    """Surface reflectance (3, M, M) of a layout in a given month."""
    palette = _palette(lay, month.month, months_since_start)
    gain = np.float32(1 + rng.normal(0, ATMOSPHERE_RESIDUAL))
    out = np.empty(lay.lines.shape, np.float32)
    for b in range(3):
        np.take(palette[b], lay.idx, out=out[b])
        out[b] *= lay.tex
        out[b] *= lay.keep
        out[b] += lay.lines[b]
    out *= gain
    return np.clip(out, *REFLECTANCE_RANGE, out=out)


# ================================================================================== defects
def _chip(a: np.ndarray, pad: int, n: int) -> np.ndarray:
    return a[..., pad:pad + n, pad:pad + n]


def _translate(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Integer translation with zero fill (no wrap-around)."""
    out = np.zeros_like(a)
    m = a.shape[-1]
    ys, yd = (slice(0, m - dy), slice(dy, m)) if dy >= 0 else (slice(-dy, m), slice(0, m + dy))
    xs, xd = (slice(0, m - dx), slice(dx, m)) if dx >= 0 else (slice(-dx, m), slice(0, m + dx))
    out[..., yd, xd] = a[..., ys, xs]
    return out


def _add_clouds(img: np.ndarray, rng: np.random.Generator, spec: _Spectrum, pad: int, n: int) -> np.ndarray:
    """Soft opaque cumulus over a chosen chip share, with their shadows cast sideways; returns
    the cloud-or-shadow mask (alpha > 0.1) for the clear fraction."""
    field = spec.noise(rng, CLOUD_M, beta=3.5)
    core = _u(rng, CLOUD_CORE_FRACTION)
    lo, hi = np.quantile(_chip(field, pad, n), [1 - 2 * core, 1 - core])
    alpha = np.clip((field - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep: soft edges, flat opaque cores
    offset, angle = _px(_u(rng, SHADOW_OFFSET_M)), rng.uniform(0, 2 * np.pi)
    shadow = _translate(alpha, round(offset * math.sin(angle)), round(offset * math.cos(angle)))
    img *= 1 - _u(rng, SHADOW_DARKENING) * shadow
    top = _u(rng, CLOUD_TOP) * _rgb(CLOUD_TINT)[:, None, None] * (0.92 + 0.08 * np.tanh(spec.noise(rng, CLOUD_M, 2.0)))
    img[:] = img * (1 - alpha) + top * alpha
    return (alpha > 0.1) | (shadow > 0.1)


def _add_haze(img: np.ndarray, rng: np.random.Generator, spec: _Spectrum) -> None:
    """Additive bluish path reflectance with a little attenuation of the ground signal."""
    level = _u(rng, HAZE_BLUE) * (1 + HAZE_MODULATION * np.tanh(spec.noise(rng, HAZE_M, beta=3.0)))
    haze = _rgb(HAZE_TINT)[:, None, None] * level
    img[:] = img * (1 - 0.5 * haze) + haze


def _nodata_stripe(rng: np.random.Generator, size: int) -> np.ndarray:
    """A straight stripe of fill across a size x size chip (like a swath edge or a dropped line)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    theta = rng.uniform(0, np.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    half = _u(rng, NODATA_STRIPE_FRACTION) * size / 2
    centre = rng.uniform(-0.3, 0.3) * size
    return np.abs(u - centre) < max(half, 1.0)


def _add_change(img: np.ndarray, rng: np.random.Generator, spec: _Spectrum, lay: _Layout,
                yy: np.ndarray, xx: np.ndarray, pad: int, n: int) -> None:
    """A large fresh clear-cut over the darkest (most forested) part of the chip: the Sentinel-2
    image then disagrees with the Landsat one on a large area, as after a real clearing."""
    c = pad + n / 2
    grey = _chip(img, pad, n).mean(axis=0)[::3, ::3]
    cy, cx = _chip(yy, pad, n)[::3, ::3] - c, _chip(xx, pad, n)[::3, ::3] - c
    area = _u(rng, CHANGE_AREA)
    best = None
    for theta in np.arange(CHANGE_DIRECTIONS) * 2 * np.pi / CHANGE_DIRECTIONS + rng.uniform(0, np.pi / 4):
        u = cx * math.cos(theta) + cy * math.sin(theta)
        cut = np.quantile(u, 1 - area)
        mean = float(grey[u > cut].mean())
        if best is None or mean < best[0]:
            best = (mean, theta, cut)
    _, theta, cut = best
    u = (xx - c) * math.cos(theta) + (yy - c) * math.sin(theta)
    region = (u + _px(EDGE_M[1]) / 10 * spec.noise(rng, EDGE_M, beta=2.0)) > cut
    along = (yy - c) * math.cos(theta) - (xx - c) * math.sin(theta)
    windrows = 1 - 0.2 * (np.sin(2 * np.pi * along[region] / _px(_u(rng, FIELD_STREAK_M))) > 0.6)
    img[:, region] = _rgb(BARE_SOIL)[:, None] * (1 + FINE_AMPLITUDE * lay.fine[region]) * windrows


# ============================================================================ sensor model
# The forward model itself lives in satsr.data.sensor (one implementation for every provider).


def _canvas_geometry(params: Params) -> tuple[int, int]:
    """(canvas side M, chip offset pad): the margin holds the sensor kernel's reach at the largest
    shift (and cloud shadows from outside the chip); M is a fast FFT length for the noise."""
    src, demo = params.source, params.source.demo
    n = src.hr_size
    max_shift_hr = SCALE * max(demo.bad_shift_lr_px, demo.max_good_shift_lr_px)
    pad = math.ceil(sensor.kernel_reach(demo.psf_sigma_hr_px, max_shift_hr))
    pad += 2 * SCALE
    m = sfft.next_fast_len(n + 2 * pad, real=True)
    return m, pad


# ============================================================================== generation
def _tags(p: PlannedPair, side: str, fp: str, clear: float) -> dict[str, object]:
    lr = side == "lr"
    time = p.lr_time if lr else p.hr_time
    tags: dict[str, object] = {
        "PROVIDER": PROVIDER, "PAIR_ID": p.pair_id, "REGION": p.region,
        "SENSOR": "L8" if lr else "S2", TAG_SENSOR: "L8" if lr else "S2",
        "SPACECRAFT": "LANDSAT_8" if lr else f"Sentinel-{p.hr_product_id[1:3]}",
        "SCENE_ID": p.lr_scene_id if lr else p.hr_scene_id,
        "PRODUCT_ID": p.lr_product_id if lr else p.hr_product_id,
        "DATE_ACQUIRED": time.date().isoformat(), "TIME_ACQUIRED": time.isoformat(),
        ("CLOUD_COVER" if lr else "CLOUDY_PIXEL_PERCENTAGE"): f"{p.lr_cloud if lr else p.hr_cloud:g}",
        "CLEAR_FRACTION": f"{clear:.6f}",
        "CLEAR_TEST": "demo: share of chip pixels free of planted cloud, cloud shadow and fill",
        TAG_DEMO: "1", TAG_FINGERPRINT: fp,
        "DESCRIPTION": DESCRIPTION.format(sensor="Landsat-8 OLI" if lr else "Sentinel-2 MSI"),
    }
    return tags


def _generate_location(task: tuple[Params, str, int, list[PlannedPair], dict[str, _Intact]]) -> list[dict[str, Any]]:
    """Worker: build one location's landscape once, then every requested pair of it (a file left
    intact by an earlier run is not rewritten: the pair is deterministic, so it would not change)."""
    params, out_dir, loc, pairs, intact = task
    demo = params.source.demo
    n = params.source.hr_size
    m, pad = _canvas_geometry(params)
    spec = _Spectrum(m)
    yy, xx = np.mgrid[0:m, 0:m].astype(np.float32)
    lay = _build_layout(np.random.default_rng([demo.seed, _STREAM_LOCATION, loc]), spec, yy, xx)
    fp = fingerprint(params)
    rows = []
    for p in pairs:
        rng = np.random.default_rng([demo.seed, _STREAM_PIXELS, p.index])
        month = p.lr_time.date()
        months = (month.year - demo.start_date.year) * 12 + month.month - demo.start_date.month
        ground = _render(lay, month, months, rng)
        # a defect on one side needs its own copy of the ground; good pairs share it
        lr_canvas, hr_canvas = ground, (ground.copy() if p.defect in ("cloud", "haze", "change") else ground)
        side_canvas = lr_canvas if p.defect_side == "lr" else hr_canvas
        mask = np.zeros((m, m), bool)
        if p.defect == "cloud":
            mask = _add_clouds(side_canvas, rng, spec, pad, n)
        elif p.defect == "haze":
            _add_haze(side_canvas, rng, spec)
        elif p.defect == "change":
            _add_change(hr_canvas, rng, spec, lay, yy, xx, pad, n)
        shift_lr = demo.bad_shift_lr_px if p.defect == "misaligned" else rng.uniform(0, demo.max_good_shift_lr_px)
        angle = rng.uniform(0, 2 * np.pi)
        shift_hr = (SCALE * shift_lr * math.sin(angle), SCALE * shift_lr * math.cos(angle))
        lr = sensor.degrade(lr_canvas, pad, n, demo.psf_sigma_hr_px, shift_hr, demo.noise_reflectance, rng)
        hr = _chip(hr_canvas, pad, n)
        hr_mask = _chip(mask, pad, n)
        lr_mask = hr_mask.reshape(n // SCALE, SCALE, n // SCALE, SCALE).any(axis=(1, 3))
        if p.defect == "nodata":
            target = lr if p.defect_side == "lr" else hr
            stripe = _nodata_stripe(rng, target.shape[-1])
            target = target.copy()
            target[:, stripe] = np.nan
            lr, hr = (target, hr) if p.defect_side == "lr" else (lr, target)
            if p.defect_side == "lr":
                lr_mask = lr_mask | stripe
            else:
                hr_mask = hr_mask | stripe
        lr_clear = 1.0 - float(lr_mask.mean()) if p.defect_side == "lr" else 1.0
        hr_clear = 1.0 - float(hr_mask.mean()) if p.defect_side == "hr" else 1.0
        lr_dn, hr_dn = L8_C2_L2.from_reflectance(lr), S2_SR.from_reflectance(hr)
        out = Path(out_dir)
        keep = intact.get(p.pair_id, {})
        lr_sha = keep.get("lr") or write_geotiff(out / p.lr_file, lr_dn, p.lr_grid, L8_C2_L2, LANDSAT_RGB,
                                                 _tags(p, "lr", fp, lr_clear))
        hr_sha = keep.get("hr") or write_geotiff(out / p.hr_file, hr_dn, p.hr_grid, S2_SR, S2_RGB,
                                                 _tags(p, "hr", fp, hr_clear))
        rows.append(_row(p, lr_sha, hr_sha, lr_clear, hr_clear))
    return rows


def _row(p: PlannedPair, lr_sha: str, hr_sha: str, lr_clear: float, hr_clear: float) -> dict[str, Any]:
    return manifest.pair_row(
        pair_id=p.pair_id, provider=PROVIDER, is_demo=True, region=p.region, lon=p.lon, lat=p.lat,
        **manifest.grid_columns(p.lr_grid, p.hr_grid),
        lr_file=p.lr_file, hr_file=p.hr_file, lr_sha256=lr_sha, hr_sha256=hr_sha,
        lr_date=p.lr_date, hr_date=p.hr_date, days_apart=p.days_apart,
        lr_scene_id=p.lr_scene_id, hr_scene_id=p.hr_scene_id, lr_cloud=p.lr_cloud, hr_cloud=p.hr_cloud,
        lr_clear_fraction=lr_clear, hr_clear_fraction=hr_clear, demo_defect=p.defect,
    )


def _file_fingerprint(path: Path) -> str | None:
    try:
        with rasterio.open(path) as src:
            return src.tags().get(TAG_FINGERPRINT)
    except (RasterioError, OSError):
        return None


#: Resume state of one pair: side ('lr' / 'hr') -> sha256 of its intact file from an earlier run.
_Intact = dict[str, str]


def _resumable(out_dir: Path, plan: list[PlannedPair], fp: str) -> tuple[dict[str, dict[str, Any]], dict[str, _Intact]]:
    """What an earlier run left that can stay: complete rows (both files intact) and, for pairs
    with one file missing or damaged, the intact other file (the pair is made again, that file is
    not rewritten). A file is intact when the manifest row has the planned names, the file matches
    its checksum and carries this generator's parameter fingerprint."""
    if not (out_dir / manifest.MANIFEST_NAME).is_file():
        return {}, {}
    try:
        old = manifest.read_manifest(out_dir)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        log.warning("demo: ignoring unreadable previous manifest (%s); all pairs are made again", err)
        return {}, {}
    by_id = {str(r["pair_id"]): r for r in old.to_dict("records")}
    complete, partial = {}, {}
    for p in plan:
        r = by_id.get(p.pair_id)
        if r is None or r.get("provider") != PROVIDER or (r.get("lr_file"), r.get("hr_file")) != (p.lr_file, p.hr_file):
            continue
        intact = {}
        for side in ("lr", "hr"):
            path, digest = out_dir / r[f"{side}_file"], r.get(f"{side}_sha256")
            if (isinstance(digest, str) and path.is_file() and sha256_file(path) == digest
                    and _file_fingerprint(path) == fp):
                intact[side] = digest
        if len(intact) == 2:
            complete[p.pair_id] = _row(p, intact["lr"], intact["hr"], float(r["lr_clear_fraction"]),
                                       float(r["hr_clear_fraction"]))
        elif intact:
            partial[p.pair_id] = intact
    return complete, partial


def run(params: Params, out_dir: Path) -> pd.DataFrame:
    """Write (or complete) the demo dataset in ``out_dir``; returns the manifest it wrote.

    Deterministic: the same params give byte-identical files, whatever ``workers`` is. Files an
    earlier run completed are neither made nor touched again; files outside the plan are removed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = params.source.demo
    log.warning("source: DEMO DATA -- writing SYNTHETIC procedural pairs (not real Landsat/Sentinel-2 "
                "imagery) to %s; set source.provider to 'gee' or 'folder' for real data", out_dir)
    plan = plan_pairs(params)
    fp = fingerprint(params)
    rows, partial = _resumable(out_dir, plan, fp)
    removed = manifest.prune_unlisted(out_dir, {f for p in plan for f in (p.lr_file, p.hr_file)})
    if removed:
        log.info("demo: removed %d file(s) not in the plan", len(removed))
    todo = [p for p in plan if p.pair_id not in rows]
    log.info("demo: %d pairs planned at %d locations (%d with planted defects); %d to make, %d kept",
             len(plan), demo.n_locations, sum(bool(p.defect) for p in plan), len(todo), len(rows))
    manifest.write_manifest(out_dir, list(rows.values()) or pd.DataFrame(columns=manifest.COLUMNS))
    by_loc: dict[int, list[PlannedPair]] = {}
    for p in todo:
        by_loc.setdefault(p.location, []).append(p)
    tasks = [(params, str(out_dir), loc, pairs, {p.pair_id: partial[p.pair_id] for p in pairs if p.pair_id in partial})
             for loc, pairs in sorted(by_loc.items())]
    workers = min(demo.workers, len(tasks))
    with tqdm(total=len(todo), desc="DEMO DATA pairs", unit="pair", disable=not todo) as bar:
        if workers <= 1:
            _collect(map(_generate_location, tasks), rows, out_dir, bar)
        else:
            with _mp_context().Pool(workers) as pool:
                _collect(pool.imap_unordered(_generate_location, tasks), rows, out_dir, bar)
    manifest.write_manifest(out_dir, list(rows.values()))
    return manifest.read_manifest(out_dir)


def _mp_context() -> mp.context.BaseContext:
    """``fork`` where it is safe and cheap (Linux, no TensorFlow thread pools in this process yet),
    so plain scripts without a ``__main__`` guard work too; ``spawn`` otherwise."""
    if sys.platform.startswith("linux") and "tensorflow" not in sys.modules:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _collect(results: Any, rows: dict[str, dict[str, Any]], out_dir: Path, bar: tqdm) -> None:
    """Record each finished location; the manifest is rewritten as we go so a killed run resumes."""
    for finished in results:
        for r in finished:
            rows[r["pair_id"]] = r
        manifest.write_manifest(out_dir, list(rows.values()))
        bar.update(len(finished))
