"""An input scene opened for reading: its files checked for one common grid, its encoding and window.

``open_scene`` opens a ``SceneInput``'s files, refuses what could not be placed on the map (no
georeference unless allowed, ground control points only, rotated grids), what is not at the model's
30 m input pixel size (``check_pixel_size``; metres, or degrees at the scene's latitude) and files
whose last block does not read (a truncated download), decides the encoding
(satsr.predict.encoding) and the AOI window (satsr.predict.aoi). ``OpenScene.read`` returns
reflectance and the nodata mask (the file's nodata value, NaN, and per-dataset/alpha masks) of any
window, relative to the AOI window.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from satsr.config import LR_PIXEL_M, SCALE, PredictParams
from satsr.data.radiometry import L8_C2_L2
from satsr.predict.aoi import aoi_window
from satsr.predict.encoding import InputEncoding, check_plausible, guess_encoding
from satsr.predict.errors import PredictError
from satsr.predict.inputs import SceneInput

log = logging.getLogger(__name__)

#: km per degree of latitude, and of longitude at the equator (the guide's figures).
KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON = 111.320
#: The default relative pixel-size tolerance (params predict.pixel_size_tolerance).
DEFAULT_PIXEL_TOLERANCE = PredictParams().pixel_size_tolerance


@dataclass
class OpenScene:
    """A scene's open datasets, checked for one common grid, with its encoding and AOI window."""

    input: SceneInput
    datasets: dict[Path, Any]
    window: Window
    crs: CRS | None
    transform: Affine
    georeferenced: bool
    nodata: tuple[float | None, float | None, float | None]
    encoding: InputEncoding
    dtype: str
    masked_by_file: tuple[bool, bool, bool] = (False, False, False)

    @property
    def height(self) -> int:
        return int(self.window.height)

    @property
    def width(self) -> int:
        return int(self.window.width)

    @property
    def out_transform(self) -> Affine:
        origin = self.transform @ Affine.translation(self.window.col_off, self.window.row_off)
        return origin @ Affine.scale(1.0 / SCALE)

    def close(self) -> None:
        for ds in self.datasets.values():
            ds.close()

    def read(self, row0: int, nrows: int, col0: int = 0, ncols: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance (rows, cols, 3) float32 and nodata mask (rows, cols) of a window relative to
        the AOI window."""
        ncols = self.width - col0 if ncols is None else ncols
        win = Window(self.window.col_off + col0, self.window.row_off + row0, ncols, nrows)
        refl = np.empty((nrows, ncols, 3), dtype=np.float32)
        mask = np.zeros((nrows, ncols), dtype=bool)
        for i, band in enumerate(self.input.bands):
            ds = self.datasets[band.path]
            try:
                dn = ds.read(band.index, window=win)
            except RasterioError as err:
                raise PredictError(f"{band.path}: reading rows {win.row_off}..{win.row_off + nrows} failed "
                                   f"({gdal_reason(err)}) (expected a complete, undamaged GeoTIFF; a truncated "
                                   "download reads like this)") from None
            nodata = self.nodata[i]
            if nodata is not None:
                mask |= np.isnan(dn) if np.isnan(nodata) else (dn == nodata)
            if dn.dtype.kind == "f":
                mask |= ~np.isfinite(dn)
            if self.masked_by_file[i]:
                mask |= ds.read_masks(band.index, window=win) == 0
            np.multiply(dn, np.float32(self.encoding.scales[i]), out=refl[..., i], casting="unsafe")
            refl[..., i] += np.float32(self.encoding.offsets[i])
        return refl, mask


def gdal_reason(err: BaseException) -> str:
    """GDAL's own message behind a rasterio error ("Read failed. See previous exception" says nothing)."""
    cause = err.__cause__ or err.__context__
    return str(cause or err).strip().splitlines()[0] if str(cause or err).strip() else type(err).__name__


def _open(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as err:
        raise PredictError(f"{path}: not a readable GeoTIFF ({gdal_reason(err)}) (expected a complete GeoTIFF)"
                           ) from None


def check_complete(path: Path, ds: Any, bands: list[int]) -> None:
    """Read the last block of each band: a truncated or damaged file fails here, before the model runs."""
    bh, bw = ds.block_shapes[0]
    row, col = (ds.height - 1) // bh * bh, (ds.width - 1) // bw * bw
    try:
        for b in bands:
            ds.read(b, window=Window(col, row, ds.width - col, ds.height - row))
    except RasterioError as err:
        raise PredictError(f"{path}: truncated or damaged: its last block does not read ({gdal_reason(err)}) "
                           "(expected a complete GeoTIFF; download or export it again)") from None


def pixel_size_m(crs: CRS, transform: Affine, width: int, height: int) -> tuple[float, float]:
    """Ground size (x, y) of one pixel in metres: projected units times their metre factor, degrees
    at the latitude of the raster's centre."""
    sx, sy = abs(transform.a), abs(transform.e)
    if crs.is_geographic:
        lat = max(-90.0, min(90.0, (transform * (width / 2, height / 2))[1]))
        return (sx * KM_PER_DEG_LON * 1000 * math.cos(math.radians(lat)), sy * KM_PER_DEG_LAT * 1000)
    _, factor = crs.linear_units_factor
    return sx * factor, sy * factor


def check_pixel_size(path: Path, crs: CRS, transform: Affine, width: int, height: int, tolerance: float) -> None:
    """Refuse an input whose pixels are not the model's 30 m (within ``tolerance``, relative)."""
    try:
        sx, sy = pixel_size_m(crs, transform, width, height)
    except Exception as err:  # noqa: BLE001 -- pyproj/rasterio CRS errors of exotic CRSs
        raise PredictError(f"{path}: cannot tell the pixel size in metres of CRS {crs} ({err}) (expected a "
                           f"{LR_PIXEL_M:g} m Landsat grid; pass --allow-any-resolution to predict anyway)") from None
    if max(abs(sx / LR_PIXEL_M - 1), abs(sy / LR_PIXEL_M - 1)) <= tolerance:
        return
    given = (f"{abs(transform.a):.6g} x {abs(transform.e):.6g} degrees = {sx:.1f} x {sy:.1f} m at this latitude"
             if crs.is_geographic else f"{sx:.4g} x {sy:.4g} m")
    raise PredictError(f"{path}: pixel size {given} is not the model's {LR_PIXEL_M:g} m input (expected "
                       f"{LR_PIXEL_M:g} m within {tolerance:.0%}, the Landsat grid the model was trained on; resample "
                       f"first, e.g. gdalwarp -tr 30 30, or pass --allow-any-resolution to super-resolve it anyway)")


def open_scene(scene: SceneInput, *, input_scale: float | None = None, input_offset: float | None = None,
               aoi: Any = None, allow_ungeoreferenced: bool = False,
               pixel_tolerance: float | None = DEFAULT_PIXEL_TOLERANCE) -> OpenScene:
    """Open a scene's files, check they share one grid, are complete and (unless ``pixel_tolerance`` is
    None) at 30 m, and decide its encoding and window."""
    datasets: dict[Path, Any] = {}
    try:
        for f in scene.files:
            if not f.is_file():
                raise PredictError(f"{f}: file not found")
            datasets[f] = _open(f)
        first = datasets[scene.files[0]]
        for f, ds in datasets.items():
            if (ds.width, ds.height) != (first.width, first.height) or ds.crs != first.crs or \
                    not ds.transform.almost_equals(first.transform):
                raise PredictError(f"{f}: grid {ds.width}x{ds.height} {ds.crs} {tuple(ds.transform)[:6]} differs from "
                                   f"{scene.files[0]} ({first.width}x{first.height} {first.crs}); the band files of "
                                   "one scene must share one grid")
        dtypes = {datasets[b.path].dtypes[b.index - 1] for b in scene.bands}
        if len(dtypes) != 1:
            raise PredictError(f"{scene.name}: red, green and blue have different data types {sorted(dtypes)}")
        georef = first.crs is not None and first.transform != Affine.identity()
        if not georef and not first.gcps[0]:
            if not allow_ungeoreferenced:
                raise PredictError(f"{scene.files[0]}: not georeferenced (no CRS or geotransform), so the 10 m output "
                                   "could not be placed on the map; pass --allow-ungeoreferenced to write it in pixel "
                                   "coordinates anyway")
            log.warning("%s: not georeferenced; the output is written without CRS", scene.files[0])
        elif not georef:
            raise PredictError(f"{scene.files[0]}: georeferenced by ground control points only; warp it to a map grid "
                               "first (e.g. gdalwarp)")
        if georef and (first.transform.b != 0 or first.transform.d != 0):
            raise PredictError(f"{scene.files[0]}: rotated geotransform {tuple(first.transform)[:6]}; warp it to a "
                               "north-up grid first (e.g. gdalwarp)")
        if georef and pixel_tolerance is not None:
            check_pixel_size(scene.files[0], first.crs, first.transform, first.width, first.height, pixel_tolerance)
        for f, ds in datasets.items():
            check_complete(f, ds, sorted({b.index for b in scene.bands if b.path == f}))
        window = Window(0, 0, first.width, first.height)
        if aoi is not None:
            window = aoi_window(aoi, first.crs if georef else None, first.transform, first.width, first.height,
                                scene.name)
        nodata = []
        by_file = []
        for b in scene.bands:
            ds = datasets[b.path]
            nd = ds.nodatavals[b.index - 1]
            flags = ds.mask_flag_enums[b.index - 1]
            by_file.append(nd is None and (MaskFlags.per_dataset in flags or MaskFlags.alpha in flags))
            nodata.append(None if nd is None else float(nd))
        open_ = OpenScene(scene, datasets, window, first.crs if georef else None, first.transform, georef,
                          tuple(nodata), InputEncoding("", (1, 1, 1), (0, 0, 0), ""), dtypes.pop(),  # type: ignore
                          tuple(by_file))  # type: ignore[arg-type]
        open_.encoding = guess_encoding(open_, input_scale, input_offset)
        if open_.encoding.name == L8_C2_L2.name and all(n is None for n in open_.nodata):
            open_.nodata = (0.0, 0.0, 0.0)  # Collection 2 fill
        return check_plausible(open_)
    except BaseException:
        for ds in datasets.values():
            ds.close()
        raise


def fill_nodata(refl: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reflectance with every nodata pixel set to its nearest valid pixel (all nodata: 0), so the
    network sees no edges that are not there."""
    if not mask.any():
        return refl
    if mask.all():
        refl[:] = 0.0
        return refl
    from scipy.ndimage import distance_transform_edt

    iy, ix = distance_transform_edt(mask, return_distances=False, return_indices=True)
    return refl[iy, ix]
