"""Reading source files of any layout (GeoTIFF or PNG, georeferenced or not) as Rasters."""

from __future__ import annotations

import warnings
from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from satsr.data.geotiff import Raster, RasterError


def _open_quiet(path: Path):
    """rasterio.open without the NotGeoreferencedWarning that every PNG raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path)


def header(path: Path) -> tuple[int, int, CRS | None, Affine]:
    """Width, height, CRS and transform, without reading pixels (planning a scene's chips)."""
    with _open_quiet(path) as src:
        return src.width, src.height, src.crs, src.transform


def read_window(path: Path, window: Window | None) -> Raster:
    """Read a file or a window of it as a Raster (transform of the window); errors name the file."""
    try:
        with _open_quiet(path) as src:
            data = src.read(window=window)
            tr = window_transform(window, src.transform) if window is not None else src.transform
            return Raster(
                path=path,
                data=data,
                crs=src.crs,
                transform=tr,
                nodata=src.nodata,
                band_names=tuple(d or "" for d in src.descriptions),
                tags=src.tags(),
                scales=tuple(src.scales),
                offsets=tuple(src.offsets),
            )
    except (RasterioError, OSError) as err:
        raise RasterError(f"{path}: unreadable raster ({err})") from None
