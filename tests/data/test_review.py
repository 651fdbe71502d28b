"""Human review of the filter's decisions: the review file, quicklooks and the HTML contact sheet."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from satsr.data import review


# ------------------------------------------------------------------------------- review file
def test_review_file_ids_comments_notes_and_duplicates(tmp_path):
    assert review.read_review_file(tmp_path / "absent.txt") == []  # a fresh clone has none
    path = tmp_path / "rejected.txt"
    path.write_text("# header comment\n\nL8_001  cloud shadow missed\n  S2_002 # trailing comment\n"
                    "L8_001 listed again\n#L8_003 commented out\nNA\n", encoding="utf-8")
    entries = review.read_review_file(path)
    assert [(e.pair_id, e.line) for e in entries] == [("L8_001", 3), ("S2_002", 4), ("NA", 7)]


def test_safe_name_keeps_ids_and_replaces_the_rest():
    assert review.safe_name("p_001-a.b") == "p_001-a.b"
    assert review.safe_name("../x y/z") == ".._x_y_z"
    assert review.safe_name("") == "_"


# --------------------------------------------------------------------------------- quicklook
def test_quicklook_fits_the_box_with_the_fixed_stretch():
    refl = np.full((3, 90, 60), 0.3, np.float32)  # = quicklook max reflectance -> white
    refl[:, :30, :] = 0.0
    refl[0, 45, 30] = np.nan
    img = review.quicklook(refl, px=30, max_reflectance=0.3, gamma=1.8)
    assert img.dtype == np.uint8 and img.shape == (30, 20, 3)  # longest side = px, aspect kept
    assert img[:9].max() == 0 and img[-5:].min() == 255  # dark top third, saturated rest, same stretch
    small = review.quicklook(np.full((3, 8, 8), 0.15, np.float32), px=32, max_reflectance=0.3, gamma=1.0)
    assert small.shape == (32, 32, 3) and np.all(small == 128)  # upscaled by nearest: values unchanged


# ----------------------------------------------------------------------------- contact sheet
def _report() -> pd.DataFrame:
    return pd.DataFrame([
        {"pair_id": "acc1", "status": "accepted", "reasons": "", "shift_px": 0.25, "detail": ""},
        {"pair_id": "rej_b", "status": "rejected", "reasons": "cloud;haze", "lr_cloud_fraction": 0.42},
        {"pair_id": "rej_a", "status": "rejected", "reasons": "cloud", "detail": "<b>bold</b>"},
        {"pair_id": "acc0", "status": "accepted", "reasons": None},
        {"pair_id": "rej_c", "status": "rejected", "reasons": "manual_review", "note": "seen by hand"},
    ])


def test_select_for_sheet_rejected_first_grouped_by_first_reason():
    shown = review.select_for_sheet(_report(), max_pairs=4)
    assert list(shown["pair_id"]) == ["rej_a", "rej_b", "rej_c", "acc0"]
    assert "_rej" not in shown.columns and "_first" not in shown.columns


def test_contact_sheet_lists_pairs_escapes_text_and_links_quicklooks(tmp_path):
    looks = tmp_path / "quicklooks"
    review.save_png(np.zeros((4, 4, 3), np.uint8), looks / "LR" / "rej_a.png")
    assert Image.open(looks / "LR" / "rej_a.png").size == (4, 4)
    report = review.select_for_sheet(_report(), max_pairs=10)
    html_path = review.write_contact_sheet(
        report, tmp_path / "sheet.html", {"rej_a": ("quicklooks/LR/rej_a.png", None)},
        review_file="data/review/rejected.txt", px=64, stretch="max 0.3, gamma 1.8", hidden=7,
        summary_lines=["5 pairs <checked>"])
    page = html_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.index('id="rejected"') < page.index('id="accepted"')
    assert "Rejected (3 shown)" in page and "Accepted (2 shown)" in page and "3 rejected and 2 accepted" in page
    for pid in ("rej_a", "rej_b", "rej_c", "acc0", "acc1"):
        assert f'data-id="{pid}"' in page
    assert 'src="quicklooks/LR/rej_a.png"' in page and "HR 10 m: no image" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # detail escaped
    assert "5 pairs &lt;checked&gt;" in page and "7 more pair(s) not shown" in page
    assert "cloud LR <b>42.0%</b>" in page and "shift px <b>0.25</b>" in page
    assert '<span class="note">seen by hand</span>' in page
    assert page.count('class="note"') == 1 and ">nan<" not in page  # missing cells stay empty
    assert page.count("no findings") == 4  # every card but rej_a (empty or missing detail)
    assert "data/review/rejected.txt" in page and "max 0.3, gamma 1.8" in page
    assert not list(tmp_path.glob(".*.part"))  # written atomically
