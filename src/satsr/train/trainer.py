"""Training of one stage (pretrain | finetune) of one architecture: :func:`train_stage`.

The whole training state lives in a ``tf.train.Checkpoint`` (model(s), optimizer(s) with their
iteration counters, epoch and step counters, learning-rate scale), saved every
``checkpoint_every_epochs``. A run killed at any point (even SIGKILL) and started again with the
same configuration restores the newest checkpoint, continues the same MLflow run
(satsr.tracking.stage_run with the run-id file kept beside the checkpoints) and sees the same batch
sequence.

Per epoch it logs the mean training loss(es), the learning rate, and the validation PSNR / SSIM of
the model and (once) of bicubic, to MLflow and to a CSV for ``dvc plots``. Validation scores with
the evaluation's metric stack, on reflectance (satsr.train.validation); metric names carry the unit
(``val_psnr_refl``).

A non-finite loss stops training with an error naming the stage, architecture, epoch and step,
and the last good checkpoint is kept (nothing is saved after it); with ``nan_policy: rollback``
the last good checkpoint is restored instead, the learning rate halved, and training goes on.

Where each concern lives (satsr.train): ``state`` (StageRun, TrainState), ``init_weights`` (the
weights a stage starts from), ``strategy`` (devices, chief, precision), ``schedule`` (optimizer and
learning rate), ``loop`` (epochs and train steps), ``validation``, ``samples`` (MLflow figure),
``checkpoints``, ``losses``; this module wires them together and writes the outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any, Literal

import keras
import tensorflow as tf

from satsr import tracking
from satsr.config import Params, TrainStageParams
from satsr.data.pipeline import load_pairs, make_dataset
from satsr.evaluate.dataset import PngDecoding, png_decoding
from satsr.models import build, export_model, params_for
from satsr.models.harmonize import for_training, png_harmonizer
from satsr.train import checkpoints as ck
from satsr.train import losses
from satsr.train.errors import NonFiniteLossError, TrainError
from satsr.train.init_weights import check_init_weights, init_hash, load_init_weights
from satsr.train.loop import NonFiniteStep, Progress, make_steps, run_epochs
from satsr.train.state import EpochHook, StageRun, TrainState, build_state
from satsr.train.strategy import dtype_policy, is_chief, make_strategy, precision_policy, worker_index
from satsr.train.validation import Validator
from satsr.util import write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["MODEL_FILE", "STAGES", "SUMMARY_FILE", "NonFiniteLossError", "TrainError", "fingerprint",
           "stage_params", "train_stage"]

Stage = Literal["pretrain", "finetune"]
STAGES: tuple[str, ...] = ("pretrain", "finetune")
#: Bumped when the checkpoint contents change, so old checkpoints are moved aside, not resumed
#: (2: validation on reflectance with the evaluate metrics; history columns carry the unit).
CKPT_FORMAT = 2
MODEL_FILE = "model.keras"
WEIGHTS_FILE = "model.weights.h5"
DISC_WEIGHTS_FILE = "discriminator.weights.h5"
#: Everything about the run (numbers, metric conventions, MLflow ids); the metrics JSON for DVC
#: holds only its numbers.
SUMMARY_FILE = "summary.json"


def stage_params(params: Params, stage: str, arch: str) -> TrainStageParams:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
    params_for(arch, params.models)  # validates the architecture name
    return getattr(getattr(params, stage), arch)


def fingerprint(params: Params, stage: str, arch: str, sp: TrainStageParams, data_dir: Path,
                init_weights: Path | None, decoding: PngDecoding | None = None) -> dict[str, Any]:
    """What a checkpoint belongs to: a run is resumed only when all of it is unchanged."""
    decoding = decoding or png_decoding(data_dir, params.png)
    return {"format": CKPT_FORMAT, "stage": stage, "arch": arch, "seed": params.seed,
            "stage_params": sp.model_dump(mode="json"),
            "model": getattr(params.models, arch).model_dump(mode="json"),
            "strategy": params.train.strategy, "precision": precision_policy(params.train.mixed_precision),
            "data": ck.data_hash(data_dir), "init_weights": init_hash(init_weights),
            "validation": {"border": params.evaluate.border, "psnr_cap_db": params.evaluate.psnr_cap_db,
                           "lo": decoding.lo, "hi": decoding.hi, "units": decoding.units},
            "harmonize": (h.as_dict() if (h := for_training(params.train.harmonize, decoding.units)) else None)}


# ---------------------------------------------------------------------------------------- main
def train_stage(params: Params, stage: Stage, arch: str, data_dir: Path, out_dir: Path,
                init_weights: Path | None = None, *, ckpt_dir: Path | None = None,
                metrics_path: Path | None = None, plots_path: Path | None = None,
                restart: bool = False, log_to_mlflow: bool = True,
                on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Train ``arch`` for ``stage`` on the PNG dataset ``data_dir``; write ``out_dir/model.keras``.

    ``init_weights``: a ``model.keras`` (or ``.weights.h5``) to start from (fine-tuning; see
    satsr.train.init_weights); ignored when a checkpoint of this configuration is resumed.
    ``ckpt_dir`` defaults to ``.satsr/ckpt/<stage>/<arch>``; ``restart`` moves an existing
    checkpoint aside. While another process trains into ``ckpt_dir`` this raises
    satsr.locks.LockHeldError naming it (satsr.train.checkpoints.lock). The history CSV is copied
    to ``plots_path`` after every epoch and the final summary written to ``metrics_path`` (both
    optional; always also in ``out_dir``). Fine-tuned models are logged to MLflow and registered
    as ``satsr-<arch>``. Returns the summary (also the metrics JSON): ``val_psnr``, ``val_ssim``,
    ``bicubic_psnr``, ``psnr_gain_db`` ... with the units
    in ``conventions``. ``on_epoch_end(epoch, metrics)`` (optional) is called after each validation
    with the 1-based epoch and ``{'val_psnr', 'val_ssim', 'bicubic_psnr', 'val_psnr_gain'}`` (the
    same units); whatever it raises (e.g. optuna.TrialPruned) propagates out of train_stage.
    """
    from satsr import paths

    sp = stage_params(params, stage, arch)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    run = StageRun(params, stage, arch, sp, data_dir, out_dir,
                   ckpt_dir=Path(ckpt_dir) if ckpt_dir is not None else paths.ckpt_dir(stage, arch),
                   init_weights=Path(init_weights) if init_weights is not None else None,
                   metrics_path=Path(metrics_path) if metrics_path is not None else None,
                   plots_path=Path(plots_path) if plots_path is not None else None,
                   log_to_mlflow=log_to_mlflow, on_epoch_end=on_epoch_end)

    # Inputs first: a bad dataset fails here with the file named (PipelineError), before any model.
    load_pairs(data_dir, "train")
    load_pairs(data_dir, "val")
    decoding = png_decoding(data_dir, params.png)
    check_init_weights(run.init_weights, run.name, arch)
    if run.uses_vgg:
        try:
            losses.vgg19_weights_path()  # fail before any work when the weights cannot be had
        except losses.PerceptualWeightsError as err:
            raise losses.PerceptualWeightsError(f"{run.name}: {err}") from None

    with dtype_policy(precision_policy(params.train.mixed_precision)) as policy:
        run.policy = policy
        run.strategy = make_strategy(params.train)
        run.chief = is_chief(run.strategy)
        if not run.chief:  # other workers write throw-away checkpoints (collective saves) and log nothing
            run.ckpt_dir = run.ckpt_dir.parent / f"{run.ckpt_dir.name}.worker-{worker_index(run.strategy)}"
            run.log_to_mlflow = False
        with ck.lock(run.ckpt_dir, run.name, params.locks.stale_after_s):  # one writer per folder
            fp = fingerprint(params, stage, arch, sp, data_dir, run.init_weights, decoding)
            resumable = ck.prepare_dir(run.ckpt_dir, fp, restart)
            return _run(run, resumable, decoding)


