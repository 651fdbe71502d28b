"""Whole Landsat scenes -> georeferenced 10 m Cloud-Optimized GeoTIFFs.

``predict(inputs, model, output)`` super-resolves each input scene x3 and writes one GeoTIFF per
scene that lies exactly on the input: same CRS, same upper-left corner, pixel size exactly 1/3,
width and height exactly 3x.

Inputs
------
* a GeoTIFF (3 bands = red, green, blue; any other count needs ``bands``, 1-based), a folder of
  GeoTIFFs, or a glob;
* a Collection 2 Level-2 scene as separate band files, recognised from the product id
  (``LC08_L2SP_..._SR_B4.TIF``): red, green, blue = SR_B4, SR_B3, SR_B2 for LC08/LC09 and
  SR_B3, SR_B2, SR_B1 for LT04/LT05/LE07. Passing any one band file or the folder works.

The radiometric encoding (reflectance = DN * scale + offset) is, in order: ``input_scale`` /
``input_offset``; the file's own band scales/offsets; a satsr ``SATSR_ENCODING`` tag; Collection 2
L2 (DN * 2.75e-5 - 0.2, fill 0) for integer data; reflectance for float data. Two guards catch a
wrong guess: integer data whose C2 decoding has a median below -0.05, and float data whose median
is above 1.5 (a float copy of C2 DN from a ``_L2SP_`` product is decoded as C2 DN; anything else
is refused with the options that fix it). The file's nodata value and NaN are masks.

Processing
----------
Reflectance is mapped to the models' input ``x = (clip(r, lo, hi) - lo) / (hi - lo)`` with
``lo, hi = png.reflectance_min, png.reflectance_max`` (the training PNGs' mapping); nodata pixels are
filled with the nearest valid value, so the network sees no edges that are not there. Tiles (see
satsr.predict.tiles) are read strip by strip in a background thread, run through the model in
batches, blended into a strip accumulator, and the finished rows are clipped to [lo, hi],
encoded and written in a background thread into a temporary tiled GeoTIFF in the output folder,
in whole 512-row bands. Memory depends on the scene width and the tile size, not on the scene
size. The temporary file is then copied into a COG (with overviews) under a temporary name and
renamed onto the output path: a killed run never leaves a partial file at the output path.

Output
------
uint16 with the Collection 2 encoding (scale 2.75e-5, offset -0.2 as the bands' own scale/offset,
so GDAL and rasterio decode it; fill 0) or float32 reflectance (NaN fill). Every input nodata pixel
becomes a 3 x 3 block of output nodata (never invented detail). Band descriptions name the colour
and the source band; tags name the model (name, version, run id, URI), the input files, the
encodings and the satsr version.
"""

from __future__ import annotations

import glob as globlib
import json
import logging
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from pydantic import ValidationError
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from satsr import __version__
from satsr.config import SCALE, Params, PredictParams
from satsr.data.geotiff import TAG_ENCODING, atomic_path
from satsr.data.radiometry import BY_NAME, L8_C2_L2, LANDSAT_RGB, LANDSAT_TM_RGB, to_quicklook8
from satsr.predict.tiles import Tile, TileGrid, batched

log = logging.getLogger(__name__)

#: Red, green, blue Collection 2 L2 band of each supported sensor (product id prefix).
SENSOR_RGB: dict[str, tuple[str, str, str]] = {
    "LC08": LANDSAT_RGB, "LC09": LANDSAT_RGB,
    "LE07": LANDSAT_TM_RGB, "LT05": LANDSAT_TM_RGB, "LT04": LANDSAT_TM_RGB,
}
COLOURS = ("red", "green", "blue")
OUTPUT_SUFFIX = "_SR10m.tif"
COMPARE_SUFFIX = "_compare.png"
#: One RGB band file of a C2 L2 product: <product id>_SR_B<n>.TIF
BAND_FILE = re.compile(r"^(?P<pid>(?P<sensor>L[A-Z]\d\d)_.+?)_(?P<band>SR_B\d)\.tiff?$", re.IGNORECASE)
#: Any per-band file of a Landsat product (QA_PIXEL, ST_B10, SR_QA_AEROSOL, ...), skipped in folders.
PRODUCT_FILE = re.compile(r"^L[A-Z]\d\d_.+_(?:SR|ST|QA)_[A-Z0-9_]+\.tiff?$", re.IGNORECASE)
SENSOR_PREFIX = re.compile(r"^(?P<sensor>L[A-Z]\d\d)_", re.IGNORECASE)
SENTINEL2 = re.compile(r"^(S2[ABCD]_|T\d\d[A-Z]{3}_)", re.IGNORECASE)
#: A Collection 2 Level-2 product id in a file name (its float copies hold DN, not reflectance).
C2_L2_NAME = re.compile(r"_L2S[PR]_", re.IGNORECASE)
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
TAG = "SATSR_"
#: Median decoded reflectance outside this range means the encoding guess is wrong.
MIN_PLAUSIBLE_MEDIAN = -0.05
MAX_PLAUSIBLE_MEDIAN = 1.5
#: GDAL block cache while predicting (MB): bounds memory on any scene size.
GDAL_CACHE_MB = 256


class PredictError(ValueError):
    """Bad input, model or output for ``predict``; the message names the file and what was expected."""


class PredictWarning(UserWarning):
    """Something the analyst should know about an otherwise finished prediction (e.g. all nodata)."""


# ========================================================================================= inputs
@dataclass(frozen=True)
class BandSource:
    path: Path
    index: int  # 1-based band of ``path``
    name: str  # SR_B4, or "band 3" of a multiband file


