"""Orchestration: scenes in, one georeferenced 10 m GeoTIFF/COG per scene out.

``predict(inputs, model, output)`` resolves the inputs (satsr.predict.inputs), checks every one of
them and the outputs before the slow model load, loads the model (satsr.predict.model) and runs
``predict_scene`` on each. A scene is cut into tiles (satsr.predict.tiles) that are read strip by
strip in a background thread (reflectance, nodata filled with the nearest valid value), run through
the model in batches (reflectance in, reflectance out: the model carries its own normalization and
harmonization), blended into a strip accumulator; the finished rows are clipped to the model's
range, encoded and written in a background thread (satsr.predict.writer). Memory depends on the scene
width and the tile size, not on the scene size. Everything is written under a temporary name, checked
(any GDAL write error, e.g. a full disk, fails the run; the file must read back) and renamed onto the
output path: a killed or failed run never leaves a partial file at the output path, and the next run
removes the temporaries a killed one left. Before the model loads, every input is checked (readable to
its last block, 30 m pixels, a usable encoding) and every output folder is checked for writing.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from pydantic import ValidationError
from rasterio.errors import NotGeoreferencedWarning

from satsr import locks, paths
from satsr.config import SCALE, Params, PredictParams
from satsr.data.geotiff import RasterError, checked_write
from satsr.models.harmonize import Harmonization, HarmonizeError
from satsr.models.harmonize import resolve as resolve_harmonization
from satsr.models.loading import identity
from satsr.predict.encoding import check_scale_offset
from satsr.predict.errors import PredictError, PredictWarning
from satsr.predict.inputs import COLOURS, SceneInput, resolve_inputs
from satsr.predict.model import ModelSettings, SRModel, configure_threads, load_model, settings
from satsr.predict.scene import OpenScene, fill_nodata, open_scene
from satsr.predict.stream import StripStats, plan, run_strips
from satsr.predict.tiles import TileGrid
from satsr.predict.writer import (
    COLOR_INTERP,
    COMPARE_SUFFIX,
    OUTPUT_SUFFIX,
    WORK_SUFFIX,
    OutputSpec,
    RowWriter,
    clean_stale,
    cleanup,
    existing_output_problem,
    out_profile,
    output_tags,
    quicklook,
    write_cog,
)
from satsr.util import PART_SUFFIX

log = logging.getLogger(__name__)

#: GDAL block cache while predicting (MB): bounds memory on any scene size.
GDAL_CACHE_MB = 256


@dataclass
class SceneStats(StripStats):
    """Counts and timings of one predicted scene (logged, and used by the benchmark): the strip loop's
    plus the grid's tile count, the scene's px and the wall time."""

    tiles: int = 0
    total_px: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def megapixels_per_s(self) -> float:
        return self.total_px / 1e6 / self.seconds if self.seconds else 0.0


def _run_scene(scene: OpenScene, model: SRModel, dst: Any, spec: OutputSpec, p: PredictParams,
               progress: bool | None) -> SceneStats:
    """Tiles -> model -> blended strips -> encoded rows in ``dst`` (satsr.predict.stream)."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    tiling = plan(scene.height, scene.width, model, p)
    log.info("%s: %s", scene.input.name, tiling.describe())
    grid = TileGrid(scene.height, scene.width, tiling.tile, tiling.overlap, SCALE)
    stats = SceneStats(tiles=len(grid), total_px=scene.height * scene.width)
    stats.extra.update(tile_size=tiling.tile, overlap=tiling.overlap, batch_size=tiling.batch, reach=tiling.reach,
                       bytes_per_px=tiling.bytes_per_px, memory_gb=tiling.memory_gb, device=tiling.device,
                       plan_seconds=time.perf_counter() - t0)
    writer = RowWriter(dst, p.blocksize)
    written = [0]  # HR rows handed to the writer

    def read(r: int) -> tuple[np.ndarray, np.ndarray]:
        refl, mask = scene.read(grid.ys[r], grid.tile_h)
        return fill_nodata(refl, mask), mask

    def sink(rows: np.ndarray) -> None:
        # The rows completing the writer's current block band first, so it never joins a whole strip.
        head = min(-written[0] % p.blocksize, rows.shape[1])
        for part in (rows[:, :head], rows[:, head:]):
            if part.shape[1]:
                writer.add(part)
        written[0] += rows.shape[1]

    with tqdm(total=len(grid), unit="tile", desc=scene.input.name, mininterval=1.0, dynamic_ncols=True,
              disable=None if progress is None else not progress) as bar:
        done = run_strips(grid, read, model.fn, spec.encode, sink, tiling.batch, bar.update, f"model {model.uri}")
        writer.close()
    stats.__dict__.update(vars(done))
    stats.seconds = time.perf_counter() - t0
    return stats


