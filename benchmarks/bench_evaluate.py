"""Evaluation benchmark (issue: evaluation, reporting and model selection).

Time per 795 x 795 px image (the seed's Sentinel-2 chip; LR 265 px) of every metric group of
satsr.evaluate.metrics.image_metrics for the three methods scored per image (model, bicubic,
Lanczos), the baselines' upsampling, and -- for the sewar metrics, all re-implemented -- the
plain sewar functions on the same pixels (checked equal), so the speed-up is measured, not claimed. Inputs are
synthetic textured reflectance (no model inference: that is the training benchmark's business);
CPU seconds are reported too, a load-independent figure on a shared machine.

Usage: python benchmarks/bench_evaluate.py [--images 3] [--size 795] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import numpy as np
from scipy.ndimage import gaussian_filter
from sewar import full_ref as sewar_fr

from satsr.data.registration import area_downsample
from satsr.evaluate import metrics as m

SEWAR = {"ssim": lambda a, b: sewar_fr.ssim(a, b, MAX=1.0)[0], "msssim": lambda a, b: sewar_fr.msssim(a, b, MAX=1.0),
         "scc": lambda a, b: sewar_fr.scc(a, b), "uqi": lambda a, b: sewar_fr.uqi(a, b),
         "rase": lambda a, b: sewar_fr.rase(a, b), "sam": lambda a, b: sewar_fr.sam(a, b),
         "ergas": lambda a, b: sewar_fr.ergas(a, b, r=1 / 3)}


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def make_images(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    g = gaussian_filter(rng.normal(size=(size, size)), 6) * 8 + gaussian_filter(rng.normal(size=(size, size)), 1)
    hr = np.clip(0.08 + 0.05 * np.tanh(g)[..., None] * np.array([1.0, 0.85, 0.7]), 0, 1)
    lr = area_downsample(hr.transpose(2, 0, 1), 3).transpose(1, 2, 0)
    sr = np.clip(m.upsample(lr, 3, "bicubic") + 0.3 * (hr - gaussian_filter(hr, (1.5, 1.5, 0))), 0, 1)
    preds = {"sr": sr, "bicubic": m.upsample(lr, 3, "bicubic"), "lanczos": m.upsample(lr, 3, "lanczos")}
    return lr, hr, preds


def bench(images: int, size: int) -> dict:
    rng = np.random.default_rng(0)
    timer = m.Timer()
    t_up = 0.0
    wall = cpu = 0.0
    sewar_s = {k: 0.0 for k in SEWAR}
    ours_s = {k: 0.0 for k in SEWAR}
    for _ in range(images):
        lr, hr, preds = make_images(rng, size)
        t0 = time.process_time()
        m.upsample(lr, 3, "bicubic"), m.upsample(lr, 3, "lanczos")
        t_up += time.process_time() - t0
        t0, c0 = time.perf_counter(), _cpu()
        m.image_metrics(lr, hr, preds, timer=timer)
        wall += time.perf_counter() - t0
        cpu += _cpu() - c0
        a, b = m.crop(hr, 3), m.crop(preds["sr"], 3)
        for name, fn in SEWAR.items():
            t0 = time.process_time()
            ref = float(np.real(fn(a, b)))
            sewar_s[name] += time.process_time() - t0
            t0 = time.process_time()
            ours = m.ergas(a, b, 1 / 3) if name == "ergas" else getattr(m, name)(a, b)
            ours_s[name] += time.process_time() - t0
            assert abs(ours - ref) < 1e-8, (name, ours, ref)
    per_image = {k: {"wall": round(timer.seconds[k] / images, 4), "cpu": round(v / images, 4)}
                 for k, v in sorted(timer.cpu_seconds.items(), key=lambda kv: -kv[1])}
    return {
        "images": images, "size_hr_px": size, "methods_per_image": 3,
        "seconds_per_image_total": round(wall / images, 3), "cpu_seconds_per_image": round(cpu / images, 3),
        "seconds_per_image_by_metric_group": per_image,
        "cpu_seconds_per_image_baseline_upsampling": round(t_up / images, 4),
        "sewar_vs_satsr_cpu_seconds_per_call": {k: {"sewar": round(sewar_s[k] / images, 3),
                                               "satsr": round(ours_s[k] / images, 3),
                                               "speedup": round(sewar_s[k] / max(ours_s[k], 1e-9), 1)}
                                           for k in SEWAR},
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine()},
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--size", type=int, default=795, help="HR side, px (multiple of 3)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    res = bench(args.images, args.size)
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
