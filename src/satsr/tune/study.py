"""One Optuna study per architecture: short fine-tunes scored by validation PSNR gain over bicubic.

``run_study(params, arch, ...)`` opens (or joins) the study ``<tune.study_prefix>-<arch>-<hash>``
in persistent storage and runs trials until the study holds ``n_trials`` trials in total:

* the hash covers the search space, the study settings and every value that changes what a trial
  trains (finetune.<arch>, models.<arch>, tune.epochs / steps), but not the budget and not the
  params.yaml values of the searched keys (trials sample those), so a rerun, a second worker or a
  ``dvc exp run -S finetune.<arch>.lr=...`` joins the same study, and a changed space starts anew.
  The searched keys' params.yaml values at creation are the study's ``base`` (a user attr, written
  to best_params.yaml): finetune@<arch> applies a tuned value only while params.yaml still holds
  its base (satsr.resolve has the precedence);
* budget: params.yaml ``tune.n_trials`` / ``tune.timeout_s``, or ``--n-trials`` / ``--timeout`` for one
  run (experiments/study.yaml holds none);
* storage: env ``SATSR_OPTUNA_STORAGE`` > ``tune.storage`` > the journal file
  ``.satsr/optuna/journal.log`` (outside the DVC outs; survives ``dvc repro``). A
  ``postgresql+psycopg2://`` URL lets workers on several hosts share one study;
* the cap counts COMPLETE + PRUNED + FAIL + RUNNING trials (not a killed worker's, below) and
  is checked, and the next trial created, under a lock shared by all workers
  (``pg_advisory_lock`` on PostgreSQL, ``flock`` on the journal file), so concurrent workers never
  exceed it and a killed study tops up to it;
* a killed worker's trial does not use up the budget: the next worker of its host marks it FAIL
  (not counted), re-runs its values, ends its MLflow run as KILLED and removes its work folder; the
  sampler's seed is derived from the trials already in the study, so a resumed worker does not
  replay the first proposals (satsr.tune.recovery);
* one process per (study, ``--worker`` index) on a host: ``<work_dir>/<arch>/<study>/worker-<k>.lock``
  (satsr.locks); give each worker of a study its own index (it also seeds its sampler);
* each trial fine-tunes from ``models/pretrain/<arch>/model.keras`` for ``tune.epochs`` x
  ``tune.steps_per_epoch`` with the sampled values in ``<work_dir>/<arch>/<study>/trial_<N>``,
  reports the objective after each validation (``trial.report``) and is pruned when the pruner
  says so; any exception (OOM, NaN loss, bad combination) makes it FAIL with the reason in the
  user attr ``fail_reason``, and the study goes on;
* MLflow: one parent run ``tune@<arch>`` per study (its id is a study user attr, so all workers
  and reruns log under it), one nested run per trial with its params, intermediate values (metric
  steps = epochs) and final value; Optuna's figures and the best params (tags ``best.*``) on the
  parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from satsr import locks
from satsr.config import Params
from satsr.errors import SatsrError
from satsr.tune import recovery, spaces
from satsr.util import redact

log = logging.getLogger(__name__)

ENV_STORAGE = "SATSR_OPTUNA_STORAGE"
DEFAULT_JOURNAL = Path(".satsr/optuna/journal.log")
STUDY_RUN_ATTR = "mlflow_run_id"
#: Study user attr: the params.yaml values of the searched keys when the study was created.
BASE_ATTR = "base"


class TuneError(SatsrError, RuntimeError):
    """The study cannot run (storage, spaces); the message names the file or URL."""


# ------------------------------------------------------------------------------------- storage
def storage_url(params: Params) -> str:
    """env SATSR_OPTUNA_STORAGE > tune.storage > journal file (``journal:`` + path)."""
    return os.environ.get(ENV_STORAGE) or params.tune.storage or f"journal:{DEFAULT_JOURNAL}"


def _journal_path(url: str) -> Path | None:
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    if "://" not in url:  # a bare file path
        return Path(url)
    return None


def make_storage(url: str, stale_after_s: float | None = None) -> optuna.storages.BaseStorage:
    """Optuna storage for ``url`` (journal file, or an SQLAlchemy URL with retries for the schema
    race of several workers creating the tables at once). ``stale_after_s`` (``locks.stale_after_s``)
    turns on Optuna's trial heartbeats on an SQLAlchemy URL: a trial silent that long is a killed
    one (satsr.tune.recovery)."""
    path = _journal_path(url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend

        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    last: Exception | None = None
    for attempt in range(5):
        try:
            if stale_after_s is None:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            interval, grace = recovery.heartbeat_settings(stale_after_s)
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True},
                                              heartbeat_interval=interval, grace_period=grace)
        except Exception as err:  # noqa: BLE001 - concurrent table creation, server starting
            last = err
            time.sleep(0.5 + attempt)
    raise TuneError(f"Optuna storage {redact(url)}: cannot connect or set up "
                    f"({type(last).__name__}: {redact(str(last))})")


@contextlib.contextmanager
def study_lock(url: str, study_name: str) -> Iterator[None]:
    """A lock all workers of ``study_name`` share: pg_advisory_lock on PostgreSQL, flock otherwise."""
    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    if url.startswith("postgresql"):
        import sqlalchemy

        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = sqlalchemy.create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    path = _journal_path(url)
    lock_path = (Path(str(path) + ".satsr-cap.lock") if path is not None
                 else DEFAULT_JOURNAL.parent / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_engines: dict[str, Any] = {}


# --------------------------------------------------------------------------------------- study
def _worker_id() -> tuple[str, int]:
    return locks.host_name(), os.getpid()


def make_sampler(settings: spaces.StudySettings, worker: int = 0, n_existing: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler for ``worker`` joining with ``n_existing`` trials in the study (its seed
    is derived from both: a resumed worker must not replay its first proposals)."""
    s = settings.sampler
    seed = recovery.sampler_seed(s.seed, worker, n_existing)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials, multivariate=s.multivariate)


