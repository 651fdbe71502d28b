"""Training checkpoints: everything needed to resume a killed stage exactly where it stopped.

A checkpoint folder (default ``.satsr/ckpt/<stage>/<arch>``, outside the DVC outs so that a rerun
of ``dvc repro`` after a crash or SIGKILL finds it) holds::

    fingerprint.json   stage params + model params + data hash + init-weights hash
    tf/ckpt-N.*        tf.train.Checkpoint: model(s), optimizer(s) (moments AND iterations),
                       epoch and step counters, learning-rate scale (CheckpointManager, last K kept)
    state.json         epoch / step / path of the newest checkpoint, written after each save
    history.csv        one row per finished epoch (the plots CSV is copied from it)
    mlflow_run_id      the MLflow run this stage logs to (satsr.tracking.stage_run resumes it)
    finished           present once the stage wrote all its outputs

One process at a time writes a checkpoint folder: :func:`lock` holds ``<folder>.lock`` beside it
(satsr.locks) for the whole run, so a second run of the stage (e.g. a ``dvc repro`` while the
orphan of a killed ``dvc`` still trains) refuses with the holder's pid and host instead of resuming
from the orphan's checkpoint and writing the same files and MLflow run. A killed holder's lock is
taken over.

Only an unfinished run is resumed. A finished one is cleared when the stage runs again (DVC only
reruns a stage when something changed, or when forced, and then a fresh run is wanted; the outputs
themselves are DVC's). A checkpoint written under another configuration must not be resumed
silently: when the fingerprint of an unfinished run differs, the whole folder is moved aside to
``<arch>.stale-<UTC time>`` with a warning naming the keys that changed, and training starts afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import tensorflow as tf

from satsr import locks
from satsr.config import flatten
from satsr.util import write_text_atomic

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"
STATE = "state.json"
HISTORY = "history.csv"
RUN_ID = "mlflow_run_id"
TF_DIR = "tf"
#: Written once the stage's outputs are complete: such a folder is never resumed.
FINISHED = "finished"


# ------------------------------------------------------------------------------------ hashing
def data_hash(data_dir: str | Path) -> str:
    """A cheap identity of a PNG dataset folder: its index.csv bytes plus the size of every file it
    lists (a rewritten dataset changes the index's fingerprints or sizes; mtimes are not used, since
    ``dvc checkout`` changes them)."""
    data_dir = Path(data_dir)
    index = data_dir / "index.csv"
    h = hashlib.sha256()
    if not index.is_file():
        return "missing"
    h.update(index.read_bytes())
    try:
        df = pd.read_csv(index, dtype=str)
        for col in ("lr_png", "hr_png"):
            for rel in df.get(col, pd.Series(dtype=str)).dropna():
                p = data_dir / rel
                h.update(f"{rel}:{p.stat().st_size if p.exists() else -1};".encode())
    except (ValueError, OSError):
        pass
    return h.hexdigest()


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def lock(ckpt_dir: str | Path, name: str, stale_after_s: float = locks.DEFAULT_STALE_AFTER_S) -> locks.Lock:
    """The single-writer lock of ``ckpt_dir`` for run ``name`` (``with lock(...):``; acquire it before
    :func:`prepare_dir`, which may clear or move the folder)."""
    return locks.dir_lock(ckpt_dir, f"checkpoint folder {ckpt_dir} ({name})", stale_after_s)


def prepare_dir(ckpt_dir: str | Path, fingerprint: dict[str, Any], restart: bool = False) -> bool:
    """Make ``ckpt_dir`` belong to ``fingerprint``; return True when it holds a resumable checkpoint.

    A folder from another configuration (or any folder, with ``restart``) is moved aside, never
    deleted, so nothing is lost by a mistaken params change.
    """
    ckpt_dir = Path(ckpt_dir)
    fp_file = ckpt_dir / FINGERPRINT
    reason = None
    if (ckpt_dir / FINISHED).is_file():
        log.info("checkpoint folder %s belongs to a finished run: cleared for a fresh run", ckpt_dir)
        shutil.rmtree(ckpt_dir)
    if ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        if restart:
            reason = "restart requested"
        elif not fp_file.is_file():
            reason = f"no {FINGERPRINT}"
        else:
            try:
                old = json.loads(fp_file.read_text())
            except (OSError, ValueError):
                old = {}
            if fingerprint_digest(old) != fingerprint_digest(json.loads(json.dumps(fingerprint, default=str))):
                changed = _changed_keys(old, json.loads(json.dumps(fingerprint, default=str)))
                reason = f"configuration changed ({', '.join(changed[:8])}{' ...' if len(changed) > 8 else ''})"
    if reason:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        aside = ckpt_dir.with_name(f"{ckpt_dir.name}.stale-{stamp}")
        shutil.move(str(ckpt_dir), str(aside))
        log.warning("checkpoint folder %s not resumed: %s; moved aside to %s (delete it when not needed)",
                    ckpt_dir, reason, aside)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(fp_file, json.dumps(fingerprint, indent=2, sort_keys=True, default=str) + "\n")
    return tf.train.latest_checkpoint(str(ckpt_dir / TF_DIR)) is not None


# ---------------------------------------------------------------------------------- checkpoint
class TrainCheckpoint:
    """tf.train.Checkpoint + CheckpointManager over the training state, in ``ckpt_dir/tf``.

    ``objects`` are the trackables to save (``generator=model, optimizer=opt, epoch=var, ...``);
    optimizers must be built (``opt.build(vars)``) before ``restore`` so their slots exist.
    """

    def __init__(self, ckpt_dir: str | Path, max_to_keep: int = 2, **objects: Any):
        self.dir = Path(ckpt_dir)
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.dir / TF_DIR), max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> str | None:
        """Restore the newest checkpoint (all objects must match); None when there is none."""
        path = self.manager.latest_checkpoint
        if path is None:
            return None
        self.checkpoint.restore(path).assert_existing_objects_matched().expect_partial()
        return path

    def restore_path(self, path: str) -> None:
        self.checkpoint.restore(path).assert_existing_objects_matched().expect_partial()

    def save(self, epoch: int, step: int) -> str:
        path = self.manager.save(checkpoint_number=epoch)
        write_text_atomic(self.dir / STATE, json.dumps({"epoch": int(epoch), "step": int(step), "path": path,
                                                   "time": dt.datetime.now(dt.UTC).isoformat()}) + "\n")
        return path


def mark_finished(ckpt_dir: str | Path) -> None:
    """The stage's outputs are complete: the next run of the stage starts afresh."""
    write_text_atomic(Path(ckpt_dir) / FINISHED, dt.datetime.now(dt.UTC).isoformat() + "\n")


