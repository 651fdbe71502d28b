"""The effective parameters of a stage: the values it really runs with, and where each one came from.

Every entry point uses this one function, :func:`effective_params`: the ``satsr`` command, the DVC
stages (thin scripts calling it) and the Python API (:func:`train_effective`, or
``effective_params(...).params`` passed to ``satsr.train.trainer.train_stage``). The precedence is
the same everywhere, highest first:

1. **command line**: ``satsr tune --n-trials / --timeout`` (this run only);
2. **params.yaml, changed after tuning**: a searched key whose params.yaml value differs from the
   value the study ran with (its ``base``, recorded in ``models/tune/<arch>/best_params.yaml``) was
   set explicitly afterwards -- by ``dvc exp run -S finetune.<arch>.lr=1e-5`` or an edit -- so it
   wins and the tuned value is reported as not used;
3. **tune**: the study's best value of a searched key (``finetune@<arch>`` with ``tune.enabled``),
   while params.yaml still holds the study's base value;
4. **params.yaml**: every other value.

Consequences worth knowing: setting a searched key back to exactly its base value gives the tuned
value again (to pin it, set ``tune.enabled: false`` or drop the key from experiments/<arch>.yaml);
the study's budget is params.yaml ``tune.n_trials`` / ``tune.timeout_s`` only (experiments/study.yaml
holds no budget; a value there is an error); a best_params.yaml without a base, or with a tuned key
params.yaml no longer has, stops the stage with a message saying what to rerun.

:func:`write_effective` writes ``effective_params.yaml`` next to the model: every effective value,
its source, and one entry per decided key (value, source, the params.yaml and tuned values, why).
:func:`log_effective` puts the same into the stage's MLflow run (through satsr.tracking): the file
as an artifact and a ``param_source.<key>`` tag per decided key.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from satsr.config import Params, ParamsError, flatten, parse_params
from satsr.errors import SatsrError

log = logging.getLogger(__name__)

SOURCE_CLI = "command line"
SOURCE_PARAMS = "params.yaml"
SOURCE_TUNE = "tune"
EFFECTIVE_FILE = "effective_params.yaml"
PRECEDENCE = ("command line > params.yaml value changed since the study > tuned value (best_params.yaml) "
              "> params.yaml")


class ResolveError(SatsrError, ValueError):
    """The effective parameters cannot be decided; the message names the file and key."""


@dataclass(frozen=True)
class Decision:
    """One key whose value did not simply come from params.yaml (or that a study tuned)."""

    key: str                    # full dotted key, as `dvc exp run -S` spells it
    value: Any                  # the effective value
    source: str                 # SOURCE_CLI | SOURCE_PARAMS | SOURCE_TUNE
    params_yaml: Any            # the params.yaml value
    reason: str
    tuned: Any = None           # the study's best value (tuned keys)
    base: Any = None            # the params.yaml value the study ran with (tuned keys)

    def as_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "source": self.source, "params_yaml": self.params_yaml}
        if self.source == SOURCE_TUNE or self.tuned is not None:
            out.update(tuned=self.tuned, study_base=self.base)
        out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Effective:
    """The effective parameters of one stage run (module doc)."""

    stage: str
    arch: str | None
    params: Params
    values: dict[str, Any]
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    best_params: str | None = None

    @property
    def sources(self) -> dict[str, str]:
        """Source of every effective value (params.yaml unless decided otherwise)."""
        out = dict.fromkeys(self.values, SOURCE_PARAMS)
        out.update({d.key: d.source for d in self.decisions})
        return out

    @property
    def overridden(self) -> list[Decision]:
        """Decisions whose value is not the params.yaml value."""
        return [d for d in self.decisions if d.source != SOURCE_PARAMS]

    def to_doc(self) -> dict[str, Any]:
        return {"stage": self.stage, "arch": self.arch, "precedence": PRECEDENCE,
                "best_params": self.best_params, "notes": list(self.notes),
                "decisions": {d.key: d.as_dict() for d in self.decisions},
                "values": dict(self.values), "sources": self.sources}


# ------------------------------------------------------------------------------------- helpers
def _same(a: Any, b: Any) -> bool:
    """Equal as parameter values (floats compared to 1e-12 relative: YAML round trips)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _sections(stage: str, arch: str | None) -> tuple[str, ...]:
    """Top-level params sections a stage reads (the flat ``values`` cover these)."""
    if stage in ("pretrain", "finetune") and arch:
        return (f"{stage}.{arch}", f"models.{arch}", "train", "seed")
    if stage == "tune" and arch:
        return ("tune", f"finetune.{arch}", f"models.{arch}", "seed")
    return (stage,) if stage else ()


