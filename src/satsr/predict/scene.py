"""An input scene opened for reading: its files checked for one common grid, its encoding and window.

``open_scene`` opens a ``SceneInput``'s files, refuses what could not be placed on the map (no
georeference unless allowed, ground control points only, rotated grids), decides the encoding
(satsr.predict.encoding) and the AOI window (satsr.predict.aoi). ``OpenScene.read`` returns
reflectance and the nodata mask (the file's nodata value, NaN, and per-dataset/alpha masks) of any
window, relative to the AOI window.
"""

from __future__ import annotations

import logging
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

from satsr.config import SCALE
from satsr.data.radiometry import L8_C2_L2
from satsr.predict.aoi import aoi_window
from satsr.predict.encoding import InputEncoding, check_plausible, guess_encoding
from satsr.predict.errors import PredictError
from satsr.predict.inputs import SceneInput

log = logging.getLogger(__name__)


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
                raise PredictError(f"{band.path}: read failed at window {win} ({err})") from None
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


def _open(path: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as err:
        raise PredictError(f"{path}: not a readable GeoTIFF ({err})") from None


def open_scene(scene: SceneInput, *, input_scale: float | None = None, input_offset: float | None = None,
               aoi: Any = None, allow_ungeoreferenced: bool = False) -> OpenScene:
    """Open a scene's files, check they share one grid and decide its encoding and window."""
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
