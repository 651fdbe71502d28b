"""Sensor encodings <-> surface reflectance.

Every conversion between stored digital numbers and reflectance goes through here, so the
pipeline, the filters and `predict` agree on one radiometry (the seed's ad-hoc x4 / x1.4 8-bit
stretches are gone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Encoding:
    """reflectance = DN * scale + offset; ``nodata`` DN marks fill."""

    name: str
    dtype: str
    scale: float
    offset: float
    nodata: float | None
    #: False for stretched imagery whose decoded values are NOT surface reflectance: absolute
    #: reflectance thresholds (cloud, haze, brightness, saturation) do not apply to it.
    physical: bool = True

    def to_reflectance(self, dn: np.ndarray) -> np.ndarray:
        """Decode to float32 reflectance; fill pixels become NaN."""
        refl = dn.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        if self.nodata is not None:
            refl[dn == self.nodata] = np.nan
        return refl

    def from_reflectance(self, refl: np.ndarray) -> np.ndarray:
        """Encode reflectance (NaN = fill); values are clipped into the valid DN range."""
        info = np.iinfo(self.dtype) if np.issubdtype(np.dtype(self.dtype), np.integer) else None
        dn = (np.nan_to_num(refl, nan=0.0) - self.offset) / self.scale
        if info is None:
            out = dn.astype(self.dtype)
        else:
            low = info.min + (1 if self.nodata == info.min else 0)
            out = np.clip(np.rint(dn), low, info.max).astype(self.dtype)
        if self.nodata is not None:
            out[np.isnan(refl)] = self.nodata
        return out


#: Landsat 4-9 Collection 2 Level-2 surface reflectance (fill = 0).
L8_C2_L2 = Encoding("landsat_c2_l2_sr", "uint16", 2.75e-5, -0.2, 0)
#: Sentinel-2 L2A surface reflectance, harmonized collection (offset already removed; fill = 0).
S2_SR = Encoding("sentinel2_sr_harmonized", "uint16", 1e-4, 0.0, 0)
#: Plain float reflectance.
REFLECTANCE = Encoding("reflectance", "float32", 1.0, 0.0, None)

#: 8/16-bit stretched imagery without a documented mapping (e.g. the seed's PNGs, L8S2PS samples):
#: pseudo-reflectance in [0, 1], comparable only within one dataset.
UINT8_STRETCHED = Encoding("uint8_stretched", "uint8", 1.0 / 255.0, 0.0, None, physical=False)
UINT16_STRETCHED = Encoding("uint16_stretched", "uint16", 1.0 / 65535.0, 0.0, None, physical=False)

LANDSAT_RGB = ("SR_B4", "SR_B3", "SR_B2")
LANDSAT_TM_RGB = ("SR_B3", "SR_B2", "SR_B1")
S2_RGB = ("B4", "B3", "B2")

BY_NAME = {e.name: e for e in (L8_C2_L2, S2_SR, REFLECTANCE, UINT8_STRETCHED, UINT16_STRETCHED)}


def grey(refl: np.ndarray) -> np.ndarray:
    """Band-mean grey image of a (bands, h, w) array, NaN-aware."""
    return np.nanmean(refl, axis=0) if np.isnan(refl).any() else refl.mean(axis=0)


def to_png16(refl: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Invertible (within [lo, hi]) mapping of reflectance to uint16 for training PNGs."""
    x = (np.clip(np.nan_to_num(refl, nan=lo), lo, hi) - lo) / (hi - lo)
    return np.rint(x * 65535.0).astype(np.uint16)


def from_png16(png: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (lo + png.astype(np.float32) / 65535.0 * (hi - lo)).astype(np.float32)


def to_quicklook8(refl: np.ndarray, max_reflectance: float, gamma: float) -> np.ndarray:
    """Fixed 8-bit stretch for people: the same for every image, so they stay comparable."""
    x = np.clip(np.nan_to_num(refl, nan=0.0) / max_reflectance, 0.0, 1.0) ** (1.0 / gamma)
    return np.rint(x * 255.0).astype(np.uint8)
