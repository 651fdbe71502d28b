"""Human review of the filter's decisions: quicklooks, an HTML contact sheet, the review file.

This replaces the seed's manual-filtering notebook. The filter writes an 8-bit quicklook of every
pair with one fixed stretch (so images stay comparable), and a static HTML page that shows the
rejected pairs first with their reasons and metrics. A person who spots a bad pair the automatic
checks missed adds its pair_id to the committed review file; the next run rejects it with reason
``manual_review``. The page needs no server and no network: open it in any browser.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from PIL import Image

from satsr.data.radiometry import to_quicklook8
from satsr.data.registration import area_downsample
from satsr.util import atomic_path

log = logging.getLogger(__name__)

#: Metrics shown on each card: (report column, label, format).
CARD_METRICS: tuple[tuple[str, str, str], ...] = (
    ("lr_cloud_fraction", "cloud LR", "{:.1%}"),
    ("hr_cloud_fraction", "cloud HR", "{:.1%}"),
    ("lr_haze_reflectance", "haze LR", "{:.3f}"),
    ("hr_haze_reflectance", "haze HR", "{:.3f}"),
    ("lr_bright_reflectance", "bright LR", "{:.3f}"),
    ("hr_bright_reflectance", "bright HR", "{:.3f}"),
    ("lr_nodata_fraction", "nodata LR", "{:.1%}"),
    ("hr_nodata_fraction", "nodata HR", "{:.1%}"),
    ("shift_px", "shift px", "{:.2f}"),
    ("correlation", "r", "{:.3f}"),
    ("sharpness", "sharpness", "{:.4f}"),
)


# ------------------------------------------------------------------------------------ review file
@dataclass(frozen=True)
class ReviewEntry:
    pair_id: str
    line: int


def read_review_file(path: str | Path) -> list[ReviewEntry]:
    """Pair ids listed for manual rejection, one per line.

    ``#`` starts a comment (whole line or after the id), blank lines are ignored, and anything
    after the first whitespace-separated token is treated as a note. A missing file means no
    manual rejections (a fresh clone has none). Duplicates keep their first line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    entries: list[ReviewEntry] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        pair_id = text.split()[0]
        if pair_id not in seen:
            seen.add(pair_id)
            entries.append(ReviewEntry(pair_id, number))
    return entries


# -------------------------------------------------------------------------------------- quicklooks
def safe_name(pair_id: str) -> str:
    """A file-name-safe version of a pair id (manifest ids already are; this is belt and braces)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(pair_id)) or "_"


def quicklook(refl: np.ndarray, px: int, max_reflectance: float, gamma: float) -> np.ndarray:
    """(h, w, 3) uint8 image of (3, h, w) reflectance, fitted inside ``px`` x ``px``.

    Area-averages by an integer factor first (cheap, no aliasing), stretches with the fixed
    ``to_quicklook8`` mapping, then box-resizes to the exact display size. NaN shows black.
    """
    k = max(1, min(refl.shape[-2:]) // px)
    small = area_downsample(refl[:3], k, trim=True) if k > 1 else refl[:3]
    img = to_quicklook8(np.moveaxis(small, 0, -1), max_reflectance, gamma)
    scale = px / max(img.shape[0], img.shape[1])
    size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
    if size != (img.shape[1], img.shape[0]):
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.NEAREST
        img = np.asarray(Image.fromarray(img).resize(size, resample))
    return img


def save_png(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, optimize=False, compress_level=3)


# ----------------------------------------------------------------------------------- contact sheet
def select_for_sheet(report: pd.DataFrame, max_pairs: int) -> pd.DataFrame:
    """Rows to show: rejected first (grouped by first reason), then accepted; at most ``max_pairs``."""
    order = report.assign(
        _rej=(report["status"] != "rejected").astype(int),
        _first=report["reasons"].fillna("").str.split(";").str[0],
    ).sort_values(["_rej", "_first", "pair_id"], kind="stable")
    return order.drop(columns=["_rej", "_first"]).head(max_pairs)


def _fmt(value: object, fmt: str) -> str | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(v) else fmt.format(v)


def _img_tag(rel: str | None, label: str, px: int) -> str:
    if not rel:
        return f'<div class="noimg" style="width:{px}px;height:{px}px">{label}: no image</div>'
    return (
        f'<figure><img src="{html.escape(quote(rel))}" width="{px}" loading="lazy" '
        f'alt="{label}"><figcaption>{label}</figcaption></figure>'
    )


def _text(value: object) -> str:
    """A report cell as text; missing cells (None, NaN from a CSV round trip) are empty."""
    return value if isinstance(value, str) else ""


def _card(row: Mapping[str, object], looks: tuple[str | None, str | None], px: int) -> str:
    status = _text(row.get("status"))
    reasons = _text(row.get("reasons"))
    note = _text(row.get("note"))
    metrics = []
    for col, label, fmt in CARD_METRICS:
        shown = _fmt(row.get(col), fmt)
        if shown is not None:
            metrics.append(f"<span>{label} <b>{shown}</b></span>")
    pid = html.escape(str(row["pair_id"]))
    tags = "".join(f'<span class="reason">{html.escape(r)}</span>' for r in reasons.split(";") if r)
    if note:
        tags += f'<span class="note">{html.escape(note)}</span>'
    return (
        f'<div class="card {html.escape(status)}" data-id="{pid}">'
        f'<div class="imgs">{_img_tag(looks[0], "LR 30 m", px)}{_img_tag(looks[1], "HR 10 m", px)}</div>'
        f'<div class="head"><code>{pid}</code> <span class="status">{html.escape(status)}</span></div>'
        f'<div class="tags">{tags}</div>'
        f'<div class="metrics">{" ".join(metrics)}</div>'
        f"<details><summary>detail</summary>{html.escape(_text(row.get('detail')) or 'no findings')}</details>"
        f"</div>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;background:#f4f4f4;color:#222}
.help{background:#fff;border-left:4px solid #36c;padding:.6em 1em;max-width:70em}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:2px solid #9c9;border-radius:6px;padding:6px;max-width:%(cardw)dpx}
.card.rejected{border-color:#d66}
.imgs{display:flex;gap:4px}figure{margin:0}figcaption{font-size:11px;color:#666}
img{image-rendering:pixelated;background:#000}
.noimg{background:#ccc;font-size:11px;display:flex;align-items:center;justify-content:center}
.head code{font-size:12px;cursor:pointer}.status{font-size:11px;text-transform:uppercase}
.reason,.note{color:#fff;border-radius:3px;padding:0 4px;margin:2px;font-size:11px;display:inline-block}
.reason{background:#d66}.note{background:#36c}
.metrics{font-size:11px;color:#444}.metrics span{margin-right:6px;white-space:nowrap}
details{font-size:11px;color:#555}
textarea{width:40em;height:6em}
"""

