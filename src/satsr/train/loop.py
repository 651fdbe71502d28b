"""The epoch loop of a training stage and its ``@tf.function`` train steps.

krasserm's style: train steps over an endless tf.data iterator. A resumed run skips the batches
already consumed, so it sees the batch sequence of an unbroken run. Per epoch the loop logs the
mean loss(es) and the learning rate, validates every ``val_every_epochs`` (satsr.train.validation),
writes the history CSV, logs to MLflow, and saves a checkpoint every ``checkpoint_every_epochs``.

GAN architectures run the phases of their params in order: a phase with only the pixel term trains
the generator alone; the others train the discriminator too (separate optimizers, one step updating
both networks) with the generator loss
``pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight * adversarial``.

A non-finite loss raises :class:`NonFiniteStep` before anything of that epoch is saved; the caller
(satsr.train.trainer) stops or rolls back.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from satsr import tracking
from satsr.train import checkpoints as ck
from satsr.train import losses
from satsr.train.samples import sample_figure
from satsr.train.state import StageRun, TrainState
from satsr.train.strategy import distributed_step, is_distributed
from satsr.train.validation import Validator

log = logging.getLogger(__name__)


class NonFiniteStep(Exception):
    """A train step returned a NaN / inf loss (where, and the values)."""

    def __init__(self, epoch: int, step_in_epoch: int, global_step: int, values: dict[str, float]):
        super().__init__()
        self.epoch, self.step_in_epoch, self.global_step, self.values = epoch, step_in_epoch, global_step, values


# -------------------------------------------------------------------------------------- steps
def make_pixel_step(strategy, generator, optimizer, pixel, global_batch: int):
    """One generator update on the pixel loss; returns {'loss'} averaged over the global batch."""

    def replica(lr, hr, weights):
        with tf.GradientTape() as tape:
            sr = generator(lr, training=True)
            loss = tf.nn.compute_average_loss(pixel(hr, sr), global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, generator.trainable_variables)
        optimizer.apply_gradients(zip(grads, generator.trainable_variables, strict=True))
        return {"loss": loss}

    return distributed_step(strategy, replica)


def make_gan_step(strategy, generator, disc_multi, g_opt, d_opt, pixel, perceptual, adversarial: str,
                  global_batch: int):
    """One update of BOTH networks. ``disc_multi`` maps a batch to [features..., logits];
    ``perceptual`` is None (discriminator feature matching) or a VGGPerceptual.
    ``weights`` = [pixel, perceptual, adversarial] (a tensor, so a phase change does not retrace)."""
    discriminator_vars = disc_multi.trainable_variables

    def avg(x):
        return tf.nn.compute_average_loss(x, global_batch_size=global_batch)

    def replica(lr, hr, weights):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = generator(lr, training=True)
            n = tf.shape(hr)[0]
            outs = disc_multi(tf.concat([hr, tf.cast(sr, hr.dtype)], axis=0), training=True)
            feats, logits = outs[:-1], tf.cast(outs[-1], tf.float32)
            hr_logits, sr_logits = logits[:n], logits[n:]
            pix = pixel(hr, sr)
            if perceptual is None:
                perc = losses.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
            else:
                perc = perceptual(hr, sr)
            adv = losses.generator_adversarial(hr_logits, sr_logits, adversarial)
            g_loss = avg(weights[0] * pix + weights[1] * perc + weights[2] * adv)
            d_loss = avg(losses.discriminator_loss(hr_logits, sr_logits, adversarial))
            g_scaled, d_scaled = g_opt.scale_loss(g_loss), d_opt.scale_loss(d_loss)
        g_grads = g_tape.gradient(g_scaled, generator.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, discriminator_vars)
        g_opt.apply_gradients(zip(g_grads, generator.trainable_variables, strict=True))
        d_opt.apply_gradients(zip(d_grads, discriminator_vars, strict=True))
        return {"loss": g_loss, "pixel": avg(pix), "perceptual": avg(perc), "adversarial": avg(adv),
                "d_loss": d_loss}

    return distributed_step(strategy, replica)


@dataclass
class Steps:
    """The run's train steps: the pixel step always, the GAN step for GAN architectures."""

    pixel: Any
    gan: Any = None


def make_steps(run: StageRun, state: TrainState) -> Steps:
    pixel = losses.pixel_loss(run.sp.loss, run.sp.loss_max_shift)
    pixel_step = make_pixel_step(run.strategy, state.generator, state.g_opt, pixel, run.global_batch)
    gan_step = None
    if run.is_gan:
        gan_step = make_gan_step(run.strategy, state.generator, state.disc_multi, state.g_opt, state.d_opt, pixel,
                                 state.perceptual, run.sp.adversarial, run.global_batch)
    return Steps(pixel_step, gan_step)


