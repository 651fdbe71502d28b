"""Training loop for one stage (pretrain | finetune) of one architecture.

A custom loop in krasserm's style: ``@tf.function`` train steps over an endless tf.data iterator,
the whole state in a ``tf.train.Checkpoint`` (model(s), optimizer(s) with their iteration
counters, epoch and step counters, learning-rate scale), saved every ``checkpoint_every_epochs``.
A run killed at any point (even SIGKILL) and started again with the same configuration restores
the newest checkpoint, continues the same MLflow run (satsr.tracking.stage_run with the run-id
file kept beside the checkpoints) and sees the same batch sequence (the iterator skips the steps
already done).

Per epoch it logs the mean training loss(es), the learning rate, and validation PSNR / SSIM of
the model and (once) of bicubic upsampling, to MLflow and to a CSV for ``dvc plots``.
Metric conventions, stated with every number: data range [0, 1] (png16 / 65535, i.e. the PNG
stage's reflectance mapping, or v8 / 255 for natural photos), a 3 px border crop, RGB, mean over
validation images; the SR output is clipped to [0, 1] first.

GAN architectures (``satsr.models.GAN_ARCHS``) run the phases of their params in order: a phase
with only the pixel term trains the generator alone; the others train the discriminator too
(separate optimizers, one ``@tf.function`` step updating both networks) with the generator loss
``pixel_weight * pixel + perceptual_weight * perceptual + adversarial_weight * adversarial``.

A non-finite loss stops training with an error naming the stage, architecture, epoch and step,
and the last good checkpoint is kept (nothing is saved after it); with ``nan_policy: rollback``
the last good checkpoint is restored instead, the learning rate halved, and training goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf

from satsr import tracking
from satsr.config import SCALE, Params, ScheduleParams, TrainParams, TrainStageParams
from satsr.data.pipeline import load_pairs, make_dataset
from satsr.models import GAN_ARCHS, build, build_discriminator, feature_layer_names, load, params_for
from satsr.train import checkpoints as ck
from satsr.train import losses

log = logging.getLogger(__name__)

Stage = Literal["pretrain", "finetune"]
STAGES: tuple[str, ...] = ("pretrain", "finetune")
#: Border cropped before PSNR / SSIM (the scale factor, BasicSR's crop_border convention).
BORDER = SCALE
#: Bumped when the checkpoint contents change, so old checkpoints are moved aside, not resumed.
CKPT_FORMAT = 1
MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"
DISC_WEIGHTS_FILE = "discriminator.weights.h5"
#: Everything about the run (numbers, metric conventions, MLflow ids); the metrics JSON for DVC
#: holds only its numbers.
SUMMARY_FILE = "summary.json"
CONVENTIONS = {"data_range": "[0, 1] (png16 / 65535)", "border_crop_px": BORDER, "channels": "RGB",
               "aggregate": "mean over val images", "sr_clipped": True}


class TrainError(RuntimeError):
    """Training cannot start or go on; the message names the stage, arch and the file involved."""


class NonFiniteLossError(TrainError):
    """The loss became NaN or inf; the last good checkpoint is kept."""


class _NonFinite(Exception):
    def __init__(self, epoch: int, step_in_epoch: int, global_step: int, values: dict[str, float]):
        super().__init__()
        self.epoch, self.step_in_epoch, self.global_step, self.values = epoch, step_in_epoch, global_step, values


# ------------------------------------------------------------------------------------- setup
def stage_params(params: Params, stage: str, arch: str) -> TrainStageParams:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    params_for(arch, params.models)  # validates the architecture name
    return getattr(getattr(params, stage), arch)


def precision_policy(mode: str) -> str:
    """The Keras dtype policy for ``train.mixed_precision`` (auto = mixed_float16 only on a GPU)."""
    if mode == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    return "float32" if mode == "off" else mode


def make_strategy(train: TrainParams) -> tf.distribute.Strategy:
    """default: the current device; mirrored: all local GPUs; multi_worker: hosts from TF_CONFIG."""
    if train.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if train.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TrainError("train.strategy multi_worker needs the TF_CONFIG environment variable "
                             "(cluster spec and this worker's task); see README 'Scaling out'")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in spec


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


def load_init_weights(model: keras.Model, path: str | Path, arch: str) -> None:
    """Copy the weights of a saved model (``model.keras``) or weights file into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"{path}: pretrained weights not found; run `dvc repro pretrain@{arch}` "
                         f"(or `satsr pretrain {arch}`) first, or fine-tune from scratch with --no-init")
    try:
        if path.name.endswith(".weights.h5"):
            model.load_weights(str(path))
            return
        source = load(path)
    except Exception as err:
        raise TrainError(f"{path}: cannot read the pretrained model ({type(err).__name__}: {err}); the file "
                         f"is corrupt or not a satsr model; rerun `dvc repro pretrain@{arch}`") from err
    src, dst = source.get_weights(), model.get_weights()
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst, strict=False)):
        raise TrainError(f"{path}: its architecture ({source.name}, {source.count_params():,} params) differs "
                         f"from models.{arch} in params.yaml ({model.name}, {model.count_params():,} params); "
                         f"rerun the pretrain stage after changing models.{arch}")
    model.set_weights(src)


