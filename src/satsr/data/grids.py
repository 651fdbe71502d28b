"""Grid maths: UTM zones, exactly nested 30 m / 10 m grids, and the seed's moving square.

Both sensors are requested on the same UTM CRS with the same upper-left origin (snapped to the
30 m lattice), so the HR chip is exactly 3x the LR chip and pixel-aligned by construction.
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
    """WGS84 / UTM zone EPSG code of a point (326xx north, 327xx south)."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


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