def _run(run: StageRun, resumable: bool, decoding: PngDecoding) -> dict[str, Any]:
    params, sp = run.params, run.sp
    if run.global_batch % run.strategy.num_replicas_in_sync:
        raise TrainError(f"{run.name}: input.batch_size {run.global_batch} is not divisible by the "
                         f"{run.strategy.num_replicas_in_sync} replicas of train.strategy {params.train.strategy}")
    state = build_state(run)
    if resumable:
        path = state.ckpt.restore()
        log.info("%s: resumed %s at epoch %d, step %d (optimizer iterations %d)", run.name, path,
                 int(state.epoch.numpy()), int(state.step.numpy()), int(state.g_opt.iterations.numpy()))
    else:
        if run.init_weights is not None:
            load_init_weights(state.generator, run.init_weights, run.arch)
            log.info("%s: initialised from %s", run.name, run.init_weights)
        state.ckpt.save(0, 0)  # the starting point: a NaN in the first epoch can still roll back to it

    # ---- data
    train_ds = make_dataset(run.data_dir, "train", sp.input, training=True, seed=params.seed, epoch=state.epoch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)
    val_ds = make_dataset(run.data_dir, "val", sp.input, training=False, seed=params.seed)
    if sp.val_images:
        val_ds = val_ds.take(sp.val_images)
    if harmonize := for_training(params.train.harmonize, decoding.units):  # the map the exported model carries
        log.info("%s: LR harmonized with %s", run.name, harmonize.describe())
        train_ds = train_ds.map(png_harmonizer(harmonize, decoding.lo, decoding.hi))
        val_ds = val_ds.map(png_harmonizer(harmonize, decoding.lo, decoding.hi))
    validator = Validator(val_ds, decoding, params.evaluate.border, params.evaluate.psnr_cap_db)
    steps = make_steps(run, state)

    progress = Progress()
    progress.reload(run.ckpt_dir, int(state.epoch.numpy()), validator)
    bicubic = validator.bicubic()
    log.info("%s: bicubic on val: %.3f dB PSNR, SSIM %.4f (%s)", run.name, bicubic["psnr"], bicubic["ssim"],
             decoding.units)

    with _mlflow_run(run) as mlflow_run:
        if mlflow_run is not None:
            tracking.log_metrics({validator.names.bicubic_psnr: bicubic["psnr"],
                                  validator.names.bicubic_ssim: bicubic["ssim"], "model_params": state.n_params},
                                 step=0)
        while True:
            try:
                run_epochs(run, state, steps, train_ds, validator, progress)
                break
            except NonFiniteStep as nf:
                _roll_back_or_stop(run, state, nf, mlflow_run is not None)
                progress.reload(run.ckpt_dir, int(state.epoch.numpy()), validator)
        return _finish(run, state, validator, progress, mlflow_run)


