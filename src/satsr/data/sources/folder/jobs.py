"""What the planners hand the writer: a pair to import (``Job``), each side a file or a window of one.

Also the naming rules every layout shares: filesystem-safe pair ids and dates taken from file names.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from rasterio.transform import Affine
from rasterio.windows import Window

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_DATE_RES = (
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"),
)


@dataclass
class Side:
    """One side (LR or HR) of a planned pair: which file, which window of it."""

    src: Path | None
    window: Window | None = None  # None = the whole file
    local_pixel: float | None = None  # set for non-georeferenced inputs: local grid pixel size
    transform: Affine | None = None  # the chip's grid when it is not the window's own (nested HR chips)
    tags: dict[str, str] = field(default_factory=dict)  # extra chip tags


@dataclass
class Job:
    """A pair to write: one manifest row, one or two chips."""

    pair_id: str
    lr: Side
    hr: Side
    region: str = ""
    lr_date: str = ""
    hr_date: str = ""
    source_split: str = ""
    lonlat_hint: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)


def safe_id(text: str) -> str:
    """Filesystem-safe pair id (the manifest contract)."""
    return _SAFE.sub("_", text).strip("_.") or "pair"


def parse_date(text: str) -> str:
    """ISO date found in a file name (YYYY-MM-DD or YYYYMMDD), else ''."""
    for rx in _DATE_RES:
        for m in rx.finditer(text):
            try:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
            except ValueError:
                continue
    return ""


def days_apart(a: str, b: str) -> int:
    """Days between two ISO dates; 10**6 when either is unknown (sorts last, never a real gap)."""
    if not a or not b:
        return 10**6
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)