_JS = """
document.querySelectorAll('.card code').forEach(function(c){c.addEventListener('click',function(){
 var t=document.getElementById('picked'); var id=c.textContent;
 if(t.value.split('\\n').indexOf(id)<0){t.value+=(t.value&&!t.value.endsWith('\\n')?'\\n':'')+id+'\\n';}});});
"""


def write_contact_sheet(
    report: pd.DataFrame,
    html_path: Path,
    quicklooks: Mapping[str, tuple[str | None, str | None]],
    review_file: str,
    px: int,
    stretch: str,
    hidden: int = 0,
    summary_lines: Iterable[str] = (),
) -> Path:
    """Write the static HTML contact sheet of ``report`` rows (already selected and ordered).

    ``quicklooks`` maps pair_id -> (LR png, HR png) paths relative to the HTML file's folder.
    """
    n_rej = int((report["status"] == "rejected").sum())
    groups = []
    for status, title in (("rejected", "Rejected"), ("accepted", "Accepted")):
        part = report[report["status"] == status]
        if part.empty:
            continue
        cards = "\n".join(
            _card(r, quicklooks.get(str(r["pair_id"]), (None, None)), px) for r in part.to_dict("records")
        )
        groups.append(
            f'<h2 id="{status}">{title} ({len(part)} shown)</h2>\n<div class="grid">\n{cards}\n</div>'
        )
    more = f"<p>{hidden} more pair(s) not shown (filter.contact_sheet_max_pairs).</p>" if hidden else ""
    summary = "".join(f"<li>{html.escape(s)}</li>" for s in summary_lines)
    review = html.escape(review_file)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>satsr filter: contact sheet</title>
<style>{_CSS % {"cardw": 2 * px + 24}}</style></head><body>
<h1>satsr filter: contact sheet</h1>
<div class="help">
<p><b>To reject a pair by hand, add its pair_id to the review file <code>{review}</code></b>
(one pair_id per line; <code>#</code> starts a comment), commit it, and rerun the filter stage
(<code>dvc repro filter</code>). It is then rejected with reason <code>manual_review</code>.
Click a pair_id below to collect it here for copying:</p>
<textarea id="picked" placeholder="pair ids to paste into {review}"></textarea>
<p>Quicklooks: {html.escape(stretch)}. Rejected pairs come first, grouped by their first reason.</p>
<ul>{summary}</ul>{more}
</div>
<p>{n_rej} rejected and {len(report) - n_rej} accepted pair(s) shown.</p>
{"".join(groups)}
<script>{_JS}</script>
</body></html>
"""
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return html_path