def _flat_values(params: Params, stage: str, arch: str | None) -> dict[str, Any]:
    raw = params.model_dump(mode="json")
    out: dict[str, Any] = {}
    for dotted in _sections(stage, arch):
        node: Any = raw
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            out.update(flatten(node, f"{dotted}."))
        elif node is not None:
            out[dotted] = node
    return out


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ResolveError(f"{key}: no such parameter (no section {part!r})")
        node = node[part]
    if parts[-1] not in node:
        raise ResolveError(f"{key}: no such parameter")
    node[parts[-1]] = value


def _get_dotted(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        node = node[part]
    return node


# ------------------------------------------------------------------------------------ resolving
def effective_params(params: Params, stage: str, arch: str | None = None, *,
                     best_params: str | Path | None = None,
                     cli: dict[str, Any] | None = None) -> Effective:
    """The effective parameters of ``stage`` (``pretrain`` | ``finetune`` | ``tune`` | any other
    stage name) for ``arch``, by the precedence of the module doc.

    ``best_params``: the study's output (default ``models/tune/<arch>/best_params.yaml``; read by
    ``finetune`` only, when ``tune.enabled``). ``cli``: full dotted keys set on the command line
    (``{"tune.n_trials": 20}``; None values are ignored).
    """
    decisions: list[Decision] = []
    notes: list[str] = []
    best_str = None
    if stage == "finetune" and arch:
        from satsr import paths

        best = Path(best_params) if best_params is not None else paths.best_params(arch)
        best_str = str(best)
        params, tuned_decisions, tuned_notes = _apply_tuned(params, arch, best)
        decisions += tuned_decisions
        notes += tuned_notes
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    if cli:
        raw = params.model_dump(mode="json")
        before = {k: _get_dotted(raw, k) for k in cli if _has(raw, k)}
        for key, value in cli.items():
            _set_dotted(raw, key, value)
        try:
            params = parse_params(raw, origin="command-line values")
        except ParamsError as err:
            raise ResolveError(str(err)) from None
        after = params.model_dump(mode="json")
        decisions = [d for d in decisions if d.key not in cli]
        decisions += [Decision(k, _get_dotted(after, k), SOURCE_CLI, before.get(k), "set on the command line")
                      for k in cli]
    return Effective(stage, arch, params, _flat_values(params, stage, arch), decisions, notes, best_str)


def _has(raw: dict[str, Any], key: str) -> bool:
    try:
        _get_dotted(raw, key)
    except (KeyError, TypeError):
        return False
    return True


def _apply_tuned(params: Params, arch: str, best: Path) -> tuple[Params, list[Decision], list[str]]:
    """finetune@<arch>: apply the study's best values where params.yaml was not changed since."""
    from satsr.tune import spaces

    if not params.tune.enabled:
        return params, [], [f"tune.enabled is false: {best} not read; every value from params.yaml"]
    if not best.is_file():
        msg = (f"{best} not found (run `dvc repro tune@{arch}` or `satsr tune {arch}`); every value from "
               f"params.yaml")
        log.warning("finetune@%s: %s", arch, msg)
        return params, [], [msg]
    doc = spaces.read_best_doc(best, arch)
    overrides: dict[str, Any] = doc["overrides"]
    if not doc.get("tuned", True) or not overrides:
        return params, [], [f"{best}: no tuned values (tuned: {doc.get('tuned')}); every value from params.yaml"]
    base = doc.get("base")
    if not isinstance(base, dict):
        raise ResolveError(
            f"{best}: no 'base' (the params.yaml values the study ran with), so a value set explicitly with "
            f"`dvc exp run -S` cannot be told from an untouched one. Rerun the study (`dvc repro tune@{arch}` or "
            f"`satsr tune {arch}`), or set tune.enabled: false to train with params.yaml alone")
    apply: dict[str, Any] = {}
    decisions: list[Decision] = []
    for name, tuned in sorted(overrides.items()):
        section, _, rel = name.partition(".")
        key = f"{section}.{arch}.{rel}"
        try:
            current, by_name = spaces.get_value(params, arch, name)
        except spaces.SpaceError:
            raise ResolveError(
                f"{best}: tuned key {name!r} names no parameter of {section}.{arch} in params.yaml (the search "
                f"space or the params changed since the study); rerun `dvc repro tune@{arch}`, or remove the "
                f"file and set tune.enabled: false") from None
        where = (f" (a list item chosen by name: set it in params.yaml under {section}.{arch}, `-S` cannot address "
                 "it by name)") if by_name else ""
        if name not in base:
            raise ResolveError(f"{best}: tuned key {name!r} has no recorded base value; rerun `dvc repro tune@{arch}`")
        if not _same(current, base[name]):
            decisions.append(Decision(key, current, SOURCE_PARAMS, current,
                                      f"params.yaml changed since the study (base {base[name]!r}): the explicit "
                                      f"value wins, tuned {tuned!r} not used{where}", tuned, base[name]))
        else:
            apply[name] = tuned
            decisions.append(Decision(key, tuned, SOURCE_TUNE, current,
                                      f"tuned by study {doc.get('study')} (trial {doc.get('best_trial')}); "
                                      f"params.yaml still holds the study's base value{where}", tuned, base[name]))
    try:
        params = spaces.apply_overrides(params, arch, apply)
    except spaces.SpaceError as err:
        raise ResolveError(f"{best}: {err}") from None
    return params, decisions, []


# ------------------------------------------------------------------------------------ recording
def describe(eff: Effective) -> list[str]:
    """One log line per decided key."""
    return [f"{d.key} = {d.value!r} from {d.source} ({d.reason})" for d in eff.decisions]


def write_effective(eff: Effective, folder: str | Path) -> Path:
    """``<folder>/effective_params.yaml`` (module doc), atomically."""
    from satsr.util import write_text_atomic

    path = Path(folder) / EFFECTIVE_FILE
    name = f"{eff.stage}@{eff.arch}" if eff.arch else eff.stage
    text = (f"# Effective parameters of {name}: what it ran with and where each value came from\n"
            f"# (satsr.resolve; precedence: {PRECEDENCE}).\n")
    write_text_atomic(path, text + yaml.safe_dump(eff.to_doc(), sort_keys=False))
    return path


def log_effective(eff: Effective, run_id: str | None, path: str | Path | None = None) -> None:
    """Tag the stage's MLflow run ``run_id`` with ``param_source.<key>`` (source) and
    ``param_reason.<key>`` per decided key, and attach ``effective_params.yaml``. No-op without a run."""
    if not run_id:
        return
    from satsr import tracking

    tracking.configure(eff.params)
    with tracking.existing_run(run_id):
        tags: dict[str, Any] = {"effective_params.precedence": PRECEDENCE}
        for d in eff.decisions:
            tags[f"param_source.{d.key}"] = d.source
            tags[f"param_reason.{d.key}"] = d.reason
        tracking.set_tags(tags)
        if path is not None and Path(path).is_file():
            tracking.log_artifact(path)
        else:
            tracking.log_dict(eff.to_doc(), EFFECTIVE_FILE)


def train_effective(params: Params, stage: str, arch: str, *, best_params: str | Path | None = None,
                    **train_kwargs: Any) -> dict[str, Any]:
    """The Python API of a training stage: resolve the effective parameters, write
    ``effective_params.yaml`` into ``out_dir``, train (satsr.train.trainer.train_stage with
    ``train_kwargs``) and log the sources to the run. Returns the trainer's summary."""
    from satsr.train.trainer import train_stage

    eff = effective_params(params, stage, arch, best_params=best_params)
    for line in describe(eff):
        log.info("%s@%s: %s", stage, arch, line)
    for note in eff.notes:
        log.info("%s@%s: %s", stage, arch, note)
    out_dir = Path(train_kwargs["out_dir"])
    path = write_effective(eff, out_dir)
    summary = train_stage(eff.params, stage, arch, **train_kwargs)
    if train_kwargs.get("log_to_mlflow", True):
        log_effective(eff, summary.get("mlflow_run_id"), path)
    return summary
