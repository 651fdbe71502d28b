"""Input discovery: which scenes, and which file and band holds each scene's red, green and blue.

Inputs are a GeoTIFF (3 bands = red, green, blue; any other count needs ``bands``, 1-based), a
folder of GeoTIFFs, or a glob; or a Collection 2 Level-2 scene as separate band files, recognised
from the product id (``LC08_L2SP_..._SR_B4.TIF``): red, green, blue = SR_B4, SR_B3, SR_B2 for
LC08/LC09 and SR_B3, SR_B2, SR_B1 for LT04/LT05/LE07. Passing any one band file or the folder works.
"""

from __future__ import annotations

import glob as globlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from satsr.data.radiometry import LANDSAT_RGB, LANDSAT_TM_RGB
from satsr.predict.errors import PredictError

#: Red, green, blue Collection 2 L2 band of each supported sensor (product id prefix).
SENSOR_RGB: dict[str, tuple[str, str, str]] = {
    "LC08": LANDSAT_RGB, "LC09": LANDSAT_RGB,
    "LE07": LANDSAT_TM_RGB, "LT05": LANDSAT_TM_RGB, "LT04": LANDSAT_TM_RGB,
}
COLOURS = ("red", "green", "blue")
#: One RGB band file of a C2 L2 product: <product id>_SR_B<n>.TIF
BAND_FILE = re.compile(r"^(?P<pid>(?P<sensor>L[A-Z]\d\d)_.+?)_(?P<band>SR_B\d)\.tiff?$", re.IGNORECASE)
#: Any per-band file of a Landsat product (QA_PIXEL, ST_B10, SR_QA_AEROSOL, ...), skipped in folders.
PRODUCT_FILE = re.compile(r"^L[A-Z]\d\d_.+_(?:SR|ST|QA)_[A-Z0-9_]+\.tiff?$", re.IGNORECASE)
SENSOR_PREFIX = re.compile(r"^(?P<sensor>L[A-Z]\d\d)_", re.IGNORECASE)
SENTINEL2 = re.compile(r"^(S2[ABCD]_|T\d\d[A-Z]{3}_)", re.IGNORECASE)


@dataclass(frozen=True)
class BandSource:
    """One input band: a file and a (1-based) band of it."""

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