def make_pruner(settings: spaces.StudySettings, epochs: int) -> optuna.pruners.BasePruner:
    p = settings.pruner
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=p.max_resource or epochs,
                                              reduction_factor=p.reduction_factor)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    return optuna.pruners.NopPruner()


def trial_base_params(params: Params, arch: str) -> Params:
    """finetune.<arch> with the tuning budget (tune.epochs x tune.steps_per_epoch, val_images)."""
    t = params.tune
    values: dict[str, Any] = {"finetune.epochs": t.epochs, "finetune.steps_per_epoch": t.steps_per_epoch}
    if t.val_images is not None:
        values["finetune.val_images"] = t.val_images
    return spaces.apply_overrides(params, arch, values)


def study_name(params: Params, arch: str, space: spaces.SearchSpace, settings: spaces.StudySettings) -> str:
    """``<prefix>-<arch>-<hash of what a trial trains>`` (the budget is not in it: reruns top up)."""
    t = params.tune
    # searched values are masked: trials sample them, so `dvc exp run -S finetune.<arch>.lr=...` (which
    # reruns this stage) joins the same study instead of searching again (satsr.resolve)
    fp = spaces.fingerprint(space.model_dump(mode="json"), settings.model_dump(mode="json"),
                            spaces.masked_section(params, "finetune", arch, space),
                            spaces.masked_section(params, "models", arch, space),
                            params.train.model_dump(mode="json"), params.seed,
                            [t.epochs, t.steps_per_epoch, t.val_images])
    return f"{t.study_prefix}-{arch}-{fp}"


@dataclass
class TrialRecord:
    number: int
    state: str
    value: float | None
    seconds: float          # the whole trial as this worker saw it
    train_seconds: float    # inside train_stage
    reason: str | None = None


@dataclass
class StudyResult:
    study_name: str
    storage: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    counts: dict[str, int]
    trials_here: list[TrialRecord] = field(default_factory=list)
    seconds: float = 0.0


