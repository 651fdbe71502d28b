"""The state of one run of a training stage.

:class:`StageRun` is what the run is: parameters, inputs, outputs, hooks, and where it runs.
:class:`TrainState` is what it trains: the networks, their optimizers and the counters, i.e.
everything the checkpoint saves and restores (satsr.train.checkpoints). The loop, validation and
outputs take these two objects instead of long argument lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from satsr.config import Params, TrainStageParams
from satsr.models import GAN_ARCHS, build, build_discriminator, feature_layer_names
from satsr.train import checkpoints as ck
from satsr.train import losses
from satsr.train.schedule import make_optimizer

#: ``on_epoch_end(epoch, metrics)``: called after each validation (train_stage's docstring).
EpochHook = Callable[[int, dict[str, float]], None]


@dataclass
class StageRun:
    """One run of ``stage`` for ``arch``: what train_stage was asked to do, resolved."""

    params: Params
    stage: str
    arch: str
    sp: TrainStageParams
    data_dir: Path
    out_dir: Path
    ckpt_dir: Path
    #: The weights to start from (satsr.train.init_weights); None = fresh initialisation.
    init_weights: Path | None = None
    metrics_path: Path | None = None
    plots_path: Path | None = None
    log_to_mlflow: bool = True
    on_epoch_end: EpochHook | None = None
    # Where it runs (satsr.train.strategy), set once the strategy exists.
    strategy: tf.distribute.Strategy | None = None
    chief: bool = True
    policy: str = "float32"

    @property
    def name(self) -> str:
        return f"{self.stage}@{self.arch}"

    @property
    def is_gan(self) -> bool:
        return self.arch in GAN_ARCHS

    @property
    def global_batch(self) -> int:
        return self.sp.input.batch_size

    @property
    def total_steps(self) -> int:
        return self.sp.epochs * self.sp.steps_per_epoch

    @property
    def uses_vgg(self) -> bool:
        """A GAN phase weights the VGG19 perceptual term (needs the ImageNet weights)."""
        return self.is_gan and self.sp.perceptual == "vgg19" and any(p.perceptual_weight > 0 for p in self.sp.gan)

    @property
    def is_demo(self) -> bool:
        """Trained on the offline demo data (tagged in MLflow so nobody mistakes it for real imagery)."""
        if self.stage == "finetune":
            return self.params.source.provider == "demo"
        return self.params.natural.source == "skimage"


@dataclass
class TrainState:
    """Networks, optimizers and counters of a run; ``ckpt`` saves and restores all of them."""

    generator: keras.Model
    g_opt: keras.optimizers.Optimizer
    #: Epochs done (0-based index of the next one) and optimizer steps done.
    epoch: tf.Variable
    step: tf.Variable
    #: Learning-rate factor (halved by a NaN rollback) and rollbacks used.
    lr_scale: tf.Variable
    rollbacks: tf.Variable
    ckpt: ck.TrainCheckpoint
    #: GAN architectures only.
    disc: keras.Model | None = None
    disc_multi: keras.Model | None = None
    d_opt: keras.optimizers.Optimizer | None = None
    perceptual: Any = None
    predict: Callable[[Any], Any] | None = None

    @property
    def n_params(self) -> int:
        return int(self.generator.count_params())


def build_state(run: StageRun) -> TrainState:
    """Models, optimizers and counters under the run's strategy, seeded with ``params.seed``."""
    params, sp = run.params, run.sp
    keras.utils.set_random_seed(params.seed)
    with run.strategy.scope():
        generator = build(run.arch, params.models)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        lr_scale = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="lr_scale")
        rollbacks = tf.Variable(0, dtype=tf.int64, trainable=False, name="rollbacks")
        g_opt = make_optimizer(sp, sp.lr, run.total_steps, lr_scale, "generator_optimizer")
        g_opt.build(generator.trainable_variables)
        objects: dict[str, Any] = {"generator": generator, "optimizer": g_opt, "epoch": epoch,
                                   "step": step, "lr_scale": lr_scale, "rollbacks": rollbacks}
        disc = disc_multi = d_opt = perceptual = None
        if run.is_gan:
            disc = build_discriminator(run.arch, params.models)
            outs = [disc.get_layer(n).output for n in feature_layer_names(disc)] + [disc.output]
            disc_multi = keras.Model(disc.input, outs, name="discriminator_multi")
            d_opt = make_optimizer(sp, sp.disc_lr, run.total_steps, lr_scale, "discriminator_optimizer")
            d_opt.build(disc.trainable_variables)
            objects.update(discriminator=disc, d_optimizer=d_opt)
            if run.uses_vgg:
                try:
                    perceptual = losses.VGGPerceptual(sp.vgg_layer)
                except losses.PerceptualWeightsError as err:
                    raise losses.PerceptualWeightsError(f"{run.name}: {err}") from None
    ckpt = ck.TrainCheckpoint(run.ckpt_dir, params.train.keep_checkpoints, **objects)

    @tf.function(reduce_retracing=True)
    def predict(lr):
        return generator(lr, training=False)

    return TrainState(generator, g_opt, epoch, step, lr_scale, rollbacks, ckpt, disc, disc_multi, d_opt,
                      perceptual, predict)
