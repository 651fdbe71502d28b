"""The one Landsat sensor model: a 10 m Sentinel-2 canvas -> its simulated 30 m Landsat-8 OLI partner.

Every provider that simulates Landsat (``demo`` on procedural scenes, ``s2sim`` on real Sentinel-2)
and the calibration on real pairs use these functions, so what is fitted is what is simulated.

Forward model, per band, in surface reflectance::

    LR = gain * (bandpass(area3(PSF_sigma * shift(HR))) ) + offset + N(0, noise^2)

1. Point-spread function and misregistration: a Gaussian PSF of ``sigma`` (10 m pixels), the scene
   displaced by ``shift`` (10 m pixels, sub-pixel).
2. 30 m area aggregation: LR pixel (i, j) integrates HR pixels 3i..3i+2, 3j..3j+2 (both grids share
   the upper-left corner). Steps 1-2 are one separable kernel, Gaussian * box(3 px) integrated over
   each 10 m pixel (closed form with the normal CDF), evaluated only at the LR pixels; the canvas
   margin ``pad`` holds its reach, so nothing wraps or is padded.
3. Spectral bandpass MSI -> OLI with the HLS v2 coefficients (Sentinel-2A; red, green, blue).
4. Radiometric mismatch between the two products: a per-band gain and offset. Real L8 C2 L2 vs S2
   L2A pairs differ per scene (atmospheric correction, BRDF, date), by a few % in gain and up to
   ~0.01 reflectance in offset; a simulator without it teaches a network that LR and HR share one
   radiometry.
5. Sensor noise: additive Gaussian.
6. Change on the ground (optional): a share of the chip where the Landsat side sees other land
   cover than the Sentinel-2 side (the 0-7 days between acquisitions, clouds' edges, floods, cuts).

Real L8/S2 differences are not blur alone: a blur-only fit leaves 6-42 % of the Landsat variance
unexplained (GUIDE.md), so steps 4-6 are what keeps a network trained on simulated pairs from
sharpening more than real pairs allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from satsr.config import SCALE

#: HLS v2 bandpass adjustment Sentinel-2A MSI -> Landsat-8 OLI, (R, G, B): oli = slope * msi + offset.
#: The inverse, msi = (oli - offset) / slope, harmonizes Landsat to Sentinel-2.
HLS_SLOPE = (0.9765, 1.0053, 0.9778)
HLS_OFFSET = (0.0009, -0.0009, -0.004)
#: The Gaussian PSF is cut at this many sigmas.
PSF_TRUNCATE = 6.0


@dataclass(frozen=True)
class SensorParams:
    """Amplitudes of the sensor model; each random one is drawn per pair (uniform in +-amplitude)."""

    psf_sigma_hr_px: float = 1.2
    noise_reflectance: float = 0.002
    gain_jitter: float = 0.0        # relative, per band: gain in [1 - j, 1 + j]
    offset_jitter: float = 0.0      # reflectance, per band: offset in [-j, +j]
    max_shift_lr_px: float = 0.15   # translation length in [0, max] LR px, random direction
    change_fraction: float = 0.0    # max share of the chip where the Landsat side sees other land cover
    bandpass: bool = True           # apply the HLS MSI -> OLI adjustment

    def margin(self) -> int:
        """Canvas margin (HR px) that holds the kernel's reach at the largest shift."""
        return math.ceil(kernel_reach(self.psf_sigma_hr_px, SCALE * self.max_shift_lr_px)) + SCALE


def from_amplitudes(amp: Any, sigma: float, bandpass: bool = True) -> SensorParams:
    """SensorParams from a params section holding the amplitudes (config.SensorAmplitudes: source.s2sim,
    release.sensor) and the PSF sigma (a number there, or a calibrated one)."""
    return SensorParams(psf_sigma_hr_px=sigma, noise_reflectance=amp.noise_reflectance, gain_jitter=amp.gain_jitter,
                        offset_jitter=amp.offset_jitter, max_shift_lr_px=amp.max_shift_lr_px,
                        change_fraction=amp.change_fraction, bandpass=bandpass)


def hls_rgb(values: tuple[float, float, float], bands: int = 3) -> np.ndarray:
    """A per-band coefficient as a (bands, 1, 1) float32 array (R, G, B)."""
    a = np.asarray(values[:bands], np.float32)
    return a[:, None, None]


def _psi(z: np.ndarray) -> np.ndarray:
    """Antiderivative of the standard normal CDF: z * Phi(z) + phi(z)."""
    return z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def kernel_reach(sigma: float, shift: float) -> float:
    """How far (HR pixels) a detector's weights reach from its block centre: half the block, half a
    pixel, the PSF out to ``PSF_TRUNCATE`` sigmas, and the shift."""
    return SCALE / 2 + 0.5 + PSF_TRUNCATE * sigma + abs(shift)


