"""Search spaces (experiments/<arch>.yaml) and study settings (experiments/study.yaml).

A space names the values that vary, relative to ``finetune.<arch>`` (and, under ``models:``, to
``models.<arch>``), each with its distribution::

    arch: rdn
    finetune:
      lr: {type: float, low: 1.0e-5, high: 2.0e-3, log: true}
      input.lr_patch: {type: int, low: 16, high: 32, step: 8}
      input.batch_size: {type: categorical, choices: [4, 8, 16]}
      schedule.name: {type: categorical, choices: [constant, cosine]}
      gan.gan.perceptual_weight: {type: float, low: 0.01, high: 1.0, log: true}   # phase by name

Both files are validated with pydantic; an error names the file and the key path. Sampled values
are applied as overrides of the validated Params, so an impossible combination fails the trial
with the params error instead of training on something else.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from satsr.config import ARCH_NAMES, ArchName, Params, ParamsError, parse_params
from satsr.errors import SatsrError
from satsr.util import write_text_atomic

STUDY_FILE = "study.yaml"


class SpaceError(SatsrError, ValueError):
    """A search-space or study YAML is missing or invalid; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatDist(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatDist:
        if self.high < self.low:
            raise ValueError(f"high {self.high} must be >= low {self.low}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("step cannot be combined with log: true")
        return self


class IntDist(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: Annotated[int, Field(gt=0)] = 1

    @model_validator(mode="after")
    def _check(self) -> IntDist:
        if self.high < self.low:
            raise ValueError(f"high {self.high} must be >= low {self.low}")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("log: true needs low > 0 and step 1")
        return self


class CategoricalDist(_Strict):
    type: Literal["categorical"]
    choices: Annotated[list[bool | int | float | str | None], Field(min_length=1)]


Distribution = Annotated[FloatDist | IntDist | CategoricalDist, Field(discriminator="type")]


class SearchSpace(_Strict):
    """experiments/<arch>.yaml."""

    arch: ArchName
    description: str = ""
    #: dotted key relative to finetune.<arch> -> distribution
    finetune: dict[str, Distribution] = {}
    #: dotted key relative to models.<arch> -> distribution (needs trials from scratch: the
    #: pretrained weights fix the architecture)
    models: dict[str, Distribution] = {}

    @model_validator(mode="after")
    def _not_empty(self) -> SearchSpace:
        if not self.finetune and not self.models:
            raise ValueError("the space varies nothing: add keys under finetune (or models)")
        return self

    def items(self) -> list[tuple[str, str, Any]]:
        """(section, key, distribution); the Optuna param name is ``<section>.<key>``."""
        return ([("finetune", k, d) for k, d in self.finetune.items()]
                + [("models", k, d) for k, d in self.models.items()])


class SamplerSettings(_Strict):
    name: Literal["tpe", "random"] = "tpe"
    seed: int | None = 42
    n_startup_trials: Annotated[int, Field(ge=0)] = 2
    multivariate: bool = False


class PrunerSettings(_Strict):
    name: Literal["hyperband", "successive_halving", "median", "none"] = "hyperband"
    min_resource: Annotated[int, Field(ge=1)] = 1
    #: hyperband: max_resource (epochs); null = tune.epochs
    max_resource: Annotated[int, Field(ge=1)] | None = None
    reduction_factor: Annotated[int, Field(ge=2)] = 3
    #: median: trials before pruning starts, and epochs before a trial can be pruned
    n_startup_trials: Annotated[int, Field(ge=0)] = 2
    n_warmup_steps: Annotated[int, Field(ge=0)] = 0


class StudySettings(_Strict):
    """experiments/study.yaml."""

    #: val_psnr_gain: validation PSNR gain over bicubic, dB (maximise).
    objective: Literal["val_psnr_gain", "val_psnr"] = "val_psnr_gain"
    direction: Literal["maximize", "minimize"] = "maximize"
    sampler: SamplerSettings = SamplerSettings()
    pruner: PrunerSettings = PrunerSettings()


#: Budget keys that live in params.yaml ``tune:`` only (one place; satsr.resolve has the precedence).
BUDGET_KEYS = ("n_trials", "timeout_s")


def _errors(err: ValidationError, origin: Path) -> str:
    lines = [f"{origin}: invalid ({err.error_count()} problem(s)):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  - {path}: {msg}")
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpaceError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpaceError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_space(path: str | Path, arch: str | None = None) -> SearchSpace:
    path = Path(path)
    try:
        space = SearchSpace.model_validate(_read_yaml(path))
    except ValidationError as err:
        raise SpaceError(_errors(err, path)) from None
    if arch is not None and space.arch != arch:
        raise SpaceError(f"{path}: arch: {space.arch!r} but the study is for {arch!r}")
    for section, key, _ in space.items():  # every key must name an existing value
        try:
            _get(_section_dict(Params(), section, space.arch), key.split("."))
        except KeyError as err:
            raise SpaceError(f"{path}: {section}.{key}: no such parameter in {section}.{space.arch} "
                             f"({err.args[0]})") from None
    return space


def load_study_settings(path: str | Path) -> StudySettings:
    """experiments/study.yaml. It holds no budget: ``n_trials`` / ``timeout_s`` there once silently beat
    params.yaml; now a value there is an error (null is accepted and ignored)."""
    path = Path(path)
    raw = _read_yaml(path)
    for key in BUDGET_KEYS:
        if raw.get(key) is not None:
            flag = "--n-trials" if key == "n_trials" else "--timeout"
            raise SpaceError(f"{path}: {key}: {raw[key]!r}: the study budget is params.yaml tune.{key} (one place; "
                             f"`dvc exp run -S tune.{key}=...`, or `satsr tune {flag}` for one run); "
                             f"remove {key} from {path.name}")
        raw.pop(key, None)
    try:
        return StudySettings.model_validate(raw)
    except ValidationError as err:
        raise SpaceError(_errors(err, path)) from None


def load_all(spaces_dir: str | Path, arch: str) -> tuple[SearchSpace, StudySettings]:
    if arch not in ARCH_NAMES:
        raise SpaceError(f"unknown architecture {arch!r}; valid: {', '.join(ARCH_NAMES)}")
    d = Path(spaces_dir)
    return load_space(d / f"{arch}.yaml", arch), load_study_settings(d / STUDY_FILE)


# ---------------------------------------------------------------------------------- sampling
def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Sample every value of ``space`` with ``trial`` (Optuna); returns {"finetune.lr": 3e-4, ...}."""
    out: dict[str, Any] = {}
    for section, key, d in space.items():
        name = f"{section}.{key}"
        if isinstance(d, FloatDist):
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, IntDist):
            out[name] = trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
        else:
            out[name] = trial.suggest_categorical(name, list(d.choices))
    return out


# ------------------------------------------------------------------------------ applying values
def _section_dict(params: Params, section: str, arch: str) -> dict[str, Any]:
    return getattr(getattr(params, section), arch).model_dump(mode="json")


def _step(node: Any, part: str) -> tuple[Any, Any]:
    """(container, index) of ``part`` in ``node``: dict key, list index or list item by ``name``."""
    if isinstance(node, dict):
        if part not in node:
            raise KeyError(part)
        return node, part
    if isinstance(node, list):
        if part.isdigit() and int(part) < len(node):
            return node, int(part)
        for i, item in enumerate(node):
            if isinstance(item, dict) and item.get("name") == part:
                return node, i
    raise KeyError(part)


def _get(node: Any, parts: list[str]) -> Any:
    for part in parts:
        c, i = _step(node, part)
        node = c[i]
    return node


def get_value(params: Params, arch: str, name: str) -> tuple[Any, bool]:
    """The params value of a flat override name (``finetune.input.lr_patch``) and whether its path
    picks a list item by name (``gan.gan.perceptual_weight``). SpaceError when there is none."""
    section, _, key = name.partition(".")
    if section not in ("finetune", "models"):
        raise SpaceError(f"{name}: overrides must start with finetune. or models.")
    node: Any = _section_dict(params, section, arch)
    by_name = False
    try:
        for part in key.split("."):
            c, i = _step(node, part)
            by_name = by_name or (isinstance(c, list) and not part.isdigit())
            node = c[i]
    except KeyError as err:
        raise SpaceError(f"{name}: no such parameter in {section}.{arch} ({err.args[0]})") from None
    return node, by_name


def base_values(params: Params, arch: str, space: SearchSpace) -> dict[str, Any]:
    """The params values of every searched key (``{"finetune.lr": 5e-4}``): a study's base."""
    return {f"{section}.{key}": get_value(params, arch, f"{section}.{key}")[0] for section, key, _ in space.items()}


def masked_section(params: Params, section: str, arch: str, space: SearchSpace) -> dict[str, Any]:
    """``section.<arch>`` with every searched value replaced by a marker: what a trial trains does not
    depend on them (they are sampled), so the study name must not either."""
    out = _section_dict(params, section, arch)
    for sec, key, _ in space.items():
        if sec == section:
            _set(out, key.split("."), "<searched>")
    return out


def _set(node: Any, parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        c, i = _step(node, part)
        node = c[i]
    c, i = _step(node, parts[-1])
    c[i] = value


def nest(values: dict[str, Any], arch: str, params: Params) -> dict[str, dict[str, Any]]:
    """Flat ``{"finetune.input.lr_patch": 16}`` -> the full new sections ``{"finetune": {...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        section, _, key = name.partition(".")
        if section not in ("finetune", "models"):
            raise SpaceError(f"{name}: overrides must start with finetune. or models.")
        sec = out.setdefault(section, _section_dict(params, section, arch))
        try:
            _set(sec, key.split("."), value)
        except KeyError as err:
            raise SpaceError(f"{name}: no such parameter in {section}.{arch} ({err.args[0]})") from None
    return out


def apply_overrides(params: Params, arch: str, values: dict[str, Any]) -> Params:
    """A new validated Params with the flat ``values`` applied to finetune.<arch> / models.<arch>."""
    if not values:
        return params
    raw = params.model_dump(mode="json")
    for section, new in nest(values, arch, params).items():
        raw[section][arch] = new
    try:
        return parse_params(raw, origin=f"tuned values for {arch}")
    except ParamsError as err:
        raise SpaceError(str(err)) from None


# ------------------------------------------------------------------------------- best params
def write_best(path: str | Path, arch: str, values: dict[str, Any], meta: dict[str, Any]) -> Path:
    """models/tune/<arch>/best_params.yaml: flat overrides + where they came from."""
    doc = {"arch": arch, **meta, "overrides": dict(sorted(values.items()))}
    return write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False))


def read_best_doc(path: str | Path, arch: str) -> dict[str, Any]:
    """The whole best_params.yaml, checked: ``arch``, ``overrides`` (and ``base``, when present) mappings."""
    path = Path(path)
    doc = _read_yaml(path)
    if doc.get("arch") != arch:
        raise SpaceError(f"{path}: arch: {doc.get('arch')!r}, expected {arch!r}")
    doc["overrides"] = doc.get("overrides") or {}
    for key in ("overrides", "base"):
        if key in doc and not isinstance(doc[key], dict):
            raise SpaceError(f"{path}: {key}: expected a mapping of dotted keys")
    return doc


def read_best(path: str | Path, arch: str) -> dict[str, Any]:
    return read_best_doc(path, arch)["overrides"]


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (study names change when the search changes)."""
    text = json.dumps(copy.deepcopy(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]
