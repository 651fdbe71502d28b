"""Whole-scene prediction: end-to-end throughput vs the raw model, on the scene's own pixels and on the same tiles.

Generates a Landsat-8 Collection 2 Level-2 scene of the requested size as the three band files
USGS ships (``LC08_L2SP_..._SR_B4/B3/B2.TIF``, uint16 DN, tiled, deflate), written strip by strip,
then, in this one process:

1. ``satsr.predict.predict_scene`` on it with the chosen architecture or preset, writing the 10 m COG
   with params.yaml's predict settings (``auto`` tiles and overlap unless given): end-to-end seconds,
   input megapixels per second, and the time inside the model, the writer and the COG copy. The
   untrained network is exactly bicubic (its last conv starts at zero), which would make the
   measured reach that of bicubic; ``--tail-std`` gives that conv random weights so the model adds
   detail and reaches as far as a trained one (the timing does not depend on the weights);
2. the raw model on tiles of the same shape and batch (random data, the same traced function),
   back to back with step 1 so both see the same machine load: all ``tiles_run`` of them, or
   ``--raw-tiles N`` of them scaled to ``tiles_run`` (for big scenes);
3. peak RSS of the prediction (``VmHWM`` reset after the scene generation; ``ru_maxrss`` elsewhere).

Two efficiencies (target >= 0.8 on the scene's own pixels):

* **own pixels** = end-to-end input MP/s / the raw model's MP/s = (raw seconds per tile px x the
  scene's px) / end-to-end seconds: what tiling, overlap, I/O and the COG copy cost together;
* **same tiles** = raw seconds on the tiles run / end-to-end seconds: I/O and blending overhead only
  (the overlap's recomputation counts as useful work). own = same / ``tile_px_per_scene_px``.

Usage: python benchmarks/bench_predict.py [--size 2000 | --width W --height H] [--preset edsr_baseline]
       [--tile-size N] [--overlap N] [--batch-size N] [--max-memory-gb G] [--threads N] [--footprint]
       [--raw-tiles N] [--skip-raw] [--tail-std S] [--progress] [--workdir DIR] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

PID = "LC08_L2SP_232066_20190727_20200827_02_T1"


def make_scene(folder: Path, width: int, height: int, footprint: bool, seed: int = 0) -> Path:
    """Three C2 L2 band files with textured reflectance; returns the SR_B4 path."""
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.002, 0.2, size=(12, 2))
    phases = rng.uniform(0, 2 * np.pi, size=12)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint16", "nodata": 0,
               "crs": "EPSG:32620", "transform": from_origin(399960.0, 9000000.0, 30.0, 30.0), "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": 1, "predictor": 2}
    tints = {"SR_B4": 1.0, "SR_B3": 0.85, "SR_B2": 0.6}
    paths = {b: folder / f"{PID}_{b}.TIF" for b in tints}
    dsts = {b: rasterio.open(p, "w", **profile) for b, p in paths.items()}
    try:
        xs = np.arange(width)
        for r0 in range(0, height, 512):
            rows = min(512, height - r0)
            y, x = np.meshgrid(np.arange(r0, r0 + rows), xs, indexing="ij")
            grey = np.zeros((rows, width))
            for (fy, fx), ph in zip(freqs, phases):
                grey += np.sin(fy * y + fx * x + ph)
            grey = 0.12 + 0.02 * grey + rng.normal(0, 0.005, grey.shape)
            valid = np.ones_like(grey, dtype=bool)
            if footprint:  # the rotated path/row footprint of a real scene: nodata corners
                u = (x - width / 2) * np.cos(0.2) + (y - height / 2) * np.sin(0.2)
                v = -(x - width / 2) * np.sin(0.2) + (y - height / 2) * np.cos(0.2)
                valid = (np.abs(u) < 0.42 * width) & (np.abs(v) < 0.42 * height)
            for band, tint in tints.items():
                dn = np.clip(np.rint((grey * tint + 0.2) / 2.75e-5), 1, 65535).astype(np.uint16)
                dn[~valid] = 0
                dsts[band].write(dn, 1, window=Window(0, r0, width, rows))
    finally:
        for d in dsts.values():
            d.close()
    return paths["SR_B4"]


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) so the scene generation does not count; False where
    /proc does not allow it (then ``ru_maxrss``, the whole process, is reported)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_gb(hwm: bool) -> float:
    if hwm:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024 ** 2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000, help="square scene side, LR px (default 2000)")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--preset", default="edsr_baseline", help="satsr.models preset, or an architecture name "
                                                              "at its params.yaml size")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--overlap", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-memory-gb", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tail-std", type=float, default=5e-4,
                    help="std of random last-conv weights (5e-4: detail std ~0.018 reflectance, like a trained "
                         "model; 0: untrained, exactly bicubic)")
    ap.add_argument("--raw-tiles", type=int, default=None, help="time the raw model on this many tiles and "
                                                                "scale to the tiles run (default: all)")
    ap.add_argument("--progress", action="store_true", help="tqdm progress bar on stderr")
    ap.add_argument("--footprint", action="store_true", help="nodata corners like a real path/row scene")
    ap.add_argument("--workdir", type=Path, default=None, help="where the scene and output go (default: tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the generated scene and output")
    ap.add_argument("--skip-raw", action="store_true", help="no raw-model pass (memory-only runs)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    width, height = args.width or args.size, args.height or args.size

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    band = make_scene(work, width, height, args.footprint)
    gen_s = time.perf_counter() - t

    from satsr import models
    from satsr.config import load_params
    from satsr.predict import configure_threads, load_model, predict_scene, resolve_inputs
    from satsr.predict.tiles import TileGrid, batched

    params = load_params(args.params)
    upd = {k: v for k, v in {"tile_size": args.tile_size, "overlap": args.overlap, "batch_size": args.batch_size,
                             "threads": args.threads, "max_memory_gb": args.max_memory_gb}.items() if v is not None}
    if upd:
        params = params.model_copy(update={"predict": params.predict.model_validate(
            {**params.predict.model_dump(), **upd})})
    p = params.predict
    configure_threads(p.threads)
    t = time.perf_counter()
    if args.preset in models.PRESETS:
        keras_model = models.build(*models.preset(args.preset))
    else:
        keras_model = models.build(args.preset, params.models)
    if args.tail_std > 0:
        tail = keras_model.get_layer("tail_conv")
        kernel, bias = tail.get_weights()
        tail.set_weights([np.random.default_rng(0).normal(0, args.tail_std, kernel.shape).astype(np.float32), bias])
    model_path = work / "model.keras"
    models.export_model(keras_model, params.png.reflectance_min, params.png.reflectance_max).save(model_path)
    sr_model = load_model(model_path, params)
    load_s = time.perf_counter() - t

    scene = resolve_inputs(band)[0]
    out = work / "out" / "scene_SR10m.tif"
    if out.exists():
        out.unlink()
    hwm = reset_peak_rss()
    load_before = os.getloadavg()
    with rasterio.Env(GDAL_CACHEMAX=256):
        stats = predict_scene(scene, sr_model, out, params=params, progress=args.progress)
    rss_gb = peak_rss_gb(hwm)
    e2e_s = stats.extra["total_seconds"]
    tile, overlap, bs = stats.extra["tile_size"], stats.extra["overlap"], stats.extra["batch_size"]

    # The raw model on tiles of the same shape and batch size, the same traced function.
    grid = TileGrid(height, width, tile, overlap)
    batch = np.random.default_rng(0).random((bs, grid.tile_h, grid.tile_w, 3)).astype(np.float32)
    sr_model.fn(batch[:1])  # warm (the scene run traced it already)
    n_raw = stats.tiles_run if args.raw_tiles is None else min(args.raw_tiles, stats.tiles_run)
    t = time.perf_counter()
    for group in batched([] if args.skip_raw else list(range(n_raw)), bs):
        sr_model.fn(batch[:len(group)])
    raw_s = (time.perf_counter() - t) * stats.tiles_run / max(n_raw, 1)
    load_after = os.getloadavg()

    mp = width * height / 1e6
    tile_ratio = stats.tiles_run * grid.tile_h * grid.tile_w / (width * height)
    raw_own_s = raw_s / tile_ratio  # the raw model on the scene's own pixels
    row = {
        "model": args.preset, "params": int(keras_model.count_params()), "tail_std": args.tail_std,
        "width": width, "height": height, "tile_size": tile, "overlap": overlap, "batch_size": bs,
        "reach": stats.extra["reach"], "bytes_per_px": round(stats.extra["bytes_per_px"]),
        "max_memory_gb": p.max_memory_gb, "estimated_memory_gb": round(stats.extra["memory_gb"], 2),
        "tiles": stats.tiles, "tiles_run": stats.tiles_run, "tile_px_per_scene_px": round(tile_ratio, 3),
        "end_to_end_s": round(e2e_s, 1), "end_to_end_input_mp_per_s": round(mp / e2e_s, 4),
        "raw_model_s_same_tiles": None if args.skip_raw else round(raw_s, 1),
        "raw_tiles_timed": None if args.skip_raw else n_raw,
        "raw_model_mp_per_s": None if args.skip_raw else round(mp / raw_own_s, 4),
        "efficiency_own_px": None if args.skip_raw else round(raw_own_s / e2e_s, 3),
        "efficiency_same_tiles": None if args.skip_raw else round(raw_s / e2e_s, 3),
        "model_s_inside_run": round(stats.model_seconds, 1), "plan_s": round(stats.extra["plan_seconds"], 1),
        "write_s": round(stats.write_seconds, 1), "cog_s": round(stats.extra.get("cog_seconds", 0.0), 1),
        "peak_rss_gb": round(rss_gb, 2), "model_load_s": round(load_s, 1), "scene_generation_s": round(gen_s, 1),
        "output_mb": round(out.stat().st_size / 1e6, 1),
        "full_10k_scene_estimate_min": round(e2e_s * (1e8 / (width * height)) / 60, 1),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_avg_start": [round(v, 2) for v in load_before], "load_avg_end": [round(v, 2) for v in load_after],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
