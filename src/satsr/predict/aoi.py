"""Area of interest: a GeoJSON file/mapping or bounds -> the input window to predict.

Bounds ``(minx, miny, maxx, maxy)`` / ``"minx,miny,maxx,maxy"`` are read in the input's CRS, or as
lon/lat when they only fit there (``"EPSG:4326:minx,..."`` says so explicitly); GeoJSON is EPSG:4326
unless it has a ``crs`` member. The bounding box, snapped outward to the input's pixel grid and cut
to the raster, is the window.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from satsr.predict.errors import PredictError

log = logging.getLogger(__name__)


def _parse_aoi(aoi: Any) -> tuple[tuple[float, float, float, float] | list[dict], CRS | None]:
    """(bounds or GeoJSON geometries, CRS or None = the input's CRS, else EPSG:4326)."""
    if isinstance(aoi, dict):
        return _geojson_geometries(aoi), _geojson_crs(aoi)
    if isinstance(aoi, (tuple, list)) and len(aoi) == 4:
        return tuple(float(v) for v in aoi), None  # type: ignore[return-value]
    text = str(aoi).strip()
    path = Path(text).expanduser()
    if path.is_file():
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise PredictError(f"--aoi {path}: not a readable GeoJSON file ({err})") from None
        return _geojson_geometries(obj, path), _geojson_crs(obj)
    m = re.fullmatch(r"(?:(?P<crs>[A-Za-z]+:\d+)[:@])?(?P<b>[^:@]+)", text)
    try:
        values = [float(v) for v in m["b"].split(",")] if m else []
    except ValueError:
        values = []
    if len(values) != 4 or values[0] >= values[2] or values[1] >= values[3]:
        raise PredictError(f"--aoi {aoi!r}: expected a GeoJSON file or bounds minx,miny,maxx,maxy (in the input's "
                           "CRS, or lon/lat; prefix EPSG:4326: to say which), with min < max")
    crs = CRS.from_user_input(m["crs"]) if m and m["crs"] else None
    return tuple(values), crs  # type: ignore[return-value]


def _geojson_crs(obj: dict) -> CRS:
    name = ((obj.get("crs") or {}).get("properties") or {}).get("name")  # legacy GeoJSON 2008 member
    return CRS.from_user_input(name) if name else CRS.from_epsg(4326)


def _geojson_geometries(obj: dict, path: Path | None = None) -> list[dict]:
    kind = obj.get("type")
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in obj.get("features", [])]
    elif kind == "Feature":
        geoms = [obj.get("geometry")]
    else:
        geoms = [obj]
    geoms = [g for g in geoms if g and g.get("type") and (g.get("coordinates") or g.get("geometries"))]
    if not geoms:
        raise PredictError(f"--aoi {path or 'GeoJSON'}: no geometry found (expected a GeoJSON Geometry, Feature "
                           "or FeatureCollection)")
    return geoms


def _window_of_bounds(b: Sequence[float], transform: Affine, width: int, height: int) -> Window | None:
    """Pixels touched by bounds, snapped outward to the pixel grid and cut to the raster; None if empty."""
    from rasterio.windows import from_bounds

    w = from_bounds(*b, transform=transform)
    eps = 1e-6
    c0, r0 = max(0, math.floor(w.col_off + eps)), max(0, math.floor(w.row_off + eps))
    c1 = min(width, math.ceil(w.col_off + w.width - eps))
    r1 = min(height, math.ceil(w.row_off + w.height - eps))
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def aoi_window(aoi: Any, crs: CRS | None, transform: Affine, width: int, height: int, label: str) -> Window:
    """The input window of an AOI (GeoJSON file/mapping or bounds; see ``_parse_aoi``)."""
    from rasterio.features import bounds as geom_bounds
    from rasterio.warp import transform_bounds, transform_geom

    if crs is None:
        raise PredictError(f"{label}: --aoi needs a georeferenced input")
    if transform.b != 0 or transform.d != 0:
        raise PredictError(f"{label}: rotated geotransforms are not supported with --aoi")
    shape, given = _parse_aoi(aoi)
    wgs84 = CRS.from_epsg(4326)
    if isinstance(shape, list):  # GeoJSON geometries
        boxes = [geom_bounds(transform_geom(given, crs, g) if given != crs else g) for g in shape]
        lows, highs = [min(b[i] for b in boxes) for i in (0, 1)], [max(b[i] for b in boxes) for i in (2, 3)]
        bounds = (*lows, *highs)
        candidates = [(bounds, given)]
    elif given is not None:
        candidates = [(transform_bounds(given, crs, *shape, densify_pts=21) if given != crs else shape, given)]
    else:
        candidates = [(shape, crs)]
        lonlat = -180 <= shape[0] <= 180 and -180 <= shape[2] <= 180 and -90 <= shape[1] <= 90 and -90 <= shape[3] <= 90
        if lonlat and crs != wgs84:
            candidates.append((transform_bounds(wgs84, crs, *shape, densify_pts=21), wgs84))
    for bounds, used in candidates:
        window = _window_of_bounds(bounds, transform, width, height)
        if window is not None:
            log.info("%s: AOI %s (%s) -> input window rows %d..%d, cols %d..%d", label, tuple(shape) if not
                     isinstance(shape, list) else "GeoJSON", used.to_string() if used else "input CRS",
                     window.row_off, window.row_off + window.height, window.col_off, window.col_off + window.width)
            return window
    from rasterio.transform import array_bounds

    raise PredictError(f"{label}: --aoi {aoi!r} does not overlap the input (input bounds "
                       f"{tuple(round(v, 6) for v in array_bounds(height, width, transform))} in {crs.to_string()}; "
                       "bounds are read in the input's CRS, or as lon/lat when they fit there)")
