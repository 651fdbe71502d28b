"""Deliberately bad pairs: the defects planted in ``bad_fraction`` of the pairs (``demo_defect``).

    cloud       bright soft cumulus (reflectance 0.45-0.8) with displaced shadows on one side
    nodata      a stripe of fill (DN 0) across the chip on one side
    misaligned  the Landsat translation is ``bad_shift_lr_px`` LR pixels instead of sub-pixel
    change      the Sentinel-2 side shows a large fresh clear-cut over the darker half of the chip
    haze        a strong additive, bluish haze veil on one side

Each is strong enough for the simple screens in ``filter`` (bright-pixel share, fill,
phase-correlation shift, LR/HR correlation, blue 5th percentile) and good pairs pass them.
``misaligned`` needs no pixels of its own: it is the sensor model's translation.
"""

from __future__ import annotations

import math

import numpy as np

from satsr.data.sources.demo.landscape import BARE_SOIL, FIELD_STREAK_M, FINE_AMPLITUDE, _Layout
from satsr.data.sources.demo.noise import _px, _rgb, _Spectrum, _u

DEFECTS = ("cloud", "nodata", "misaligned", "change", "haze")

#: Cloud tops are nearly white, a touch bluish in SR; haze is bluish (aerosol + Rayleigh).
CLOUD_TINT = (0.97, 0.99, 1.00)
HAZE_TINT = (0.72, 0.85, 1.00)

# ----------------------------------------------------------------------- defect strengths
EDGE_M = (20.0, 300.0)               # ragged edge of the planted clear-cut (metres)
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
