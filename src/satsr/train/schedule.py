"""The optimizer of a training stage and its learning-rate schedule (``<stage>.<arch>.optimizer``
and ``.schedule`` in params.yaml)."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from satsr.config import ScheduleParams, TrainStageParams


class StageSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = base schedule (constant | step | cosine) x linear warm-up x ``scale`` (a variable,
    halved by a NaN rollback and saved in the checkpoint)."""

    def __init__(self, lr: float, schedule: ScheduleParams, total_steps: int, scale: tf.Variable):
        self.lr = float(lr)
        self.schedule = schedule
        self.total_steps = max(1, int(total_steps))
        self.scale = scale

    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        p = self.schedule
        lr = tf.constant(self.lr, tf.float32)
        if p.name == "step":
            lr = lr * tf.pow(tf.constant(p.decay_rate, tf.float32), tf.floor(s / float(p.decay_steps)))
        elif p.name == "cosine":
            n = float(p.decay_steps or self.total_steps)
            frac = tf.minimum(s, n) / n
            lr = lr * (p.decay_rate + (1.0 - p.decay_rate) * 0.5 * (1.0 + tf.cos(math.pi * frac)))
        if p.warmup_steps > 0:
            lr = lr * tf.minimum(1.0, (s + 1.0) / float(p.warmup_steps))
        return lr * tf.cast(self.scale, tf.float32)

    def get_config(self) -> dict[str, Any]:
        return {"lr": self.lr, "schedule": self.schedule.model_dump(), "total_steps": self.total_steps}


def make_optimizer(sp: TrainStageParams, lr: float, total_steps: int, scale: tf.Variable,
                   name: str) -> keras.optimizers.Optimizer:
    """Adam or AdamW with the stage's schedule; wrapped in loss scaling under mixed_float16."""
    o = sp.optimizer
    schedule = StageSchedule(lr, sp.schedule, total_steps, scale)
    kw: dict[str, Any] = {"learning_rate": schedule, "beta_1": o.betas[0], "beta_2": o.betas[1],
                          "epsilon": o.epsilon, "clipnorm": o.clipnorm, "name": name}
    if o.name == "adamw":
        opt = keras.optimizers.AdamW(weight_decay=o.weight_decay, **kw)
    else:
        opt = keras.optimizers.Adam(**kw)
    if keras.config.dtype_policy().name == "mixed_float16":
        # float16 gradients underflow without loss scaling; the wrapper also skips non-finite steps.
        opt = keras.optimizers.LossScaleOptimizer(opt, name=f"{name}_loss_scale")
    return opt
