"""Training-step throughput per architecture (LR patches per second), for the CPU demo sizes.

Times the real ``@tf.function`` train steps of satsr.train.loop on random batches (no input
pipeline, no validation), after a warm-up that includes tracing: the pixel step for every
architecture, and the GAN step (generator + discriminator, discriminator feature matching) for
the GAN architectures. Sizes come from params.yaml (``models.<arch>`` and the ``finetune.<arch>``
input patch and batch) unless overridden.

Usage: python benchmarks/bench_train.py [--params params.yaml] [--steps 20] [--lr-patch 24]
       [--batch 8] [--archs rdn rrdn edsr srgan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from satsr import models
from satsr.config import SCALE, load_params
from satsr.train import loop, losses, schedule


def _time(step, lr, hr, weights, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step(lr, hr, weights)["loss"].numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        step(lr, hr, weights)["loss"].numpy()
    return steps * int(lr.shape[0]) / (time.perf_counter() - t0)


def bench(arch: str, params, steps: int, lr_patch: int | None, batch: int | None) -> dict:
    sp = params.finetune.model_dump()[arch]
    p = lr_patch or sp["input"]["lr_patch"]
    b = batch or sp["input"]["batch_size"]
    sp_obj = getattr(params.finetune, arch)
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    gen = models.build(arch, params.models)
    lr = tf.random.uniform((b, p, p, 3))
    hr = tf.random.uniform((b, p * SCALE, p * SCALE, 3))
    g_opt = schedule.make_optimizer(sp_obj, 1e-4, 1000, tf.Variable(1.0), "g")
    pixel = loop.make_pixel_step(strategy, gen, g_opt, losses.l1, b)
    row = {"arch": arch, "lr_patch": p, "batch": b, "params": int(gen.count_params()),
           "pixel_patches_per_s": round(_time(pixel, lr, hr, tf.constant([1.0, 0.0, 0.0]), steps), 1)}
    if arch in models.GAN_ARCHS:
        disc = models.build_discriminator(arch, params.models)
        multi = keras.Model(disc.input, [disc.get_layer(n).output for n in models.feature_layer_names(disc)]
                            + [disc.output])
        d_opt = schedule.make_optimizer(sp_obj, 1e-4, 1000, tf.Variable(1.0), "d")
        gan = loop.make_gan_step(strategy, gen, multi, g_opt, d_opt, losses.l1, None, sp_obj.adversarial, b)
        row["gan_patches_per_s"] = round(_time(gan, lr, hr, tf.constant([1.0, 0.1, 1e-3]), steps), 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr-patch", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--archs", nargs="+", default=list(models.ARCHS))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    params = load_params(args.params)
    rows = [bench(a, params, args.steps, args.lr_patch, args.batch) for a in args.archs]
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "tensorflow": tf.__version__, "date": time.strftime("%Y-%m-%d")}
    for r in rows:
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
