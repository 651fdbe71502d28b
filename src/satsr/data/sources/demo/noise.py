"""FFT-filtered random fields and the small drawing helpers every synthesis step shares.

The landscape, its texture, clouds and haze are all band-limited Gaussian noise on the canvas;
wavelengths are given in metres on the ground and turned into 10 m pixels here.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft as sfft

from satsr.config import HR_PIXEL_M


class _Spectrum:
    """Frequency grid of an M x M canvas for FFT-filtered noise (band filters cached per size)."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.shape = (m, m // 2 + 1)

    def noise(self, rng: np.random.Generator, band_m: tuple[float, float], beta: float) -> np.ndarray:
        """Unit-variance Gaussian field with power ~ f^-beta between the wavelengths ``band_m`` (m)."""
        spec = rng.standard_normal((*self.shape, 2), dtype=np.float32).view(np.complex64)[..., 0]
        spec *= _band_filter(self.m, band_m, beta)
        field = sfft.irfft2(spec, s=(self.m, self.m))
        field -= field.mean()
        field /= max(float(field.std()), 1e-12)
        return field


@functools.lru_cache(maxsize=64)
def _band_filter(m: int, band_m: tuple[float, float], beta: float) -> np.ndarray:
    """Amplitude f^(-beta/2), rolled off smoothly outside the wavelength band (rfft2 layout)."""
    fy = sfft.fftfreq(m).astype(np.float32)[:, None]
    fx = sfft.rfftfreq(m).astype(np.float32)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0 / (4 * m)  # finite power at DC; the mean is removed anyway
    lo, hi = band_m[0] / HR_PIXEL_M, band_m[1] / HR_PIXEL_M
    amp = f ** (-beta / 2) * np.exp(-((f * lo / 2) ** 2)) * -np.expm1(-((f * hi) ** 2))
    return amp.astype(np.float32)


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _px(metres: float) -> float:
    return metres / HR_PIXEL_M


def _rgb(color: tuple[float, float, float]) -> np.ndarray:
    return np.asarray(color, np.float32)