def axis_kernel(shift: float, sigma: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D weights of one 30 m detector over the 10 m pixels, relative to its block's first pixel.

    The detector integrates the scene over 3 HR pixels, blurred by a Gaussian PSF (sigma, HR
    pixels) and displaced by ``shift`` (HR pixels; the scene moves by +shift); the HR pixels are
    the scene's 10 m area means. The weight of HR pixel j is the integral over that pixel of
    Gaussian * box(3), in closed form with :func:`_psi`. Sums to 1.
    """
    s = max(sigma, 1e-6)  # sigma 0: plain area aggregation (with the shift as pixel overlap)
    j = np.arange(-reach, reach + SCALE, dtype=np.float64)
    d = j - (SCALE - 1) / 2 + shift  # pixel centre relative to the displaced detector centre
    h = SCALE / 2
    w = s * (_psi((d + 0.5 + h) / s) - _psi((d - 0.5 + h) / s) - _psi((d + 0.5 - h) / s) + _psi((d - 0.5 - h) / s))
    keep = (np.abs(d) <= kernel_reach(sigma, 0.0)) & (w > 0)
    return j[keep].astype(int), (w[keep] / w[keep].sum()).astype(np.float32)


def degrade(canvas: np.ndarray, pad: int, n: int | tuple[int, int], sigma_hr: float,
            shift_hr: tuple[float, float] = (0.0, 0.0), noise: float = 0.0, rng: np.random.Generator | None = None,
            gain: np.ndarray | None = None, offset: np.ndarray | None = None, bandpass: bool = True) -> np.ndarray:
    """OLI-like 30 m reflectance of the HR chip ``canvas[:, pad:pad+n, pad:pad+n]``.

    PSF, shift and 3x3 area aggregation as one separable kernel evaluated only at the LR pixels
    (the margin ``pad`` must hold :func:`kernel_reach`); then bandpass, gain/offset and noise.
    ``n`` may be ``(rows, cols)`` for a rectangular chip (calibration fits whole real scenes).
    """
    bands = canvas.shape[0]
    ny, nx = (n, n) if isinstance(n, (int, np.integer)) else (int(n[0]), int(n[1]))
    if (kernel_reach(sigma_hr, max(abs(shift_hr[0]), abs(shift_hr[1]))) - 1 > pad
            or canvas.shape[1] < ny + 2 * pad or canvas.shape[2] < nx + 2 * pad):
        raise ValueError(f"canvas margin {pad} px is smaller than the sensor kernel's reach "
                         f"(sigma {sigma_hr}, shift {shift_hr})")
    jy, wy = axis_kernel(shift_hr[0], sigma_hr, pad)
    jx, wx = axis_kernel(shift_hr[1], sigma_hr, pad)
    top = pad + int(jy[0])  # only the canvas rows the kernel reaches
    band = canvas[:, top:pad + int(jy[-1]) + ny]
    rows = np.zeros((bands, band.shape[1], nx // SCALE), np.float32)
    for j, w in zip(jx, wx):
        rows += w * band[:, :, pad + j:pad + j + nx:SCALE]
    lr = np.zeros((bands, ny // SCALE, nx // SCALE), np.float32)
    for j, w in zip(jy, wy):
        lr += w * rows[:, pad + j - top:pad + j - top + ny:SCALE, :]
    if bandpass:
        lr = lr * hls_rgb(HLS_SLOPE, bands) + hls_rgb(HLS_OFFSET, bands)
    if gain is not None:
        lr = lr * np.asarray(gain, np.float32).reshape(-1, 1, 1)
    if offset is not None:
        lr = lr + np.asarray(offset, np.float32).reshape(-1, 1, 1)
    if noise > 0:
        if rng is None:
            raise ValueError("noise > 0 needs a random generator")
        lr = lr + np.float32(noise) * rng.standard_normal(lr.shape, dtype=np.float32)
    return lr.astype(np.float32)


def _changed(canvas: np.ndarray, pad: int, n: int, fraction: float,
             rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The canvas with a share of the chip replaced by other land cover (a displaced copy of itself)
    in smooth blobs: what the Landsat side saw that the Sentinel-2 side did not."""
    m = canvas.shape[1]
    field_ = ndimage.gaussian_filter(rng.standard_normal((m, m)).astype(np.float32), sigma=max(n / 16, 2.0))
    chip = field_[pad:pad + n, pad:pad + n]
    cut = np.quantile(chip, 1.0 - fraction)
    mask = field_ > cut
    dy, dx = rng.integers(n // 4, max(n // 2, n // 4 + 1), size=2) * rng.choice([-1, 1], size=2)
    other = np.roll(canvas, (int(dy), int(dx)), axis=(1, 2))
    out = np.where(mask[None], other, canvas).astype(np.float32)
    return out, float(mask[pad:pad + n, pad:pad + n].mean())


def simulate(canvas: np.ndarray, pad: int, n: int, p: SensorParams,
             rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw one realisation of the sensor model for the HR chip ``canvas[:, pad:pad+n, pad:pad+n]``.

    Returns the LR reflectance and what was drawn (shift in HR px, per-band gain and offset, the
    changed share), for the manifest.
    """
    bands = canvas.shape[0]
    length = rng.uniform(0.0, p.max_shift_lr_px) * SCALE
    angle = rng.uniform(0.0, 2 * math.pi)
    shift = (float(length * math.sin(angle)), float(length * math.cos(angle)))
    gain = 1.0 + rng.uniform(-p.gain_jitter, p.gain_jitter, size=bands) if p.gain_jitter > 0 else np.ones(bands)
    offset = rng.uniform(-p.offset_jitter, p.offset_jitter, size=bands) if p.offset_jitter > 0 else np.zeros(bands)
    changed = 0.0
    source = canvas
    if p.change_fraction > 0:
        share = rng.uniform(0.0, p.change_fraction)
        if share > 0:
            source, changed = _changed(canvas, pad, n, share, rng)
    lr = degrade(source, pad, n, p.psf_sigma_hr_px, shift, p.noise_reflectance, rng,
                 gain=gain.astype(np.float32), offset=offset.astype(np.float32), bandpass=p.bandpass)
    info = {"shift_hr_px": shift, "gain": [float(g) for g in gain], "offset": [float(o) for o in offset],
            "changed_fraction": changed, "psf_sigma_hr_px": p.psf_sigma_hr_px,
            "noise_reflectance": p.noise_reflectance}
    return lr, info