# ----------------------------------------------------------------------------------- progress
@dataclass
class Progress:
    """What the epochs produced so far: one history row per finished epoch, the last validation,
    and the timed training work (steps after each step function's first, traced, call)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    last_val: dict[str, float] = field(default_factory=lambda: {"psnr": math.nan, "ssim": math.nan})
    seconds: float = 0.0
    patches: int = 0

    def reload(self, ckpt_dir, epoch: int, validator: Validator) -> None:
        """History of the epochs up to the restored checkpoint, and its last validation numbers."""
        self.history = ck.read_history(ckpt_dir, up_to_epoch=epoch)
        last = self.history[-1] if self.history else {}
        self.last_val = {"psnr": float(last.get(validator.names.psnr, math.nan)),
                         "ssim": float(last.get(validator.names.ssim, math.nan))}


# --------------------------------------------------------------------------------------- loop
def run_epochs(run: StageRun, state: TrainState, steps: Steps, train_ds: tf.data.Dataset, validator: Validator,
               progress: Progress) -> None:
    """Run the remaining epochs, updating ``progress``. Raises :class:`NonFiniteStep`."""
    sp, tp = run.sp, run.params.train
    names, bicubic = validator.names, validator.bicubic()
    start_epoch, global_step = int(state.epoch.numpy()), int(state.step.numpy())
    # Resume: skip the batches already consumed, so the batch sequence is that of an unbroken run.
    resumed_ds = train_ds.skip(global_step)
    distributed = is_distributed(tp, run.strategy)
    it = iter(run.strategy.experimental_distribute_dataset(resumed_ds) if distributed else resumed_ds)
    traced: set[str] = set()
    if start_epoch >= sp.epochs:
        log.info("%s: all %d epochs already done (checkpoint); nothing to train", run.name, sp.epochs)
    for epoch in range(start_epoch, sp.epochs):
        state.epoch.assign(epoch)
        phase = sp.phase_at(epoch) if state.disc is not None else None
        use_gan = phase is not None and phase.uses_gan
        step_fn, kind = (steps.gan, "gan") if use_gan else (steps.pixel, "pixel")
        weights = tf.constant([phase.pixel_weight, phase.perceptual_weight, phase.adversarial_weight]
                              if phase is not None else [1.0, 0.0, 0.0], tf.float32)
        sums: dict[str, float] = {}
        t_epoch = time.perf_counter()
        for s in range(sp.steps_per_epoch):
            lr, hr = next(it)
            t0 = time.perf_counter()
            out = {k: float(v.numpy()) for k, v in step_fn(lr, hr, weights).items()}
            dt = time.perf_counter() - t0
            if kind in traced:  # the first call of a step function includes tracing
                progress.seconds += dt
                progress.patches += run.global_batch
            traced.add(kind)
            if not all(math.isfinite(v) for v in out.values()):
                raise NonFiniteStep(epoch, s, global_step, out)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            global_step += 1
        state.step.assign(global_step)
        epoch_seconds = time.perf_counter() - t_epoch
        means = {k: v / sp.steps_per_epoch for k, v in sums.items()}
        if state.disc is not None:  # same columns in every row of a GAN's CSV (pixel-only epochs: loss = pixel)
            means = {"loss": means["loss"], "pixel": means.get("pixel", means["loss"]),
                     **{k: means.get(k, math.nan) for k in ("perceptual", "adversarial", "d_loss")}}
        row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "phase": phase.name if phase else "pixel",
                               "lr": float(np.asarray(state.g_opt.learning_rate)), **means}
        last_epoch = epoch + 1 == sp.epochs
        validated = (epoch + 1) % sp.val_every_epochs == 0 or last_epoch
        if validated:
            progress.last_val = validator.score(state.predict)
            row.update({names.psnr: progress.last_val["psnr"], names.ssim: progress.last_val["ssim"],
                        names.gain: progress.last_val["psnr"] - bicubic["psnr"]})
        row.update({names.bicubic_psnr: bicubic["psnr"], "epoch_seconds": round(epoch_seconds, 3),
                    "patches_per_s": round(sp.steps_per_epoch * run.global_batch / max(epoch_seconds, 1e-9), 2)})
        log.info("%s: epoch %d/%d (%s) loss %.5f%s, %.1f s", run.name, epoch + 1, sp.epochs, row["phase"],
                 row.get("loss", math.nan),
                 f", val {row[names.psnr]:.3f} dB (bicubic {bicubic['psnr']:.3f}; {validator.decoding.units})"
                 if validated else "", epoch_seconds)
        progress.history = [h for h in progress.history if int(h["epoch"]) < epoch + 1] + [row]
        ck.write_history(run.ckpt_dir, progress.history, run.plots_path)
        if run.log_to_mlflow:
            tracking.log_metrics({k: v for k, v in row.items()
                                  if k not in ("epoch", "phase") and isinstance(v, (int, float)) and math.isfinite(v)},
                                 step=epoch + 1)
            if tp.samples and ((epoch + 1) % tp.sample_every_epochs == 0 or last_epoch):
                fig = sample_figure(validator, state.predict, tp.samples, f"{run.name} epoch {epoch + 1}")
                if fig is not None:
                    tracking.log_figure(fig, f"samples/epoch_{epoch + 1:03d}.png")
        if (epoch + 1) % tp.checkpoint_every_epochs == 0 or last_epoch:
            state.epoch.assign(epoch + 1)
            state.ckpt.save(epoch + 1, global_step)
        if run.on_epoch_end is not None and validated:
            run.on_epoch_end(epoch + 1, {"val_psnr": progress.last_val["psnr"], "val_ssim": progress.last_val["ssim"],
                                         "bicubic_psnr": bicubic["psnr"], "val_psnr_gain": row[names.gain]})
    state.epoch.assign(max(start_epoch, sp.epochs))
