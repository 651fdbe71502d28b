"""The training loop: steps that learn, the GAN step, NaN handling, resume after SIGKILL, MLflow
registration, and clear errors for bad inputs. Tiny models and datasets, so all of it runs on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from fixtures_mlflow import isolated_mlflow_env
from scipy.ndimage import gaussian_filter
from scratch import write_png_dataset as write_dataset

from satsr import models, tracking
from satsr.config import Params
from satsr.data.pipeline import PipelineError
from satsr.train import checkpoints as ck
from satsr.train import loop, losses, schedule, trainer

# Keras 3's .keras writer converts TF variables with np.array(x, copy=False) (upstream, harmless).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

REPO = Path(__file__).resolve().parents[2]
ARCHS = ("rdn", "rrdn", "edsr", "srgan")

#: The smallest sizes of every architecture (seconds per test on two cores).
TINY_MODELS = {
    "rdn": {"D": 1, "C": 2, "G": 8, "G0": 8},
    "rrdn": {"T": 1, "D": 1, "C": 2, "G": 8, "G0": 8},
    "edsr": {"num_blocks": 1, "num_filters": 8},
    "srgan": {"num_blocks": 1, "num_filters": 8, "disc_filters": 8, "disc_stages": 2, "disc_dense": 16},
}


def tiny_params(stage: str = "finetune", arch: str = "edsr", **stage_kw) -> Params:
    section = {"epochs": 2, "steps_per_epoch": 3, "lr": 1e-3,
               "input": {"lr_patch": 8, "batch_size": 4, "cache": "memory"}, **stage_kw}
    return Params.model_validate({
        "models": TINY_MODELS,
        stage: {arch: section},
        "train": {"samples": 1},
    })


@pytest.fixture(scope="module", autouse=True)
def _server_starting(mlflow_server_started):
    """Launch the real MLflow server now, so that it starts while the other tests run."""
    return mlflow_server_started


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("png"))


@pytest.fixture
def sqlite_store(tmp_path):
    with isolated_mlflow_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}"):
        yield tmp_path


def fixed_batch(seed: int = 0, n: int = 4, p: int = 8):
    rng = np.random.default_rng(seed)
    g = gaussian_filter(rng.normal(size=(n, 3 * p, 3 * p)), (0, 1.5, 1.5)) * 5
    hr = np.clip(0.4 + 0.2 * np.tanh(g)[..., None] * np.ones(3), 0, 1).astype(np.float32)
    lr = hr.reshape(n, p, 3, p, 3, 3).mean(axis=(2, 4))
    return tf.constant(lr), tf.constant(hr)


# ------------------------------------------------------------------------------------- steps
@pytest.mark.parametrize("arch", ARCHS)
def test_pixel_step_overfits_a_fixed_batch(arch):
    params = tiny_params(arch=arch)
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    model = models.build(arch, params.models)
    opt = schedule.make_optimizer(params.finetune.edsr, 5e-3, 100, tf.Variable(1.0), "g")
    step = loop.make_pixel_step(strategy, model, opt, losses.l1, global_batch=4)
    lr, hr = fixed_batch()
    w = tf.constant([1.0, 0.0, 0.0])
    first = float(step(lr, hr, w)["loss"])
    for _ in range(29):
        last = float(step(lr, hr, w)["loss"])
    assert int(opt.iterations.numpy()) == 30
    assert last < 0.8 * first, (arch, first, last)


@pytest.mark.parametrize("adversarial", ["standard", "relativistic"])
def test_gan_step_updates_generator_and_discriminator(adversarial):
    params = tiny_params(arch="srgan")
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.get_strategy()
    gen = models.build("srgan", params.models)
    disc = models.build_discriminator("srgan", params.models)
    multi = keras.Model(disc.input, [disc.get_layer(n).output for n in models.feature_layer_names(disc)]
                        + [disc.output])
    g_opt = schedule.make_optimizer(params.finetune.srgan, 1e-3, 10, tf.Variable(1.0), "g")
    d_opt = schedule.make_optimizer(params.finetune.srgan, 1e-3, 10, tf.Variable(1.0), "d")
    step = loop.make_gan_step(strategy, gen, multi, g_opt, d_opt, losses.l1, None, adversarial, 4)
    g_before = [w.numpy().copy() for w in gen.trainable_weights]
    d_before = [w.numpy().copy() for w in disc.trainable_weights]
    # Two steps: the generator's last conv starts at zero (output = bicubic), so the first step
    # only reaches that conv; from the second on every layer gets a gradient.
    for _ in range(2):
        out = step(*fixed_batch(), tf.constant([1.0, 0.1, 1e-3]))
    assert set(out) == {"loss", "pixel", "perceptual", "adversarial", "d_loss"}
    assert all(np.isfinite(float(v)) for v in out.values())
    g_changed = sum(not np.array_equal(a, w.numpy()) for a, w in zip(g_before, gen.trainable_weights))
    d_changed = sum(not np.array_equal(a, w.numpy()) for a, w in zip(d_before, disc.trainable_weights))
    assert g_changed == len(g_before) and d_changed == len(d_before)
    assert int(g_opt.iterations.numpy()) == 2 and int(d_opt.iterations.numpy()) == 2


# -------------------------------------------------------------------------------- train_stage
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    params = tiny_params(epochs=3, steps_per_epoch=3)
    calls = tf.Variable(0, dtype=tf.int64)

    def poisoned(hr, sr):  # finite for the first 4 steps (epoch 1 and one step of epoch 2), then NaN
        calls.assign_add(1)
        loss = losses.l1(hr, sr)
        return tf.where(calls > 4, tf.fill(tf.shape(loss), float("nan")), loss)

    monkeypatch.setattr(trainer.losses, "pixel_loss", lambda name, max_shift=3: poisoned)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    with pytest.raises(trainer.NonFiniteLossError) as err:
        trainer.train_stage(params, "finetune", "edsr", data_dir, out, ckpt_dir=ckpt, log_to_mlflow=False)
    msg = str(err.value)
    assert "finetune@edsr" in msg and "epoch 2/3" in msg and "step 2/3" in msg and "global step 5" in msg
    assert "ckpt-1" in msg
    assert ck.read_state(ckpt)["epoch"] == 1  # nothing saved after the NaN
    assert not (out / trainer.MODEL_FILE).exists()
    hist = ck.read_history(ckpt)
    assert [h["epoch"] for h in hist] == [1]

    # Fixed (no more NaN), the rerun resumes from that checkpoint, not from scratch.
    monkeypatch.setattr(trainer.losses, "pixel_loss", lambda name, max_shift=3: losses.l1)
    summary = trainer.train_stage(params, "finetune", "edsr", data_dir, out, ckpt_dir=ckpt, log_to_mlflow=False)
    assert [h["epoch"] for h in ck.read_history(ckpt)] == [1, 2, 3]
    assert summary["steps"] == 9 and (out / trainer.MODEL_FILE).is_file()

    # Killed after the last checkpoint but before the outputs (simulated: no 'finished' marker, outs
    # removed as DVC does): the rerun trains nothing and still writes every output.
    (ckpt / ck.FINISHED).unlink()
    (out / trainer.MODEL_FILE).unlink()
    plots, metrics = tmp_path / "plots.csv", tmp_path / "metrics.json"
    again = trainer.train_stage(params, "finetune", "edsr", data_dir, out, ckpt_dir=ckpt, log_to_mlflow=False,
                                plots_path=plots, metrics_path=metrics)
    assert (out / trainer.MODEL_FILE).is_file() and metrics.is_file()
    assert list(pd.read_csv(plots)["epoch"]) == [1, 2, 3]
    assert again["val_psnr"] == pytest.approx(summary["val_psnr"]) and again["train_patches_per_s"] is None


def test_nan_rollback_restores_and_halves_the_learning_rate(data_dir, tmp_path, monkeypatch):
    params = tiny_params(epochs=2, steps_per_epoch=3)
    params = params.model_copy(update={"train": params.train.model_copy(update={"nan_policy": "rollback"})})
    calls = tf.Variable(0, dtype=tf.int64)

    def once_nan(hr, sr):  # one NaN at step 5 only
        calls.assign_add(1)
        loss = losses.l1(hr, sr)
        return tf.where(tf.equal(calls, 5), tf.fill(tf.shape(loss), float("nan")), loss)

    monkeypatch.setattr(trainer.losses, "pixel_loss", lambda name, max_shift=3: once_nan)
    summary = trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "out", ckpt_dir=tmp_path / "c",
                                  log_to_mlflow=False)
    hist = ck.read_history(tmp_path / "c")
    assert [h["epoch"] for h in hist] == [1, 2] and np.isfinite(summary["val_psnr"])
    assert hist[1]["lr"] == pytest.approx(0.5 * hist[0]["lr"])


RESUME_SCRIPT = textwrap.dedent("""
    import json, logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.INFO)
    from satsr.config import Params
    from satsr.train.trainer import train_stage
    params = Params.model_validate(json.loads(sys.argv[1]))
    train_stage(params, "pretrain", "edsr", Path(sys.argv[2]), Path(sys.argv[3]), ckpt_dir=Path(sys.argv[4]),
                plots_path=Path(sys.argv[5]))
