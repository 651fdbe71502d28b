"""Shared fixtures: small real GeoTIFF pairs on nested grids, and the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_mlflow import (  # noqa: F401  (real `mlflow server`, and one with the basic-auth app)
    mlflow_auth_server,
    mlflow_server,
    mlflow_server_started,
)
from fixtures_postgres import postgres_server, postgres_url  # noqa: F401  (real PostgreSQL)
from scratch import smooth_field

from satsr.config import SCALE, Params, SourceParams
from satsr.data import grids
from satsr.data.geotiff import write_geotiff
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.data.registration import area_downsample

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SATSR_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"


@pytest.fixture
def realdata() -> Path:
    """../shared/realdata, or a clean skip where a user's clone has no ../shared."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (only present beside the team's checkout)")
    return REALDATA


@pytest.fixture
def make_pair(tmp_path):
    """Factory writing one raw pair (L8 C2 DN + S2 DN GeoTIFFs) on nested UTM grids.

    Returns (lr_path, hr_path, hr_reflectance). ``lr_size`` is the LR side in pixels.
    """

    def _make(name: str = "p0", lr_size: int = 32, seed: int = 0, folder: Path | None = None,
              lon: float = -62.0, lat: float = -3.5):
        folder = folder or tmp_path
        rng = np.random.default_rng(seed)
        crs = f"EPSG:{grids.utm_epsg(lon, lat)}"
        lr_grid, hr_grid = grids.nested_grids(500000.0, 9600000.0, crs, lr_size)
        hr = smooth_field(rng, lr_size * 3)
        lr = area_downsample(hr, SCALE)
        lr_path = folder / f"{name}_L8.tif"
        hr_path = folder / f"{name}_S2.tif"
        write_geotiff(lr_path, L8_C2_L2.from_reflectance(lr), lr_grid, L8_C2_L2, LANDSAT_RGB, {"SENSOR": "L8"})
        write_geotiff(hr_path, S2_SR.from_reflectance(hr), hr_grid, S2_SR, S2_RGB, {"SENSOR": "S2"})
        return lr_path, hr_path, hr

    return _make


@pytest.fixture
def tiny_params() -> Params:
    """Small, fast parameters for unit tests."""
    return Params(source=SourceParams(lr_size=32))

