"""The output GeoTIFF/COG: encoding, profile, tags, row-band writer, COG copy and the quicklook.

The output lies exactly on the input: same CRS, same upper-left corner, pixel size exactly 1/3,
width and height exactly 3x. It is uint16 with the Collection 2 encoding (scale 2.75e-5, offset -0.2
as the bands' own scale/offset, so GDAL and rasterio decode it; fill 0) or float32 reflectance (NaN
fill), clipped to the model's reflectance range. Every input nodata pixel becomes a 3 x 3 block of
output nodata (never invented detail). Band descriptions name the colour and the source band; tags
name the model (name, version, run id, URI, identity, normalization), the harmonization and detail
strength used, what the run was asked for, the input files, the encodings and the satsr version.

Rows are written in whole bands of ``blocksize`` rows into a temporary tiled GeoTIFF, which
``write_cog`` then copies into a COG (with overviews, none smaller than a block) under the checked
atomic temporary name (``satsr.data.geotiff.checked_write``). The bands are tagged red, green, blue
(TIFF photometric RGB), so GIS viewers open the output as a colour image.

A killed run leaves hidden temporaries beside the output (``.<name>.<hex>.part``, ``.tmp.tif`` and
GDAL's side files). The writer holds an exclusive ``flock`` on its ``.part`` file while it runs, so the
next run (``clean_stale``) removes exactly the temporaries of this output that no live run holds.
``existing_output_problem`` says whether a finished output is valid, complete and made by the same
model and options as this run (``TAG_REQUEST``; ``--skip-existing``).
"""

from __future__ import annotations

import glob as globlib
import json
import logging
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window

from satsr import __version__, locks
from satsr.config import SCALE, Params, PredictParams
from satsr.data.geotiff import TAG_ENCODING, RasterError, verify_raster
from satsr.data.radiometry import L8_C2_L2, to_quicklook8
from satsr.predict.model import TAG, ModelSettings, SRModel
from satsr.predict.scene import OpenScene, fill_nodata
from satsr.util import PART_SUFFIX, atomic_path

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = "_SR10m.tif"
COMPARE_SUFFIX = "_compare.png"
#: Suffix of the temporary tiled GeoTIFF written before the COG copy (beside the ``.part`` file).
WORK_SUFFIX = ".tmp.tif"
#: The tag with what a run was asked for (model identity and every option that changes the pixels).
TAG_REQUEST = f"{TAG}REQUEST"
#: What the output bands are, in order (TIFF colour interpretation).
COLOR_INTERP = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)


@dataclass(frozen=True)
class OutputSpec:
    """How SR reflectance is stored: dtype and the model's range (outputs are clipped into it)."""

    dtype: str  # uint16 | float32
    lo: float
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
        """Model output reflectance (rows, cols, 3), in place -> encoded (3, rows, cols)."""
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


class RowWriter:
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


def out_profile(scene: OpenScene, spec: OutputSpec, compress: str, block: int, final: bool) -> dict[str, Any]:
    """rasterio profile of the output (``final=False``: the temporary file before the COG copy)."""
    h, w = scene.height * SCALE, scene.width * SCALE
    profile: dict[str, Any] = {"driver": "GTiff", "width": w, "height": h, "count": 3, "dtype": spec.dtype,
                               "nodata": spec.nodata, "interleave": "pixel", "bigtiff": "IF_SAFER",
                               "photometric": "RGB"}
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


