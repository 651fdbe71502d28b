"""Typed, validated view of params.yaml.

params.yaml is the single source of every tunable value. It is validated here, before any work
starts, so that a typo or an out-of-range value fails with the key path in the message instead of
surfacing as a crash half way through a download or a training run. Only this module reads it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The product's scale factor: Landsat 30 m -> Sentinel-2 10 m.
SCALE = 3
LR_PIXEL_M = 30.0
HR_PIXEL_M = 10.0

DEFAULT_PARAMS = Path("params.yaml")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PosInt = Annotated[int, Field(gt=0)]
LonLat = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key path."""


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- source
class Region(Strict):
    """A moving-square scan, as in the seed notebook.

    ``line``: start at ``start`` and step ``count`` times along ``heading_deg`` (0 = north, 90 = east).
    ``between``: ``count`` equally spaced centres from ``start`` to ``end`` inclusive.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    mode: Literal["line", "between"] = "line"
    start: LonLat
    end: LonLat | None = None
    heading_deg: Annotated[float, Field(ge=0, lt=360)] = 90.0
    count: PosInt = 1

    @model_validator(mode="after")
    def _end_for_between(self) -> Region:
        if self.mode == "between" and self.end is None:
            raise ValueError("mode 'between' needs 'end' as [lon, lat]")
        return self


class GeeParams(Strict):
    """Real Earth Engine sourcing. Credentials are never params: only the *path* of a key file or
    the project id may be given here, and environment variables win (see satsr.data.sources.gee)."""

    project: str | None = None
    credentials_file: str | None = None
    landsat_collections: list[str] = ["LANDSAT/LC08/C02/T1_L2"]
    include_landsat9: bool = False
    s2_collection: str = "COPERNICUS/S2_SR_HARMONIZED"
    cloud_score_collection: str = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
    start_date: dt.date = dt.date(2018, 1, 1)
    end_date: dt.date = dt.date(2024, 12, 31)
    max_days_apart: Annotated[int, Field(ge=0, le=30)] = 7
    max_scene_cloud_l8: Annotated[float, Field(ge=0, le=100)] = 20.0
    max_scene_cloud_s2: Annotated[float, Field(ge=0, le=100)] = 20.0
    min_clear_fraction_l8: Fraction = 0.98
    min_clear_fraction_s2: Fraction = 0.98
    cs_clear_threshold: Fraction = 0.6
    one_pair_per_month: bool = True
    step_factor: Annotated[float, Field(gt=0)] = 1.95
    regions: list[Region] = []
    max_concurrent_requests: Annotated[int, Field(ge=1, le=40)] = 8
    max_retries: Annotated[int, Field(ge=0, le=20)] = 6
    backoff_initial_s: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_s: Annotated[float, Field(gt=0)] = 60.0
    max_request_bytes: Annotated[int, Field(gt=0, le=48 * 1024 * 1024)] = 48 * 1024 * 1024
    max_request_side_px: Annotated[int, Field(gt=0, le=32768)] = 32768

    @model_validator(mode="after")
    def _dates(self) -> GeeParams:
        if self.end_date <= self.start_date:
            raise ValueError(f"end_date {self.end_date} must be after start_date {self.start_date}")
        return self


class FolderParams(Strict):
    """Import an existing dataset (the seed's TIF or PNG layout, or any matched pairs)."""

    path: str | None = None
    layout: Literal["seed_tif", "seed_png", "pattern"] = "seed_tif"
    #: For ``pattern``: regexes with a named group ``key`` that pairs the two files.
    lr_pattern: str = r"(?P<key>.+)_Landsat-8\.tif$"
    hr_pattern: str = r"(?P<key>.+)_Sentinel-2\.tif$"
    #: Large co-located scenes are cut into chips of ``source.lr_size`` LR pixels.
    cut_into_chips: bool = True
    #: Encoding of imported rasters: ``auto`` reads it from the file (dtype, scale/offset tags).
    lr_encoding: Literal["auto", "l8_c2_dn", "s2_dn", "reflectance", "uint8_stretched"] = "auto"
    hr_encoding: Literal["auto", "l8_c2_dn", "s2_dn", "reflectance", "uint8_stretched"] = "auto"


class DemoParams(Strict):
    """Offline demo: procedural Sentinel-2-like landscapes plus a simulated Landsat partner."""

    n_pairs: PosInt = 120
    n_locations: PosInt = 30
    bad_fraction: Fraction = 0.15
    seed: int = 7
    #: OLI point-spread function as a Gaussian, sigma in HR (10 m) pixels.
    psf_sigma_hr_px: Annotated[float, Field(ge=0)] = 1.2
    #: Sensor noise, standard deviation in reflectance.
    noise_reflectance: Annotated[float, Field(ge=0)] = 0.002
    #: Largest simulated sub-pixel misregistration of good pairs, in LR pixels.
    max_good_shift_lr_px: Annotated[float, Field(ge=0)] = 0.15
    #: Shift applied to deliberately misaligned bad pairs, in LR pixels.
    bad_shift_lr_px: Annotated[float, Field(gt=0)] = 1.5
    start_date: dt.date = dt.date(2019, 1, 1)
    #: Demo "locations" are laid out from here on a grid, as if scanned by a moving square.
    origin: LonLat = (-62.0, -3.5)


class SourceParams(Strict):
    provider: Literal["demo", "gee", "folder"] = "demo"
    #: LR chip side in 30 m pixels; the HR chip is exactly 3x (the seed used 265 / 795).
    lr_size: Annotated[int, Field(ge=8, le=4096)] = 128
    scale: Literal[3] = SCALE
    demo: DemoParams = DemoParams()
    gee: GeeParams = GeeParams()
    folder: FolderParams = FolderParams()

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale

    @property
    def buffer_m(self) -> float:
        """Half the chip side on the ground, the seed's moving-square 'buffer'."""
        return self.lr_size * LR_PIXEL_M / 2


# --------------------------------------------------------------------------------------- filter
class FilterParams(Strict):
    """Per-pair quality screening; every rejection gets a reason in the report."""

    #: Cloud: share of pixels whose visible mean reflectance exceeds ``cloud_reflectance``.
    cloud_reflectance: Annotated[float, Field(gt=0)] = 0.3
    max_cloud_fraction: Fraction = 0.01
    #: Haze (seed's percentile test): the ``haze_percentile`` of blue reflectance must stay below.
    haze_percentile: Annotated[float, Field(ge=0, le=100)] = 5.0
    max_haze_reflectance: Annotated[float, Field(gt=0)] = 0.12
    #: Bright percentile test (seed): the ``bright_percentile`` of visible reflectance.
    bright_percentile: Annotated[float, Field(ge=0, le=100)] = 99.0
    max_bright_reflectance: Annotated[float, Field(gt=0)] = 0.5
    max_nodata_fraction: Fraction = 0.0
    max_saturated_fraction: Fraction = 0.001
    #: Misregistration between HR area-downsampled to 30 m and LR, in LR pixels.
    max_shift_lr_px: Annotated[float, Field(ge=0)] = 0.5
    correct_shift: bool = False
    #: Shifts up to this size are corrected (LR resampled) when ``correct_shift`` is on.
    max_correctable_shift_lr_px: Annotated[float, Field(ge=0)] = 1.0
    upsample_factor: Annotated[int, Field(ge=1, le=1000)] = 20
    #: Change on the ground / different scenes: Pearson r of grey LR vs downsampled HR.
    min_correlation: Annotated[float, Field(ge=-1, le=1)] = 0.7
    #: Flat, featureless chips: mean gradient magnitude of grey HR reflectance.
    min_sharpness: Annotated[float, Field(ge=0)] = 0.002
    review_file: str = "data/review/rejected.txt"
    contact_sheet_max_pairs: PosInt = 500
    quicklook_px: Annotated[int, Field(ge=16, le=1024)] = 128


# ---------------------------------------------------------------------------------------- split
class SplitParams(Strict):
    seed: int = 42
    train: Fraction = 0.8
    val: Fraction = 0.1
    test: Fraction = 0.1
    #: Chips whose centres fall into the same cell of this size never straddle two splits.
    group_cell_m: Annotated[float, Field(gt=0)] = 20000.0

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        return self


# ------------------------------------------------------------------------------------------ png
class PngParams(Strict):
    """Reflectance -> 16-bit PNG: png = round((clip(r, lo, hi) - lo) / (hi - lo) * 65535).

    Inverse: r = lo + png / 65535 * (hi - lo). Training reads png / 65535 in [0, 1].
    """

    reflectance_min: float = -0.1
    reflectance_max: float = 1.0
    #: 8-bit quicklooks for people: a fixed (not per-image) stretch, so images stay comparable.
    quicklook_max_reflectance: Annotated[float, Field(gt=0)] = 0.3
    quicklook_gamma: Annotated[float, Field(gt=0)] = 1.8
    workers: Annotated[int, Field(ge=1, le=64)] = 2

    @model_validator(mode="after")
    def _range(self) -> PngParams:
        if self.reflectance_max <= self.reflectance_min:
            raise ValueError("reflectance_max must be greater than reflectance_min")
        return self


class Params(Strict):
    """The whole of params.yaml. Later stages (training, evaluation, tuning) add their sections."""

    seed: int = 42
    source: SourceParams = SourceParams()
    filter: FilterParams = FilterParams()
    split: SplitParams = SplitParams()
    png: PngParams = PngParams()


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


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (expected a YAML mapping, see README)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return parse_params(raw or {}, origin=str(path))


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