def _mlflow_run(run: StageRun) -> contextlib.AbstractContextManager:
    """The stage's MLflow run (resumed from the run-id file), or a null context without MLflow."""
    if not run.log_to_mlflow:
        return contextlib.nullcontext(None)
    params = run.params
    tracking.configure(params)
    return tracking.stage_run(
        run.stage, run.arch,
        {"stage": run.sp.model_dump(mode="json"), "train": params.train.model_dump(mode="json"),
         "model": getattr(params.models, run.arch).model_dump(mode="json"), "seed": params.seed,
         "data_dir": str(run.data_dir), "init_weights": str(run.init_weights) if run.init_weights else None,
         "validation": {"border": params.evaluate.border, "psnr_cap_db": params.evaluate.psnr_cap_db}},
        ck.run_id_file(run.ckpt_dir), data_path=run.data_dir, is_demo=run.is_demo,
        tags={"precision": run.policy, "strategy": params.train.strategy})


def _roll_back_or_stop(run: StageRun, state: TrainState, nf: NonFiniteStep, mlflow_on: bool) -> None:
    """After a non-finite loss: restore the last good checkpoint with half the learning rate
    (``nan_policy: rollback``, within ``max_rollbacks``), or raise NonFiniteLossError."""
    sp, tp = run.sp, run.params.train
    where = (f"{run.name}: non-finite loss ({', '.join(f'{k}={v}' for k, v in nf.values.items())}) at "
             f"epoch {nf.epoch + 1}/{sp.epochs}, step {nf.step_in_epoch + 1}/{sp.steps_per_epoch} "
             f"(global step {nf.global_step + 1})")
    good = state.ckpt.latest
    used = int(state.rollbacks.numpy())
    if not (tp.nan_policy == "rollback" and good is not None and used < tp.max_rollbacks):
        msg = (f"{where}; training stopped, nothing saved after it. The last good checkpoint "
               f"{good} is kept; rerunning resumes from it. Try a lower "
               f"{run.stage}.{run.arch}.lr, optimizer.clipnorm, or train.nan_policy: rollback")
        if mlflow_on:
            tracking.set_tags({"failure": msg[:4000]})
        log.error(msg)
        raise NonFiniteLossError(msg) from None
    state.ckpt.restore_path(good)
    state.lr_scale.assign(state.lr_scale * 0.5)
    state.rollbacks.assign(used + 1)
    log.warning("%s; rolled back to %s (epoch %d), learning rate x%.3g (rollback %d of %d)", where, good,
                int(state.epoch.numpy()), float(state.lr_scale.numpy()), used + 1, tp.max_rollbacks)


