"""Checkpoint folders: the data identity, which folders are resumed or moved aside, the
tf.train.Checkpoint round trip with its state file, and the history CSV."""

from __future__ import annotations

import json
import logging
import os

import pandas as pd
import pytest
import tensorflow as tf

from satsr.train import checkpoints as ck


def _dataset(root, sizes=(10, 20)):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_LR").mkdir(exist_ok=True)
    (root / "train_HR").mkdir(exist_ok=True)
    (root / "train_LR" / "a.png").write_bytes(b"x" * sizes[0])
    (root / "train_HR" / "a.png").write_bytes(b"y" * sizes[1])
    pd.DataFrame([{"pair_id": "a", "split": "train", "lr_png": "train_LR/a.png", "hr_png": "train_HR/a.png"}]
                 ).to_csv(root / "index.csv", index=False)
    return root


# ----------------------------------------------------------------------------------- data_hash
def test_data_hash_follows_index_and_sizes_not_mtimes(tmp_path):
    assert ck.data_hash(tmp_path / "nowhere") == "missing"
    data = _dataset(tmp_path / "d")
    first = ck.data_hash(data)
    assert len(first) == 64 and ck.data_hash(data) == first
    os.utime(data / "train_HR" / "a.png", (1_000_000, 1_000_000))  # `dvc checkout` changes mtimes only
    assert ck.data_hash(data) == first
    (data / "train_HR" / "a.png").write_bytes(b"y" * 21)  # a rewritten image of another size
    assert ck.data_hash(data) != first
    _dataset(tmp_path / "e")
    (tmp_path / "e" / "index.csv").write_text((tmp_path / "e" / "index.csv").read_text() + "\n")
    assert ck.data_hash(tmp_path / "e") != ck.data_hash(_dataset(tmp_path / "f"))


# --------------------------------------------------------------------------------- prepare_dir
def _save_checkpoint(folder, epoch=1):
    ck.TrainCheckpoint(folder, 2, epoch=tf.Variable(epoch, dtype=tf.int64)).save(epoch, 3 * epoch)


def test_prepare_dir_fresh_resume_changed_restart_and_finished(tmp_path, caplog):
    folder = tmp_path / "ckpt"
    fp = {"stage": "finetune", "arch": "edsr", "stage_params": {"lr": 1e-3, "epochs": 2}}
    assert ck.prepare_dir(folder, fp) is False  # fresh: nothing to resume
    assert json.loads((folder / ck.FINGERPRINT).read_text()) == fp

    _save_checkpoint(folder)
    assert ck.prepare_dir(folder, fp) is True  # same configuration, unfinished: resumed
    assert ck.read_state(folder)["epoch"] == 1

    changed = {**fp, "stage_params": {"lr": 5e-4, "epochs": 2}}
    with caplog.at_level(logging.WARNING, logger="satsr.train.checkpoints"):
        assert ck.prepare_dir(folder, changed) is False
    assert "stage_params.lr" in caplog.text and "epochs" not in caplog.text.split("configuration changed")[1]
    aside = list(tmp_path.glob("ckpt.stale-*"))
    assert len(aside) == 1 and (aside[0] / ck.TF_DIR).is_dir()  # moved aside with its progress, not deleted
    assert json.loads((aside[0] / ck.FINGERPRINT).read_text()) == fp
    assert json.loads((folder / ck.FINGERPRINT).read_text()) == changed

    _save_checkpoint(folder)
    assert ck.prepare_dir(folder, changed, restart=True) is False  # restart: moved aside too
    assert len(list(tmp_path.glob("ckpt.stale-*"))) == 2

    _save_checkpoint(folder)
    ck.mark_finished(folder)
    assert ck.prepare_dir(folder, changed) is False  # a finished run is cleared, never resumed
    assert not (folder / ck.FINISHED).exists() and not (folder / ck.TF_DIR).exists()
    assert len(list(tmp_path.glob("ckpt.stale-*"))) == 2


def test_prepare_dir_moves_aside_a_folder_without_fingerprint(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "stray.txt").write_text("left by something else")
    assert ck.prepare_dir(folder, {"a": 1}) is False
    (aside,) = tmp_path.glob("ckpt.stale-*")
    assert (aside / "stray.txt").read_text() == "left by something else"


# ------------------------------------------------------------------------------ TrainCheckpoint
def test_checkpoint_round_trip_keeps_the_newest_and_writes_state(tmp_path):
    v = tf.Variable(0.0)
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = ck.TrainCheckpoint(tmp_path, max_to_keep=2, value=v, step=step)
    assert ckpt.latest is None and ckpt.restore() is None and ck.read_state(tmp_path) is None
    paths = []
    for epoch in (1, 2, 3):
        v.assign(10.0 * epoch)
        step.assign(5 * epoch)
        paths.append(ckpt.save(epoch, 5 * epoch))
    assert paths[-1].endswith("ckpt-3") and ckpt.latest == paths[-1]
    state = ck.read_state(tmp_path)
    assert state["epoch"] == 3 and state["step"] == 15 and state["path"] == paths[-1]
    assert len(tf.train.get_checkpoint_state(str(tmp_path / ck.TF_DIR)).all_model_checkpoint_paths) == 2

    fresh_v, fresh_step = tf.Variable(-1.0), tf.Variable(-1, dtype=tf.int64)
    again = ck.TrainCheckpoint(tmp_path, 2, value=fresh_v, step=fresh_step)
    assert again.restore() == paths[-1]
    assert float(fresh_v.numpy()) == 30.0 and int(fresh_step.numpy()) == 15
    again.restore_path(paths[1])  # the older one kept (a NaN rollback goes back to it)
    assert float(fresh_v.numpy()) == 20.0


def test_restore_refuses_a_checkpoint_of_other_objects(tmp_path):
    ck.TrainCheckpoint(tmp_path, 2, value=tf.Variable(1.0)).save(1, 1)
    other = ck.TrainCheckpoint(tmp_path, 2, something_else=tf.Variable(1.0))
    with pytest.raises(AssertionError):
        other.restore()


def test_state_and_run_id_files(tmp_path):
    assert ck.read_state(tmp_path) is None
    (tmp_path / ck.STATE).write_text("{not json")
    assert ck.read_state(tmp_path) is None
    assert ck.run_id_file(tmp_path) == tmp_path / ck.RUN_ID
    ck.mark_finished(tmp_path)
    assert (tmp_path / ck.FINISHED).read_text().strip().startswith("20")


# ------------------------------------------------------------------------------------- history
def test_history_rows_up_to_an_epoch_and_the_plots_copy(tmp_path):
    assert ck.read_history(tmp_path) == []
    rows = [{"epoch": e, "loss": 1.0 / e, "val_psnr_refl": 30.0 + e} for e in (1, 2, 3)]
    plots = tmp_path / "plots" / "finetune_edsr.csv"
    ck.write_history(tmp_path, rows, copy_to=plots)
    assert (tmp_path / ck.HISTORY).read_text() == plots.read_text()
    assert [r["epoch"] for r in ck.read_history(tmp_path)] == [1, 2, 3]
    kept = ck.read_history(tmp_path, up_to_epoch=2)  # the rows of the restored checkpoint only
    assert [r["epoch"] for r in kept] == [1, 2] and kept[1]["val_psnr_refl"] == 32.0
    assert list(pd.read_csv(plots).columns) == ["epoch", "loss", "val_psnr_refl"]
    (tmp_path / ck.HISTORY).write_bytes(b"")
    assert ck.read_history(tmp_path) == []