# ---------------------------------------------------------------------------------- evaluation
def bicubic_x3(lr: tf.Tensor) -> tf.Tensor:
    """Bicubic x3 (tf.image.resize, Keys a=-0.5, no antialiasing): the models' global residual."""
    hw = tf.shape(lr)[1:3] * SCALE
    return tf.image.resize(lr, hw, method="bicubic")


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def ssim(a: tf.Tensor, b: tf.Tensor, max_val: float = 1.0) -> tf.Tensor:
    """Per-image SSIM, the same as ``tf.image.ssim`` (11 px Gaussian, sigma 1.5, k1 0.01, k2 0.03,
    'valid' windows, mean over pixels and channels) but with the separable Gaussian applied as two
    1-D passes on the five stacked statistics: about 4x faster on CPU."""
    c = int(a.shape[-1])
    g = tf.constant(_gaussian_1d())
    kv = tf.tile(tf.reshape(g, [-1, 1, 1, 1]), [1, 1, 5 * c, 1])
    kh = tf.tile(tf.reshape(g, [1, -1, 1, 1]), [1, 1, 5 * c, 1])
    stats = tf.concat([a, b, a * a, b * b, a * b], axis=-1)
    blurred = tf.nn.depthwise_conv2d(tf.nn.depthwise_conv2d(stats, kv, [1, 1, 1, 1], "VALID"),
                                     kh, [1, 1, 1, 1], "VALID")
    mu_a, mu_b, e_aa, e_bb, e_ab = tf.split(blurred, 5, axis=-1)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    cs = (2 * (e_ab - mu_a * mu_b) + c2) / ((e_aa - mu_a**2) + (e_bb - mu_b**2) + c2)
    return tf.reduce_mean(luminance * cs, axis=[1, 2, 3])


@tf.function(reduce_retracing=True)
def _psnr_ssim_graph(sr: tf.Tensor, hr: tf.Tensor, border: int, with_ssim: bool):
    sr = tf.clip_by_value(tf.cast(sr, tf.float32), 0.0, 1.0)
    hr = tf.cast(hr, tf.float32)
    if border:
        sr, hr = sr[:, border:-border, border:-border], hr[:, border:-border, border:-border]
    psnr = tf.image.psnr(sr, hr, max_val=1.0)
    ssim_v = ssim(sr, hr) if with_ssim else tf.fill(tf.shape(psnr), float("nan"))
    return psnr, ssim_v


