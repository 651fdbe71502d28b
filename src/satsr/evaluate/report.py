"""Figures and tables of an evaluation: histograms of sharpness and PSNR per method, side-by-side
bicubic | model | HR figures with zoomed crops, and the leaderboard markdown.

Figures are matplotlib ``Figure`` objects built without pyplot (no global state, no display), saved
as PNG by ``save``. Images are shown with the PNG stage's fixed 8-bit quicklook stretch, the same
for every panel and every image, so that brightness differences are real.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage as ndi

from satsr.evaluate.metrics import METHODS, quicklook8

#: Display names and colours of the methods (and HR) in every figure.
LABELS = {"bicubic": "bicubic", "lanczos": "Lanczos-3", "sr": "model (SR)", "hr": "HR (Sentinel-2)"}
COLOURS = {"bicubic": "tab:blue", "lanczos": "tab:green", "sr": "tab:red", "hr": "black"}
#: Line widths / styles: overlapping histograms (a model close to bicubic) stay visible.
STYLES = {"bicubic": (3.0, "-"), "lanczos": (2.0, "-"), "sr": (1.5, "-"), "hr": (2.0, "-")}


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _finite(values: pd.Series | np.ndarray, cap: float | None = None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if cap is not None:
        v = np.where(np.isposinf(v), cap, v)
    return v[np.isfinite(v)]


def _hist_panel(ax, series: Mapping[str, np.ndarray], bins: int, xlabel: str, fmt: str) -> None:
    finite = [v for v in series.values() if v.size]
    if not finite:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        return
    lo = min(float(v.min()) for v in finite)
    hi = max(float(v.max()) for v in finite)
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    for name, v in series.items():
        if not v.size:
            continue
        label = (f"{LABELS.get(name, name)}: mean {format(float(v.mean()), fmt)}, "
                 f"median {format(float(np.median(v)), fmt)}")
        width, style = STYLES.get(name, (1.8, "-"))
        ax.hist(v, bins=edges, histtype="step", linewidth=width, linestyle=style, color=COLOURS.get(name),
                label=label, alpha=0.85)
        ax.axvline(float(v.mean()), color=COLOURS.get(name), linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number of images")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def sharpness_histogram(df: pd.DataFrame, title: str, bins: int = 20) -> Figure:
    """Histogram of the seed's sharpness index per method and for HR (dashed lines: means)."""
    fig = Figure(figsize=(8, 4.8), dpi=100)
    ax = fig.subplots()
    series = {m: _finite(df[f"{m}_sharpness"]) for m in ("bicubic", "lanczos", "sr") if f"{m}_sharpness" in df}
    if "hr_sharpness" in df:
        series["hr"] = _finite(df["hr_sharpness"])
    _hist_panel(ax, series, bins, "sharpness index: mean |gradient| of the grey image (reflectance per 10 m px)",
                ".4f")
    ax.set_title(title, fontsize=10)
    fig.text(0.01, 0.01, "band-mean grey of reflectance clipped to [0, 1], 3 px border cropped; "
             "closer to HR is better", fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def psnr_histogram(df: pd.DataFrame, title: str, bins: int = 20, cap: float = 100.0,
                   gain: Mapping[str, Any] | None = None) -> Figure:
    """Left: PSNR per method; right: per-image paired PSNR gain of the model over bicubic, with the
    CI of the mean gain, labelled with its unit (``gain``: satsr.evaluate.stats.paired_gain of sr vs bicubic)."""
    fig = Figure(figsize=(12, 4.8), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    series = {m: _finite(df[f"{m}_psnr"], cap) for m in ("bicubic", "lanczos", "sr") if f"{m}_psnr" in df}
    _hist_panel(ax1, series, bins, "PSNR (dB) on reflectance [0, 1], RGB, 3 px border", ".2f")
    ax1.set_title("PSNR per method", fontsize=10)
    if "sr_psnr" in df and "bicubic_psnr" in df:
        g = _finite(np.clip(df["sr_psnr"].to_numpy(float), -cap, cap) - np.clip(df["bicubic_psnr"].to_numpy(float),
                                                                               -cap, cap))
        _hist_panel(ax2, {"sr": g}, bins, "PSNR gain of the model over bicubic, per image (dB)", "+.3f")
        ax2.axvline(0.0, color="black", linewidth=1)
        if gain and gain.get("ci_low") is not None:
            ci_label = gain.get("ci_note") or f"{100 * gain.get('level', 0.95):.0f} % bootstrap CI of the mean gain"
            ax2.axvspan(gain["ci_low"], gain["ci_high"], color="tab:red", alpha=0.15, label=ci_label)
            ax2.legend(fontsize=8, loc="best")
        ax2.set_title("paired gain over bicubic", fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def detail_window(hr: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``side`` px window of ``hr`` with the most detail (mean gradient
    magnitude of the grey image), for the zoomed panels."""
    grey = np.asarray(hr, np.float64).mean(axis=-1)
    h, w = grey.shape
    side = min(side, h, w)
    gy, gx = np.gradient(grey)
    energy = ndi.uniform_filter(np.hypot(gx, gy), side, mode="constant")
    half = side // 2
    valid = energy[half:h - side + half + 1, half:w - side + half + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x)


def side_by_side(panels: Sequence[tuple[str, np.ndarray, str]], title: str, zoom_px: int = 96,
                 quicklook: tuple[float, float] = (0.3, 1.8), window: tuple[int, int] | None = None) -> Figure:
    """Panels (name, reflectance (H, W, 3), caption) side by side: whole images on top with the zoom
    window outlined, the zoomed crops (nearest neighbour) below; the last panel is the reference
    (HR) that picks the window unless ``window`` is given."""
    ref = panels[-1][1]
    h, w = ref.shape[:2]
    side = min(zoom_px, h, w)
    y, x = window if window is not None else detail_window(ref, side)
    n = len(panels)
    fig = Figure(figsize=(3.6 * n, 7.6), dpi=100)
    axes = fig.subplots(2, n, squeeze=False)
    for k, (name, img, caption) in enumerate(panels):
        q = quicklook8(np.clip(img, 0.0, 1.0), *quicklook)
        top, bottom = axes[0][k], axes[1][k]
        top.imshow(q, interpolation="nearest")
        top.add_patch(Rectangle((x - 0.5, y - 0.5), side, side, fill=False, edgecolor="yellow", linewidth=1.5))
        top.set_title(f"{name}\n{caption}", fontsize=9)
        bottom.imshow(q[y:y + side, x:x + side], interpolation="nearest")
        bottom.set_title(f"zoom {side} x {side} px (10 m)", fontsize=8)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_indices(gains: Sequence[float], n: int) -> list[int]:
    """Up to ``n`` row indices spread evenly over the ranks of ``gains`` (worst ... best); NaN last."""
    g = np.asarray(gains, dtype=np.float64)
    if n <= 0 or g.size == 0:
        return []
    order = np.argsort(np.where(np.isnan(g), np.inf, g), kind="stable")
    if n >= g.size:
        return [int(i) for i in order]
    picks = np.unique(np.round(np.linspace(0, g.size - 1, n)).astype(int))
    return [int(order[p]) for p in picks]


# ------------------------------------------------------------------------------- leaderboard
def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, spec)


def leaderboard_markdown(board: Mapping[str, Any]) -> str:
    """The leaderboard as a markdown table (the JSON is metrics/leaderboard.json)."""
    rows = board["rows"]
    crit = board["criterion"]
    ci = board.get("ci_note") or f"{100 * board['ci_level']:.0f}% CI, bootstrap over images"
    lines = [
        "# Model leaderboard (validation split)",
        "",
        (f"Ranked on the **{board['split']}** split ({board['n_images']} images; the test split is never used "
         f"for selection) by **{crit}**, among architectures whose hallucination share exceeds bicubic's by at "
         f"most **{board['max_hallucination']:g}** (mean paired excess). Gains are paired per image over bicubic; "
         f"[CI] of the mean: **{ci}** (seeded; a cluster bootstrap resamples whole spatial groups of the split, "
         "because neighbouring chips are not independent); *significant* means the CI excludes 0. "
         "Hallucination: opensr-test's share of pixels classed as hallucinated; the cap applies to "
         "its excess over bicubic on the same images (bicubic itself is not at 0). "
         f"Conventions: {board['conventions']}."),
        "",
        ("| rank | arch | model version | val PSNR (dB) | bicubic (dB) | PSNR gain (dB) [CI] | SSIM gain [CI] "
         "| cPSNR gain (dB) [CI] | hallucination (bicubic) | excess | eligible | champion version |"),
        "|---:|---|---|---:|---:|---|---|---|---:|---:|:---:|---|",
    ]
    for r in rows:
        pg, sg, cg = r["psnr_gain"], r["ssim_gain"], r.get("cpsnr_gain") or {}
        sig = " *" if pg.get("significant") else ""
        lines.append(
            f"| {r['rank']} | **{r['arch']}** | {r.get('registered_model') or 'not registered'} | "
            f"{_fmt(r['sr_psnr'], '.3f')} | {_fmt(r['bicubic_psnr'], '.3f')} | "
            f"{_fmt(pg.get('mean'), '+.3f')} "
            f"[{_fmt(pg.get('ci_low'), '+.3f')}, {_fmt(pg.get('ci_high'), '+.3f')}]{sig} | "
            f"{_fmt(sg.get('mean'), '+.4f')} [{_fmt(sg.get('ci_low'), '+.4f')}, {_fmt(sg.get('ci_high'), '+.4f')}] | "
            f"{_fmt(cg.get('mean'), '+.3f')} [{_fmt(cg.get('ci_low'), '+.3f')}, {_fmt(cg.get('ci_high'), '+.3f')}] | "
            f"{_fmt(r['hallucination'], '.3f')} ({_fmt(r['bicubic_hallucination'], '.3f')}) | "
            f"{_fmt(r['hallucination_excess'], '+.3f')} | {'yes' if r['eligible'] else 'no'} | "
            f"{r.get('champion') or '-'} |")
    lines += ["", f"`*`: the CI of the mean PSNR gain excludes 0 ({ci}).", ""]
    tie = board.get("tie_rule")
    if tie:
        lines += [f"**Top two** ({' vs '.join(tie['between'])}): {tie['reason']}.", ""]
    winner = board.get("winner")
    if winner:
        lines.append(f"**Winner: {winner}**" + ("" if board.get("winner_eligible", True) else
                     " (no architecture met the hallucination cap; the one with the least excess was chosen)"))
    reg = board.get("registry") or {}
    if reg.get("champion"):
        lines.append(f"\nRegistry: `{reg['champion']}` (alias `{reg['alias']}`) = `{reg.get('source_version')}`.")
    elif reg.get("note"):
        lines.append(f"\nRegistry: {reg['note']}")
    return "\n".join(lines) + "\n"


__all__ = ["METHODS", "figure_indices", "leaderboard_markdown", "psnr_histogram", "save", "sharpness_histogram",
           "side_by_side"]