def output_tags(scene: OpenScene, model: SRModel, spec: OutputSpec, used: ModelSettings,
                request: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The output's dataset tags: provenance of every number in it; ``request`` (``TAG_REQUEST``) is what
    the run was asked for, which ``--skip-existing`` compares."""
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
        **used.tags(),
    }
    if request is not None:
        tags[TAG_REQUEST] = json.dumps(request, sort_keys=True)
    if scene.input.sensor:
        tags[f"{TAG}SENSOR"] = scene.input.sensor
    first = scene.datasets[scene.input.bands[0].path]
    if (scene.window.col_off, scene.window.row_off, scene.width, scene.height) != (0, 0, first.width, first.height):
        tags[f"{TAG}INPUT_WINDOW"] = (f"col_off={scene.window.col_off},row_off={scene.window.row_off},"
                                      f"width={scene.width},height={scene.height}")
    return tags


def quicklook(scene: OpenScene, sr_path: Path, spec: OutputSpec, model: SRModel, used: ModelSettings,
              params: Params, dest: Path) -> Path:
    """PNG: bicubic x3 | SR of a central crop, with the fixed quicklook stretch (the bicubic side
    gets the same harmonization as the SR, so the two differ only in detail)."""
    import tensorflow as tf
    from PIL import Image, ImageDraw

    c = params.predict.compare_px
    ch, cw = min(c, scene.height), min(c, scene.width)
    r0, c0 = (scene.height - ch) // 2, (scene.width - cw) // 2
    refl, mask = scene.read(r0, ch, c0, cw)
    x = fill_nodata(refl, mask)
    if used.harmonize is not None:
        x = used.harmonize.apply(x)
    x = np.clip(x, spec.lo, spec.hi)
    bic = np.clip(tf.image.resize(x[None], (ch * SCALE, cw * SCALE), method="bicubic").numpy()[0], spec.lo, spec.hi)
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
    draw.text((left.shape[1] + gap + 4, 3), model_label(model), fill=(0, 0, 0))
    with atomic_path(dest) as tmp:
        img.save(tmp, format="PNG")
    return dest


def model_label(model: SRModel) -> str:
    """The quicklook's name of the model: name and registry version (a file: its name)."""
    if model.version:
        return f"SR: {model.name} v{model.version}"
    where = Path(model.uri).name if not model.uri.startswith("<") else model.uri
    return f"SR: {model.name} ({where})" if where and where != model.name else f"SR: {model.name}"


def cleanup(prefix: Path) -> None:
    """Remove ``prefix*`` leftovers (temporary files, .ovr/.aux side files)."""
    for leftover in prefix.parent.glob(globlib.escape(prefix.name) + "*"):
        try:
            leftover.unlink()
        except OSError:
            pass


def overview_count(width: int, height: int, block: int) -> int:
    """Overview levels (factors 2, 4, 8, ...) whose both sides are still at least one block: a viewer
    gains nothing from smaller ones, and a thin raster (5000 x 1 px of input) would get levels that
    are all the same few rows."""
    n = 0
    while min(width, height) >> (n + 1) >= block:
        n += 1
    return n


def write_cog(work: Path, dest: Path, p: PredictParams) -> None:
    """Copy the finished temporary GeoTIFF ``work`` into a COG at ``dest`` (overviews: average, see
    ``overview_count``)."""
    threads = str(p.threads) if p.threads > 0 else "ALL_CPUS"
    with rasterio.open(work) as src:
        levels = overview_count(src.width, src.height, p.blocksize) if p.overviews else 0
    options: dict[str, Any] = {
        "driver": "COG", "blocksize": p.blocksize, "bigtiff": "IF_SAFER", "num_threads": threads,
        "overviews": "AUTO" if levels else "NONE", "overview_resampling": "AVERAGE"}
    if levels:
        options["overview_count"] = levels
    if p.compress != "none":
        options.update(compress=p.compress.upper(), predictor="YES")
    else:
        options.update(compress="NONE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        rasterio.shutil.copy(work, dest, **options)


# ------------------------------------------------------------------- temporaries of killed runs
def _temp_pattern(dest: Path) -> re.Pattern[str]:
    """``.<name>.<8 hex>.part`` / ``.tmp.tif`` and GDAL's side files of them (``.ovr``, ``.aux.xml``...)."""
    return re.compile(rf"^(?P<key>\.{re.escape(dest.name)}\.[0-9a-f]{{8}})"
                      rf"(?:{re.escape(PART_SUFFIX)}|{re.escape(WORK_SUFFIX)})(?:\..+)?$")


def clean_stale(dest: Path) -> list[Path]:
    """Remove the temporaries a killed run left for ``dest`` (and its comparison PNG); returns them."""
    removed = []
    for target in (dest, dest.with_name(dest.name.rsplit(".", 1)[0] + COMPARE_SUFFIX)):
        if not target.parent.is_dir():
            continue
        pattern = _temp_pattern(target)
        groups: dict[str, list[Path]] = {}
        for f in target.parent.glob(globlib.escape("." + target.name + ".") + "*"):
            if (m := pattern.match(f.name)) and not f.is_dir():
                groups.setdefault(m["key"], []).append(f)
        for key, files in groups.items():
            if locks.flocked(target.parent / (key + PART_SUFFIX)):
                continue  # a live run writes it
            for f in files:
                try:
                    size = f.stat().st_size
                    f.unlink()
                except OSError:
                    continue
                removed.append(f)
                log.info("%s: removed %s (%.1f MB) left by an interrupted run", dest, f.name, size / 1e6)
    return removed


# ---------------------------------------------------------------------------- finished outputs
def existing_output_problem(path: Path, scene: OpenScene, request: Mapping[str, Any]) -> str | None:
    """None when ``path`` is a finished output of ``scene`` for ``request``: made from the same inputs by
    the same model (``request["model"]``, an identity) with the same options, on the scene's 10 m grid,
    and it reads back completely (every block); else what is wrong with it."""
    want = (scene.width * SCALE, scene.height * SCALE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                got, count, crs, transform = (src.width, src.height), src.count, src.crs, src.transform
                tags = src.tags()
    except (RasterioError, OSError) as err:
        return f"not a readable GeoTIFF ({err})"
    if count != 3 or got != want:
        return f"{count} band(s) of {got[0]} x {got[1]} px, expected 3 of {want[0]} x {want[1]} px"
    if scene.georeferenced and (crs != scene.crs or not transform.almost_equals(scene.out_transform)):
        return (f"grid {crs} {tuple(transform)[:6]} is not the scene's 10 m grid {scene.crs} "
                f"{tuple(scene.out_transform)[:6]}")
    if tags.get(f"{TAG}INPUTS") != json.dumps([str(f) for f in scene.input.files]):
        return f"made from other inputs ({tags.get(f'{TAG}INPUTS', 'no satsr tags')})"
    if (problem := _request_problem(tags.get(TAG_REQUEST), request)) is not None:
        return problem
    try:
        verify_raster(path, full=True)
    except RasterError as err:
        return str(err).split(": ", 1)[-1]
    return None


def _request_problem(recorded: str | None, request: Mapping[str, Any]) -> str | None:
    """What differs between the request an output records and this run's (None: nothing)."""
    if request.get("model") is None:
        return ("this run's model has no identity (an in-memory model), so no existing output can be shown to "
                "be its")
    if recorded is None:
        return "it does not record the model and options that made it (written before satsr recorded them)"
    try:
        then = json.loads(recorded)
    except ValueError:
        then = None
    if not isinstance(then, dict):
        return f"its {TAG_REQUEST} tag is not a JSON object ({recorded[:80]!r})"
    now = json.loads(json.dumps(request, sort_keys=True))  # the same JSON types as the recorded one
    differs = [f"{k} {then.get(k)!r} (now {now.get(k)!r})" for k in sorted(set(now) | set(then))
               if then.get(k) != now.get(k)]
    return f"made with another {'; '.join(differs)}" if differs else None
