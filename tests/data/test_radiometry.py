"""Radiometry: the sensor encodings and the invertible PNG mapping."""

import numpy as np
import pytest

from satsr.data import radiometry as r


def test_landsat_c2_scale_offset_and_fill():
    dn = np.array([[0, 7273, 43636, 65535]], dtype=np.uint16)
    refl = r.L8_C2_L2.to_reflectance(dn)
    assert np.isnan(refl[0, 0])  # fill
    assert refl[0, 1] == pytest.approx(7273 * 2.75e-5 - 0.2, abs=1e-6)
    assert refl[0, 2] == pytest.approx(1.0, abs=1e-4)


def test_sentinel2_harmonized_scale():
    dn = np.array([0, 1, 10000], dtype=np.uint16)
    refl = r.S2_SR.to_reflectance(dn)
    assert np.isnan(refl[0]) and refl[1] == pytest.approx(1e-4) and refl[2] == pytest.approx(1.0)


@pytest.mark.parametrize("enc", [r.L8_C2_L2, r.S2_SR])
def test_encode_decode_round_trip(enc):
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.001, 0.9, size=(3, 20, 20)).astype(np.float32)
    refl[0, 0, 0] = np.nan
    dn = enc.from_reflectance(refl)
    assert dn.dtype == np.uint16 and dn[0, 0, 0] == enc.nodata
    back = enc.to_reflectance(dn)
    assert np.isnan(back[0, 0, 0])
    assert np.nanmax(np.abs(back - refl)) <= enc.scale / 2 + 1e-6
    # a valid dark pixel never collides with the fill value
    assert enc.from_reflectance(np.array([enc.offset], dtype=np.float32))[0] != enc.nodata


def test_png16_mapping_is_invertible_within_range():
    lo, hi = -0.1, 1.0
    refl = np.linspace(lo, hi, 1001, dtype=np.float32)
    png = r.to_png16(refl, lo, hi)
    assert png.dtype == np.uint16 and png[0] == 0 and png[-1] == 65535
    assert np.max(np.abs(r.from_png16(png, lo, hi) - refl)) <= (hi - lo) / 65535
    clipped = r.to_png16(np.array([-0.5, 2.0]), lo, hi)
    assert list(clipped) == [0, 65535]


def test_quicklook_fixed_stretch():
    q = r.to_quicklook8(np.array([0.0, 0.3, 0.6, np.nan]), 0.3, 1.0)
    assert list(q) == [0, 255, 255, 0]