def read_state(ckpt_dir: str | Path) -> dict[str, Any] | None:
    """``state.json`` of a checkpoint folder (epoch, step, path of the newest save), if any."""
    try:
        return json.loads((Path(ckpt_dir) / STATE).read_text())
    except (OSError, ValueError):
        return None


def run_id_file(ckpt_dir: str | Path) -> Path:
    """Where the stage's MLflow run id is kept (resumed by satsr.tracking.stage_run)."""
    return Path(ckpt_dir) / RUN_ID


# ------------------------------------------------------------------------------------- history
def read_history(ckpt_dir: str | Path, up_to_epoch: int | None = None) -> list[dict[str, Any]]:
    """Rows of history.csv, only those of epochs <= ``up_to_epoch`` (the restored checkpoint)."""
    path = Path(ckpt_dir) / HISTORY
    if not path.is_file():
        return []
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError):
        return []
    if up_to_epoch is not None and "epoch" in df:
        df = df[df["epoch"] <= up_to_epoch]
    return df.to_dict("records")


def write_history(ckpt_dir: str | Path, rows: list[dict[str, Any]], copy_to: str | Path | None = None) -> None:
    text = pd.DataFrame(rows).to_csv(index=False)
    write_text_atomic(Path(ckpt_dir) / HISTORY, text)
    if copy_to is not None:
        write_text_atomic(Path(copy_to), text)