@dataclass(frozen=True)
class SceneInput:
    """One scene to predict: where its red, green and blue come from."""

    name: str
    bands: tuple[BandSource, BandSource, BandSource]
    sensor: str | None = None

    @property
    def files(self) -> list[Path]:
        return list(dict.fromkeys(b.path for b in self.bands))


def _expected_inputs() -> str:
    l89 = "/".join(f"_{b}" for b in LANDSAT_RGB)
    tm = "/".join(f"_{b}" for b in LANDSAT_TM_RGB)
    return (f"expected a 3-band red,green,blue GeoTIFF, a multiband GeoTIFF with --bands R,G,B, or the Collection 2 "
            f"Level-2 band files <PRODUCT_ID>{l89}.TIF (LC08, LC09) or <PRODUCT_ID>{tm}.TIF (LT04, LT05, LE07)")


def _tif_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith("."))


def _scene_from_band_file(path: Path) -> SceneInput:
    m = BAND_FILE.match(path.name)
    assert m is not None
    pid, sensor = m["pid"], m["sensor"].upper()
    if sensor not in SENSOR_RGB:
        raise PredictError(f"{path}: {sensor} is not a supported Landsat sensor (supported: "
                           f"{', '.join(SENSOR_RGB)}); {_expected_inputs()}")
    siblings = {p.name.upper(): p for p in path.parent.iterdir()} if path.parent.is_dir() else {}
    sources = []
    for band in SENSOR_RGB[sensor]:
        want = f"{pid}_{band}"
        found = siblings.get(f"{want}.TIF".upper()) or siblings.get(f"{want}.TIFF".upper())
        if found is None:
            raise PredictError(f"{path.parent / (want + '.TIF')}: file not found (scene {pid} needs "
                               f"{', '.join(pid + '_' + b + '.TIF' for b in SENSOR_RGB[sensor])})")
        sources.append(BandSource(found, 1, band))
    return SceneInput(pid, tuple(sources), sensor)  # type: ignore[arg-type]


def _parse_bands(bands: str | Sequence[int] | None) -> tuple[int, int, int] | None:
    if bands is None:
        return None
    if isinstance(bands, str):
        try:
            values = [int(v) for v in bands.replace(" ", "").split(",") if v]
        except ValueError:
            raise PredictError(f"--bands {bands!r}: expected three 1-based band numbers red,green,blue, "
                               "e.g. 3,2,1") from None
    else:
        values = [int(v) for v in bands]
    if len(values) != 3 or min(values) < 1:
        raise PredictError(f"--bands {bands!r}: expected three 1-based band numbers red,green,blue, e.g. 3,2,1")
    return tuple(values)  # type: ignore[return-value]


def _bands_from_descriptions(descriptions: Sequence[str | None], sensor: str | None) -> tuple[int, int, int] | None:
    """Red, green, blue band numbers named by the file's band descriptions, if they name them."""
    names = [(d or "").strip().upper() for d in descriptions]
    candidates = [tuple(c.upper() for c in COLOURS), ("R", "G", "B")]
    if sensor in SENSOR_RGB:
        candidates.append(SENSOR_RGB[sensor])
    elif len(names) == 3:
        candidates += [LANDSAT_RGB, LANDSAT_TM_RGB]
    for wanted in candidates:
        if all(names.count(w) == 1 for w in wanted):
            return tuple(names.index(w) + 1 for w in wanted)  # type: ignore[return-value]
    return None


