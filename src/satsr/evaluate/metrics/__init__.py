"""Per-image metrics of super-resolved images: full-reference quality, sharpness, consistency with
the LR input, and the opensr-test correctness scores (improvement / omission / hallucination).

One concern per module: ``base`` (metric and method names, units, the border crop, the reference
cache, the bicubic / Lanczos baselines), ``fidelity`` (sewar's full-reference metrics),
``registration`` (cPSNR / cSSIM), ``consistency`` (sharpness and consistency with the LR input),
``opensr`` (opensr-test's correctness scores) and ``image`` (every metric of one image, the timer and
``conventions()``). Every public name is re-exported here: import ``satsr.evaluate.metrics``.

Conventions (written into every output by ``conventions()``):

* **Data**: reflectance clipped to [0, 1] (SR, baselines and HR alike), float64; PSNR / SSIM
  ``MAX`` = 1. The 8-bit variants (``psnr8``, ``ssim8``) compare the PNG stage's fixed quicklook
  stretch of the same pixels (``png.quicklook_max_reflectance``, ``png.quicklook_gamma``) with
  ``MAX`` = 255, for comparison with the seed project, which scored 8-bit stretched images.
* **Border**: ``border`` px (default 3, the scale) cropped from every side of the HR-sized images
  before every metric; the LR-side metrics crop ``ceil(border / scale)`` LR px.
* **Registration- and bias-tolerant** ``cpsnr`` / ``cssim`` (the PROBA-V challenge's cPSNR, Martens
  et al. 2019; WorldStrat's shift-tolerant scores): real Landsat / Sentinel-2 pairs differ by
  sub-pixel misregistration and a per-scene radiometric offset, which plain PSNR charges to the
  model. HR is cropped by ``border + N`` px (``N`` = ``evaluate.cpsnr_max_shift``, default 3 HR px
  = one LR px, PROBA-V's +-3 px at x3); for every integer shift (dy, dx) within +-N the same-size
  window of the prediction starting (dy, dx) px further down / right is compared (prediction pixel
  (y + dy, x + dx) against HR pixel (y, x)), after adding the per-band bias
  ``b = mean(HR - prediction)`` over the compared pixels. ``cpsnr`` = the highest PSNR over the
  shifts (MAX = 1 reflectance, the plain PSNR convention); ``cssim`` = SSIM (sewar's, as above) of
  the same bias-corrected window AT THE cPSNR-OPTIMAL SHIFT (one registration per image, not a
  second search). Ties go to the smallest shift. The chosen shift (``cshift_dy`` / ``cshift_dx``,
  HR px) and the mean removed bias (``cbias``) are per-image columns. Every method (SR, bicubic,
  Lanczos) is registered on its own, so the gain over bicubic compares each at its best shift.
* **Channels**: RGB (R, G, B); multi-band metrics average over the bands as sewar does; sharpness
  uses the band-mean grey image.
* **Full-reference metrics** are sewar 0.4.10's (``sewar.full_ref``) definitions, re-implemented
  in ``fidelity`` vectorised over the bands with separable / running-sum filters (sewar filters each
  band with direct 2-D ``scipy.signal.convolve2d``: 3-5 s per 795 px image for SSIM or MS-SSIM) and
  equal to sewar's own functions to ~1e-10 (tested against sewar; sewar is not imported at run time).
  sewar's own quirks are kept so the numbers are sewar's: SSIM uses an 11 px *uniform* window;
  MS-SSIM downsamples with ``uniform_filter(img, 2)`` over all three axes (bands included) and
  raises negative contrast terms to fractional powers in complex arithmetic (real part kept);
  SCC's Laplacian is applied twice (``generic_laplace``), which cancels in the correlation; ERGAS
  uses ``r = 1 / scale`` (10 m / 30 m) instead of sewar's default 1/4; SAM is in radians.
  PSNR of identical images is ``inf`` (never an error); see satsr.evaluate.stats for averaging.
* **Sharpness** (the seed's index): mean gradient magnitude of the grey image,
  ``mean(sqrt(gx^2 + gy^2))`` with ``gy, gx = np.gradient(grey)``, in reflectance per 10 m px.
  CPBD (the seed's second blur metric) is not computed: the ``cpbd`` package on PyPI was last
  released in 2018 and its only recent fork (``cpbd-py312``) carries a proprietary licence.
* **Consistency with the input** (after opensr-test): the SR image area-downsampled to 30 m
  (3 x 3 block means, exactly how the nested grids relate) against the LR image: mean absolute
  reflectance difference (``lr_l1``), mean per-pixel spectral angle in degrees (``lr_sam_deg``),
  and the sub-pixel shift by phase correlation (``lr_shift_px``, LR px; satsr.data.registration).
* **Correctness** (improvement / omission / hallucination, :func:`correctness`) follows opensr-test
  1.3.3's formulas, but NOT all of its defaults; what is used, and why:

  - the same: the per-pixel 'nd' distance, the lambdas (0.05) and softmin temperature (0.25), SR
    histogram-matched to HR first (its ``harm_apply_spectral``), LR bilinearly upsampled to HR as
    the reference, and the pixel mask "auto" = 75th percentile of d_ref (what its
    ``Metrics.compute`` passes; ``Metrics.correctness`` called alone uses a fixed 0.1);
  - ``norm: percent`` (opensr-test's default is ``softmin``): the share of counted pixels in each
    class, fractions summing to 1, because select caps a share ("how many pixels are
    hallucinated") and a share reads plainly; ``evaluate.correctness.norm: softmin`` gives its mean
    soft class weight instead;
  - NO spatial alignment (opensr-test aligns SR to HR, ``harm_apply_spatial`` with phase
    correlation up to 5 px): the pairs are co-registered by the filter stage
    (``filter.max_shift_lr_px``), and a shift the model itself introduces is an error the score
    should see rather than remove (it is also reported on its own: ``lr_shift_px``, cPSNR);
  - border ``evaluate.border`` = 3 HR px (the scale; opensr-test masks 16, ``border_mask``): one
    border for every metric, so the correctness shares and PSNR describe the same pixels.

  With those three set alike (``correctness_norm``, ``harm_apply_spatial=False``,
  ``border_mask=3``), opensr-test 1.3.3 gives the same shares to 1e-3 (checked for issue 10).
"""