FOLDER_HINT = "an existing folder, or a name ending in / to create one"


def _output_paths(scenes: list[SceneInput], output: str | Path) -> list[Path]:
    """One output per scene: ``output`` itself (one scene, a .tif/.tiff name), or
    ``<folder>/<scene>_SR10m.tif`` when ``output`` is an existing folder or ends with a slash (a folder
    is never guessed from a name); clashes refused."""
    text = os.fspath(output)
    out = Path(text).expanduser()
    as_dir = out.is_dir() or text.endswith(("/", os.sep))
    if not as_dir and len(scenes) > 1:
        raise PredictError(f"{out}: {len(scenes)} scenes need an output folder, not a file name (expected "
                           f"{FOLDER_HINT})")
    if not as_dir and out.suffix.lower() not in (".tif", ".tiff"):
        has = f"extension {out.suffix}" if out.suffix else "no extension"
        raise PredictError(f"{out}: one scene's output needs a .tif/.tiff name, this has {has} (expected a "
                           f".tif/.tiff file name, or a folder: {FOLDER_HINT})")
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


def _check_writable(out: Path) -> None:
    """The output's folder (or the nearest existing folder above it) takes a new file: a real probe,
    since permission bits do not tell (read-only mounts, root, ACLs)."""
    folder = next((f for f in (out.parent, *out.parent.parents) if f.exists() or f.is_symlink()), Path("."))
    if not folder.is_dir():
        raise PredictError(f"{out}: cannot create the output folder, {folder} is a file (expected a folder path)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".satsr-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PredictError(f"{folder}: output folder is not writable ({err.strerror or err}) (expected a folder "
                           "this user can create files in; checked before the model runs)") from None


def _pixel_tolerance(p: PredictParams, allow_any_resolution: bool) -> float | None:
    return None if allow_any_resolution else p.pixel_size_tolerance


def run_request(model_id: str | None, scene_in: SceneInput, p: PredictParams, harmonize: Harmonization | None,
                detail: float | None, input_scale: float | None, input_offset: float | None) -> dict[str, Any]:
    """What a run is asked for, beyond its inputs and grid: the model's identity and every option that
    changes the output's pixels (None: the model's or the file's own). Recorded in the output
    (``TAG_REQUEST``); ``--skip-existing`` keeps an output only when it matches."""
    return {"model": model_id, "bands": [b.name for b in scene_in.bands],
            "harmonize": harmonize.as_dict() if harmonize is not None else None, "detail": detail,
            "input_scale": input_scale, "input_offset": input_offset, "output_dtype": p.output_dtype,
            "output_format": p.output_format}


def predict_scene(scene_in: SceneInput, model: SRModel, out_path: Path, *, params: Params,
                  input_scale: float | None = None, input_offset: float | None = None, aoi: Any = None,
                  allow_ungeoreferenced: bool = False, compare: bool = False, progress: bool | None = None,
                  harmonize: str | Harmonization | None = None, detail: float | None = None,
                  allow_any_resolution: bool = False, request: Mapping[str, Any] | None = None) -> SceneStats:
    """Predict one scene into ``out_path`` (atomically, checked). ``params.predict`` holds every setting;
    ``harmonize``/``detail`` override the model's own (see ``satsr.predict.model.settings``); ``request``
    (``run_request``) is recorded in the output for ``--skip-existing``."""
    p = params.predict
    spec = OutputSpec(p.output_dtype, model.lo, model.hi)
    scene = open_scene(scene_in, input_scale=input_scale, input_offset=input_offset, aoi=aoi,
                       allow_ungeoreferenced=allow_ungeoreferenced,
                       pixel_tolerance=_pixel_tolerance(p, allow_any_resolution))
    t0 = time.perf_counter()
    try:
        with settings(model, harmonize, detail) as used:
            stats = _write_scene(scene, model, used, out_path, spec, params, compare, progress, request)
    finally:
        scene.close()
    stats.extra["total_seconds"] = time.perf_counter() - t0
    log.info("%s: %d tiles (%d run) in %.1f s (model %.1f s): %.2f input MP/s -> %s", scene_in.name, stats.tiles,
             stats.tiles_run, stats.extra["total_seconds"], stats.model_seconds,
             stats.total_px / 1e6 / max(stats.extra["total_seconds"], 1e-9), out_path)
    return stats


def _write_scene(scene: OpenScene, model: SRModel, used: ModelSettings, out_path: Path, spec: OutputSpec,
                 params: Params, compare: bool, progress: bool | None,
                 request: Mapping[str, Any] | None) -> SceneStats:
    """The output of one open scene, written under a temporary name and renamed onto ``out_path``."""
    p, scene_in = params.predict, scene.input
    log.info("%s: %d x %d px (%s), %s -> %s", scene_in.name, scene.width, scene.height,
             ", ".join(b.name for b in scene_in.bands), scene.encoding.describe(), out_path)
    cog = p.output_format == "cog"
    try:
        with checked_write(out_path) as part, locks.flock_file(part):
            return _write_parts(scene, model, used, out_path, part, spec, params, compare, progress, cog, request)
    except RasterError as err:
        raise PredictError(str(err)) from None


def _write_parts(scene: OpenScene, model: SRModel, used: ModelSettings, out_path: Path, part: Path,
                 spec: OutputSpec, params: Params, compare: bool, progress: bool | None, cog: bool,
                 request: Mapping[str, Any] | None) -> SceneStats:
    """The output written into the temporary ``part`` (through the tiled ``.tmp.tif`` for a COG)."""
    p, scene_in = params.predict, scene.input
    work = part.with_name(part.name[:-len(PART_SUFFIX)] + WORK_SUFFIX) if cog else part
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(work, "w", **out_profile(scene, spec, p.compress, p.blocksize, not cog)) as dst:
                dst.colorinterp = COLOR_INTERP
                dst.descriptions = tuple(f"{c} ({b.name})" for c, b in zip(COLOURS, scene_in.bands))
                dst.scales = [spec.scale] * 3
                dst.offsets = [spec.offset] * 3
                dst.update_tags(**output_tags(scene, model, spec, used, request))
                for i, (c, b) in enumerate(zip(COLOURS, scene_in.bands), start=1):
                    dst.update_tags(i, COLOR=c, SOURCE_BAND=b.name)
                stats = _run_scene(scene, model, dst, spec, p, progress)
        if stats.valid_px == 0:
            msg = f"{scene_in.name}: every input pixel is nodata; the output is all nodata"
            log.warning(msg)
            warnings.warn(msg, PredictWarning, stacklevel=4)
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
            harmonize: str | Path | Harmonization | None = None, detail: float | None = None,
            allow_any_resolution: bool = False, skip_existing: bool = False) -> list[Path]:
    """Super-resolve Landsat scenes x3 into georeferenced 10 m GeoTIFFs; returns the output paths
    (written, or kept by ``skip_existing``).

    inputs: a GeoTIFF, a folder, a glob, or a list of them (see the module doc for band files).
    model: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``, a ``.keras``
        file, a folder holding ``model.keras``, or a Keras model object; None: the released weights
        (``satsr.paths.RELEASE_MODEL``).
    output: the output .tif/.tiff for one scene, or a folder (then ``<scene>_SR10m.tif`` per scene): an
        existing folder, or a name ending in ``/`` (a folder is never guessed from a name).
    bands: red,green,blue band numbers (1-based) of a multiband GeoTIFF, ``"3,2,1"`` or ``(3, 2, 1)``.
    input_scale, input_offset: reflectance = DN * scale + offset, overriding the file's encoding
        (finite; scale > 0).
    aoi: a GeoJSON file or mapping (EPSG:4326 unless it has a ``crs`` member), or bounds
        ``(minx, miny, maxx, maxy)`` / ``"minx,miny,maxx,maxy"`` in the input's CRS (read as lon/lat
        when they only fit there; ``"EPSG:4326:minx,..."`` says so explicitly). Its bounding box,
        snapped outward to the input's pixel grid, is predicted.
    output_format, output_dtype, tile_size, overlap, batch_size: override ``params.predict``.
    compare: also write ``<output stem>_compare.png`` (bicubic | SR of a central crop).
    overwrite: replace existing outputs (otherwise they are refused before any work).
    skip_existing: keep an existing output that reads back completely, lies on this scene's grid and was
        made by the same model (its file's sha256 or registered version) with the same options; a damaged
        or different one is predicted again. Resumes a killed batch.
    allow_ungeoreferenced: write inputs without CRS/geotransform in pixel coordinates.
    allow_any_resolution: predict inputs whose pixels are not 30 m (params
        ``predict.pixel_size_tolerance``); the model was trained on 30 m input.
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
    check_scale_offset(input_scale, input_offset)
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
    if existing and not (overwrite or skip_existing):
        raise PredictError(f"{', '.join(map(str, existing))}: output exists (expected a new output path; pass "
                           "--overwrite to replace it, or --skip-existing to keep finished outputs)")
    for out in {o.parent: o for o in outputs}.values():  # one per folder, before the (slow) model load
        _check_writable(out)
    todo: list[tuple[SceneInput, Path, dict[str, Any]]] = []
    tolerance = _pixel_tolerance(params.predict, allow_any_resolution)
    # The model's identity without loading it: a batch whose outputs are all finished loads no model.
    model_id = model.identity if isinstance(model, SRModel) else identity(model, params)
    for s, out in zip(scenes, outputs):  # every input checked before the (slow) model load
        clean_stale(out)
        request = run_request(model_id, s, params.predict, harmonize, detail, input_scale, input_offset)
        scene = open_scene(s, input_scale=input_scale, input_offset=input_offset, aoi=aoi,
                           allow_ungeoreferenced=allow_ungeoreferenced, pixel_tolerance=tolerance)
        try:
            problem = existing_output_problem(out, scene, request) if skip_existing and out.exists() else None
        finally:
            scene.close()
        if skip_existing and out.exists():
            if problem is None:
                log.info("%s: %s is finished (complete, on this scene's grid, same model and options): skipped",
                         s.name, out)
                continue
            log.warning("%s: existing %s is not a finished output of this run (%s): predicting it again", s.name,
                        out, problem)
        todo.append((s, out, request))
    if not todo:
        return outputs
    configure_threads(params.predict.threads)
    sr_model = load_model(model, params, identity=model_id)
    gdal_threads = str(params.predict.threads) if params.predict.threads > 0 else "ALL_CPUS"
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_NUM_THREADS=gdal_threads):
        for s, out, request in todo:
            predict_scene(s, sr_model, out, params=params, input_scale=input_scale, input_offset=input_offset,
                          aoi=aoi, allow_ungeoreferenced=allow_ungeoreferenced, compare=compare, progress=progress,
                          harmonize=harmonize, detail=detail, allow_any_resolution=allow_any_resolution,
                          request=request)
    return outputs
