"""GPU smoke check for the trainer image: list the GPUs, then run one training step on the first one.

    docker compose run --rm trainer gpu-check          # from docker/; exits 1 when TF sees no GPU
    python docker/gpu_check.py --allow-cpu             # same step on the CPU (what CI runs)

It builds a small EDSR with ``satsr.models.build`` (the same builder every stage uses), takes one
Adam step on an L1 loss with ``tf.GradientTape`` under ``tf.device('/GPU:0')``, and checks that the
loss is finite, that the weights changed and that the step's tensors were placed on the GPU. The
last line is one JSON object (devices, placement, loss, timings) for scripts.

Exit codes: 0 ok; 1 no GPU visible (check the NVIDIA driver, the NVIDIA Container Toolkit and the
compose GPU reservation); 2 the step failed or gave a non-finite loss.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run the step on the CPU when no GPU is visible instead of failing")
    parser.add_argument("--size", type=int, default=24, help="LR patch side of the fake batch (default 24)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from satsr.config import EDSRParams
    from satsr.models import build

    gpus = tf.config.list_physical_devices("GPU")
    build_info = tf.sysconfig.get_build_info()
    print(f"tensorflow {tf.__version__} (built with CUDA {build_info.get('cuda_version', '-')}, "
          f"cuDNN {build_info.get('cudnn_version', '-')})")
    print(f"GPUs visible to TensorFlow: {len(gpus)}")
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        print(f"  {gpu.name}: {details.get('device_name', '?')} "
              f"(compute capability {details.get('compute_capability', '?')})")
    if not gpus and not args.allow_cpu:
        print("no GPU visible: check `nvidia-smi` on the host, the NVIDIA Container Toolkit, and that the "
              "service reserves the GPU (compose: deploy.resources.reservations.devices)", file=sys.stderr)
        return 1
    for gpu in gpus:  # share the card with other processes (several Optuna workers per GPU)
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised
            pass
    device = "/GPU:0" if gpus else "/CPU:0"

    rng = np.random.default_rng(0)
    hr = rng.random((args.batch, args.size * 3, args.size * 3, 3), dtype=np.float32)
    lr = hr.reshape(args.batch, args.size, 3, args.size, 3, 3).mean(axis=(2, 4))
    with tf.device(device):
        model = build("edsr", EDSRParams(num_blocks=2, num_filters=16))
        optimizer = keras.optimizers.Adam(1e-3)
        lr_t, hr_t = tf.constant(lr), tf.constant(hr)
        before = [w.numpy().copy() for w in model.trainable_weights]

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                sr = model(x, training=True)
                loss = tf.reduce_mean(tf.abs(sr - y))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            return loss, sr

        t0 = time.perf_counter()
        loss, sr = step(lr_t, hr_t)
        loss_value = float(loss.numpy())
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loss2, _ = step(lr_t, hr_t)
        float(loss2.numpy())
        second_s = time.perf_counter() - t0

    changed = any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))
    placed = sr.device
    report = {"ok": True, "gpus": [g.name for g in gpus], "device": device, "output_device": placed,
              "loss": loss_value, "weights_changed": changed, "first_step_s": round(first_s, 3),
              "second_step_s": round(second_s, 3), "tensorflow": tf.__version__,
              "params": int(model.count_params())}
    problems = []
    if not np.isfinite(loss_value):
        problems.append(f"non-finite loss {loss_value}")
    if not changed:
        problems.append("the step did not change the weights")
    if gpus and "GPU" not in placed.upper():
        problems.append(f"the step ran on {placed}, not on the GPU")
    if sr.shape[1:3] != (args.size * 3, args.size * 3):
        problems.append(f"output shape {tuple(sr.shape)} is not x3 of the input")
    if problems:
        report.update(ok=False, problems=problems)
    print(f"one training step of EDSR ({report['params']} params) on {placed}: loss {loss_value:.4f}, "
          f"{first_s:.2f} s with tracing, {second_s * 1000:.1f} ms after")
    print(json.dumps(report))
    return 0 if not problems else 2


if __name__ == "__main__":
    sys.exit(main())
