"""Compute-efficiency benchmarks for training and inference (models-and-training issue).

1. Input pipeline vs model step: patches/s of the real tf.data pipeline (make_dataset on a PNG
   dataset, default data/png train split) against patches/s of the EDSR pixel train step at the
   same patch and batch size. Target: the pipeline is at least 5x faster than the step.
2. EDSR-baseline x3 inference on a 265 x 265 tile, as achieved FLOP/s, against this machine's
   dense fp32 matmul rate (4096^2) measured in the same run. Target: >= 70 % of it.

Medians of repeats; both members of each ratio are measured in the same process, back to back.
Usage: python benchmarks/bench_compute.py [--png-dir data/png] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from satsr import models
from satsr.config import load_params
from satsr.data.pipeline import make_dataset, pipeline_throughput


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(n: int, repeats: int) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    return 2 * n**3 / _median_time(lambda: mm().numpy(), repeats)


def conv_flops(model: tf.keras.Model, h: int, w: int) -> float:
    """2 x multiply-adds of every Conv2D at an h x w LR input (layers after the x3 pixel shuffle run
    at HR size). The bicubic global residual is not counted: it is negligible."""
    hr_layers = _hr_layers(model)
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin, cout = layer.kernel.shape[2], layer.kernel.shape[3]
            px = (3 * h) * (3 * w) if layer.name in hr_layers else h * w
            total += 2.0 * kh * kw * cin * cout * px
    return total


def _hr_layers(model: tf.keras.Model) -> set[str]:
    names, after = set(), False
    for layer in model.layers:
        if after:
            names.add(layer.name)
        if type(layer).__name__ == "PixelShuffle":
            after = True
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--png-dir", type=Path, default=Path("data/png"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--matmul-n", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=265)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    params = load_params(args.params)
    result: dict = {"cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}

    # 1. input pipeline vs EDSR (demo size) train step, same patch and batch
    sp = params.finetune.edsr
    ds = make_dataset(args.png_dir, "train", sp.input, training=True, seed=0)
    pipe = statistics.median(pipeline_throughput(ds, 20) for _ in range(args.repeats))
    model = models.build("edsr", params.models.edsr)
    opt = tf.keras.optimizers.Adam(1e-4)
    b, p = sp.input.batch_size, sp.input.lr_patch
    lr = tf.random.uniform((b, p, p, 3))
    hr = tf.random.uniform((b, 3 * p, 3 * p, 3))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(lr, training=True) - hr))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    step_s = _median_time(lambda: step().numpy(), args.repeats * 4, warmup=2)
    result["pipeline_patches_per_s"] = round(pipe, 1)
    result["edsr_demo_step_patches_per_s"] = round(b / step_s, 1)
    result["pipeline_over_step"] = round(pipe / (b / step_s), 2)

    # 2. EDSR-baseline inference on one tile vs the matmul FLOP rate
    base = models.build(*models.preset("edsr_baseline"))
    x = tf.random.uniform((1, args.tile, args.tile, 3))
    infer = tf.function(lambda t: base(t, training=False))
    flops = conv_flops(base, args.tile, args.tile)
    t_inf = _median_time(lambda: infer(x).numpy(), args.repeats)
    peak = matmul_flops(args.matmul_n, args.repeats)
    result.update({
        "edsr_baseline_tile_s": round(t_inf, 3),
        "edsr_baseline_gflop_per_tile": round(flops / 1e9, 1),
        "edsr_baseline_gflops": round(flops / t_inf / 1e9, 1),
        "matmul_gflops": round(peak / 1e9, 1),
        "inference_over_matmul": round(flops / t_inf / peak, 3),
    })
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
