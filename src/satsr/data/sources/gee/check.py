"""First contact with Earth Engine: ``satsr ee-check`` looks at one Landsat and one Sentinel-2 scene
over the first chip and compares their native grids with the grid satsr would request."""

from __future__ import annotations

from typing import Any

import numpy as np

from satsr.config import LR_PIXEL_M, Params
from satsr.data import grids
from satsr.data.radiometry import LANDSAT_RGB, S2_RGB
from satsr.data.sources.gee.auth import resolve_auth
from satsr.data.sources.gee.client import Backend, EarthEngineBackend
from satsr.data.sources.gee.common import (
    L8_CLOUD_PROPERTY,
    LANDSAT_GRID_BAND,
    S2_CLOUD_PROPERTY,
    S2_GRID_BAND,
    GeeError,
)
from satsr.data.sources.gee.plan import landsat_collections, pair_grids, plan_locations
from satsr.data.sources.gee.provider import _initialize
from satsr.data.sources.gee.retry import Retrier


def ee_check(params: Params, backend: Backend | None = None) -> tuple[str, list[str]]:
    """Report (text) and the mismatches found (empty: the grids are as expected). About 6 requests."""
    gee = params.source.gee
    locs = plan_locations(params)
    if not locs:
        raise GeeError("source.gee.regions is empty: list at least one region in params.yaml")
    loc = locs[0]
    if backend is None:
        backend = EarthEngineBackend(resolve_auth(gee), gee.request_deadline_s)
    retrier = Retrier(gee)
    _initialize(backend, retrier)

    def least_cloudy(colls: list[str], grid: grids.Grid, prop: str, band: str) -> dict[str, Any]:
        found = retrier.call("search", backend.search_scenes, colls, grid, gee.start_date, gee.end_date, prop,
                             100.0, band)
        if not found:
            raise GeeError(f"ee-check: no scene of {', '.join(colls)} over chip {loc.key} between "
                           f"{gee.start_date} and {gee.end_date}")
        return min(found, key=lambda s: (s["cloud"], s["id"]))

    l8 = least_cloudy(landsat_collections(gee), loc.lr_grid, L8_CLOUD_PROPERTY, LANDSAT_GRID_BAND)
    s2 = least_cloudy([gee.s2_collection], loc.hr_grid, S2_CLOUD_PROPERTY, S2_GRID_BAND)
    lp = retrier.call("projection", backend.scene_projection, l8["id"], LANDSAT_GRID_BAND)
    sp = retrier.call("projection", backend.scene_projection, s2["id"], S2_GRID_BAND)
    lr, hr, extra = pair_grids(loc, lp.get("transform"), sp.get("crs"), sp.get("transform"), gee.hr_resampling)

    bad: list[str] = []
    lt = lp.get("transform") or []
    if lp.get("crs") != loc.lr_grid.crs:
        bad.append(f"Landsat scene is in {lp.get('crs')}, the chip grid in {loc.lr_grid.crs} "
                   "(Landsat uses the northern UTM zone, EPSG:326xx, also south of the equator)")
    if len(lt) != 6 or abs(lt[0] - LR_PIXEL_M) > 1e-9 or abs(lt[4] + LR_PIXEL_M) > 1e-9:
        bad.append(f"Landsat {LANDSAT_GRID_BAND} transform {lt} is not a north-up 30 m grid")
    elif any(extra["lr_offset_from_convention_m"]):
        bad.append(f"Landsat pixel edges are {extra['lr_offset_from_convention_m']} m off the Collection 2 "
                   "convention (centres on multiples of 30 m, edges at 15 mod 30)")
    if l8.get("transform") is not None and lt and any(abs(a - b) > 1e-6 for a, b in zip(l8["transform"], lt)):
        bad.append(f"the search's parsed transform {l8['transform']} differs from projection().getInfo() {lt}")
    if (lr.x0, lr.y0) != (loc.lr_grid.x0, loc.lr_grid.y0):
        bad.append(f"the planned LR corner {(loc.lr_grid.x0, loc.lr_grid.y0)} is not on the scene's lattice "
                   f"{(lr.x0, lr.y0)}")
    lr_px = retrier.call("pixels", backend.compute_pixels, l8["id"], LANDSAT_RGB, lr, None)
    hr_px = retrier.call("pixels", backend.compute_pixels, s2["id"], S2_RGB, hr, gee.hr_resampling)
    for name, arr, grid in (("Landsat", lr_px, lr), ("Sentinel-2", hr_px, hr)):
        if np.shape(arr) != (3, grid.height, grid.width):
            bad.append(f"{name} pixels came back as {np.shape(arr)}, expected {(3, grid.height, grid.width)}")

    lines = [
        f"first chip {loc.key} at lon {loc.lon:.4f}, lat {loc.lat:.4f}",
        f"Landsat   {l8['id']} (CLOUD_COVER {l8['cloud']:g} %)",
        f"  native: {lp.get('crs')} transform {lt}",
        f"Sentinel-2 {s2['id']} (CLOUDY_PIXEL_PERCENTAGE {s2['cloud']:g} %, MGRS {s2.get('mgrs')})",
        f"  native: {sp.get('crs')} transform {sp.get('transform')}",
        f"requested LR grid: {lr.crs} corner ({lr.x0:.1f}, {lr.y0:.1f}) 30 m x {lr.width} px, "
        "nearest = native pixels (not resampled)",
        f"requested HR grid: {hr.crs} corner ({hr.x0:.1f}, {hr.y0:.1f}) 10 m x {hr.width} px, {gee.hr_resampling}; "
        f"offset from Sentinel-2's pixel edges {extra.get('hr_offset_m')} m (5, 5 expected)"
        + ("; reprojected from another UTM zone" if extra["hr_reprojected"] else ""),
        f"pixels: Landsat {np.shape(lr_px)} ({float(np.mean(np.asarray(lr_px) > 0)):.0%} non-fill), "
        f"Sentinel-2 {np.shape(hr_px)} ({float(np.mean(np.asarray(hr_px) > 0)):.0%} non-fill)",
        "grid check: " + ("OK, as expected" if not bad else f"{len(bad)} MISMATCH(ES)"),
        *[f"  MISMATCH: {b}" for b in bad],
    ]
    return "\n".join(lines), bad
