"""Whole-scene prediction: end-to-end throughput vs the raw model on the same tiles, peak memory.

Generates a Landsat-8 Collection 2 Level-2 scene of the requested size as the three band files
USGS ships (``LC08_L2SP_..._SR_B4/B3/B2.TIF``, uint16 DN, tiled, deflate), written strip by strip,
then, in this one process:

1. ``satsr.predict.predict_scene`` on it with the chosen architecture or preset (untrained weights:
   the timing does not depend on them), writing the 10 m COG: end-to-end seconds, input
   megapixels per second, and the time inside the model, the writer and the COG copy;
2. the raw model on the same tiles (same count, shape and batch size, random data, the same traced
   function), back to back with step 1, so both see the same machine load;
3. peak RSS of the process (``ru_maxrss``: TensorFlow, the model, the strip buffers, GDAL's cache).

Efficiency = raw model seconds / end-to-end seconds (target >= 0.8). The strip buffers grow with
the scene *width* only, so ``--width 10000 --height 600`` measures the memory of a 10,000 x 10,000
scene in a fraction of its time; the full scene takes about (10,000^2 / pixels) x the measured time.

Usage: python benchmarks/bench_predict.py [--size 2000 | --width W --height H] [--preset edsr_baseline]
       [--tile-size N] [--overlap N] [--batch-size N] [--threads N] [--footprint] [--skip-raw]
       [--workdir DIR] [--keep] [--json out.json]
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
    ap.add_argument("--threads", type=int, default=None)
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
                             "threads": args.threads}.items() if v is not None}
    if upd:
        params = params.model_copy(update={"predict": params.predict.model_copy(update=upd)})
    p = params.predict
    configure_threads(p.threads)
    t = time.perf_counter()
    if args.preset in models.PRESETS:
        keras_model = models.build(*models.preset(args.preset))
    else:
        keras_model = models.build(args.preset, params.models)
    model_path = work / "model.keras"
    models.export_model(keras_model, params.png.reflectance_min, params.png.reflectance_max).save(model_path)
    sr_model = load_model(model_path, params)
    load_s = time.perf_counter() - t

    scene = resolve_inputs(band)[0]
    out = work / "out" / "scene_SR10m.tif"
    if out.exists():
        out.unlink()
    with rasterio.Env(GDAL_CACHEMAX=256):
        stats = predict_scene(scene, sr_model, out, params=params, progress=False)
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    e2e_s = stats.extra["total_seconds"]

    # The raw model on the same tiles: same count, shape and batch size, the same traced function.
    grid = TileGrid(height, width, p.tile_size, p.overlap)
    batch = np.random.default_rng(0).random((p.batch_size, grid.tile_h, grid.tile_w, 3)).astype(np.float32)
    sr_model.fn(batch[:1])  # warm (the scene run traced it already)
    t = time.perf_counter()
    for group in batched([] if args.skip_raw else list(range(stats.tiles_run)), p.batch_size):
        sr_model.fn(batch[:len(group)])
    raw_s = time.perf_counter() - t

    mp = width * height / 1e6
    row = {
        "model": args.preset, "params": int(keras_model.count_params()), "width": width, "height": height,
        "tile_size": p.tile_size, "overlap": p.overlap, "batch_size": p.batch_size,
        "tiles": stats.tiles, "tiles_run": stats.tiles_run,
        "tile_px_per_scene_px": round(stats.tiles_run * grid.tile_h * grid.tile_w / (width * height), 3),
        "end_to_end_s": round(e2e_s, 1), "end_to_end_input_mp_per_s": round(mp / e2e_s, 4),
        "raw_model_s": None if args.skip_raw else round(raw_s, 1),
        "raw_model_input_mp_per_s": None if args.skip_raw else round(mp / raw_s, 4),
        "efficiency": None if args.skip_raw else round(raw_s / e2e_s, 3),
        "model_s_inside_run": round(stats.model_seconds, 1), "write_s": round(stats.write_seconds, 1),
        "cog_s": round(stats.extra.get("cog_seconds", 0.0), 1),
        "peak_rss_gb": round(rss_gb, 2), "model_load_s": round(load_s, 1), "scene_generation_s": round(gen_s, 1),
        "output_mb": round(out.stat().st_size / 1e6, 1),
        "full_10k_scene_estimate_min": round(e2e_s * (1e8 / (width * height)) / 60, 1),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
    if not args.keep and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