""")


@pytest.mark.slow
def test_resume_after_sigkill_continues_epochs_optimizer_and_mlflow_run(data_dir, tmp_path, sqlite_store,
                                                                         monkeypatch, caplog):
    epochs, steps = 8, 3
    params = tiny_params("pretrain", epochs=epochs, steps_per_epoch=steps)
    ckpt, out, plots = tmp_path / "ckpt", tmp_path / "out", tmp_path / "plots.csv"
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)
    argv = [sys.executable, str(script), params.model_dump_json(), str(data_dir), str(out), str(ckpt), str(plots)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SATSR_TRACKING_ROOT": str(tmp_path)}
    log1 = tmp_path / "first.log"
    with open(log1, "wb") as f:
        child = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=f, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        state = ck.read_state(ckpt)
        if state and state["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert child.poll() is None, f"training ended before it could be killed:\n{log1.read_text()[-3000:]}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    # The newest checkpoint (state.json is written just after it, so read the number from its name).
    killed_at = int(tf.train.latest_checkpoint(str(ckpt / ck.TF_DIR)).rsplit("-", 1)[1])
    assert 1 <= killed_at < epochs
    run_id = ck.run_id_file(ckpt).read_text().strip()

    # The rerun (in this process, to spare a second TensorFlow start-up) resumes.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SATSR_TRACKING_ROOT", str(tmp_path))
    caplog.set_level("INFO", logger="satsr")
    trainer.train_stage(params, "pretrain", "edsr", data_dir, out, ckpt_dir=ckpt, plots_path=plots)
    assert f"at epoch {killed_at}, step {killed_at * steps} (optimizer iterations {killed_at * steps})" \
        in caplog.text
    assert ck.run_id_file(ckpt).read_text().strip() == run_id

    # The final checkpoint: counters and optimizer iterations of one unbroken run.
    params_all = tiny_params("pretrain", epochs=epochs, steps_per_epoch=steps)
    model = models.build("edsr", params_all.models)
    opt = schedule.make_optimizer(params_all.pretrain.edsr, 1e-3, epochs * steps, tf.Variable(1.0), "g")
    opt.build(model.trainable_variables)
    epoch_v, step_v = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(generator=model, optimizer=opt, epoch=epoch_v, step=step_v).restore(
        tf.train.latest_checkpoint(str(ckpt / ck.TF_DIR))).expect_partial()
    assert int(epoch_v.numpy()) == epochs and int(step_v.numpy()) == epochs * steps
    assert int(opt.iterations.numpy()) == epochs * steps
    assert list(pd.read_csv(plots)["epoch"]) == list(range(1, epochs + 1))
    assert list(pd.read_csv(plots)["step"]) == [steps * e for e in range(1, epochs + 1)]

    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags.get("resumed") == "true"
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, epochs + 1))  # each epoch once
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]


def test_finetune_logs_registers_and_loads_back(data_dir, tmp_path, mlflow_server_started, monkeypatch):
    params = tiny_params("finetune", arch="rdn", epochs=1, steps_per_epoch=2)
    keras.utils.set_random_seed(3)
    pre = models.build("rdn", params.models)
    pre.save(str(tmp_path / "pre.keras"))
    url = mlflow_server_started.wait_healthy()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("SATSR_TRACKING_ROOT", str(tmp_path))
    out = tmp_path / "out"
    try:
        summary = trainer.train_stage(params, "finetune", "rdn", data_dir, out, tmp_path / "pre.keras",
                                      ckpt_dir=tmp_path / "ckpt", metrics_path=tmp_path / "m.json",
                                      plots_path=tmp_path / "p.csv")
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
    name, version = summary["registered_model"].split("/")[1:]
    assert name == "satsr-rdn" and int(version) >= 1
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["val_psnr"] == pytest.approx(summary["val_psnr"]) and "bicubic_psnr" in saved
    assert all(isinstance(v, (int, float)) for v in saved.values())  # dvc metrics: numbers only
    full = json.loads((out / trainer.SUMMARY_FILE).read_text())
    assert full["conventions"]["border_crop_px"] == 3 and full["registered_model"] == summary["registered_model"]
    probe = np.random.default_rng(0).random((1, 11, 13, 3), dtype=np.float32)
    expected = np.asarray(models.load(out / trainer.MODEL_FILE)(probe))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    loaded = tracking.load_model(f"models:/{name}/{version}")
    np.testing.assert_allclose(np.asarray(loaded(probe)), expected, rtol=1e-5, atol=1e-6)

    from mlflow import MlflowClient

    run = MlflowClient(url).get_run(summary["mlflow_run_id"])
    assert run.info.run_name == "finetune@rdn" and "val_psnr_refl" in run.data.metrics
    assert run.data.params["arch"] == "rdn" and run.data.params["stage.epochs"] == "1"
    arts = [a.path for a in MlflowClient(url).list_artifacts(run.info.run_id, "samples")]
    assert arts == ["samples/epoch_001.png"]


# ------------------------------------------------------------------------------------ bad input
def test_missing_or_corrupt_pretrained_weights_name_the_file(data_dir, tmp_path):
    params = tiny_params()
    missing = tmp_path / "models" / "pretrain" / "edsr" / "model.keras"
    with pytest.raises(trainer.TrainError, match=str(missing)):
        trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", missing,
                            ckpt_dir=tmp_path / "c", log_to_mlflow=False)
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 this is not a keras archive")
    with pytest.raises(trainer.TrainError, match=f"(?s){corrupt}.*corrupt"):
        trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", corrupt,
                            ckpt_dir=tmp_path / "c2", log_to_mlflow=False)
    other = tmp_path / "other.keras"
    models.build("edsr", {"num_blocks": 2, "num_filters": 8}).save(str(other))
    with pytest.raises(trainer.TrainError, match=f"(?s){other}.*differs from models.edsr"):
        trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", other,
                            ckpt_dir=tmp_path / "c3", log_to_mlflow=False)


def test_bad_datasets_fail_with_the_file_named(data_dir, tmp_path):
    params = tiny_params()
    with pytest.raises(PipelineError, match="not found"):
        trainer.train_stage(params, "finetune", "edsr", tmp_path / "nowhere", tmp_path / "o",
                            ckpt_dir=tmp_path / "c", log_to_mlflow=False)
    no_val = write_dataset(tmp_path / "noval", n_train=2, n_val=0)
    with pytest.raises(PipelineError, match="split 'val'.*empty"):
        trainer.train_stage(params, "finetune", "edsr", no_val, tmp_path / "o", ckpt_dir=tmp_path / "c",
                            log_to_mlflow=False)
    big = tiny_params(input={"lr_patch": 32, "batch_size": 4})
    with pytest.raises(PipelineError, match="lr_patch 32 px is larger than the smallest LR image"):
        trainer.train_stage(big, "finetune", "edsr", data_dir, tmp_path / "o", ckpt_dir=tmp_path / "c",
                            log_to_mlflow=False)


def test_vgg19_perceptual_offline_fails_before_training(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(losses.ENV_VGG19, raising=False)
    monkeypatch.setattr(losses, "keras_cache_dirs", lambda: [tmp_path / "empty"])
    monkeypatch.setattr(losses, "_download_vgg19", lambda: (_ for _ in ()).throw(OSError("offline")))
    params = tiny_params(arch="srgan", perceptual="vgg19")
    with pytest.raises(losses.PerceptualWeightsError, match="finetune@srgan.*disc_features"):
        trainer.train_stage(params, "finetune", "srgan", data_dir, tmp_path / "o", ckpt_dir=tmp_path / "c",
                            log_to_mlflow=False)


def test_checkpoint_folder_rules_finished_changed_and_same(data_dir, tmp_path):
    params = tiny_params(epochs=1, steps_per_epoch=1)
    ckpt = tmp_path / "ckpt"
    trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", ckpt_dir=ckpt, log_to_mlflow=False)
    assert (ckpt / ck.FINISHED).is_file()
    fp = trainer.fingerprint(params, "finetune", "edsr", params.finetune.edsr, data_dir, None)
    # A finished run is never resumed: a rerun (DVC changed something, or -f) starts afresh.
    assert not ck.prepare_dir(ckpt, fp) and not (ckpt / ck.TF_DIR).exists()

    # An unfinished run of the same configuration is resumed ...
    ck.TrainCheckpoint(ckpt, 2, epoch=tf.Variable(1, dtype=tf.int64)).save(1, 1)
    assert ck.prepare_dir(ckpt, fp)
    # ... and one of another configuration is moved aside, with its progress, not resumed.
    changed = tiny_params(epochs=1, steps_per_epoch=1, lr=5e-4)
    fp2 = trainer.fingerprint(changed, "finetune", "edsr", changed.finetune.edsr, data_dir, None)
    assert not ck.prepare_dir(ckpt, fp2)
    aside = list(tmp_path.glob("ckpt.stale-*"))
    assert len(aside) == 1 and (aside[0] / ck.TF_DIR).is_dir()
    assert json.loads((ckpt / ck.FINGERPRINT).read_text())["stage_params"]["lr"] == 5e-4


def test_cli_lists_the_training_commands():
    from satsr import cli

    for arch in models.ARCHS:  # every registered architecture is a choice of the training commands
        assert cli.build_parser().parse_args(["pretrain", arch]).arch == arch
    helptext = cli.build_parser().format_help()
    for command in ("natural", "pretrain", "finetune"):
        assert command in helptext
    args = cli.build_parser().parse_args(["finetune", "srgan", "--no-init"])
    assert args.arch == "srgan" and args.no_init and args.func is cli.cmd_finetune


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from satsr.locks import dir_lock
    with dir_lock(sys.argv[1], "held by a test"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_writer_of_a_checkpoint_folder_is_refused_and_a_killed_ones_lock_taken_over(
        data_dir, tmp_path, caplog):
    """Issue 13 item 7: the orphan of a killed `dvc` still trains into the folder; a rerun must not
    resume from it. A real holder process: refused with its pid and host, nothing touched; SIGKILLed:
    the next run takes the lock over (logged) and trains."""
    import socket

    from satsr import locks

    params = tiny_params(epochs=1, steps_per_epoch=1)
    ckpt = tmp_path / "ckpt" / "edsr"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(ckpt)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockHeldError) as err:
            trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", ckpt_dir=ckpt,
                                log_to_mlflow=False)
        assert str(err.value).startswith(f"{ckpt}.lock: checkpoint folder {ckpt} (finetune@edsr) is in use: "
                                         f"held by pid {holder.pid} on host {socket.gethostname()} since ")
        assert err.value.exit_code == 75
        assert not ckpt.exists() and not (tmp_path / "o").exists()  # nothing written, nothing moved aside
    finally:
        holder.kill()
        holder.wait(timeout=20)
    caplog.set_level("WARNING", logger="satsr.locks")
    trainer.train_stage(params, "finetune", "edsr", data_dir, tmp_path / "o", ckpt_dir=ckpt, log_to_mlflow=False)
    assert f"it was pid {holder.pid}" in caplog.text and (ckpt / ck.FINISHED).is_file()
    assert not locks.lock_path(ckpt).exists()