def _scene_from_multiband(path: Path, bands: tuple[int, int, int] | None) -> SceneInput:
    if SENTINEL2.match(path.name):
        raise PredictError(f"{path}: looks like a Sentinel-2 product; satsr predict takes Landsat 30 m input "
                           f"({_expected_inputs()})")
    sensor_m = SENSOR_PREFIX.match(path.name)
    sensor = sensor_m["sensor"].upper() if sensor_m else None
    if sensor is not None and sensor not in SENSOR_RGB and sensor[:2] in ("LC", "LE", "LT", "LO", "LM"):
        raise PredictError(f"{path}: {sensor} is not a supported Landsat sensor (supported: {', '.join(SENSOR_RGB)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                count, descriptions = src.count, src.descriptions
    except RasterioError as err:
        raise PredictError(f"{path}: not a readable GeoTIFF ({err})") from None
    shown = ", ".join(f"{i + 1}={d}" if d else str(i + 1) for i, d in enumerate(descriptions))
    if bands is not None:
        if max(bands) > count:
            raise PredictError(f"{path}: --bands {','.join(map(str, bands))} but the file has {count} band(s) "
                               f"({shown}); expected three 1-based band numbers red,green,blue within 1..{count}")
        chosen = bands
    else:
        chosen = _bands_from_descriptions(descriptions, sensor)
        if chosen is None and count == 3:
            chosen = (1, 2, 3)
        if chosen is None:
            what = ("a single band" if count == 1 else f"{count} bands ({shown})")
            raise PredictError(f"{path}: {what}, and no red/green/blue band descriptions; {_expected_inputs()}. "
                               "For a multiband file name its red,green,blue bands, e.g. --bands 3,2,1 for a "
                               "B2,B3,B4,... (blue-first) stack or --bands 4,3,2 for a B1..B7 stack")
    names = []
    for b in chosen:
        d = descriptions[b - 1]
        names.append(d if d else f"band {b}")
    stem = path.name.rsplit(".", 1)[0]
    return SceneInput(stem, tuple(BandSource(path, b, n) for b, n in zip(chosen, names)), sensor)  # type: ignore


def resolve_inputs(inputs: str | Path | Iterable[str | Path], bands: str | Sequence[int] | None = None
                   ) -> list[SceneInput]:
    """Every scene named by ``inputs`` (files, folders, globs), in order, without duplicates."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise PredictError(f"no input given; {_expected_inputs()}")
    wanted = _parse_bands(bands)
    files: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = _tif_files(p)
            if not found:
                raise PredictError(f"{p}: folder holds no GeoTIFF (*.tif, *.tiff); {_expected_inputs()}")
            files += found
        elif p.is_file():
            files.append(p)
        elif any(ch in str(item) for ch in "*?["):
            found = sorted(Path(f) for f in globlib.glob(str(p)) if Path(f).is_file())
            if not found:
                raise PredictError(f"{item}: no file matches this pattern")
            files += found
        else:
            raise PredictError(f"{p}: file not found")
    scenes: dict[str, SceneInput] = {}
    for f in files:
        if BAND_FILE.match(f.name):
            scene = _scene_from_band_file(f)
            if wanted is not None:
                raise PredictError(f"{f}: --bands applies to multiband GeoTIFFs; the bands of a Collection 2 "
                                   "band-file scene are picked by name")
        elif PRODUCT_FILE.match(f.name):
            if len(files) == 1:
                raise PredictError(f"{f}: not a red, green or blue surface reflectance band; {_expected_inputs()}")
            continue  # QA_PIXEL, ST_B10, SR_B5 ... beside the RGB band files in a folder
        else:
            scene = _scene_from_multiband(f, wanted)
        key = "|".join(str(b.path.resolve()) for b in scene.bands)
        scenes.setdefault(key, scene)
    if not scenes:
        raise PredictError(f"{', '.join(map(str, items))}: no red/green/blue input found; {_expected_inputs()}")
    return list(scenes.values())


# ======================================================================================= encoding
@dataclass(frozen=True)
class InputEncoding:
    """reflectance = DN * scale + offset, per band; ``source`` says where it came from."""

    name: str
    scales: tuple[float, float, float]
    offsets: tuple[float, float, float]
    source: str

    def describe(self) -> str:
        if len(set(self.scales)) == 1 and len(set(self.offsets)) == 1:
            rule = f"reflectance = DN * {self.scales[0]:g} + {self.offsets[0]:g}"
        else:
            rule = "; ".join(f"{c} = DN * {s:g} + {o:g}" for c, s, o in zip(COLOURS, self.scales, self.offsets))
        return f"{self.name} ({rule}; {self.source})"


# ========================================================================================== scene
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


def _sample(scene: OpenScene, size: int = 512) -> np.ndarray:
    """Decoded valid reflectance of a decimated read of the whole scene (encoding checks)."""
    h, w = min(scene.height, size), min(scene.width, size)
    values = []
    valid = np.ones((h, w), dtype=bool)
    for i, band in enumerate(scene.input.bands):
        ds = scene.datasets[band.path]
        dn = ds.read(band.index, window=scene.window, out_shape=(h, w))
        nodata = scene.nodata[i]
        if nodata is not None:
            valid &= ~(np.isnan(dn) if np.isnan(nodata) else dn == nodata)
        if dn.dtype.kind == "f":
            valid &= np.isfinite(dn)
        values.append(dn.astype(np.float64) * scene.encoding.scales[i] + scene.encoding.offsets[i])
    return np.stack(values)[:, valid]


def _encoding(scene: OpenScene, input_scale: float | None, input_offset: float | None) -> InputEncoding:
    """The encoding rule of the module doc; raises when the guess is implausible."""
    ds0 = scene.datasets[scene.input.bands[0].path]
    if input_scale is not None or input_offset is not None:
        s, o = float(1.0 if input_scale is None else input_scale), float(0.0 if input_offset is None else input_offset)
        return InputEncoding("given", (s, s, s), (o, o, o), "from --input-scale/--input-offset")
    scales, offsets = [], []
    for band in scene.input.bands:
        ds = scene.datasets[band.path]
        scales.append(float(ds.scales[band.index - 1]))
        offsets.append(float(ds.offsets[band.index - 1]))
    if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
        return InputEncoding("file_scale_offset", tuple(scales), tuple(offsets),  # type: ignore[arg-type]
                             "from the file's band scale/offset")
    tagged = BY_NAME.get(ds0.tags().get(TAG_ENCODING, ""))
    if tagged is not None:
        return InputEncoding(tagged.name, (tagged.scale,) * 3, (tagged.offset,) * 3,  # type: ignore[arg-type]
                             f"from the file's {TAG_ENCODING} tag")
    if np.dtype(scene.dtype).kind in "iu":
        return InputEncoding(L8_C2_L2.name, (L8_C2_L2.scale,) * 3, (L8_C2_L2.offset,) * 3,  # type: ignore
                             "integer data without scale/offset: Landsat Collection 2 Level-2 assumed")
    return InputEncoding("reflectance", (1.0,) * 3, (0.0,) * 3,  # type: ignore[arg-type]
                         "float data without scale/offset: reflectance assumed")


def _check_plausible(scene: OpenScene) -> OpenScene:
    """Refuse (or, for float copies of C2 L2 products, correct) an encoding guess whose decoded
    median is not surface reflectance."""
    enc = scene.encoding
    if enc.name not in (L8_C2_L2.name, "reflectance") or "assumed" not in enc.source:
        return scene
    sample = _sample(scene)
    if sample.size == 0:
        return scene
    median = float(np.median(sample))
    files = ", ".join(map(str, scene.input.files))
    fix = ("give the encoding with --input-scale/--input-offset (reflectance = DN * scale + offset), e.g. "
           "--input-scale 1e-4 for reflectance x 10000, or --input-scale 2.75e-5 --input-offset -0.2 for "
           "Collection 2 Level-2 DN")
    if enc.name == L8_C2_L2.name and median < MIN_PLAUSIBLE_MEDIAN:
        raise PredictError(f"{files}: {scene.dtype} values decoded as Collection 2 Level-2 (DN * 2.75e-5 - 0.2) "
                           f"have a median reflectance of {median:.3f}, which is not surface reflectance; {fix}")
    if enc.name == "reflectance" and median > MAX_PLAUSIBLE_MEDIAN:
        if all(C2_L2_NAME.search(f.name) for f in scene.input.files) and 1.0 <= median <= 65535:
            c2 = InputEncoding(L8_C2_L2.name, (L8_C2_L2.scale,) * 3, (L8_C2_L2.offset,) * 3,  # type: ignore
                               "float data of a Collection 2 Level-2 product holding DN (median "
                               f"{median:.0f}): Collection 2 Level-2 assumed")
            log.debug("%s: %s", files, c2.source)  # the encoding is logged when the scene starts
            scene.encoding = c2
            if all(n is None for n in scene.nodata):
                scene.nodata = (0.0, 0.0, 0.0)  # Collection 2 fill
            return _check_plausible_c2(scene, fix)
        raise PredictError(f"{files}: float values without scale/offset tags have a median of {median:.4g}, "
                           f"which is not surface reflectance (expected roughly -0.1..1); {fix}")
    return scene


def _check_plausible_c2(scene: OpenScene, fix: str) -> OpenScene:
    median = float(np.median(_sample(scene)))
    if median < MIN_PLAUSIBLE_MEDIAN:
        raise PredictError(f"{', '.join(map(str, scene.input.files))}: values decoded as Collection 2 Level-2 "
                           f"have a median reflectance of {median:.3f}; {fix}")
    return scene


# ============================================================================================ AOI
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
        bounds = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
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
        open_.encoding = _encoding(open_, input_scale, input_offset)
        if open_.encoding.name == L8_C2_L2.name and all(n is None for n in open_.nodata):
            open_.nodata = (0.0, 0.0, 0.0)  # Collection 2 fill
        return _check_plausible(open_)
    except BaseException:
        for ds in datasets.values():
            ds.close()
        raise


# ========================================================================================== model
@dataclass
class SRModel:
    """A x3 model as a batch function on png16/65535-normalised (n, h, w, 3) float32, plus provenance."""

    fn: Callable[[np.ndarray], np.ndarray]
    uri: str
    name: str
    version: str | None = None
    run_id: str | None = None
    arch: str | None = None

    def tags(self) -> dict[str, str]:
        tags = {"MODEL_URI": self.uri, "MODEL_NAME": self.name, "MODEL_VERSION": self.version,
                "MODEL_RUN_ID": self.run_id, "MODEL_ARCH": self.arch}
        return {f"{TAG}{k}": str(v) for k, v in tags.items() if v is not None}


def _keras_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    channels = model.input_shape[-1]
    if channels not in (None, 3):
        raise PredictError(f"model {model.name!r} takes {channels} channels; satsr predict needs a red,green,blue "
                           "(3-channel) model")
    # One trace for every tile shape and batch size (a scene's last batch of a row is often partial).
    call = tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])

    def fn(batch: np.ndarray) -> np.ndarray:
        return call(tf.convert_to_tensor(batch, dtype=tf.float32)).numpy()

    return fn


def _from_object(model: Any, uri: str, **info: Any) -> SRModel:
    keras = sys.modules.get("keras")  # a Keras model implies Keras is imported; do not import TF otherwise
    if keras is not None and isinstance(model, keras.Model):
        return SRModel(_keras_fn(model), uri, info.pop("name", None) or model.name, arch=model.name, **info)
    if hasattr(model, "predict"):  # an MLflow pyfunc model of another flavour
        return SRModel(lambda b: np.asarray(model.predict(b), dtype=np.float32), uri,
                       info.pop("name", None) or type(model).__name__, **info)
    raise PredictError(f"model {uri}: not a Keras model and has no predict()")


def _registry_info(uri: str) -> dict[str, Any]:
    """Name, version and run id that a model URI itself tells (plus the registry's alias version)."""
    from satsr import tracking

    info: dict[str, Any] = {}
    if m := re.fullmatch(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?/?", uri):
        info["name"] = m["name"]
        try:
            if m["alias"]:
                version = tracking.alias_version(m["name"], m["alias"])
                info["version"] = None if version is None else str(version)
            elif m["version"] and m["version"].isdigit():
                info["version"] = m["version"]
            elif m["version"] and m["version"].lower() == "latest":
                version = tracking.latest_version(m["name"])
                info["version"] = None if version is None else str(version)
            if info.get("version"):
                info["run_id"] = tracking.get_version(m["name"], info["version"]).run_id
        except Exception as err:  # noqa: BLE001 (provenance only; the model itself loaded)
            log.debug("no registry version for %s: %s", uri, err)
    elif m := re.fullmatch(r"runs:/(?P<run>[0-9a-fA-F]+)/(?P<path>.+)", uri):
        info["run_id"] = m["run"]
        info["name"] = m["path"].rstrip("/")
    return info


def _load_uri(uri: str, params: Params) -> SRModel:
    from satsr import tracking

    store = tracking.configure(params)
    try:
        model = tracking.load_model(uri)
    except Exception as err:  # noqa: BLE001 (MLflow raises many types; the message carries the cause)
        try:
            names = tracking.list_registered_models()
            listing = (f"registered models: {', '.join(names)}" if names else "no registered models")
        except Exception as list_err:  # noqa: BLE001
            listing = f"could not list the registered models ({list_err})"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = tracking.redact({"uri": store})["uri"]
        raise PredictError(f"model {uri!r} could not be loaded from {where}: {first_line}; "
                           f"{listing} (use models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model, or a "
                           ".keras file)") from None
    return _from_object(model, uri, **_registry_info(uri))


def load_model(model: Any, params: Params | None = None) -> SRModel:
    """``model``: an MLflow URI (``models:/satsr-rdn@champion``, ``runs:/<id>/model``), a ``.keras``
    file or a folder holding ``model.keras`` (or an MLflow model folder), or a Keras model."""
    params = params or Params()
    if isinstance(model, SRModel):
        return model
    if not isinstance(model, (str, os.PathLike)):
        return _from_object(model, f"<in-memory {type(model).__name__}>")
    text = os.fspath(model)
    path = Path(text).expanduser()
    if URI_SCHEME.match(text) and not path.exists():
        return _load_uri(text, params)
    if path.is_dir():
        if (path / "model.keras").is_file():
            path = path / "model.keras"
        elif (path / "MLmodel").is_file():
            return _load_uri(str(path.resolve()), params)
        else:
            raise PredictError(f"{path}: folder holds no model.keras (nor an MLflow MLmodel)")
    if not path.is_file():
        raise PredictError(f"{path}: model file not found (expected a .keras file, a folder with model.keras, or a "
                           "URI such as models:/satsr-rdn@champion or runs:/RUN_ID/model)")
    from satsr.models import load

    try:
        keras_model = load(path)
    except Exception as err:  # noqa: BLE001
        raise PredictError(f"{path}: not a loadable Keras model ({err})") from None
    return _from_object(keras_model, str(path), name=path.parent.name if path.name == "model.keras" else path.stem)


def configure_threads(threads: int) -> None:
    """TensorFlow CPU threads (0 = its default, all cores); only possible before TF starts running."""
    if threads <= 0:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError as err:  # TF already initialised in this process
        log.debug("TensorFlow threads not changed: %s", err)


# ========================================================================================= output
@dataclass(frozen=True)
class OutputSpec:
    dtype: str  # uint16 | float32
    lo: float  # model range (png.reflectance_min/max): outputs are clipped into it
    hi: float

    @property
    def nodata(self) -> float:
        return 0.0 if self.dtype == "uint16" else float("nan")

    @property
    def scale(self) -> float:
        return L8_C2_L2.scale if self.dtype == "uint16" else 1.0

    @property
    def offset(self) -> float:
        return L8_C2_L2.offset if self.dtype == "uint16" else 0.0

    @property
    def encoding_name(self) -> str:
        return L8_C2_L2.name if self.dtype == "uint16" else "reflectance"

    def encode(self, y: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Model output (rows, cols, 3), in place -> encoded (3, rows, cols)."""
        y *= np.float32(self.hi - self.lo)
        y += np.float32(self.lo)
        np.clip(y, self.lo, self.hi, out=y)  # NaN stays NaN -> nodata below
        if self.dtype == "uint16":
            y -= np.float32(self.offset)
            y *= np.float32(1.0 / self.scale)
            np.rint(y, out=y)
            bad = ~np.isfinite(y)
            np.clip(y, 1, 65535, out=y)
            out = y.astype(np.uint16)
            out[bad] = 0
        else:
            out = y
        if mask is not None and mask.any():
            out[mask] = self.nodata
        return np.ascontiguousarray(np.moveaxis(out, -1, 0))


class _RowWriter:
    """Writes finished rows into ``dst`` in whole bands of ``block`` rows (each tile block written once)."""

    def __init__(self, dst: Any, block: int):
        self.dst, self.block = dst, block
        self.row0 = 0
        self.pending: list[np.ndarray] = []

    def add(self, rows: np.ndarray) -> None:
        self.pending.append(rows)
        end = self.row0 + sum(p.shape[1] for p in self.pending)
        aligned = (end // self.block) * self.block
        if aligned > self.row0:
            self._write(aligned - self.row0)

    def close(self) -> None:
        if self.pending:
            self._write(sum(p.shape[1] for p in self.pending))

    def _write(self, n: int) -> None:
        data = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, axis=1)
        self.dst.write(data[:, :n], window=Window(0, self.row0, data.shape[2], n))
        self.row0 += n
        rest = data[:, n:]
        self.pending = [rest] if rest.shape[1] else []


@dataclass
class SceneStats:
    tiles: int = 0
    tiles_run: int = 0
    valid_px: int = 0
    total_px: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    write_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels_per_s(self) -> float:
        return self.total_px / 1e6 / self.seconds if self.seconds else 0.0


def _model_input(refl: np.ndarray, mask: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """x = (clip(r, lo, hi) - lo) / (hi - lo), nodata filled with the nearest valid pixel."""
    x = np.clip(refl, lo, hi, out=refl)
    x -= np.float32(lo)
    x *= np.float32(1.0 / (hi - lo))
    if mask.any():
        if mask.all():
            x[:] = 0.0
        else:
            from scipy.ndimage import distance_transform_edt

            iy, ix = distance_transform_edt(mask, return_distances=False, return_indices=True)
            x = x[iy, ix]
    return x


def _out_profile(scene: OpenScene, spec: OutputSpec, compress: str, block: int, final: bool) -> dict[str, Any]:
    h, w = scene.height * SCALE, scene.width * SCALE
    profile: dict[str, Any] = {"driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": spec.dtype,
                               "nodata": spec.nodata, "interleave": "pixel", "bigtiff": "IF_SAFER"}
    if scene.georeferenced:
        profile.update(crs=scene.crs, transform=scene.out_transform)
    if w >= block or h >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    elif w >= 16 and h >= 16:
        b = max(16, min(block, 1 << int(math.log2(min(w, h)))) // 16 * 16)
        profile.update(tiled=True, blockxsize=b, blockysize=b)
    if not final:  # temporary file before the COG copy: fast light compression
        profile.update(compress="zstd", zstd_level=1)
    elif compress != "none":
        profile.update(compress=compress)
    if profile.get("compress"):
        profile["predictor"] = 2 if spec.dtype == "uint16" else 3
    return profile


def _tags(scene: OpenScene, model: SRModel, spec: OutputSpec) -> dict[str, str]:
    enc = scene.encoding
    tags = {
        TAG_ENCODING: spec.encoding_name,
        f"{TAG}VERSION": __version__,
        f"{TAG}SCALE": str(SCALE),
        f"{TAG}INPUTS": json.dumps([str(f) for f in scene.input.files]),
        f"{TAG}INPUT_BANDS": ",".join(b.name for b in scene.input.bands),
        f"{TAG}INPUT_ENCODING": enc.describe(),
        f"{TAG}OUTPUT_ENCODING": (f"{spec.encoding_name} (reflectance = DN * {spec.scale:g} + {spec.offset:g}, "
                                  f"nodata {spec.nodata:g}, clipped to [{spec.lo:g}, {spec.hi:g}])"),
        f"{TAG}REFLECTANCE_RANGE": f"{spec.lo:g},{spec.hi:g}",
        "TIFFTAG_SOFTWARE": f"satsr {__version__}",
        **model.tags(),
    }
    if scene.input.sensor:
        tags[f"{TAG}SENSOR"] = scene.input.sensor
    first = scene.datasets[scene.input.bands[0].path]
    if (scene.window.col_off, scene.window.row_off, scene.width, scene.height) != (0, 0, first.width, first.height):
        tags[f"{TAG}INPUT_WINDOW"] = (f"col_off={scene.window.col_off},row_off={scene.window.row_off},"
                                      f"width={scene.width},height={scene.height}")
    return tags


def _run_scene(scene: OpenScene, model: SRModel, dst: Any, spec: OutputSpec, p: PredictParams,
               progress: bool | None) -> SceneStats:
    """Tiles -> model -> blended strips -> encoded rows in ``dst`` (see the module doc)."""
    from tqdm import tqdm

    grid = TileGrid(scene.height, scene.width, p.tile_size, p.overlap, SCALE)
    stats = SceneStats(tiles=len(grid), total_px=scene.height * scene.width)
    writer = _RowWriter(dst, p.blocksize)
    th, w_hr = grid.tile_h, scene.width * SCALE
    t0 = time.perf_counter()

    def read(r: int) -> tuple[np.ndarray, np.ndarray]:
        refl, mask = scene.read(grid.ys[r], th)
        return _model_input(refl, mask, spec.lo, spec.hi), mask

    def finish(rows: np.ndarray, mask: np.ndarray) -> None:
        t = time.perf_counter()
        hr_mask = np.repeat(np.repeat(mask, SCALE, axis=0), SCALE, axis=1) if mask.any() else None
        writer.add(spec.encode(rows, hr_mask))
        stats.write_seconds += time.perf_counter() - t

    n_rows = len(grid.ys)
    with ThreadPoolExecutor(1, thread_name_prefix="satsr-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="satsr-write") as writing, \
            tqdm(total=len(grid), unit="tile", desc=scene.input.name, mininterval=1.0, dynamic_ncols=True,
                 disable=None if progress is None else not progress) as bar:
        next_read: Future = reader.submit(read, 0)
        pending: Future | None = None
        carry: np.ndarray | None = None
        try:
            for r in range(n_rows):
                x, mask = next_read.result()
                if r + 1 < n_rows:
                    next_read = reader.submit(read, r + 1)
                acc = np.zeros((th * SCALE, w_hr, 3), dtype=np.float32)
                if carry is not None:
                    acc[:carry.shape[0]] = carry
                tiles: list[Tile] = []
                for t in grid.row(r):
                    tile_mask = mask[:, t.x:t.x + t.w]
                    valid = int(tile_mask.size - np.count_nonzero(tile_mask))
                    if valid:
                        tiles.append(t)
                    else:
                        bar.update(1)
                stats.valid_px += int(mask[:grid.final_rows(r) - grid.ys[r]].size
                                      - np.count_nonzero(mask[:grid.final_rows(r) - grid.ys[r]]))
                for group in batched(tiles, p.batch_size):
                    batch = np.stack([x[:, t.x:t.x + t.w] for t in group])
                    tm = time.perf_counter()
                    out = model.fn(batch)
                    stats.model_seconds += time.perf_counter() - tm
                    if tuple(out.shape[1:]) != (batch.shape[1] * SCALE, batch.shape[2] * SCALE, 3):
                        raise PredictError(f"model {model.uri}: output {tuple(out.shape[1:])} for input tiles "
                                           f"{batch.shape[1:]}; expected x{SCALE} red,green,blue")
                    for t, y in zip(group, out):
                        acc[:, t.x * SCALE:(t.x + t.w) * SCALE] += y * grid.weight(t)
                    stats.tiles_run += len(group)
                    bar.update(len(group))
                done = (grid.final_rows(r) - grid.ys[r]) * SCALE
                carry = acc[done:].copy() if r + 1 < n_rows else None
                if pending is not None:
                    pending.result()
                pending = writing.submit(finish, acc[:done], mask[:done // SCALE])
            if pending is not None:
                pending.result()
            writer.close()
        except BaseException:
            next_read.cancel()
            raise
    stats.seconds = time.perf_counter() - t0
    return stats


def _quicklook(scene: OpenScene, sr_path: Path, spec: OutputSpec, model: SRModel, params: Params,
               dest: Path) -> Path:
    """PNG: bicubic x3 | SR of a central crop, with the fixed quicklook stretch."""
    import tensorflow as tf
    from PIL import Image, ImageDraw

    c = params.predict.compare_px
    ch, cw = min(c, scene.height), min(c, scene.width)
    r0, c0 = (scene.height - ch) // 2, (scene.width - cw) // 2
    refl, mask = scene.read(r0, ch, c0, cw)
    lo, hi = spec.lo, spec.hi
    x = _model_input(refl, mask, lo, hi)
    bic = tf.image.resize(x[None], (ch * SCALE, cw * SCALE), method="bicubic").numpy()[0] * (hi - lo) + lo
    hr_mask = np.repeat(np.repeat(mask, SCALE, 0), SCALE, 1)
    bic[hr_mask] = np.nan
    with rasterio.open(sr_path) as src:
        sr = src.read(window=Window(c0 * SCALE, r0 * SCALE, cw * SCALE, ch * SCALE)).astype(np.float32)
        sr = np.moveaxis(sr, 0, -1)
        if spec.dtype == "uint16":
            sr[sr == 0] = np.nan
            sr = sr * spec.scale + spec.offset
    q = params.png
    left, right = (to_quicklook8(a, q.quicklook_max_reflectance, q.quicklook_gamma) for a in (bic, sr))
    gap, label_h = 8, 18
    canvas = np.full((label_h + left.shape[0], left.shape[1] * 2 + gap, 3), 255, dtype=np.uint8)
    canvas[label_h:, :left.shape[1]] = left
    canvas[label_h:, left.shape[1] + gap:] = right
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    draw.text((4, 3), "bicubic x3", fill=(0, 0, 0))
    draw.text((left.shape[1] + gap + 4, 3), f"SR {model.name}", fill=(0, 0, 0))
    with atomic_path(dest) as tmp:
        img.save(tmp, format="PNG")
        _umask_mode(tmp)
    return dest


def _output_paths(scenes: list[SceneInput], output: str | Path) -> list[Path]:
    out = Path(output).expanduser()
    as_dir = out.is_dir() or str(output).endswith(("/", os.sep)) or out.suffix.lower() not in (".tif", ".tiff")
    if len(scenes) > 1 and not as_dir:
        raise PredictError(f"{out}: {len(scenes)} scenes need an output folder, not a file name")
    paths = [out / f"{s.name}{OUTPUT_SUFFIX}" for s in scenes] if as_dir else [out]
    seen: dict[Path, str] = {}
    for s, pth in zip(scenes, paths):
        if pth in seen:
            raise PredictError(f"{pth}: scenes {seen[pth]} and {s.name} would write the same output")
        seen[pth] = s.name
        for f in s.files:
            if f.resolve() == pth.resolve():
                raise PredictError(f"{pth}: output would overwrite its own input")
    return paths


def _umask_mode(path: Path) -> None:
    """Give a finished temporary file (mkstemp: 0600) the mode a plain new file would get, so the
    output is readable by whoever may read the folder (GIS users, a web server for the COG)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _cleanup(prefix: Path) -> None:
    for leftover in prefix.parent.glob(globlib.escape(prefix.name) + "*"):
        try:
            leftover.unlink()
        except OSError:
            pass


def predict_scene(scene_in: SceneInput, model: SRModel, out_path: Path, *, params: Params,
                  input_scale: float | None = None, input_offset: float | None = None, aoi: Any = None,
                  allow_ungeoreferenced: bool = False, compare: bool = False,
                  progress: bool | None = None) -> SceneStats:
    """Predict one scene into ``out_path`` (atomically). ``params.predict`` holds every setting."""
    p = params.predict
    spec = OutputSpec(p.output_dtype, params.png.reflectance_min, params.png.reflectance_max)
    scene = open_scene(scene_in, input_scale=input_scale, input_offset=input_offset, aoi=aoi,
                       allow_ungeoreferenced=allow_ungeoreferenced)
    t0 = time.perf_counter()
    try:
        log.info("%s: %d x %d px (%s), %s -> %s", scene_in.name, scene.width, scene.height,
                 ", ".join(b.name for b in scene_in.bands), scene.encoding.describe(), out_path)
        cog = p.output_format == "cog"
        with atomic_path(out_path) as part:
            work = part.with_name(part.name[:-len(".part")] + ".tmp.tif") if cog else part
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    with rasterio.open(work, "w", **_out_profile(scene, spec, p.compress, p.blocksize, not cog)) as dst:
                        dst.descriptions = tuple(f"{c} ({b.name})" for c, b in zip(COLOURS, scene_in.bands))
                        dst.scales = [spec.scale] * 3
                        dst.offsets = [spec.offset] * 3
                        dst.update_tags(**_tags(scene, model, spec))
                        for i, (c, b) in enumerate(zip(COLOURS, scene_in.bands), start=1):
                            dst.update_tags(i, COLOR=c, SOURCE_BAND=b.name)
                        stats = _run_scene(scene, model, dst, spec, p, progress)
                if stats.valid_px == 0:
                    msg = f"{scene_in.name}: every input pixel is nodata; the output is all nodata"
                    log.warning(msg)
                    warnings.warn(msg, PredictWarning, stacklevel=3)
                if compare:
                    stem = out_path.name.rsplit(".", 1)[0]
                    ql = _quicklook(scene, work, spec, model, params, out_path.with_name(stem + COMPARE_SUFFIX))
                    log.info("%s: comparison quicklook %s", scene_in.name, ql)
                if cog:
                    t = time.perf_counter()
                    threads = str(p.threads) if p.threads > 0 else "ALL_CPUS"
                    options: dict[str, Any] = {
                        "driver": "COG", "blocksize": p.blocksize, "bigtiff": "IF_SAFER", "num_threads": threads,
                        "overviews": "AUTO" if p.overviews else "NONE", "overview_resampling": "AVERAGE"}
                    if p.compress != "none":
                        options.update(compress=p.compress.upper(), predictor="YES")
                    else:
                        options.update(compress="NONE")
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", NotGeoreferencedWarning)
                        rasterio.shutil.copy(work, part, **options)
                    stats.extra["cog_seconds"] = time.perf_counter() - t
                _umask_mode(part)
            finally:
                if cog:
                    _cleanup(work)
                _cleanup(Path(str(part) + ".ovr"))
                _cleanup(Path(str(part) + ".aux"))
    finally:
        scene.close()
    stats.extra["total_seconds"] = time.perf_counter() - t0
    log.info("%s: %d tiles (%d run) in %.1f s (model %.1f s): %.2f input MP/s -> %s", scene_in.name, stats.tiles,
             stats.tiles_run, stats.extra["total_seconds"], stats.model_seconds,
             stats.total_px / 1e6 / max(stats.extra["total_seconds"], 1e-9), out_path)
    return stats


def predict(inputs: str | Path | Iterable[str | Path], model: Any, output: str | Path, *,
            bands: str | Sequence[int] | None = None, input_scale: float | None = None,
            input_offset: float | None = None, aoi: Any = None, output_format: str | None = None,
            output_dtype: str | None = None, compare: bool = False, overwrite: bool = False,
            allow_ungeoreferenced: bool = False, tile_size: int | None = None, overlap: int | None = None,
            batch_size: int | None = None, params: Params | None = None,
            progress: bool | None = None) -> list[Path]:
    """Super-resolve Landsat scenes x3 into georeferenced 10 m GeoTIFFs; returns the written paths.

    inputs: a GeoTIFF, a folder, a glob, or a list of them (see the module doc for band files).
    model: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``, a ``.keras``
        file, a folder holding ``model.keras``, or a Keras model object.
    output: the output file for one scene, or a folder (then ``<scene>_SR10m.tif`` per scene; a
        name without .tif/.tiff, an existing folder or several scenes mean a folder).
    bands: red,green,blue band numbers (1-based) of a multiband GeoTIFF, ``"3,2,1"`` or ``(3, 2, 1)``.
    input_scale, input_offset: reflectance = DN * scale + offset, overriding the file's encoding.
    aoi: a GeoJSON file or mapping (EPSG:4326 unless it has a ``crs`` member), or bounds
        ``(minx, miny, maxx, maxy)`` / ``"minx,miny,maxx,maxy"`` in the input's CRS (read as lon/lat
        when they only fit there; ``"EPSG:4326:minx,..."`` says so explicitly). Its bounding box,
        snapped outward to the input's pixel grid, is predicted.
    output_format, output_dtype, tile_size, overlap, batch_size: override ``params.predict``.
    compare: also write ``<output stem>_compare.png`` (bicubic | SR of a central crop).
    overwrite: replace existing outputs (otherwise they are refused before any work).
    allow_ungeoreferenced: write inputs without CRS/geotransform in pixel coordinates.
    params: the project's Params (``png.reflectance_min/max`` must match the model's training).
    progress: tqdm bar (None: only on a terminal).
    """
    params = params or Params()
    given = {"output_format": output_format, "output_dtype": output_dtype, "tile_size": tile_size,
             "overlap": overlap, "batch_size": batch_size}
    overrides = {k: v for k, v in given.items() if v is not None}
    if overrides:
        try:
            predict_params = PredictParams.model_validate({**params.predict.model_dump(), **overrides})
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in err.errors())
            raise PredictError(f"invalid prediction options {overrides}: {problems}") from None
        params = params.model_copy(update={"predict": predict_params})
    scenes = resolve_inputs(inputs, bands)
    outputs = _output_paths(scenes, output)
    existing = [o for o in outputs if o.exists()]
    if existing and not overwrite:
        raise PredictError(f"{', '.join(map(str, existing))}: output exists; pass --overwrite (overwrite=True) to "
                           "replace it")
    for s in scenes:  # every input checked before the (slow) model load
        open_scene(s, input_scale=input_scale, input_offset=input_offset, aoi=aoi,
                   allow_ungeoreferenced=allow_ungeoreferenced).close()
    configure_threads(params.predict.threads)
    sr_model = load_model(model, params)
    written = []
    gdal_threads = str(params.predict.threads) if params.predict.threads > 0 else "ALL_CPUS"
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_NUM_THREADS=gdal_threads):
        for s, out in zip(scenes, outputs):
            predict_scene(s, sr_model, out, params=params, input_scale=input_scale, input_offset=input_offset,
                          aoi=aoi, allow_ungeoreferenced=allow_ungeoreferenced, compare=compare, progress=progress)
            written.append(out)
    return written