from satsr.evaluate.metrics.base import (
    ALL_METRICS,
    BASELINES,
    CONSISTENCY,
    CORRECTNESS,
    FULL_REF,
    HIGHER_IS_BETTER,
    METHODS,
    QUICKLOOK,
    REGISTERED,
    REGISTERED_EXTRA,
    UNITS,
    EvaluationError,
    RefCache,
    crop,
    upsample,
)
from satsr.evaluate.metrics.consistency import grey, lr_consistency, sharpness, spectral_angle_deg
from satsr.evaluate.metrics.fidelity import MSSSIM_WEIGHTS, ergas, msssim, psnr, rase, sam, scc, ssim, uqi
from satsr.evaluate.metrics.image import Timer, conventions, image_metrics, quicklook8
from satsr.evaluate.metrics.opensr import correctness, match_histograms
from satsr.evaluate.metrics.registration import cpsnr, register_shift, registered_metrics

__all__ = [
    "ALL_METRICS",
    "BASELINES",
    "CONSISTENCY",
    "CORRECTNESS",
    "FULL_REF",
    "HIGHER_IS_BETTER",
    "METHODS",
    "MSSSIM_WEIGHTS",
    "QUICKLOOK",
    "REGISTERED",
    "REGISTERED_EXTRA",
    "UNITS",
    "EvaluationError",
    "RefCache",
    "Timer",
    "conventions",
    "correctness",
    "cpsnr",
    "crop",
    "ergas",
    "grey",
    "image_metrics",
    "lr_consistency",
    "match_histograms",
    "msssim",
    "psnr",
    "quicklook8",
    "rase",
    "register_shift",
    "registered_metrics",
    "sam",
    "scc",
    "sharpness",
    "spectral_angle_deg",
    "ssim",
    "upsample",
    "uqi",
]