# ------------------------------------------------------------------------------------- outputs
def _finish(run: StageRun, state: TrainState, validator: Validator, progress: Progress,
            mlflow_run: Any) -> dict[str, Any]:
    """Write the model, weights, history, summary and metrics JSON; log them; mark the run finished."""
    sp, names, bicubic = run.sp, validator.names, validator.bicubic()
    last_val = progress.last_val
    if not math.isfinite(last_val["psnr"]):
        last_val = validator.score(state.predict)
    history = progress.history
    summary: dict[str, Any] = {
        "stage": run.stage, "arch": run.arch,
        "epochs": sp.epochs, "steps": run.total_steps, "batch_size": run.global_batch,
        "lr_patch": sp.input.lr_patch,
        "val_psnr": last_val["psnr"], "val_ssim": last_val["ssim"],
        "bicubic_psnr": bicubic["psnr"], "bicubic_ssim": bicubic["ssim"],
        "psnr_gain_db": last_val["psnr"] - bicubic["psnr"],
        "train_loss": float(history[-1]["loss"]) if history and "loss" in history[-1] else None,
        "train_patches_per_s": round(progress.patches / progress.seconds, 2) if progress.seconds else None,
        "model_params": state.n_params, "precision": run.policy, "conventions": validator.conventions(),
    }
    if not run.chief:
        return summary
    out_dir = run.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    final = _float_weights_model(run.arch, run.params, state.generator)
    dec = validator.decoding  # model.keras: reflectance in/out, its range and LR map inside (satsr.models.export)
    exported = export_model(final, dec.lo, dec.hi, for_training(run.params.train.harmonize, dec.units))
    exported.save(str(out_dir / MODEL_FILE))
    final.save_weights(str(out_dir / WEIGHTS_FILE))
    if state.disc is not None:
        state.disc.save_weights(str(out_dir / DISC_WEIGHTS_FILE))
    ck.write_history(run.ckpt_dir, history, out_dir / "history.csv")
    if run.plots_path is not None:  # also when resuming a run killed after its last epoch (DVC removed it)
        ck.write_history(run.ckpt_dir, history, run.plots_path)
    if mlflow_run is not None:
        summary["mlflow_run_id"] = mlflow_run.run_id
        tracking.log_metrics({f"final_{names.psnr}": summary["val_psnr"], f"final_{names.ssim}": summary["val_ssim"],
                              f"final_{names.gain}": summary["psnr_gain_db"]}, step=sp.epochs)
        if run.stage == "finetune":
            example = dec.lo + next(iter(validator.val_ds.take(1)))[0].numpy()[:, :16, :16, :] * (dec.hi - dec.lo)
            info = tracking.log_keras_model(exported, run.arch, example, tracking.model_name(run.arch))
            summary["model_uri"] = info.model_uri
            summary["registered_model"] = info.registry_uri
        else:
            tracking.log_artifact(out_dir / MODEL_FILE, "model")
    write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str) + "\n")
    if run.metrics_path is not None:  # numbers only, so `dvc metrics show / diff` stays a readable table
        numbers = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        write_text_atomic(run.metrics_path, json.dumps(numbers, indent=2) + "\n")
    if mlflow_run is not None:
        tracking.log_artifact(out_dir / SUMMARY_FILE)
        tracking.log_artifact(out_dir / "history.csv")
    ck.mark_finished(run.ckpt_dir)
    speed = summary["train_patches_per_s"]
    log.info("%s: val %.3f dB (bicubic %.3f, gain %+.3f dB), SSIM %.4f (%s); %s; model in %s", run.name,
             summary["val_psnr"], summary["bicubic_psnr"], summary["psnr_gain_db"], summary["val_ssim"],
             validator.decoding.units, f"{speed} LR patches/s" if speed else "no steps run here", out_dir / MODEL_FILE)
    return summary


def _float_weights_model(arch: str, params: Params, trained: keras.Model) -> keras.Model:
    """A float32 copy of ``trained`` for saving (a mixed-precision model would load as float16)."""
    if keras.config.dtype_policy().name == "float32":
        return trained
    with dtype_policy("float32"):
        model = build(arch, params.models)
    model.set_weights(trained.get_weights())
    return model
