"""Typed, validated view of params.yaml.

params.yaml is the single source of every tunable value. It is validated here, before any work
starts, so that a typo or an out-of-range value fails with the key path in the message instead of
surfacing as a crash half way through a download or a training run. Only this module reads it.

The sections live in submodules by domain (base, data, training, runtime, release); this module
assembles ``Params`` and loads params.yaml, and re-exports every section, so callers import
``satsr.config`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, field_validator, model_validator

from satsr.config.base import (  # noqa: F401  (re-exported: satsr.config is the one import)
    DEFAULT_PARAMS,
    HR_PIXEL_M,
    LR_PIXEL_M,
    SCALE,
    Fraction,
    LonLat,
    ParamsError,
    PosInt,
    Strict,
)
from satsr.config.data import (  # noqa: F401  (re-exported: satsr.config is the one import)
    DemoParams,
    FilterParams,
    FolderParams,
    GeeParams,
    InputParams,
    NaturalParams,
    PngParams,
    Region,
    S2SimInput,
    S2SimParams,
    SensorAmplitudes,
    SourceParams,
    SplitParams,
    _s2sim_input,
)
from satsr.config.release import (  # noqa: F401  (re-exported: satsr.config is the one import)
    ReleasePair,
    ReleaseParams,
    ReleaseSensor,
)
from satsr.config.runtime import (  # noqa: F401  (re-exported: satsr.config is the one import)
    CalibratePair,
    CalibrateParams,
    CorrectnessParams,
    EvaluateParams,
    LockParams,
    PredictParams,
    SelectParams,
    TrackingParams,
    TuneParams,
)
from satsr.config.training import (  # noqa: F401  (re-exported: satsr.config is the one import)
    _PRETRAIN,
    _PRETRAIN_GAN,
    ARCH_NAMES,
    ARCHITECTURES,
    DEFAULT_GAN_PHASES,
    GAN_ARCH_NAMES,
    ArchName,
    ArchSpec,
    DetailParams,
    EDSRParams,
    GanPhase,
    GlobalResidual,
    KernelSize,
    ModelsParams,
    OptimizerParams,
    PerArch,
    PretrainPerArch,
    RDNParams,
    RRDNParams,
    ScheduleParams,
    SRGANParams,
    TrainParams,
    TrainStageParams,
    _per_arch,
    check_unique_archs,
)


class Params(Strict):
    """The whole of params.yaml. Later stages (training, evaluation, tuning) add their sections."""

    seed: int = 42
    #: The architectures the pipeline trains, tunes and evaluates (dvc.yaml: ``foreach: ${archs}``); each
    #: must be registered in ``ARCHITECTURES``.
    archs: list[ArchName] = list(ARCH_NAMES)
    source: SourceParams = SourceParams()
    filter: FilterParams = FilterParams()
    split: SplitParams = SplitParams()
    png: PngParams = PngParams()
    natural: NaturalParams = NaturalParams()
    models: ModelsParams = ModelsParams()
    train: TrainParams = TrainParams()
    pretrain: PretrainPerArch = PretrainPerArch()
    finetune: PerArch = PerArch()
    tracking: TrackingParams = TrackingParams()
    evaluate: EvaluateParams = EvaluateParams()
    select: SelectParams = SelectParams()
    predict: PredictParams = PredictParams()
    tune: TuneParams = TuneParams()
    locks: LockParams = LockParams()
    calibrate: CalibrateParams = CalibrateParams()
    release: ReleaseParams = ReleaseParams()

    @model_validator(mode="before")
    @classmethod
    def _select_defaults_to_archs(cls, raw: Any) -> Any:
        """``select.archs`` left out = the pipeline's ``archs`` (so the list lives in one place)."""
        archs = raw.get("archs") if isinstance(raw, dict) else None
        if isinstance(archs, list) and archs and set(archs) <= set(ARCH_NAMES) and len(set(archs)) == len(archs):
            select = raw.get("select")
            if select is None or (isinstance(select, dict) and "archs" not in select):
                raw = {**raw, "select": {**(select or {}), "archs": raw["archs"]}}
        return raw

    @field_validator("archs")
    @classmethod
    def _archs_unique(cls, archs: list[str]) -> list[str]:
        check_unique_archs(archs, "archs")
        return archs

    @model_validator(mode="after")
    def _archs_are_trained(self) -> Params:
        untrained = [a for a in self.select.archs if a not in self.archs]
        if untrained:
            raise ValueError(f"select.archs {untrained} are not in archs {self.archs}: the pipeline trains only archs")
        return self


# ------------------------------------------------------------------------------------- loading
def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid parameters ({err.error_count()} problem(s)):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see params.yaml for the valid keys)"
        got = e.get("input")
        shown = "" if e["type"] == "extra_forbidden" or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {path}: {msg}{shown}")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any], origin: str = "params") -> Params:
    """Validate a mapping; raise ParamsError naming every bad key path."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(_format_errors(err, origin)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key repeated in one mapping (plain PyYAML keeps the last one silently,
    so a second ``lr_size:`` further down would quietly override the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # unhashable keys (a list): SafeLoader's own error below
            if key in seen:
                raise _DuplicateKey(f"line {line}: duplicate key {key!r} (expected each key once per section; "
                                    f"it is first set at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    """A key repeated in one mapping (raised by _UniqueKeyLoader; its message is one line)."""


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate the parameters file; every problem is a ParamsError naming the file and key.

    An empty file (or one with only comments) is an error rather than "all defaults": it is far more
    often a truncated or wrongly named file than a choice; write ``{}`` to ask for the defaults."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (expected a YAML mapping, see README)")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as err:
        raise ParamsError(f"{path}: {err}") from None
    except yaml.MarkedYAMLError as err:
        where = f"line {err.problem_mark.line + 1}: " if err.problem_mark else ""
        raise ParamsError(f"{path}: {where}not valid YAML: {err.problem} (expected a YAML mapping"
                          f"{', ' + err.context if err.context else ''})") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if raw is None:
        raise ParamsError(f"{path}: the file is empty (expected a YAML mapping of parameters; "
                          "write {} to use every default)")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_params(raw, origin=str(path))


def flatten(obj: BaseModel | dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value, for logging a section as flat params."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
