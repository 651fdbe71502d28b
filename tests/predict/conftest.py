"""Fixtures for satsr.predict: tiny x3 models saved as .keras (exported: reflectance in/out, as the
trainer saves them; one bare legacy network), and GeoTIFF scene writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satsr.data.radiometry import L8_C2_L2

#: Tiny EDSR: its reach is 5 LR px (5 LR convs + 1 HR conv + the bicubic residual's 2 px), within the
#: (overlap - 1) // 2 px each tile discards for the overlaps the tests use (satsr.predict.tiles), so
#: tiled output must equal the whole-image output.
TINY = {"num_blocks": 1, "num_filters": 8}
UTM_20S = "EPSG:32720"
#: The png range the tiny models are exported with (params' defaults).
LO, HI = -0.1, 1.0
ORIGIN = (500010.0, 9600000.0)


def textured(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(3, h, w) reflectance in about [0.02, 0.3] with detail at every scale."""
    from scipy.ndimage import gaussian_filter

    base = gaussian_filter(rng.normal(size=(h, w)), 6) * 10
    detail = gaussian_filter(rng.normal(size=(h, w)), 1)
    grey = 0.12 + 0.06 * np.tanh(base) + 0.03 * detail
    return np.clip(grey[None] * np.array([1.0, 0.85, 0.6])[:, None, None], 0.01, 0.5).astype(np.float32)


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = UTM_20S, pixel: float = 30.0,
              origin: tuple[float, float] = ORIGIN, nodata: float | None = None,
              descriptions: tuple[str, ...] | None = None, scales: list[float] | None = None,
              offsets: list[float] | None = None) -> Path:
    """A (bands, h, w) GeoTIFF as-is (dtype of ``data``)."""
    count, h, w = data.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": str(data.dtype),
               "nodata": nodata}
    if crs is not None:
        profile.update(crs=crs, transform=from_origin(*origin, pixel, pixel))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = descriptions
        if scales:
            dst.scales = scales
        if offsets:
            dst.offsets = offsets
    return path


def c2_dn(refl: np.ndarray) -> np.ndarray:
    return L8_C2_L2.from_reflectance(refl)


def _build(random_tail: bool, seed: int):
    import keras

    from satsr import models

    keras.utils.set_random_seed(seed)
    model = models.build("edsr", TINY)
    if random_tail:  # an untrained satsr model is exactly bicubic; give it some "detail" of its own
        tail = model.get_layer("tail_conv")
        kernel, bias = tail.get_weights()
        rng = np.random.default_rng(seed)
        tail.set_weights([rng.normal(0, 0.02, kernel.shape).astype(np.float32), bias])
    return model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


def _exported(net):
    from satsr.models import export_model

    return export_model(net, LO, HI)


@pytest.fixture(scope="session")
def random_model_path(model_dir) -> Path:
    """Tiny EDSR with random (nonzero) tail weights, exported and saved as .keras."""
    path = model_dir / "edsr_random.keras"
    _exported(_build(True, 3)).save(path)
    return path


@pytest.fixture(scope="session")
def bicubic_model_path(model_dir) -> Path:
    """Tiny untrained EDSR (zero tail), exported: output == bicubic x3 upsampling of the input."""
    path = model_dir / "edsr_bicubic.keras"
    _exported(_build(False, 4)).save(path)
    return path


@pytest.fixture(scope="session")
def legacy_model_path(model_dir) -> Path:
    """The random-tail EDSR saved bare (png16 units in/out), as satsr saved models before export."""
    path = model_dir / "edsr_legacy.keras"
    _build(True, 3).save(path)
    return path


@pytest.fixture(scope="session")
def random_model(random_model_path):
    """The random-tail model loaded once (SRModel: its traced function is reused across tests)."""
    from satsr.predict import load_model

    return load_model(random_model_path)


@pytest.fixture(scope="session")
def bicubic_model(bicubic_model_path):
    from satsr.predict import load_model

    return load_model(bicubic_model_path)


@pytest.fixture(scope="session")
def detail_model_path(model_dir) -> Path:
    """An exported network with a ``detail_strength`` layer (alpha 0.6), as the released model has:
    bicubic + alpha * (random conv detail)."""
    from scratch import tiny_detail_net

    net = tiny_detail_net(0.6, detail_scale=0.05)  # detail of ~0.01 reflectance: nothing hits the clip range
    path = model_dir / "detail.keras"
    _exported(net).save(path)
    return path
