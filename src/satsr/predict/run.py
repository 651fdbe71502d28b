"""Orchestration: scenes in, one georeferenced 10 m GeoTIFF/COG per scene out.

``predict(inputs, model, output)`` resolves the inputs (satsr.predict.inputs), checks every one of
them and the outputs before the slow model load, loads the model (satsr.predict.model) and runs
``predict_scene`` on each. A scene is cut into tiles (satsr.predict.tiles) that are read strip by
strip in a background thread (reflectance, nodata filled with the nearest valid value), run through
the model in batches (reflectance in, reflectance out: the model carries its own normalization and
harmonization), blended into a strip accumulator; the finished rows are clipped to the model's
range, encoded and written in a background thread (satsr.predict.writer). Memory depends on the scene
width and the tile size, not on the scene size. Everything is written under a temporary name and
renamed onto the output path: a killed run never leaves a partial file at the output path.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pydantic import ValidationError
from rasterio.errors import NotGeoreferencedWarning

from satsr import paths
from satsr.config import SCALE, Params, PredictParams
from satsr.models.harmonize import Harmonization, HarmonizeError
from satsr.models.harmonize import resolve as resolve_harmonization
from satsr.predict.errors import PredictError, PredictWarning
from satsr.predict.inputs import COLOURS, SceneInput, resolve_inputs
from satsr.predict.model import ModelSettings, SRModel, configure_threads, load_model, settings
from satsr.predict.scene import OpenScene, fill_nodata, open_scene
from satsr.predict.tiles import Tile, TileGrid, batched
from satsr.predict.writer import (
    COMPARE_SUFFIX,
    OUTPUT_SUFFIX,
    OutputSpec,
    RowWriter,
    cleanup,
    out_profile,
    output_tags,
    quicklook,
    write_cog,
)
from satsr.util import atomic_path

log = logging.getLogger(__name__)

#: GDAL block cache while predicting (MB): bounds memory on any scene size.
GDAL_CACHE_MB = 256


@dataclass
class SceneStats:
    """Counts and timings of one predicted scene (logged, and used by the benchmark)."""

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


def _run_scene(scene: OpenScene, model: SRModel, dst: Any, spec: OutputSpec, p: PredictParams,
               progress: bool | None) -> SceneStats:
    """Tiles -> model -> blended strips -> encoded rows in ``dst`` (see the module doc)."""
    from tqdm import tqdm

    grid = TileGrid(scene.height, scene.width, p.tile_size, p.overlap, SCALE)
    stats = SceneStats(tiles=len(grid), total_px=scene.height * scene.width)
    writer = RowWriter(dst, p.blocksize)
    th, w_hr = grid.tile_h, scene.width * SCALE
    t0 = time.perf_counter()

    def read(r: int) -> tuple[np.ndarray, np.ndarray]:
        refl, mask = scene.read(grid.ys[r], th)
        return fill_nodata(refl, mask), mask

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


def _output_paths(scenes: list[SceneInput], output: str | Path) -> list[Path]:
    """One output per scene: ``output`` itself, or ``<folder>/<scene>_SR10m.tif``; clashes refused."""
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


def predict_scene(scene_in: SceneInput, model: SRModel, out_path: Path, *, params: Params,
                  input_scale: float | None = None, input_offset: float | None = None, aoi: Any = None,
                  allow_ungeoreferenced: bool = False, compare: bool = False, progress: bool | None = None,
                  harmonize: str | Harmonization | None = None, detail: float | None = None) -> SceneStats:
    """Predict one scene into ``out_path`` (atomically). ``params.predict`` holds every setting;
    ``harmonize``/``detail`` override the model's own (see ``satsr.predict.model.settings``)."""
    p = params.predict
    spec = OutputSpec(p.output_dtype, model.lo, model.hi)
    scene = open_scene(scene_in, input_scale=input_scale, input_offset=input_offset, aoi=aoi,
                       allow_ungeoreferenced=allow_ungeoreferenced)
    t0 = time.perf_counter()
    try:
        with settings(model, harmonize, detail) as used:
            stats = _write_scene(scene, model, used, out_path, spec, params, compare, progress)
    finally:
        scene.close()
    stats.extra["total_seconds"] = time.perf_counter() - t0
    log.info("%s: %d tiles (%d run) in %.1f s (model %.1f s): %.2f input MP/s -> %s", scene_in.name, stats.tiles,
             stats.tiles_run, stats.extra["total_seconds"], stats.model_seconds,
             stats.total_px / 1e6 / max(stats.extra["total_seconds"], 1e-9), out_path)
    return stats


