"""Scoring the detail model on real chips, and calibrating its detail strength alpha.

Every chip is predicted once: with SR(alpha) = base + alpha * detail (satsr.models.detail), the
detail is SR(1) - SR(0), so a whole grid of alphas costs one forward pass. Scores are the ONE
metric module's (satsr.evaluate.metrics): plain PSNR and cPSNR (best over +-evaluate.cpsnr_max_shift
HR px after per-band bias removal, evaluate.border px border, data range 1), each as the paired
gain over bicubic (Pillow bicubic, as evaluate). alpha is calibrated on VALIDATION chips only: the
default is the grid value with the highest mean cPSNR gain; its CI is a cluster bootstrap over the validation groups.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from satsr.config import SCALE, EvaluateParams
from satsr.evaluate import metrics, stats


class Scoring(NamedTuple):
    """The metric conventions, from params.yaml ``evaluate`` (the same as the evaluate stage's)."""

    border: int       # HR px cropped before every metric (evaluate.border)
    max_shift: int    # cPSNR shift range, HR px (evaluate.cpsnr_max_shift)

    @classmethod
    def of(cls, ev: EvaluateParams | None = None) -> Scoring:
        ev = ev or EvaluateParams()
        return cls(ev.border, ev.cpsnr_max_shift)


def _set_alpha(net: Any, alpha: float) -> None:
    net.get_layer("detail_strength").alpha.assign(float(alpha))


def base_and_detail(net: Any, lrs: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(base, detail) of a stack of (n, h, w, c) chips: SR(alpha) = base + alpha * detail."""
    layer = net.get_layer("detail_strength")
    keep = float(layer.alpha.numpy())
    out = []
    try:
        for a in (0.0, 1.0):
            _set_alpha(net, a)
            out.append(np.concatenate([net(lrs[i:i + batch], training=False).numpy()
                                       for i in range(0, len(lrs), batch)]))
    finally:
        _set_alpha(net, keep)
    return out[0], out[1] - out[0]


def _new_rows() -> dict[str, list]:
    return {k: [] for k in ("group", "bic_psnr", "bic_cpsnr", "bic_lr_l1", "psnr", "cpsnr", "lr_l1")}


def add_chip(rows: dict[str, list], group: str, lr: np.ndarray, hr: np.ndarray, srs: list[np.ndarray],
             sc: Scoring) -> None:
    """Score one chip: bicubic's PSNR / cPSNR / LR L1, and the same for each prediction in ``srs``."""
    b, n = sc
    bic = metrics.upsample(lr, SCALE, "bicubic")
    rows["group"].append(group)
    rows["bic_psnr"].append(metrics.psnr(metrics.crop(hr, b), metrics.crop(bic, b)))
    rows["bic_cpsnr"].append(metrics.cpsnr(hr, bic, b, n))
    rows["bic_lr_l1"].append(metrics.lr_consistency(bic, lr)["lr_l1"])
    rows["psnr"].append([metrics.psnr(metrics.crop(hr, b), metrics.crop(sr, b)) for sr in srs])
    rows["cpsnr"].append([metrics.cpsnr(hr, sr, b, n) for sr in srs])
    rows["lr_l1"].append([metrics.lr_consistency(sr, lr)["lr_l1"] for sr in srs])


def _by_shape(chips: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    shapes: dict[tuple, list[int]] = {}
    for i, (lr, _) in enumerate(chips):
        shapes.setdefault(lr.shape, []).append(i)
    return list(shapes.values())


def score_chips(net: Any, groups: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                alphas: list[float], sc: Scoring | None = None) -> dict[str, Any]:
    """Per chip: bicubic PSNR/cPSNR/LR-L1 and, for every alpha, the model's. Arrays (chips,) and (chips, alphas)."""
    rows = _new_rows()
    for name, chips in groups.items():
        for idx in _by_shape(chips):
            bases, details = base_and_detail(net, np.stack([chips[i][0] for i in idx]).astype(np.float32))
            for i, base, detail in zip(idx, bases, details):
                add_chip(rows, name, chips[i][0], chips[i][1], [base + a * detail for a in alphas], sc or Scoring.of())
    return {k: np.asarray(v) for k, v in rows.items()}


def score_fn(predict: Any, groups: dict[str, list[tuple[np.ndarray, np.ndarray]]], sc: Scoring | None = None,
             batch: int = 16) -> dict[str, Any]:
    """Like ``score_chips`` for any ``predict(lrs) -> srs`` (one column)."""
    rows = _new_rows()
    for name, chips in groups.items():
        for idx in _by_shape(chips):
            lrs = np.stack([chips[i][0] for i in idx]).astype(np.float32)
            srs = np.concatenate([np.asarray(predict(lrs[j:j + batch])) for j in range(0, len(lrs), batch)])
            for i, sr in zip(idx, srs):
                add_chip(rows, name, chips[i][0], chips[i][1], [sr], sc or Scoring.of())
    return {k: np.asarray(v) for k, v in rows.items()}


def mean_gain(net: Any, groups: dict[str, list], alpha: float, sc: Scoring | None = None) -> float:
    """Mean cPSNR gain over bicubic (dB) at one alpha: the training-time validation score."""
    s = score_chips(net, groups, [alpha], sc)
    return float(np.mean(s["cpsnr"][:, 0] - s["bic_cpsnr"]))


def calibrate_alpha(net: Any, val: dict[str, list], grid: list[float], n_boot: int = 10000,
                    level: float = 0.95, seed: int = 0, sc: Scoring | None = None) -> dict[str, Any]:
    """The alpha of ``grid`` that maximises the mean cPSNR gain on the validation chips, with the
    gain curve and the cluster-bootstrap CI (over validation groups) of the gain at that alpha."""
    s = score_chips(net, val, grid, sc)
    gains = s["cpsnr"] - s["bic_cpsnr"][:, None]
    curve = gains.mean(axis=0)
    best = int(np.argmax(curve))
    ci = stats.paired_gain(s["cpsnr"][:, best], s["bic_cpsnr"], n_boot=n_boot, level=level, seed=seed,
                           groups=s["group"])
    return {"alpha": float(grid[best]), "grid": [float(a) for a in grid],
            "val_cpsnr_gain_curve": [float(c) for c in curve], "val_cpsnr_gain": ci,
            "val_chips": int(len(s["group"])), "val_groups": sorted(set(s["group"].tolist()))}


def summarize(s: dict[str, Any], alpha_index: int, n_boot: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Per-group and overall paired gains (PSNR, cPSNR) and LR consistency at one alpha."""
    out: dict[str, Any] = {}
    groups = s["group"]
    for name in [None, *sorted(set(groups.tolist()))]:
        keep = np.ones(len(groups), bool) if name is None else groups == name
        cg = s["cpsnr"][keep, alpha_index] - s["bic_cpsnr"][keep]
        out[name or "all"] = {
            "chips": int(keep.sum()),
            "psnr_gain": stats.paired_gain(s["psnr"][keep, alpha_index], s["bic_psnr"][keep], n_boot=n_boot, seed=seed,
                                           groups=groups[keep] if name is None else None),
            "cpsnr_gain": stats.paired_gain(s["cpsnr"][keep, alpha_index], s["bic_cpsnr"][keep], n_boot=n_boot,
                                            seed=seed, groups=groups[keep] if name is None else None),
            "min_chip_cpsnr_gain": float(cg.min()),
            "chips_worse_than_bicubic": int((cg < 0).sum()),
            "bicubic_cpsnr": float(s["bic_cpsnr"][keep].mean()),
            "lr_l1": float(s["lr_l1"][keep, alpha_index].mean()),
            "bicubic_lr_l1": float(s["bic_lr_l1"][keep].mean()),
        }
    return out