def psnr_ssim(sr: tf.Tensor, hr: tf.Tensor, border: int = BORDER) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR (dB) and SSIM on [0, 1] after clipping SR and cropping ``border`` px
    (SSIM is NaN for images under 11 px, its Gaussian window, after the crop). (Graph mode:
    eager ``tf.image.ssim`` cost about 0.25 s per 192 px image on two cores.)"""
    with_ssim = min(int(hr.shape[1]), int(hr.shape[2])) - 2 * border >= 11
    psnr, ssim = _psnr_ssim_graph(sr, hr, border, with_ssim)
    return psnr.numpy(), ssim.numpy()


def evaluate(predict, val_ds: tf.data.Dataset) -> dict[str, float]:
    """Mean PSNR / SSIM of ``predict`` (LR batch -> SR batch) over the validation batches."""
    ps, ss = [], []
    for lr, hr in val_ds:
        p, s = psnr_ssim(predict(lr), hr)
        ps.extend(p.tolist())
        ss.extend(s.tolist())
    if not ps:
        return {"psnr": float("nan"), "ssim": float("nan")}
    return {"psnr": float(np.mean(ps)), "ssim": float(np.nanmean(ss)) if not np.all(np.isnan(ss)) else float("nan")}


def sample_figure(predict, val_ds: tf.data.Dataset, n: int, title: str, crop_lr: int = 32):
    """LR (nearest) / bicubic / SR / HR central crops of the first ``n`` val images, one row each,
    all panels of a row stretched alike (1-99 % of the HR crop)."""
    from matplotlib.figure import Figure

    rows = []
    for lr, hr in val_ds.take(n):
        h, w = int(lr.shape[1]), int(lr.shape[2])
        c = min(crop_lr, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        lr_c = lr[:, y:y + c, x:x + c]
        sr = tf.clip_by_value(tf.cast(predict(lr_c), tf.float32), 0, 1)[0].numpy()
        bic = tf.clip_by_value(bicubic_x3(lr_c), 0, 1)[0].numpy()
        hr_c = hr[0, y * SCALE:(y + c) * SCALE, x * SCALE:(x + c) * SCALE].numpy()
        near = np.repeat(np.repeat(lr_c[0].numpy(), SCALE, 0), SCALE, 1)
        rows.append((near, bic, sr, hr_c))
    if not rows:
        return None
    fig = Figure(figsize=(10, 2.6 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for r, imgs in enumerate(rows):
        lo, hi = np.percentile(imgs[3], [1, 99])
        hi = hi if hi > lo else lo + 1e-3
        for k, (img, name) in enumerate(zip(imgs, ("LR (nearest x3)", "bicubic x3", "SR", "HR"), strict=True)):
            ax = axes[r][k]
            ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1), interpolation="nearest")
            label = name
            if k in (1, 2):
                mse = float(np.mean((np.clip(img, 0, 1) - imgs[3]) ** 2))
                label += f"  {10 * np.log10(1 / max(mse, 1e-12)):.2f} dB"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- steps
def _distributed(strategy: tf.distribute.Strategy, replica_fn):
    @tf.function
    def step(lr, hr, weights):
        per_replica = strategy.run(replica_fn, args=(lr, hr, weights))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    return step


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

    return _distributed(strategy, replica)


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

    return _distributed(strategy, replica)


# ------------------------------------------------------------------------------------- helpers
def _fingerprint(params: Params, stage: str, arch: str, sp: TrainStageParams, data_dir: Path,
                 init_weights: Path | None) -> dict[str, Any]:
    init_hash = None
    if init_weights is not None and Path(init_weights).is_file():
        init_hash = ck.file_sha256(init_weights)
    return {"format": CKPT_FORMAT, "stage": stage, "arch": arch, "seed": params.seed,
            "stage_params": sp.model_dump(mode="json"),
            "model": getattr(params.models, arch).model_dump(mode="json"),
            "strategy": params.train.strategy, "precision": precision_policy(params.train.mixed_precision),
            "data": ck.data_hash(data_dir), "init_weights": init_hash}


def _float_weights_model(arch: str, params: Params, trained: keras.Model) -> keras.Model:
    """A float32 copy of ``trained`` for saving (a mixed-precision model would load as float16)."""
    if keras.config.dtype_policy().name == "float32":
        return trained
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build(arch, params.models)
    finally:
        keras.config.set_dtype_policy(previous)
    model.set_weights(trained.get_weights())
    return model


def _all_finite(values: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in values.values())


# ---------------------------------------------------------------------------------------- main
def train_stage(params: Params, stage: Stage, arch: str, data_dir: Path, out_dir: Path,
                init_weights: Path | None = None, *, ckpt_dir: Path | None = None,
                metrics_path: Path | None = None, plots_path: Path | None = None,
                restart: bool = False, log_to_mlflow: bool = True,
                on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``arch`` for ``stage`` on the PNG dataset ``data_dir``; write ``out_dir/model.keras``.

    ``init_weights``: a ``model.keras`` (or ``.weights.h5``) to start from (fine-tuning); ignored
    when a checkpoint of this configuration is resumed. ``ckpt_dir`` defaults to
    ``.satsr/ckpt/<stage>/<arch>``; ``restart`` moves an existing checkpoint aside. The history CSV
    is copied to ``plots_path`` after every epoch and the final summary written to
    ``metrics_path`` (both optional; always also in ``out_dir``). Fine-tuned models are logged to
    MLflow and registered as ``satsr-<arch>``. Returns the summary (also the metrics JSON).
    ``on_epoch_end(epoch, metrics)`` (optional) is called after each validation with the 1-based
    epoch and ``{'val_psnr', 'val_ssim', 'bicubic_psnr', 'val_psnr_gain'}``; whatever it raises
    (e.g. optuna.TrialPruned) propagates out of train_stage.
    """
    from satsr import paths

    sp = stage_params(params, stage, arch)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else paths.ckpt_dir(stage, arch)
    init_weights = Path(init_weights) if init_weights is not None else None
    name = f"{stage}@{arch}"
    is_gan = arch in GAN_ARCHS

    # Inputs first: a bad dataset fails here with the file named (PipelineError), before any model.
    load_pairs(data_dir, "train")
    load_pairs(data_dir, "val")
    if init_weights is not None and not init_weights.is_file():
        raise TrainError(f"{name}: {init_weights}: pretrained weights not found; run `dvc repro "
                         f"pretrain@{arch}` (or `satsr pretrain {arch}`) first, or use --no-init")
    if is_gan and sp.perceptual == "vgg19" and any(p.perceptual_weight > 0 for p in sp.gan):
        try:
            losses.vgg19_weights_path()  # fail before any work when the weights cannot be had
        except losses.PerceptualWeightsError as err:
            raise losses.PerceptualWeightsError(f"{name}: {err}") from None

    policy = precision_policy(params.train.mixed_precision)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        strategy = make_strategy(params.train)
        chief = is_chief(strategy)
        if not chief:  # other workers write throw-away checkpoints (collective saves) and log nothing
            ckpt_dir = ckpt_dir.parent / f"{ckpt_dir.name}.worker-{strategy.cluster_resolver.task_id}"
            log_to_mlflow = False
        resumable = ck.prepare_dir(ckpt_dir, _fingerprint(params, stage, arch, sp, data_dir, init_weights), restart)
        return _run(params, stage, arch, sp, data_dir, out_dir, init_weights, ckpt_dir, metrics_path, plots_path,
                    strategy, chief, resumable, policy, is_gan, log_to_mlflow, on_epoch_end)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _run(params: Params, stage: str, arch: str, sp: TrainStageParams, data_dir: Path, out_dir: Path,
         init_weights: Path | None, ckpt_dir: Path, metrics_path: Path | None, plots_path: Path | None,
         strategy: tf.distribute.Strategy, chief: bool, resumable: bool, policy: str, is_gan: bool,
         log_to_mlflow: bool, on_epoch_end: Callable[[int, dict[str, float]], None] | None = None
         ) -> dict[str, Any]:
    name = f"{stage}@{arch}"
    total_steps = sp.epochs * sp.steps_per_epoch
    global_batch = sp.input.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise TrainError(f"{name}: input.batch_size {global_batch} is not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas of train.strategy {params.train.strategy}")
    uses_vgg = is_gan and sp.perceptual == "vgg19" and any(p.perceptual_weight > 0 for p in sp.gan)

    # ---- models, optimizers, counters (under the strategy)
    keras.utils.set_random_seed(params.seed)
    with strategy.scope():
        generator = build(arch, params.models)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        lr_scale = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="lr_scale")
        rollbacks = tf.Variable(0, dtype=tf.int64, trainable=False, name="rollbacks")
        g_opt = make_optimizer(sp, sp.lr, total_steps, lr_scale, "generator_optimizer")
        g_opt.build(generator.trainable_variables)
        objects: dict[str, Any] = {"generator": generator, "optimizer": g_opt, "epoch": epoch_var,
                                   "step": step_var, "lr_scale": lr_scale, "rollbacks": rollbacks}
        disc = disc_multi = d_opt = perceptual = None
        if is_gan:
            disc = build_discriminator(arch, params.models)
            outs = [disc.get_layer(n).output for n in feature_layer_names(disc)] + [disc.output]
            disc_multi = keras.Model(disc.input, outs, name="discriminator_multi")
            d_opt = make_optimizer(sp, sp.disc_lr, total_steps, lr_scale, "discriminator_optimizer")
            d_opt.build(disc.trainable_variables)
            objects.update(discriminator=disc, d_optimizer=d_opt)
            if uses_vgg:
                try:
                    perceptual = losses.VGGPerceptual(sp.vgg_layer)
                except losses.PerceptualWeightsError as err:
                    raise losses.PerceptualWeightsError(f"{name}: {err}") from None
    n_params = int(generator.count_params())
    ckpt = ck.TrainCheckpoint(ckpt_dir, params.train.keep_checkpoints, **objects)

    if resumable:
        path = ckpt.restore()
        log.info("%s: resumed %s at epoch %d, step %d (optimizer iterations %d)", name, path,
                 int(epoch_var.numpy()), int(step_var.numpy()), int(g_opt.iterations.numpy()))
    else:
        if init_weights is not None:
            load_init_weights(generator, init_weights, arch)
            log.info("%s: initialised from %s", name, init_weights)
        ckpt.save(0, 0)  # the starting point: a NaN in the first epoch can still roll back to it

    # ---- data
    train_ds = make_dataset(data_dir, "train", sp.input, training=True, seed=params.seed, epoch=epoch_var)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)
    val_ds = make_dataset(data_dir, "val", sp.input, training=False, seed=params.seed)
    if sp.val_images:
        val_ds = val_ds.take(sp.val_images)

    @tf.function(reduce_retracing=True)
    def predict(lr):
        return generator(lr, training=False)

    pixel = losses.pixel_loss(sp.loss)
    pixel_step = make_pixel_step(strategy, generator, g_opt, pixel, global_batch)
    gan_step = (make_gan_step(strategy, generator, disc_multi, g_opt, d_opt, pixel, perceptual, sp.adversarial,
                              global_batch) if is_gan else None)

    history = ck.read_history(ckpt_dir, up_to_epoch=int(epoch_var.numpy()))
    bicubic = evaluate(bicubic_x3, val_ds)
    log.info("%s: bicubic on val: %.3f dB PSNR, SSIM %.4f", name, bicubic["psnr"], bicubic["ssim"])

    run_ctx = (tracking.stage_run(stage, arch, {"stage": sp.model_dump(mode="json"),
                                               "train": params.train.model_dump(mode="json"),
                                               "model": getattr(params.models, arch).model_dump(mode="json"),
                                               "seed": params.seed, "data_dir": str(data_dir),
                                               "init_weights": str(init_weights) if init_weights else None},
                                  ck.run_id_file(ckpt_dir), data_path=data_dir,
                                  is_demo=(params.source.provider == "demo" if stage == "finetune"
                                           else params.natural.source == "skimage"),
                                  tags={"precision": policy, "strategy": params.train.strategy})
               if log_to_mlflow else contextlib.nullcontext(None))
    if log_to_mlflow:
        tracking.configure(params)

    timing = {"seconds": 0.0, "patches": 0}
    with run_ctx as run:
        if run is not None:
            tracking.log_metrics({"bicubic_psnr": bicubic["psnr"], "bicubic_ssim": bicubic["ssim"],
                                  "model_params": n_params}, step=0)
        while True:
            try:
                last, history = _epochs(params, stage, arch, sp, strategy, generator, g_opt, disc, d_opt, pixel_step,
                               gan_step, train_ds, val_ds, predict, bicubic, ckpt, ckpt_dir, epoch_var,
                               step_var, history, plots_path, run is not None, timing, global_batch,
                               on_epoch_end)
                break
            except _NonFinite as nf:
                where = (f"{name}: non-finite loss ({', '.join(f'{k}={v}' for k, v in nf.values.items())}) at "
                         f"epoch {nf.epoch + 1}/{sp.epochs}, step {nf.step_in_epoch + 1}/{sp.steps_per_epoch} "
                         f"(global step {nf.global_step + 1})")
                good = ckpt.latest
                can_roll = (params.train.nan_policy == "rollback" and good is not None
                            and int(rollbacks.numpy()) < params.train.max_rollbacks)
                if not can_roll:
                    msg = (f"{where}; training stopped, nothing saved after it. The last good checkpoint "
                           f"{good} is kept; rerunning resumes from it. Try a lower "
                           f"{stage}.{arch}.lr, optimizer.clipnorm, or train.nan_policy: rollback")
                    if run is not None:
                        tracking.set_tags({"failure": msg[:4000]})
                    log.error(msg)
                    raise NonFiniteLossError(msg) from None
                used = int(rollbacks.numpy()) + 1
                ckpt.restore_path(good)
                lr_scale.assign(lr_scale * 0.5)
                rollbacks.assign(used)
                history = ck.read_history(ckpt_dir, up_to_epoch=int(epoch_var.numpy()))
                log.warning("%s; rolled back to %s (epoch %d), learning rate x%.3g (rollback %d of %d)", where,
                            good, int(epoch_var.numpy()), float(lr_scale.numpy()), used,
                            params.train.max_rollbacks)

        summary = _finish(params, stage, arch, sp, generator, disc, out_dir, val_ds, bicubic, last, history,
                          timing, n_params, global_batch, policy, run, metrics_path, plots_path, ckpt_dir, chief)
    return summary


