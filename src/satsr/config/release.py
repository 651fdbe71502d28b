"""The ``release:`` section: the recipe of the released weights."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    model_validator,
)

from satsr.config.base import Fraction, PosInt, Strict
from satsr.config.data import SensorAmplitudes
from satsr.config.training import DetailParams


# -------------------------------------------------------------------------------------- release
class ReleasePair(Strict):
    """A co-located real Landsat / Sentinel-2 pair, cut on its common exactly nested window.

    ``train`` / ``val`` / ``test``: LR-row fractions [start, end) of the window given to each role
    (spatially disjoint; leave a gap); an empty list gives the role nothing of this pair.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    lr: str
    hr: str
    #: 8-bit stretched pairs: pseudo-reflectance (DN / 255) times this, to a reflectance-like range.
    pseudo_scale: Annotated[float, Field(gt=0)] = 1.0
    train: list[tuple[Fraction, Fraction]] = []
    val: list[tuple[Fraction, Fraction]] = []
    test: list[tuple[Fraction, Fraction]] = []


class ReleaseSensor(SensorAmplitudes):
    """Sensor-model amplitudes of the release recipe's simulated pairs (satsr.data.sensor.SensorParams)."""

    psf_sigma_hr_px: Annotated[float, Field(ge=0, le=5)] = 1.4
    gain_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.05
    offset_jitter: Annotated[float, Field(ge=0, le=0.1)] = 0.01
    max_shift_lr_px: Annotated[float, Field(ge=0, le=2)] = 0.25
    change_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.1


class ReleaseParams(Strict):
    """``satsr release train``: the recipe of the released weights (satsr.release).

    Paths are relative to ``data_root`` (a user's clone has no ../shared: the command then says so).
    """

    data_root: str = "../shared/realdata"
    out_dir: str = "weights/release"
    work_dir: str = ".satsr/release"
    #: Real Sentinel-2 scenes (files, globs or BigEarthNet band folders) partnered by the sensor model.
    s2_train: list[str] = []
    s2_val: list[str] = []
    s2_test: list[str] = []
    #: Integer rasters without band scale/offset metadata (BigEarthNet L2A): reflectance = DN * this.
    s2_fallback_scale: Annotated[float, Field(gt=0)] | None = 1.0e-4
    #: Simulated draws of the sensor model per S2 chip (train); val/test chips get one.
    sim_draws: PosInt = 4
    pairs: list[ReleasePair] = []
    sensor: ReleaseSensor = ReleaseSensor()
    #: The architecture (the same section type as models.detail; fine-tuning starts from it with
    #: finetune.detail.init: release).
    model: DetailParams = DetailParams()
    lr_patch: Annotated[int, Field(ge=8, le=512)] = 32
    batch_size: PosInt = 16
    #: Share of each batch drawn from the real pairs' train parts (the rest: simulated from real S2).
    real_fraction: Fraction = 0.5
    steps: PosInt = 3000
    lr: Annotated[float, Field(gt=0, le=1)] = 2.0e-4
    #: Registered L1 (satsr.train.losses): best over +- this many HR px after per-band bias removal.
    loss_max_shift: Annotated[int, Field(ge=0, le=8)] = 2
    checkpoint_every: PosInt = 100
    validate_every: PosInt = 250
    #: Evaluation chips (LR px) of the val / test parts.
    eval_chip: Annotated[int, Field(ge=16, le=1024)] = 48
    #: Detail strengths tried when calibrating alpha on the validation parts (0 = bicubic).
    alpha_grid: list[Fraction] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    seed: int = 0

    @model_validator(mode="after")
    def _alpha_grid_has_zero(self) -> ReleaseParams:
        if 0.0 not in self.alpha_grid:
            raise ValueError("alpha_grid must contain 0.0 (bicubic), the floor alpha calibration compares against")
        return self
