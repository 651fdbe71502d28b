"""Encoding guessing: how a scene's DN decode to surface reflectance (reflectance = DN * scale + offset).

The rule is, in order: ``input_scale`` / ``input_offset``; the file's own band scales/offsets; a satsr
``SATSR_ENCODING`` tag; Collection 2 L2 (DN * 2.75e-5 - 0.2, fill 0) for integer data; reflectance for
float data. Two guards catch a wrong guess: integer data whose C2 decoding has a median below -0.05,
and float data whose median is above 1.5 (a float copy of C2 DN from a ``_L2SP_`` product is decoded
as C2 DN; anything else is refused with the options that fix it).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rasterio.errors import RasterioError

from satsr.data.geotiff import TAG_ENCODING
from satsr.data.radiometry import BY_NAME, L8_C2_L2
from satsr.predict.errors import PredictError
from satsr.predict.inputs import COLOURS

if TYPE_CHECKING:
    from satsr.predict.scene import OpenScene

log = logging.getLogger(__name__)

#: A Collection 2 Level-2 product id in a file name (its float copies hold DN, not reflectance).
C2_L2_NAME = re.compile(r"_L2S[PR]_", re.IGNORECASE)
#: Median decoded reflectance outside this range means the encoding guess is wrong.
MIN_PLAUSIBLE_MEDIAN = -0.05
MAX_PLAUSIBLE_MEDIAN = 1.5


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



def check_scale_offset(scale: float | None, offset: float | None, where: str = "--input-scale/--input-offset") -> None:
    """A usable DN -> reflectance rule: finite scale > 0 and finite offset (0 gives a flat image, NaN an
    all-nodata one)."""
    if scale is not None and not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise PredictError(f"{where}: scale {scale!r} is not usable (expected a finite number > 0: reflectance = "
                           "DN * scale + offset, e.g. 1e-4 for reflectance x 10000)")
    if offset is not None and not (isinstance(offset, (int, float)) and math.isfinite(offset)):
        raise PredictError(f"{where}: offset {offset!r} is not usable (expected a finite number, e.g. -0.2 for "
                           "Collection 2 Level-2 DN)")


def sample_reflectance(scene: OpenScene, size: int = 512) -> np.ndarray:
    """Decoded valid reflectance of a decimated read of the whole scene (encoding checks)."""
    h, w = min(scene.height, size), min(scene.width, size)
    values = []
    valid = np.ones((h, w), dtype=bool)
    for i, band in enumerate(scene.input.bands):
        ds = scene.datasets[band.path]
        try:
            dn = ds.read(band.index, window=scene.window, out_shape=(h, w))
        except RasterioError as err:
            from satsr.predict.scene import gdal_reason

            raise PredictError(f"{band.path}: truncated or damaged: it does not read ({gdal_reason(err)}) (expected "
                               "a complete GeoTIFF; download or export it again)") from None
        nodata = scene.nodata[i]
        if nodata is not None:
            valid &= ~(np.isnan(dn) if np.isnan(nodata) else dn == nodata)
        if dn.dtype.kind == "f":
            valid &= np.isfinite(dn)
        values.append(dn.astype(np.float64) * scene.encoding.scales[i] + scene.encoding.offsets[i])
    return np.stack(values)[:, valid]


def guess_encoding(scene: OpenScene, input_scale: float | None, input_offset: float | None) -> InputEncoding:
    """The encoding of ``scene`` by the rule of the module doc (``check_plausible`` then checks it)."""
    ds0 = scene.datasets[scene.input.bands[0].path]
    if input_scale is not None or input_offset is not None:
        check_scale_offset(input_scale, input_offset)
        s, o = float(1.0 if input_scale is None else input_scale), float(0.0 if input_offset is None else input_offset)
        return InputEncoding("given", (s, s, s), (o, o, o), "from --input-scale/--input-offset")
    scales, offsets = [], []
    for band in scene.input.bands:
        ds = scene.datasets[band.path]
        scales.append(float(ds.scales[band.index - 1]))
        offsets.append(float(ds.offsets[band.index - 1]))
    if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
        for band, sc, of in zip(scene.input.bands, scales, offsets):
            check_scale_offset(sc, of, f"{band.path}: band {band.index} scale/offset")
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


def check_plausible(scene: OpenScene) -> OpenScene:
    """Refuse (or, for float copies of C2 L2 products, correct) an encoding guess whose decoded
    median is not surface reflectance."""
    enc = scene.encoding
    if enc.name not in (L8_C2_L2.name, "reflectance") or "assumed" not in enc.source:
        return scene
    sample = sample_reflectance(scene)
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
    median = float(np.median(sample_reflectance(scene)))
    if median < MIN_PLAUSIBLE_MEDIAN:
        raise PredictError(f"{', '.join(map(str, scene.input.files))}: values decoded as Collection 2 Level-2 "
                           f"have a median reflectance of {median:.3f}; {fix}")
    return scene