def _epochs(params, stage, arch, sp, strategy, generator, g_opt, disc, d_opt, pixel_step, gan_step, train_ds,
            val_ds, predict, bicubic, ckpt, ckpt_dir, epoch_var, step_var, history, plots_path, mlflow_on,
            timing, global_batch, on_epoch_end=None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run the remaining epochs; return the last validation metrics and the history. Raises _NonFinite."""
    name = f"{stage}@{arch}"
    tp = params.train
    start_epoch, global_step = int(epoch_var.numpy()), int(step_var.numpy())
    # Resume: skip the batches already consumed, so the batch sequence is that of an unbroken run.
    resumed_ds = train_ds.skip(global_step)
    distributed = params.train.strategy != "default" or strategy.num_replicas_in_sync > 1
    it = iter(strategy.experimental_distribute_dataset(resumed_ds) if distributed else resumed_ds)
    last_val = {"psnr": float("nan"), "ssim": float("nan")}
    if history:
        last_val = {"psnr": float(history[-1].get("val_psnr", float("nan"))),
                    "ssim": float(history[-1].get("val_ssim", float("nan")))}
    traced: set[str] = set()
    if start_epoch >= sp.epochs:
        log.info("%s: all %d epochs already done (checkpoint); nothing to train", name, sp.epochs)
    for epoch in range(start_epoch, sp.epochs):
        epoch_var.assign(epoch)
        phase = sp.phase_at(epoch) if disc is not None else None
        use_gan = phase is not None and phase.uses_gan
        step_fn, kind = (gan_step, "gan") if use_gan else (pixel_step, "pixel")
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
                timing["seconds"] += dt
                timing["patches"] += global_batch
            traced.add(kind)
            if not _all_finite(out):
                raise _NonFinite(epoch, s, global_step, out)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            global_step += 1
        step_var.assign(global_step)
        epoch_seconds = time.perf_counter() - t_epoch
        means = {k: v / sp.steps_per_epoch for k, v in sums.items()}
        if disc is not None:  # same columns in every row of a GAN's CSV (pixel-only epochs: loss = pixel)
            means = {"loss": means["loss"], "pixel": means.get("pixel", means["loss"]),
                     **{k: means.get(k, float("nan")) for k in ("perceptual", "adversarial", "d_loss")}}
        row: dict[str, Any] = {"epoch": epoch + 1, "step": global_step, "phase": phase.name if phase else "pixel",
                               "lr": float(np.asarray(g_opt.learning_rate)), **means}
        last_epoch = epoch + 1 == sp.epochs
        if (epoch + 1) % sp.val_every_epochs == 0 or last_epoch:
            last_val = evaluate(predict, val_ds)
            row.update(val_psnr=last_val["psnr"], val_ssim=last_val["ssim"],
                       val_psnr_gain=last_val["psnr"] - bicubic["psnr"])
        row.update(bicubic_psnr=bicubic["psnr"], epoch_seconds=round(epoch_seconds, 3),
                   patches_per_s=round(sp.steps_per_epoch * global_batch / max(epoch_seconds, 1e-9), 2))
        log.info("%s: epoch %d/%d (%s) loss %.5f%s, %.1f s", name, epoch + 1, sp.epochs, row["phase"],
                 row.get("loss", float("nan")),
                 f", val {row['val_psnr']:.3f} dB (bicubic {bicubic['psnr']:.3f})" if "val_psnr" in row else "",
                 epoch_seconds)
        history = [h for h in history if int(h["epoch"]) < epoch + 1] + [row]
        ck.write_history(ckpt_dir, history, plots_path)
        if mlflow_on:
            tracking.log_metrics({k: v for k, v in row.items()
                                  if k not in ("epoch", "phase") and isinstance(v, (int, float))
                                  and math.isfinite(v)}, step=epoch + 1)
            if tp.samples and ((epoch + 1) % tp.sample_every_epochs == 0 or last_epoch):
                fig = sample_figure(predict, val_ds, tp.samples, f"{name} epoch {epoch + 1}")
                if fig is not None:
                    tracking.log_figure(fig, f"samples/epoch_{epoch + 1:03d}.png")
        if (epoch + 1) % tp.checkpoint_every_epochs == 0 or last_epoch:
            epoch_var.assign(epoch + 1)
            ckpt.save(epoch + 1, global_step)
        if on_epoch_end is not None and "val_psnr" in row:
            on_epoch_end(epoch + 1, {"val_psnr": row["val_psnr"], "val_ssim": row["val_ssim"],
                                     "bicubic_psnr": bicubic["psnr"], "val_psnr_gain": row["val_psnr_gain"]})
    epoch_var.assign(max(start_epoch, sp.epochs))
    return last_val, history


def _finish(params, stage, arch, sp, generator, disc, out_dir, val_ds, bicubic, last_val, history, timing,
            n_params, global_batch, policy, run, metrics_path, plots_path, ckpt_dir, chief) -> dict[str, Any]:
    if not math.isfinite(last_val["psnr"]):
        last_val = evaluate(lambda x: generator(x, training=False), val_ds)
    summary: dict[str, Any] = {
        "stage": stage, "arch": arch,
        "epochs": sp.epochs, "steps": sp.epochs * sp.steps_per_epoch, "batch_size": global_batch,
        "lr_patch": sp.input.lr_patch,
        "val_psnr": last_val["psnr"], "val_ssim": last_val["ssim"],
        "bicubic_psnr": bicubic["psnr"], "bicubic_ssim": bicubic["ssim"],
        "psnr_gain_db": last_val["psnr"] - bicubic["psnr"],
        "train_loss": float(history[-1]["loss"]) if history and "loss" in history[-1] else None,
        "train_patches_per_s": round(timing["patches"] / timing["seconds"], 2) if timing["seconds"] else None,
        "model_params": n_params, "precision": policy, "conventions": CONVENTIONS,
    }
    if not chief:
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    final = _float_weights_model(arch, params, generator)
    final.save(str(out_dir / MODEL_FILE))
    final.save_weights(str(out_dir / WEIGHTS_FILE))
    if disc is not None:
        disc.save_weights(str(out_dir / DISC_WEIGHTS_FILE))
    ck.write_history(ckpt_dir, history, out_dir / "history.csv")
    if plots_path is not None:  # also when resuming a run killed after its last epoch (DVC removed it)
        ck.write_history(ckpt_dir, history, plots_path)
    if run is not None:
        summary["mlflow_run_id"] = run.run_id
        tracking.log_metrics({"final_val_psnr": summary["val_psnr"], "final_val_ssim": summary["val_ssim"],
                              "final_psnr_gain_db": summary["psnr_gain_db"]}, step=sp.epochs)
        if stage == "finetune":
            example = next(iter(val_ds.take(1)))[0].numpy()[:, :16, :16, :]
            info = tracking.log_keras_model(final, arch, example, tracking.model_name(arch))
            summary["model_uri"] = info.model_uri
            summary["registered_model"] = info.registry_uri
        else:
            tracking.log_artifact(out_dir / MODEL_FILE, "model")
    ck.write_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    if metrics_path is not None:  # numbers only, so `dvc metrics show / diff` stays a readable table
        numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        ck.write_atomic(Path(metrics_path), json.dumps(numbers, indent=2) + "\n")
    if run is not None:
        tracking.log_artifact(out_dir / SUMMARY_FILE)
        tracking.log_artifact(out_dir / "history.csv")
    ck.mark_finished(ckpt_dir)
    speed = summary["train_patches_per_s"]
    log.info("%s: val %.3f dB (bicubic %.3f, gain %+.3f dB), SSIM %.4f; %s; model in %s",
             f"{stage}@{arch}", summary["val_psnr"], summary["bicubic_psnr"], summary["psnr_gain_db"],
             summary["val_ssim"], f"{speed} LR patches/s" if speed else "no steps run here",
             out_dir / MODEL_FILE)
    return summary