def _counts(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def run_study(params: Params, arch: str, *, data_dir: str | Path, init_weights: str | Path | None,
              out_path: str | Path | None = None, figures_dir: str | Path | None = None,
              storage: str | None = None, name: str | None = None, n_trials: int | None = None,
              timeout_s: float | None = None, worker: int = 0, log_to_mlflow: bool = True,
              train_fn: Any = None) -> StudyResult:
    """Run (or join, or resume) the study of ``arch``; write the best overrides to ``out_path``.

    ``train_fn`` replaces satsr.train.trainer.train_stage (tests inject failures with it).
    """
    from satsr.resolve import effective_params

    t0 = time.perf_counter()
    space, settings = spaces.load_all(params.tune.spaces_dir, arch)
    budget = effective_params(params, "tune", arch, cli={"tune.n_trials": n_trials, "tune.timeout_s": timeout_s})
    budget_doc = {k.split(".")[-1]: {"value": budget.values[k], "source": budget.sources[k]}
                  for k in ("tune.n_trials", "tune.timeout_s")}
    url = storage or storage_url(params)
    name = name or study_name(params, arch, space, settings)
    base = trial_base_params(params, arch)
    if train_fn is None:
        from satsr.train.trainer import train_stage as train_fn
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(params.tune.work_dir) / arch / name  # trial folders; this worker's lock beside them
    with locks.dir_lock(work / f"worker-{worker}", f"tune worker {worker} of study {name}",
                        params.locks.stale_after_s):
        cap, timeout = budget.params.tune.n_trials, budget.params.tune.timeout_s
        study = optuna.create_study(study_name=name, storage=make_storage(url, params.locks.stale_after_s),
                                    direction=settings.direction,
                                    sampler=optuna.samplers.RandomSampler(),  # replaced once the trials are known
                                    pruner=make_pruner(settings, params.tune.epochs), load_if_exists=True)
        end_run = None
        if log_to_mlflow:
            from satsr import tracking

            tracking.configure(params)
            end_run = tracking.end_orphan_run
        with study_lock(url, name):
            recovery.recover_killed(study, work, params.tune.killed_retries, end_run)
            if BASE_ATTR not in study.user_attrs:  # the params.yaml values this study searched around
                study.set_user_attr(BASE_ATTR, spaces.base_values(params, arch, space))
            n_existing = len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(settings, worker, n_existing)
        log.info("tune@%s: study %s in %s, %d trial(s) so far (%d counted), cap %d", arch, name, redact(url),
                 n_existing, recovery.budget_used(study), cap)
        records: list[TrialRecord] = []
        objective_key = settings.objective

        mlflow_ctx: Any = contextlib.nullcontext(None)
        if log_to_mlflow:
            mlflow_ctx = tracking.study_run(f"tune@{arch}", {"study_name": name, "arch": arch,
                                                             "tune": budget.params.tune.model_dump(mode="json"),
                                                             "space": space.model_dump(mode="json"),
                                                             "study": settings.model_dump(mode="json")},
                                            run_id=study.user_attrs.get(STUDY_RUN_ATTR),
                                            tags={"arch": arch, "optuna_study": name,
                                                  **{f"param_source.tune.{k}": v["source"]
                                                     for k, v in budget_doc.items()}})
        with mlflow_ctx as parent_id:
            if parent_id and study.user_attrs.get(STUDY_RUN_ATTR) != parent_id:
                study.set_user_attr(STUDY_RUN_ATTR, parent_id)
            while True:
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    log.info("tune@%s: timeout of %.0f s reached", arch, timeout)
                    break
                with study_lock(url, name):
                    recovery.recover_killed(study, work, params.tune.killed_retries, end_run)  # meanwhile
                    if recovery.budget_used(study) >= cap:
                        break
                    trial = study.ask()
                    _claim(trial, work)  # under the lock: no RUNNING trial is ever without its worker
                with recovery.heartbeat(study, trial):
                    records.append(_run_trial(study, trial, base, arch, space, data_dir, init_weights, work,
                                              objective_key, train_fn, log_to_mlflow, params.tune.keep_trials))
            result = _result(study, url, records, t0)
            if out_path is not None:
                write_outputs(study, arch, out_path, figures_dir, result, log_to_mlflow and parent_id is not None,
                              budget=budget_doc)
        return result


def _claim(trial: optuna.Trial, work: Path) -> None:
    """Record which worker runs ``trial`` and where (satsr.tune.recovery reads it after a kill)."""
    host, pid = _worker_id()
    trial.set_user_attr(recovery.HOST_ATTR, host)
    trial.set_user_attr(recovery.PID_ATTR, pid)
    trial.set_user_attr(recovery.DIR_ATTR, str(recovery.trial_dir(work, trial.number).absolute()))


def _run_trial(study, trial, base: Params, arch, space, data_dir, init_weights, work: Path, objective_key: str,
               train_fn, log_to_mlflow: bool, keep: bool) -> TrialRecord:
    host, pid = _worker_id()
    trial_dir = recovery.trial_dir(work, trial.number)
    t0 = time.perf_counter()
    train_s = 0.0
    state, value, reason = TrialState.FAIL, None, None
    values: dict[str, Any] = {}
    run_ctx: Any = contextlib.nullcontext(None)
    tracking = None
    try:
        values = spaces.suggest(trial, space)
        if log_to_mlflow:
            from satsr import tracking

            run_ctx = tracking.trial_run(trial.number, values, tags={"worker": f"{host}:{pid}",
                                                                     "optuna_study": study.study_name})
        with run_ctx as run_id:
            if run_id is not None:  # a worker killed from here on leaves it RUNNING: recovery ends it
                trial.set_user_attr(recovery.RUN_ATTR, run_id)

            def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
                v = float(metrics[objective_key])
                if run_id is not None:
                    # MLflow names carry the unit: fine-tuning validates on reflectance (satsr.train.validation)
                    tracking.log_metrics({f"{objective_key}_refl": v, "val_psnr_refl": metrics["val_psnr"]},
                                         step=epoch)
                if not math.isfinite(v):
                    raise ValueError(f"{objective_key} is {v} at epoch {epoch}")
                trial.report(v, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch} ({objective_key} {v:.4f})")

            try:
                tparams = spaces.apply_overrides(base, arch, values)
                t_train = time.perf_counter()
                try:
                    summary = train_fn(tparams, "finetune", arch, data_dir, trial_dir / "model", init_weights,
                                       ckpt_dir=trial_dir / "ckpt", restart=True, log_to_mlflow=False,
                                       on_epoch_end=on_epoch_end)
                finally:
                    train_s = time.perf_counter() - t_train
                value = float(summary["psnr_gain_db"] if objective_key == "val_psnr_gain" else summary["val_psnr"])
                if not math.isfinite(value):
                    raise ValueError(f"{objective_key} is {value}")
                state = TrialState.COMPLETE
            except optuna.TrialPruned as err:
                state, reason = TrialState.PRUNED, str(err)
            except Exception as err:  # noqa: BLE001 - OOM, NonFiniteLossError, bad combination: FAIL, go on
                reason = f"{type(err).__name__}: {err}"[:2000]
            if run_id is not None:
                if value is not None:
                    tracking.log_metrics({"value": value})
                tracking.set_tags({"state": state.name, **({"fail_reason": reason} if reason else {})})
    except Exception as err:  # noqa: BLE001 - sampling / MLflow trouble also fails only this trial
        reason = reason or f"{type(err).__name__}: {err}"[:2000]
        state, value = TrialState.FAIL, None
    # Ctrl-C / SystemExit propagate and leave the trial RUNNING, as a SIGKILL would: the next worker
    # of this host recovers it (satsr.tune.recovery: not counted, its values re-run).
    finally:
        if not keep:
            shutil.rmtree(trial_dir, ignore_errors=True)
    if reason:
        trial.set_user_attr("fail_reason" if state == TrialState.FAIL else "prune_reason", reason)
    if state == TrialState.FAIL:
        log.warning("tune@%s: trial %d FAILED: %s", arch, trial.number, reason)
    study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    seconds = time.perf_counter() - t0
    log.info("tune@%s: trial %d %s%s in %.1f s", arch, trial.number, state.name,
             f" value {value:.4f}" if value is not None else "", seconds)
    return TrialRecord(trial.number, state.name, value, seconds, train_s, reason)


def _result(study: optuna.Study, url: str, records: list[TrialRecord], t0: float) -> StudyResult:
    try:
        best = study.best_trial
        best_value, best_params, best_number = best.value, dict(best.params), best.number
    except ValueError:  # no COMPLETE trial
        best_value, best_params, best_number = None, {}, None
    return StudyResult(study.study_name, redact(url), best_value, best_params, best_number, _counts(study),
                       records, time.perf_counter() - t0)


# -------------------------------------------------------------------------------------- outputs
def save_figures(study: optuna.Study, folder: str | Path) -> list[Path]:
    """Optuna's matplotlib figures: history, importances (>= 2 complete trials), parallel
    coordinates, intermediate values. A figure that cannot be drawn is skipped with a log line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots = {"optimization_history": ovm.plot_optimization_history,
             "param_importances": ovm.plot_param_importances if n_complete >= 2 else None,
             "parallel_coordinate": ovm.plot_parallel_coordinate,
             "intermediate_values": ovm.plot_intermediate_values}
    written = []
    for name, fn in plots.items():
        if fn is None:
            log.info("figure %s skipped: needs 2 complete trials, have %d", name, n_complete)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = fn(study)
            fig = (ax[0] if hasattr(ax, "__len__") and not hasattr(ax, "figure") else ax).figure
            path = folder / f"{name}.png"
            fig.savefig(path, dpi=80, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
        except Exception as err:  # noqa: BLE001 - e.g. no trials with intermediate values
            log.info("figure %s skipped: %s: %s", name, type(err).__name__, err)
    return written


def write_outputs(study: optuna.Study, arch: str, out_path: str | Path, figures_dir: str | Path | None,
                  result: StudyResult, to_mlflow: bool, budget: dict[str, Any] | None = None) -> None:
    """best_params.yaml (with the study's ``base``: finetune@<arch> applies a tuned value only while
    params.yaml still holds it, satsr.resolve), figures, trials.csv and the MLflow tags."""
    spaces.write_best(out_path, arch, result.best_params,
                      {"tuned": True, "study": result.study_name, "best_trial": result.best_trial,
                       "best_value": result.best_value, "trials": result.counts,
                       **({"budget": budget} if budget else {}),
                       "base": dict(sorted((study.user_attrs.get(BASE_ATTR) or {}).items()))})
    if result.best_trial is None:
        log.warning("tune@%s: no complete trial; %s holds no overrides (fixed params)", arch, out_path)
    figures = save_figures(study, figures_dir) if figures_dir is not None else []
    if figures_dir is not None:
        with contextlib.suppress(Exception):
            study.trials_dataframe().to_csv(Path(figures_dir) / "trials.csv", index=False)
    if to_mlflow:
        from satsr import tracking

        for path in figures:
            tracking.log_artifact(path, "optuna")
        tracking.set_tags({"best_value": result.best_value, "best_trial": result.best_trial,
                           **{f"best.{k}": v for k, v in result.best_params.items()}})
        if result.best_value is not None:
            tracking.log_metrics({"best_value": result.best_value})


def write_fixed(out_path: str | Path, arch: str) -> Path:
    """tune.enabled false: best_params.yaml with no overrides (finetune uses the fixed values)."""
    return spaces.write_best(out_path, arch, {}, {"tuned": False})
