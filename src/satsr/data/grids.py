"""Grid maths: UTM zones, exactly nested 30 m / 10 m grids, and the seed's moving square.

Both sensors are requested on the same UTM CRS with the same upper-left origin, so the HR chip is
exactly 3x the LR chip and pixel-aligned by construction. :func:`nested_grids` snaps that corner to
multiples of 30 m (the simulated providers' lattice); :func:`landsat_grids` puts it on Landsat
Collection 2's own lattice (pixel *centres* on multiples of 30 m, so edges at 15 mod 30, always in
the northern UTM zone), which is what the Earth Engine provider requests so the LR stays native.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from satsr.config import HR_PIXEL_M, LR_PIXEL_M, SCALE

#: Degrees -> km, as the seed used them (1 deg latitude; longitude scales with cos(lat)).
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``crs`` (EPSG code string), origin (x0, y0) upper-left, pixel size."""

    crs: str
    x0: float
    y0: float
    pixel: float
    width: int
    height: int

    @property
    def affine(self) -> list[float]:
        """Earth Engine ``affineTransform`` order: scaleX, shearX, translateX, shearY, scaleY, translateY."""
        return [self.pixel, 0.0, self.x0, 0.0, -self.pixel, self.y0]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.height * self.pixel, self.x0 + self.width * self.pixel, self.y0)

    def to_rasterio(self):  # -> affine.Affine, imported lazily to keep this module light
        from affine import Affine

        return Affine(self.pixel, 0.0, self.x0, 0.0, -self.pixel, self.y0)

    def window(self, col: int, row: int, width: int, height: int) -> Grid:
        """Sub-grid starting at pixel (col, row)."""
        return Grid(self.crs, self.x0 + col * self.pixel, self.y0 - row * self.pixel, self.pixel, width, height)


def utm_epsg(lon: float, lat: float) -> int:
    """WGS84 / UTM zone EPSG code of a point (326xx north, 327xx south), as Sentinel-2 uses them."""
    return (32600 if lat >= 0 else 32700) + utm_zone(lon)


#: Landsat Collection 2: pixel centres on multiples of 30 m, so pixel edges lie at 15 (mod 30) m.
LANDSAT_EDGE_MOD_M = LR_PIXEL_M / 2


def utm_zone(lon: float) -> int:
    """UTM zone number (1..60) of a longitude."""
    return min(int((lon + 180.0) // 6.0) + 1, 60)


def landsat_epsg(lon: float) -> int:
    """EPSG code of the UTM zone Landsat products use at ``lon``: always the northern 326xx (south
    of the equator the northings are negative), unlike Sentinel-2's 327xx there."""
    return 32600 + utm_zone(lon)


def epsg_zone(crs: str | int) -> int | None:
    """UTM zone number of a WGS84 / UTM EPSG code ('EPSG:32622', 32722 -> 22); None for other CRSs."""
    try:
        code = int(str(crs).upper().removeprefix("EPSG:"))
    except ValueError:
        return None
    return code % 100 if 32601 <= code <= 32660 or 32701 <= code <= 32760 else None


def lattice_offset(x0: float, y0: float, tx: float, ty: float, pixel: float) -> tuple[float, float]:
    """Where the corner (x0, y0) lies relative to the pixel edges of a native grid with corner (tx, ty):
    (east, south) metres in [0, pixel). (0, 0): the corner is on the native lattice.

    The 10 000 000 m false northing between 326xx and 327xx is a whole number of 10 m and 30 m
    pixels, so the offset is the same in either hemisphere's code of one zone."""
    dx = (x0 - tx) % pixel
    dy = (ty - y0) % pixel
    snap = 1e-6  # float noise of large UTM coordinates
    return (0.0 if min(dx, pixel - dx) < snap else dx, 0.0 if min(dy, pixel - dy) < snap else dy)


def landsat_grids(x_center: float, y_center: float, crs: str, lr_size: int,
                  lattice: tuple[float, float] = (LANDSAT_EDGE_MOD_M, LANDSAT_EDGE_MOD_M)) -> tuple[Grid, Grid]:
    """LR (30 m) and HR (10 m) grids around a projected centre on a Landsat scene's own lattice.

    ``lattice`` is any pixel corner of the Landsat scene (its ``crs_transform`` translation); the
    default is the Collection 2 convention, edges at 15 (mod 30) m. The LR corner is the lattice
    corner nearest the chip's corner, so an LR request on this grid returns native Landsat pixels
    (nothing is resampled); the HR grid nests exactly (same corner, 10 m) and is *not* on
    Sentinel-2's lattice (edges at 0 mod 10 m): the HR is resampled onto it.
    """
    half = lr_size * LR_PIXEL_M / 2.0
    lx, ly = lattice
    x0 = lx + round((x_center - half - lx) / LR_PIXEL_M) * LR_PIXEL_M
    y0 = ly + round((y_center + half - ly) / LR_PIXEL_M) * LR_PIXEL_M
    return (Grid(crs, x0, y0, LR_PIXEL_M, lr_size, lr_size),
            Grid(crs, x0, y0, HR_PIXEL_M, lr_size * SCALE, lr_size * SCALE))


def nested_grids(x_center: float, y_center: float, crs: str, lr_size: int) -> tuple[Grid, Grid]:
    """LR (30 m) and HR (10 m) grids around a projected centre, sharing the upper-left corner.

    The corner is snapped onto the 30 m lattice, so chips at different places stay on one lattice
    (what Landsat's own grid does) and any two chips either align or do not overlap partially
    off-lattice.
    """
    half = lr_size * LR_PIXEL_M / 2.0
    x0 = math.floor((x_center - half) / LR_PIXEL_M) * LR_PIXEL_M
    y0 = math.ceil((y_center + half) / LR_PIXEL_M) * LR_PIXEL_M
    lr = Grid(crs, x0, y0, LR_PIXEL_M, lr_size, lr_size)
    hr = Grid(crs, x0, y0, HR_PIXEL_M, lr_size * SCALE, lr_size * SCALE)
    return lr, hr


def offset_lonlat(lon: float, lat: float, east_km: float, north_km: float) -> tuple[float, float]:
    """Move a point by km east/north with the seed's degree lengths (cos of latitude in radians)."""
    new_lat = lat + north_km / KM_PER_DEG_LAT
    new_lon = lon + east_km / (KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)))
    return new_lon, new_lat


