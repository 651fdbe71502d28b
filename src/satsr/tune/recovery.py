"""What a killed study worker leaves behind, and how the next worker puts it right.

A worker killed by SIGKILL (or the OOM killer, or a closed terminal) leaves its trial RUNNING in
the storage, the trial's nested MLflow run RUNNING, and the trial's work folder on disk. Left alone,
the trial would use up the budget and would never be retried. A restarted worker whose sampler
has the same seed would also replay its first proposals, so it would repeat trial 0.

When a worker starts, and before each trial it asks for, under the study lock
(satsr.tune.study.study_lock), :func:`recover_killed` looks at each RUNNING trial whose worker is
gone. That is a worker of this host whose pid no longer runs, or whose pid is this process (a
restarted container reuses pids). On an RDB storage
(PostgreSQL, the multi-host set-up) every running trial also records Optuna heartbeats
(:func:`heartbeat`), so a trial of ANY host whose heartbeat is older than ``locks.stale_after_s``
(a lost host, a recreated container) is treated the same. For each such trial:

* it is marked FAIL, with the user attrs ``killed``, ``fail_reason`` and ``counted: false``, so it
  does not count toward ``tune.n_trials`` (:func:`budget_used`);
* its sampled values are enqueued again (``study.enqueue_trial``, with the user attr
  ``retry_of`` = its number), so the next ``ask()`` of any worker trains the same values. After
  ``tune.killed_retries`` re-runs of the same values, a killed trial counts as an ordinary FAIL,
  so values that kill their worker every time cannot stall the study;
* its MLflow run (user attr ``mlflow_run_id``) is ended as KILLED (satsr.tracking.end_orphan_run);
* its work folder (user attr ``work_dir``) is removed.

:func:`sampler_seed` derives the sampler's seed from (seed, worker index, trials already in the
study). A resumed worker therefore draws new values, and the same study, resumed the same way,
still draws the same ones.

A journal file has no heartbeats: there, trials of workers on OTHER hosts are left to a worker of
their own host (same host name), because this host cannot see their processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from satsr import locks

log = logging.getLogger(__name__)

HOST_ATTR, PID_ATTR = "worker_host", "worker_pid"
RUN_ATTR = "mlflow_run_id"
DIR_ATTR = "work_dir"
KILLED_ATTR = "killed"
#: False on a FAIL trial that does not use up the budget (killed, its values re-run).
COUNTED_ATTR = "counted"
RETRY_OF_ATTR = "retry_of"
RETRIES_ATTR = "retries"


def trial_dir(work: Path, number: int) -> Path:
    """The work folder of trial ``number`` (``work`` is already per study)."""
    return work / f"trial_{number}"


def budget_used(study: optuna.Study) -> int:
    """Trials that count toward ``n_trials``: COMPLETE, PRUNED, RUNNING and every FAIL except the
    killed ones that are re-run. WAITING (enqueued) trials are not counted until they start."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) or (
                t.state == TrialState.FAIL and t.user_attrs.get(COUNTED_ATTR) is not False):
            n += 1
    return n


def sampler_seed(seed: int | None, worker: int, n_existing: int) -> int | None:
    """The sampler seed of ``worker`` joining a study that already holds ``n_existing`` trials."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, worker, n_existing]).generate_state(1)[0])


def heartbeat_settings(stale_after_s: float) -> tuple[int, int]:
    """(heartbeat interval, grace period) in whole seconds for Optuna's RDB heartbeats."""
    interval = max(1, int(stale_after_s // 6))
    return interval, max(interval + 1, int(stale_after_s))


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record ``trial``'s heartbeat every interval while the block runs (storages with heartbeats)."""
    storage = study._storage
    interval = storage.get_heartbeat_interval() if hasattr(storage, "record_heartbeat") else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as err:  # noqa: BLE001 - a database hiccup: the next beat may succeed
                log.warning("trial %d: heartbeat not recorded: %s: %s", trial.number, type(err).__name__, err)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"trial-{trial.number}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _stale(study: optuna.Study) -> set[int]:
    """Ids of RUNNING trials whose heartbeat is older than the grace period (storages with heartbeats;
    the database's clock decides, so hosts' clocks need not agree)."""
    storage = study._storage
    if not (hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval()):
        return set()
    return set(storage._get_stale_trial_ids(study._study_id))  # what optuna.storages.fail_stale_trials uses


def _worker_gone(t: FrozenTrial, host: str, pid: int) -> bool:
    w_host, w_pid = t.user_attrs.get(HOST_ATTR), t.user_attrs.get(PID_ATTR)
    if w_host != host or not isinstance(w_pid, int):
        return False
    return w_pid == pid or not locks.pid_alive(w_pid)


def recover_killed(study: optuna.Study, work: Path, killed_retries: int,
                   end_run: Callable[[str], bool] | None = None) -> list[int]:
    """Fail, re-enqueue and clean up the RUNNING trials of dead workers of this host (module
    docstring); call it under the study lock. ``end_run(run_id)`` ends an orphaned MLflow run
    (None: MLflow is off for this worker, and the runs are left alone). Returns the trial numbers."""
    host, pid = locks.host_name(), os.getpid()
    stale = _stale(study)
    gone = [(t, "died" if _worker_gone(t, host, pid) else "sent no heartbeat for locks.stale_after_s")
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if _worker_gone(t, host, pid) or t._trial_id in stale]
    recovered = []
    for t, how in gone:
        _retire(study, t, how, work, killed_retries, end_run)
        recovered.append(t.number)
    return recovered


def _retire(study: optuna.Study, t: FrozenTrial, how: str, work: Path, killed_retries: int,
            end_run: Callable[[str], bool] | None) -> None:
    """FAIL ``t`` (not counted while its values are re-run), re-enqueue them, end its run, remove its folder."""
    storage = study._storage  # no public API sets attrs / state of another process's trial
    who = f"{t.user_attrs.get(HOST_ATTR, '?')}:{t.user_attrs.get(PID_ATTR, '?')}"
    retries = int(t.user_attrs.get(RETRIES_ATTR, 0))
    rerun = bool(t.params) and retries < killed_retries
    what = ("its values are re-run as a new trial" if rerun else
            "no values were sampled yet" if not t.params else
            f"its values were re-run {retries} time(s) already (tune.killed_retries): counted as FAIL")
    storage.set_trial_user_attr(t._trial_id, "fail_reason", f"worker {who} {how} (killed); {what}")
    storage.set_trial_user_attr(t._trial_id, KILLED_ATTR, True)
    storage.set_trial_user_attr(t._trial_id, COUNTED_ATTR, bool(t.params) and not rerun)
    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    if rerun:
        study.enqueue_trial(dict(t.params), user_attrs={RETRY_OF_ATTR: t.number, RETRIES_ATTR: retries + 1})
    run_id = t.user_attrs.get(RUN_ATTR)
    ended = False
    if run_id and end_run is not None:
        try:
            ended = end_run(run_id)
        except Exception as err:  # noqa: BLE001 - a tracking hiccup must not stop the study
            log.warning("trial %d: could not end its MLflow run %s: %s: %s", t.number, run_id,
                        type(err).__name__, err)
    folder = Path(t.user_attrs.get(DIR_ATTR) or trial_dir(work, t.number))
    removed = folder.exists()
    shutil.rmtree(folder, ignore_errors=True)
    log.warning("study %s: trial %d of worker %s (%s) marked FAIL, %s%s%s", study.study_name, t.number, who, how,
                what, f"; MLflow run {run_id} ended KILLED" if ended else "", f"; {folder} removed" if removed else "")
