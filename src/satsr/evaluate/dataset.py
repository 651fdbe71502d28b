"""A PNG dataset as the metric stack sees it: the pairs of a split and the values they decode to.

Evaluation, selection and training-time validation score the same pixels the same way, so they
share this module: the pairs come from satsr.data.pipeline.load_pairs (the one PNG loader, which
checks the index, the files and the exact 3x sizes), and every 16-bit value is decoded by
:class:`PngDecoding` with satsr.data.radiometry.from_png16.

What the values mean depends on the dataset:

* the satellite PNG dataset (``data/png``) holds REFLECTANCE mapped with ``png.reflectance_min`` /
  ``png.reflectance_max`` (params.yaml); its ``encoding.json`` records the range it was written
  with, and a range that differs from params is an error (rerun the png stage), never a silent
  mis-decoding;
* the natural-image pretraining corpus (``data/natural``; its ``encoding.json`` has no reflectance
  range) holds 8-bit photo values, decoded to photo units ``v8 / 255`` in [0, 1].

Metric names carry the unit (:attr:`PngDecoding.tag`: ``refl`` or ``photo``), so a number on one
scale is never shown under the name of the other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from satsr.data.radiometry import from_png16
from satsr.evaluate.metrics import EvaluationError

if TYPE_CHECKING:
    from satsr.config import PngParams
    from satsr.data.pipeline import Pair

#: Written by the png and natural stages beside index.csv: how the 16-bit values were made.
ENCODING_NAME = "encoding.json"
#: Range mismatches smaller than this are float noise, not a different encoding.
_RANGE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PngDecoding:
    """How a PNG dataset's 16-bit values decode to the values every metric is computed on:
    ``value = lo + png / 65535 * (hi - lo)``."""

    lo: float
    hi: float
    units: Literal["reflectance", "photo"]

    @property
    def tag(self) -> str:
        """The unit suffix of metric names: ``refl`` (reflectance) or ``photo`` (v8 / 255)."""
        return "refl" if self.units == "reflectance" else "photo"

    def decode(self, png: np.ndarray) -> np.ndarray:
        """float64 values of uint16 PNG pixels (satsr.data.radiometry.from_png16)."""
        return from_png16(png, self.lo, self.hi).astype(np.float64)

    def decode_unit(self, unit: np.ndarray) -> np.ndarray:
        """The same values from the training pipeline's ``png / 65535`` floats: they are rounded
        back to the PNG integers first, so both routes give identical numbers."""
        png = np.clip(np.rint(np.asarray(unit, np.float64) * 65535.0), 0, 65535).astype(np.uint16)
        return self.decode(png)

    def describe(self) -> str:
        if self.units == "reflectance":
            return (f"reflectance (png16 decoded with png.reflectance_min/max = {self.lo:g}/{self.hi:g}), "
                    "clipped to [0, 1]")
        return "photo units v8 / 255 in [0, 1] (natural-image corpus, not reflectance)"


def png_decoding(png_dir: str | Path, png: PngParams | None = None) -> PngDecoding:
    """The decoding of the dataset in ``png_dir`` (module doc). ``png``: params.yaml's ``png``
    section (its defaults when None)."""
    if png is None:
        from satsr.config import PngParams

        png = PngParams()
    lo, hi = float(png.reflectance_min), float(png.reflectance_max)
    path = Path(png_dir) / ENCODING_NAME
    if not path.is_file():
        return PngDecoding(lo, hi, "reflectance")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise EvaluationError(f"{path}: unreadable ({err}); rerun the stage that wrote {Path(png_dir)}") from None
    if not isinstance(doc, dict):
        raise EvaluationError(f"{path}: expected a JSON object describing the PNG encoding")
    if "lo" not in doc and "hi" not in doc:
        return PngDecoding(0.0, 1.0, "photo")
    try:
        written = (float(doc["lo"]), float(doc["hi"]))
    except (KeyError, TypeError, ValueError):
        raise EvaluationError(f"{path}: 'lo' and 'hi' must both be numbers (the reflectance range of the "
                              f"PNGs), got lo={doc.get('lo')!r}, hi={doc.get('hi')!r}") from None
    if abs(written[0] - lo) > _RANGE_TOLERANCE or abs(written[1] - hi) > _RANGE_TOLERANCE:
        raise EvaluationError(
            f"{path}: the PNGs were written with reflectance range [{written[0]:g}, {written[1]:g}] but params.yaml "
            f"has png.reflectance_min/max = [{lo:g}, {hi:g}]; rerun the png stage (`dvc repro png`) or restore "
            "the params")
    return PngDecoding(lo, hi, "reflectance")


def load_split(png_dir: str | Path, split: str, max_images: int | None = None,
               png: PngParams | None = None) -> tuple[list[Pair], float, float]:
    """The checked pairs of ``split`` (index order, at most ``max_images``) and the (lo, hi) of
    their decoding. Dataset problems raise :class:`EvaluationError` with the loader's message."""
    from satsr.data.pipeline import PipelineError, load_pairs

    decoding = png_decoding(png_dir, png)
    try:
        pairs = load_pairs(png_dir, split)
    except PipelineError as err:
        raise EvaluationError(f"{err}; nothing to evaluate") from None
    return (pairs[:max_images] if max_images else pairs), decoding.lo, decoding.hi


def read_reflectance(path: Path, lo: float, hi: float) -> np.ndarray:
    """(h, w, 3) float64 values of one 16-bit PNG (reflectance for the satellite dataset)."""
    from satsr.data.png import read_png16

    try:
        return from_png16(read_png16(path), lo, hi).astype(np.float64)
    except Exception as err:  # noqa: BLE001 -- RasterError, OSError: name the file
        raise EvaluationError(f"{path}: cannot read the 16-bit PNG ({err})") from None


def split_fingerprint(pairs: Iterable[Pair]) -> str:
    """sha256 over the pair ids and the bytes of their PNGs: which exact images were scored."""
    h = hashlib.sha256()
    for p in sorted(pairs, key=lambda p: p.pair_id):
        h.update(p.pair_id.encode() + b"\0")
        for path in (p.lr_path, p.hr_path):
            with open(path, "rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()