def _write_scene(scene: OpenScene, model: SRModel, used: ModelSettings, out_path: Path, spec: OutputSpec,
                 params: Params, compare: bool, progress: bool | None) -> SceneStats:
    """The output of one open scene, written under a temporary name and renamed onto ``out_path``."""
    p, scene_in = params.predict, scene.input
    log.info("%s: %d x %d px (%s), %s -> %s", scene_in.name, scene.width, scene.height,
             ", ".join(b.name for b in scene_in.bands), scene.encoding.describe(), out_path)
    cog = p.output_format == "cog"
    with atomic_path(out_path) as part:
        work = part.with_name(part.name[:-len(".part")] + ".tmp.tif") if cog else part
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                with rasterio.open(work, "w", **out_profile(scene, spec, p.compress, p.blocksize, not cog)) as dst:
                    dst.descriptions = tuple(f"{c} ({b.name})" for c, b in zip(COLOURS, scene_in.bands))
                    dst.scales = [spec.scale] * 3
                    dst.offsets = [spec.offset] * 3
                    dst.update_tags(**output_tags(scene, model, spec, used))
                    for i, (c, b) in enumerate(zip(COLOURS, scene_in.bands), start=1):
                        dst.update_tags(i, COLOR=c, SOURCE_BAND=b.name)
                    stats = _run_scene(scene, model, dst, spec, p, progress)
            if stats.valid_px == 0:
                msg = f"{scene_in.name}: every input pixel is nodata; the output is all nodata"
                log.warning(msg)
                warnings.warn(msg, PredictWarning, stacklevel=3)
            if compare:
                stem = out_path.name.rsplit(".", 1)[0]
                ql = quicklook(scene, work, spec, model, used, params, out_path.with_name(stem + COMPARE_SUFFIX))
                log.info("%s: comparison quicklook %s", scene_in.name, ql)
            if cog:
                t = time.perf_counter()
                write_cog(work, part, p)
                stats.extra["cog_seconds"] = time.perf_counter() - t
        finally:
            if cog:
                cleanup(work)
            cleanup(Path(str(part) + ".ovr"))
            cleanup(Path(str(part) + ".aux"))
    return stats


def predict(inputs: str | Path | Iterable[str | Path], model: Any | None, output: str | Path, *,
            bands: str | Sequence[int] | None = None, input_scale: float | None = None,
            input_offset: float | None = None, aoi: Any = None, output_format: str | None = None,
            output_dtype: str | None = None, compare: bool = False, overwrite: bool = False,
            allow_ungeoreferenced: bool = False, tile_size: int | None = None, overlap: int | None = None,
            batch_size: int | None = None, params: Params | None = None, progress: bool | None = None,
            harmonize: str | Path | Harmonization | None = None, detail: float | None = None) -> list[Path]:
    """Super-resolve Landsat scenes x3 into georeferenced 10 m GeoTIFFs; returns the written paths.

    inputs: a GeoTIFF, a folder, a glob, or a list of them (see the module doc for band files).
    model: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``, a ``.keras``
        file, a folder holding ``model.keras``, or a Keras model object; None: the released weights
        (``satsr.paths.RELEASE_MODEL``).
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
    params: the project's Params (``predict.*``; ``png.reflectance_min/max`` only for models saved
        before satsr exported its models: an exported model carries its own range).
    progress: tqdm bar (None: only on a terminal).
    harmonize: ``none`` | ``hls`` | a YAML/JSON file with per-band ``gain``/``offset``: the LR
        radiometric map to Sentinel-2 (None: the one the model carries). Recorded in the tags.
    detail: the detail strength alpha in [0, 1] of a model with a ``detail_strength`` layer
        (0 = bicubic; None: the model's own). Recorded in the tags.
    """
    params = params or Params()
    if model is None:
        model = paths.release_model()
        if not Path(model).is_file():
            raise PredictError(f"no --model given and no released weights at {model} (pass --model: a .keras "
                               "file, a folder with model.keras, or models:/NAME@ALIAS)")
    if detail is not None and not 0.0 <= float(detail) <= 1.0:
        raise PredictError(f"--detail {detail:g}: expected a detail strength in [0, 1] (0 = bicubic, 1 = all the "
                           "detail the model adds)")
    try:
        harmonize = resolve_harmonization(harmonize, 3)  # a bad file fails before any work
    except HarmonizeError as err:
        raise PredictError(f"--harmonize: {err}") from None
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
                          aoi=aoi, allow_ungeoreferenced=allow_ungeoreferenced, compare=compare, progress=progress,
                          harmonize=harmonize, detail=detail)
            written.append(out)
    return written
