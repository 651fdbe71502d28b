"""Issue 13, item 16: `dvc plots show` loads Vega from a CDN, so offline its page is blank. The committed
template docs/plots_offline.html (README "Plots offline") makes DVC write a page that loads Vega from
files next to it instead; checked with the real `dvc plots show` on this repository's plots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"
TEMPLATE = REPO / "docs" / "plots_offline.html"


def plots_show(out: Path, *extra: str) -> str:
    proc = subprocess.run([str(DVC), "plots", "show", "-o", str(out), *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return (out / "index.html").read_text()


def test_the_offline_template_loads_vega_from_local_files(tmp_path):
    if not any((REPO / "plots").rglob("*.csv")):
        pytest.skip("no plots/*.csv in this checkout (run the pipeline first)")
    default = plots_show(tmp_path / "default")
    assert "cdn.jsdelivr.net" in default  # the problem: DVC's page needs the network
    page = plots_show(tmp_path / "offline", "--html-template", str(TEMPLATE))
    assert "cdn.jsdelivr.net" not in page and "<script src=\"http" not in page
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        assert f'<script src="{name}"></script>' in page
    assert page.count("vegaEmbed(") >= 2  # the plots themselves (training curves, evaluation scatter)
