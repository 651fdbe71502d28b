"""The synthetic 10 m scene: one location's procedural landscape, and its look in a given month.

A procedural humid-tropics landscape in surface reflectance, built per location from fixed
land-cover reflectances (module constants) and FFT-filtered noise: forest canopy with crown-scale
texture, secondary forest, pasture that dries with the season, fields (a rotated grid of polygons
with their own crop state and streaks), clear-cuts along a fishbone road network (straight and
curved, laterite or paved), and a meandering river with riparian forest. Each location keeps its
landscape across months (:func:`_build_layout`); fields, pasture and canopy change with the
calendar month (:func:`_render`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from satsr.config import HR_PIXEL_M
from satsr.data.sources.demo.noise import _px, _rgb, _Spectrum, _u

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

# ---------------------------------------------------------------- scene geometry (metres, ground)
CROWN_M = (15.0, 60.0)            # canopy crown texture wavelengths
CANOPY_MID_M = (60.0, 1000.0)     # stand-scale canopy variation; pasture moisture pattern
FINE_M = (12.0, 200.0)            # soil / crop texture
ZONE_M = (300.0, 12000.0)         # land-use zones
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

# Land-cover classes of the layout.
_FOREST, _PASTURE, _FIELD, _CUT, _SECONDARY = 0, 1, 2, 3, 4
_ROAD_MAIN, _ROAD_SIDE = 1, 2
_PATH_STEP_PX = 0.5
_PATH_KNOTS = 7


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

