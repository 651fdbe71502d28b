"""The shared ground of the params sections: the product's constants, the strict base model and the
error every invalid value raises."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from satsr.errors import SatsrError

#: The product's scale factor: Landsat 30 m -> Sentinel-2 10 m.
SCALE = 3
LR_PIXEL_M = 30.0
HR_PIXEL_M = 10.0

DEFAULT_PARAMS = Path("params.yaml")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PosInt = Annotated[int, Field(gt=0)]
LonLat = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]


class ParamsError(SatsrError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key path."""

    exit_code = 2


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
