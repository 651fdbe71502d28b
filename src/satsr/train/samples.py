"""The samples figure logged to MLflow during training: LR (nearest) | bicubic | SR | HR central
crops of the first validation images, decoded and super-resolved exactly as validation does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from satsr.config import SCALE
from satsr.evaluate.metrics import psnr, upsample

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from satsr.train.validation import Validator

PANELS = ("LR (nearest x3)", "bicubic x3", "SR", "HR")


def sample_figure(validator: Validator, predict: Callable[[Any], Any], n: int, title: str,
                  crop_lr: int = 32) -> Figure | None:
    """One row per validation image (the first ``n``): central ``crop_lr`` px LR crops and the
    aligned HR crops; all panels of a row stretched alike (1-99 % of the HR crop). Captions give
    the PSNR of the crop (values clipped to [0, 1], no border crop: a label, not a metric)."""
    from matplotlib.figure import Figure

    rows = []
    for lr, hr in validator.pairs(n):
        h, w = lr.shape[:2]
        c = min(crop_lr, h, w)
        y, x = (h - c) // 2, (w - c) // 2
        lr_c = lr[y:y + c, x:x + c]
        sr = validator.super_resolve(predict, lr_c)
        bic = upsample(lr_c, SCALE, "bicubic")
        hr_c = hr[y * SCALE:(y + c) * SCALE, x * SCALE:(x + c) * SCALE]
        near = np.repeat(np.repeat(lr_c, SCALE, 0), SCALE, 1)
        rows.append((near, bic, sr, hr_c))
    if not rows:
        return None
    fig = Figure(figsize=(10, 2.6 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), 4, squeeze=False)
    for r, imgs in enumerate(rows):
        ref = np.clip(imgs[3], 0.0, 1.0)
        lo, hi = np.percentile(ref, [1, 99])
        hi = hi if hi > lo else lo + 1e-3
        for k, (img, name) in enumerate(zip(imgs, PANELS, strict=True)):
            ax = axes[r][k]
            ax.imshow(np.clip((img - lo) / (hi - lo), 0, 1), interpolation="nearest")
            label = name
            if k in (1, 2):
                label += f"  {psnr(ref, np.clip(img, 0.0, 1.0)):.2f} dB"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle(f"{title} ({validator.decoding.units})", fontsize=10)
    fig.tight_layout()
    return fig
