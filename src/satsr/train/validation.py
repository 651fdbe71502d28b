"""Training-time validation with the evaluation's metric stack.

Every epoch's validation number must be the number ``evaluate`` would report for the same model
and images, so nothing here computes a metric of its own. Per validation image:

* the PNG values are decoded as evaluate decodes them (satsr.evaluate.dataset.PngDecoding:
  reflectance with ``png.reflectance_min/max`` for the satellite dataset, photo units v8 / 255
  for the natural pretraining corpus);
* the model runs through satsr.evaluate.predictors.super_resolve (the one reflectance <-> model
  units mapping, output clipped to the PNG range);
* the baseline is satsr.evaluate.metrics.upsample(lr, 3, "bicubic") (Pillow, as in evaluate);
* PSNR and SSIM are satsr.evaluate.metrics.image_metrics: values clipped to [0, 1], MAX 1,
  ``evaluate.border`` px cropped, RGB, sewar's SSIM (11 px uniform window);
* the mean over images is satsr.evaluate.stats.describe (an infinite PSNR is capped at
  ``evaluate.psnr_cap_db``; an undefined SSIM is left out).

Metric names carry the unit (``val_psnr_refl``, ``bicubic_ssim_refl``, ...; ``_photo`` for the
natural corpus), in MLflow and in the history CSV.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from satsr.config import SCALE
from satsr.evaluate.dataset import PngDecoding
from satsr.evaluate.metrics import image_metrics, upsample
from satsr.evaluate.predictors import super_resolve
from satsr.evaluate.stats import describe

#: What validation scores per image (a subset of satsr.evaluate.metrics.ALL_METRICS).
VAL_METRICS = ("psnr", "ssim")


@dataclass(frozen=True)
class MetricNames:
    """The names (MLflow, history CSV) of the validation numbers, with the unit suffix."""

    tag: str

    @property
    def psnr(self) -> str:
        return f"val_psnr_{self.tag}"

    @property
    def ssim(self) -> str:
        return f"val_ssim_{self.tag}"

    @property
    def gain(self) -> str:
        return f"val_psnr_gain_{self.tag}"

    @property
    def bicubic_psnr(self) -> str:
        return f"bicubic_psnr_{self.tag}"

    @property
    def bicubic_ssim(self) -> str:
        return f"bicubic_ssim_{self.tag}"


class Validator:
    """Scores a model on the validation batches of ``make_dataset(..., training=False)`` (module doc).

    ``val_ds`` yields (LR, HR) batches of one image in the pipeline's png / 65535 units.
    """

    def __init__(self, val_ds: tf.data.Dataset, decoding: PngDecoding, border: int, psnr_cap_db: float):
        self.val_ds = val_ds
        self.decoding = decoding
        self.border = int(border)
        self.psnr_cap_db = float(psnr_cap_db)
        self.names = MetricNames(decoding.tag)
        self._bicubic: dict[str, float] | None = None

    def pairs(self, n: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(LR, HR) of the first ``n`` (all) validation images, decoded: (h, w, 3), (3h, 3w, 3) float64."""
        ds = self.val_ds if n is None else self.val_ds.take(n)
        for lr, hr in ds:
            for k in range(int(lr.shape[0])):
                yield self.decoding.decode_unit(lr[k].numpy()), self.decoding.decode_unit(hr[k].numpy())

    def super_resolve(self, predict: Callable[[Any], Any], lr: np.ndarray) -> np.ndarray:
        """SR of one decoded LR image by ``predict`` (a batch in model units -> a batch out)."""
        return super_resolve(predict, lr, self.decoding.lo, self.decoding.hi)

    def per_image(self, predict: Callable[[Any], Any] | None) -> list[dict[str, float]]:
        """``{psnr, ssim}`` of every validation image: of the model ``predict``, or of bicubic (None)."""
        method = "bicubic" if predict is None else "sr"
        rows = []
        for lr, hr in self.pairs():
            pred = upsample(lr, SCALE, "bicubic") if predict is None else self.super_resolve(predict, lr)
            m = image_metrics(lr, hr, {method: pred}, scale=SCALE, border=self.border, metrics=VAL_METRICS)
            rows.append({k: m[f"{method}_{k}"] for k in VAL_METRICS})
        return rows

    def score(self, predict: Callable[[Any], Any] | None) -> dict[str, float]:
        """Mean ``{psnr, ssim}`` over the validation images (module doc); NaN when there are none."""
        rows = self.per_image(predict)
        out = {}
        for k in VAL_METRICS:
            mean = describe([r[k] for r in rows], self.psnr_cap_db if k == "psnr" else None)["mean"]
            out[k] = math.nan if mean is None else float(mean)
        return out

    def bicubic(self) -> dict[str, float]:
        """The bicubic baseline's mean ``{psnr, ssim}`` (computed once)."""
        if self._bicubic is None:
            self._bicubic = self.score(None)
        return self._bicubic

    def conventions(self) -> dict[str, Any]:
        """How every validation number was computed (written into the stage's summary.json)."""
        return {"data_range": f"{self.decoding.describe()}; PSNR / SSIM MAX = 1",
                "metric_suffix": self.decoding.tag,
                "border_crop_px": self.border, "channels": "RGB",
                "metrics": "satsr.evaluate.metrics.image_metrics (sewar definitions; SSIM: 11 px uniform window)",
                "bicubic": "Pillow BICUBIC on the decoded LR (satsr.evaluate.metrics.upsample), as in evaluate",
                "aggregate": f"mean over val images (inf PSNR capped at {self.psnr_cap_db:g} dB)",
                "sr_clipped": True}
