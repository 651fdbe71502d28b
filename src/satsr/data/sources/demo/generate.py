"""Pixels and files of planned pairs: a location's canvas, the simulated Landsat partner, the chips.

Sensor model (the 30 m "Landsat-8 OLI" partner, from the same canvas as the 10 m "Sentinel-2" truth)
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

The HR chip is the crop of a canvas that is a margin wider than the chip, encoded as Sentinel-2
SR harmonized DN = round(rho * 10000). Every file says it is synthetic (tags ``SATSR_DEMO=1`` and
``DESCRIPTION``) and carries the generator's parameter fingerprint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft as sfft

from satsr.config import SCALE, Params
from satsr.data import manifest, sensor
from satsr.data.geotiff import TAG_SENSOR, write_geotiff
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.data.sources.demo.defects import _add_change, _add_clouds, _add_haze, _chip, _nodata_stripe
from satsr.data.sources.demo.landscape import _build_layout, _render
from satsr.data.sources.demo.noise import _Spectrum
from satsr.data.sources.demo.plan import _STREAM_LOCATION, _STREAM_PIXELS, PlannedPair, fingerprint

PROVIDER = "demo"
TAG_DEMO = "SATSR_DEMO"
TAG_FINGERPRINT = "SATSR_DEMO_FINGERPRINT"
DESCRIPTION = (
    "SYNTHETIC DEMO DATA made by satsr.data.sources.demo: a procedural landscape and a simulated "
    "sensor, NOT a real {sensor} acquisition. Scene ids are invented. Use only to exercise the pipeline."
)


#: Resume state of one pair: side ('lr' / 'hr') -> sha256 of its intact file from an earlier run.
_Intact = dict[str, str]


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