def moving_square(
    start: tuple[float, float],
    count: int,
    buffer_m: float,
    step_factor: float,
    heading_deg: float = 90.0,
    end: tuple[float, float] | None = None,
) -> list[tuple[float, float]]:
    """Chip centres (lon, lat) of the seed's moving-square scan.

    Without ``end``: ``count`` centres stepped by ``step_factor * buffer`` along ``heading_deg``.
    With ``end``: ``count`` centres at equal steps from ``start`` to ``end`` inclusive.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if end is not None:
        if count == 1:
            return [start]
        return [
            (start[0] + (end[0] - start[0]) * i / (count - 1), start[1] + (end[1] - start[1]) * i / (count - 1))
            for i in range(count)
        ]
    step_km = step_factor * buffer_m / 1000.0
    east, north = math.sin(math.radians(heading_deg)), math.cos(math.radians(heading_deg))
    centres = [start]
    for _ in range(count - 1):
        lon, lat = centres[-1]
        centres.append(offset_lonlat(lon, lat, step_km * east, step_km * north))
    return centres


def split_request(grid: Grid, bands: int, bytes_per_px: int, max_bytes: int,
                  max_side: int) -> list[tuple[int, int, Grid]]:
    """Tile a grid so each request stays under the per-request byte and side limits.

    Returns (col, row, sub_grid) with tile offsets in pixels of ``grid``. Tiles are square-ish and
    cover the grid exactly once.
    """
    per_px = bands * bytes_per_px
    max_px = max(1, max_bytes // per_px)
    side = max(1, min(max_side, int(math.isqrt(max_px))))
    if grid.width * grid.height <= max_px and grid.width <= max_side and grid.height <= max_side:
        return [(0, 0, grid)]
    tiles = []
    for row in range(0, grid.height, side):
        for col in range(0, grid.width, side):
            w, h = min(side, grid.width - col), min(side, grid.height - row)
            tiles.append((col, row, grid.window(col, row, w, h)))
    return tiles


def cell_id(x: float, y: float, crs: str, cell_m: float) -> str:
    """Spatial group key: chips whose centres share a cell of ``cell_m`` stay in one split."""
    return f"{crs}:{math.floor(x / cell_m)}:{math.floor(y / cell_m)}"
