"""Evaluation figures and the leaderboard table: which images are shown, where the zoom goes, what
the histograms and captions say, and the markdown leaderboard."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from satsr.evaluate import report


# ------------------------------------------------------------------------------------ picking
def test_figure_indices_spread_over_the_gain_ranks():
    gains = [0.5, -1.0, 2.0, math.nan, 0.0, 1.0]
    assert report.figure_indices(gains, 0) == [] and report.figure_indices([], 3) == []
    assert report.figure_indices(gains, 10) == [1, 4, 0, 5, 2, 3]  # all, worst first, NaN last
    picks = report.figure_indices(gains, 3)
    assert picks[0] == 1 and picks[-1] == 3 and len(picks) == 3  # the worst and the last rank included
    assert report.figure_indices([3.0, 1.0, 2.0], 1) == [1]


def test_detail_window_finds_the_textured_corner():
    hr = np.full((60, 60, 3), 0.1)
    rng = np.random.default_rng(0)
    hr[40:56, 8:24] += rng.normal(0, 0.05, (16, 16, 3))
    y, x = report.detail_window(hr, 16)
    assert abs(y - 40) <= 2 and abs(x - 8) <= 2
    assert report.detail_window(hr, 100) == (0, 0)  # window larger than the image: the whole image


# ------------------------------------------------------------------------------------ figures
def _per_image() -> pd.DataFrame:
    return pd.DataFrame({"sr_psnr": [31.0, 32.0, math.inf], "bicubic_psnr": [30.0, 31.5, 40.0],
                         "lanczos_psnr": [30.2, 31.6, 40.1],
                         "sr_sharpness": [0.02, 0.03, 0.025], "bicubic_sharpness": [0.01, 0.015, 0.012],
                         "hr_sharpness": [0.03, 0.035, 0.03]})


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_histograms_show_every_method_with_its_mean(tmp_path):
    df = _per_image()
    fig = report.sharpness_histogram(df, "sharpness: test", bins=5)
    texts = _legend_texts(fig.axes[0])
    assert any(t.startswith("bicubic: mean 0.0123") for t in texts)
    assert any(t.startswith("HR (Sentinel-2): mean 0.0317") for t in texts) and len(texts) == 3
    gain = {"mean": 1.0, "ci_low": 0.2, "ci_high": 1.8, "level": 0.9}
    fig = report.psnr_histogram(df, "PSNR: test", bins=5, cap=50.0, gain=gain)
    left, right = fig.axes
    assert any(t.startswith("model (SR): mean 37.67") for t in _legend_texts(left))  # inf capped at 50
    assert any("90 % bootstrap CI" in t for t in _legend_texts(right))
    out = report.save(fig, tmp_path / "figs" / "psnr.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_histogram_without_finite_values_says_so():
    df = pd.DataFrame({"sr_sharpness": [math.nan], "bicubic_sharpness": [math.nan]})
    fig = report.sharpness_histogram(df, "empty")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no finite values"]


def test_side_by_side_panels_zoom_on_the_reference():
    hr = np.full((48, 48, 3), 0.1)
    hr[30:40, 30:40] = 0.25
    panels = [("bicubic", hr * 0.9, "PSNR 30 dB"), ("model", hr, "PSNR 31 dB"), ("HR", hr, "")]
    fig = report.side_by_side(panels, "pair p1", zoom_px=16, window=(28, 28))
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == "bicubic\nPSNR 30 dB"
    assert fig.axes[3].get_title() == "zoom 16 x 16 px (10 m)"
    zoom = fig.axes[4].get_images()[0].get_array()
    assert zoom.shape == (16, 16, 3)


# -------------------------------------------------------------------------------- leaderboard
def _board(**kw) -> dict:
    gain = {"mean": 0.75, "ci_low": 0.25, "ci_high": 1.25, "significant": True}
    rows = [
        {"rank": 1, "arch": "rdn", "registered_model": "models:/satsr-rdn/3", "sr_psnr": 37.7312,
         "bicubic_psnr": 36.98, "psnr_gain": gain,
         "ssim_gain": {"mean": 0.01, "ci_low": 0.005, "ci_high": 0.015}, "hallucination": 0.2,
         "bicubic_hallucination": 0.17, "hallucination_excess": 0.03, "eligible": True,
         "champion": "models:/satsr-rdn@champion = version 3"},
        {"rank": 2, "arch": "srgan", "registered_model": None, "sr_psnr": None, "bicubic_psnr": 36.98,
         "psnr_gain": {"mean": None, "ci_low": None, "ci_high": None, "significant": False},
         "ssim_gain": {"mean": -0.01, "ci_low": None, "ci_high": None}, "hallucination": 0.4,
         "bicubic_hallucination": 0.17, "hallucination_excess": 0.23, "eligible": False},
    ]
    return {"rows": rows, "criterion": "psnr_gain", "split": "val", "n_images": 12, "max_hallucination": 0.1,
            "ci_level": 0.95, "conventions": "reflectance clipped to [0, 1], 3 px border", "winner": "rdn",
            "winner_eligible": True, "registry": {"note": "registry not updated"}, **kw}


def test_leaderboard_markdown_rows_formats_and_winner():
    md = report.leaderboard_markdown(_board())
    lines = md.splitlines()
    assert lines[0] == "# Model leaderboard (validation split)"
    assert "**val** split (12 images" in md and "by **psnr_gain**" in md and "most **0.1**" in md
    assert "Conventions: reflectance clipped to [0, 1], 3 px border." in md
    table = [ln for ln in lines if ln.startswith("| ")]
    assert len(table) == 3  # header + one row per architecture
    rdn, srgan = table[1], table[2]
    assert rdn.startswith("| 1 | **rdn** | models:/satsr-rdn/3 | 37.731 | 36.980 | +0.750 [+0.250, +1.250] * |")
    assert "| yes | models:/satsr-rdn@champion = version 3 |" in rdn
    assert srgan.startswith("| 2 | **srgan** | not registered | n/a | 36.980 | n/a [n/a, n/a] |")
    assert "| +0.230 | no | - |" in srgan
    assert "**Winner: rdn**" in md and "Registry: registry not updated" in md
    assert md.endswith("\n")


def test_leaderboard_says_when_no_model_met_the_cap():
    md = report.leaderboard_markdown(_board(winner="srgan", winner_eligible=False,
                                            registry={"champion": "models:/satsr@champion", "alias": "champion",
                                                      "source_version": "models:/satsr-srgan/1"}))
    assert "**Winner: srgan** (no architecture met the hallucination cap" in md
    assert "Registry: `models:/satsr@champion` (alias `champion`) = `models:/satsr-srgan/1`." in md


@pytest.mark.parametrize("value, spec, shown", [(None, ".3f", "n/a"), (math.nan, ".3f", "n/a"),
                                               (1.23456, "+.2f", "+1.23")])
def test_number_format(value, spec, shown):
    assert report._fmt(value, spec) == shown
