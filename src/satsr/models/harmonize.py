"""Radiometric harmonization of Landsat to Sentinel-2: a per-band linear map on LR reflectance.

Users put the SR image next to today's Sentinel-2, so the model can map Landsat reflectance to
Sentinel-2's before it adds detail: ``msi = gain * oli + offset`` per band (red, green, blue). The
map is a spec, one of

* ``none``: identity;
* ``hls``: the published HLS v2 bandpass adjustment inverted (HLS gives Sentinel-2A MSI -> OLI as
  ``oli = slope * msi + offset``, so ``gain = 1 / slope``, ``offset = -offset / slope``); a few %,
  a sensor constant, not the scene-specific bias of atmosphere and date;
* a YAML/JSON file ``{gain: [r, g, b], offset: [r, g, b]}`` (optionally ``description: text``),
  e.g. a map fitted on real pairs.

The map lives in the saved model as its ``harmonize`` layer (``satsr.models.blocks.BandLinear``),
written by ``satsr.models.export``; training applies the same map to the LR pairs
(``train.harmonize``), and ``satsr predict --harmonize`` can replace it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satsr.errors import SatsrError

#: The spec names that are not files.
NAMES = ("none", "hls")
FILE_KEYS = ("gain", "offset")
OPTIONAL_KEYS = ("description",)


class HarmonizeError(SatsrError, ValueError):
    """A harmonization spec or file is not usable; the message names the file and the expected keys."""


@dataclass(frozen=True)
class Harmonization:
    """``y = gain * x + offset`` per band (red, green, blue) on reflectance; ``source`` says whence."""

    source: str
    gain: tuple[float, ...]
    offset: tuple[float, ...]

    @property
    def bands(self) -> int:
        return len(self.gain)

    @property
    def is_identity(self) -> bool:
        return all(g == 1.0 for g in self.gain) and all(o == 0.0 for o in self.offset)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "gain": [float(g) for g in self.gain],
                "offset": [float(o) for o in self.offset]}

    def describe(self) -> str:
        """One line for logs: the source and the map per band."""
        terms = ", ".join(f"{g:.6g} * x {'+' if o >= 0 else '-'} {abs(o):.6g}" for g, o in zip(self.gain, self.offset))
        return f"{self.source} ({terms})"

    def apply(self, refl: np.ndarray) -> np.ndarray:
        """The map on (..., bands) reflectance (numpy, float32)."""
        return refl * np.asarray(self.gain, np.float32) + np.asarray(self.offset, np.float32)


def identity(bands: int = 3) -> Harmonization:
    return Harmonization("none", (1.0,) * bands, (0.0,) * bands)


def hls(bands: int = 3) -> Harmonization:
    """HLS v2 OLI -> MSI: the inverse of ``satsr.data.sensor``'s MSI -> OLI bandpass adjustment."""
    from satsr.data.sensor import HLS_OFFSET, HLS_SLOPE

    if bands > len(HLS_SLOPE):
        raise HarmonizeError(f"hls: the HLS coefficients cover red, green, blue ({len(HLS_SLOPE)} bands), "
                             f"not {bands}")
    slope, offset = HLS_SLOPE[:bands], HLS_OFFSET[:bands]
    return Harmonization("hls", tuple(1.0 / s for s in slope), tuple(-o / s for o, s in zip(offset, slope)))


def _numbers(values: Any, key: str, bands: int, path: Path) -> tuple[float, ...]:
    expected = f"expected keys {', '.join(FILE_KEYS)}: lists of {bands} numbers (red, green, blue)"
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != bands:
        raise HarmonizeError(f"{path}: {key} must be a list of {bands} numbers, got {values!r}; {expected}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise HarmonizeError(f"{path}: {key} must be a list of {bands} numbers, got {values!r}; {expected}") from None
    if not all(math.isfinite(v) for v in out) or any(isinstance(v, bool) for v in values):
        raise HarmonizeError(f"{path}: {key} must hold finite numbers, got {values!r}; {expected}")
    if key == "gain" and min(out) <= 0:
        raise HarmonizeError(f"{path}: gain must be positive per band, got {values!r}; {expected}")
    return out


def from_file(path: str | Path, bands: int = 3) -> Harmonization:
    """A map from a YAML/JSON file ``{gain: [...], offset: [...]}``, validated."""
    import yaml

    path = Path(path).expanduser()
    expected = (f"expected a YAML/JSON mapping with keys {', '.join(FILE_KEYS)} (lists of {bands} numbers: "
                f"red, green, blue; msi = gain * oli + offset) and optionally {', '.join(OPTIONAL_KEYS)}")
    try:
        text = path.read_text()
    except OSError as err:
        why = err.strerror or err
        raise HarmonizeError(f"{path}: cannot read the harmonization file ({why}); {expected}") from None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarmonizeError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} "
                             f"({first}); {expected}") from None
    if not isinstance(doc, dict):
        raise HarmonizeError(f"{path}: {expected}, got {type(doc).__name__}")
    missing = [k for k in FILE_KEYS if k not in doc]
    unknown = sorted(str(k) for k in doc if k not in FILE_KEYS + OPTIONAL_KEYS)
    if missing or unknown:
        what = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                       f"unknown {', '.join(unknown)}" if unknown else ""]))
        raise HarmonizeError(f"{path}: {what}; {expected}")
    return Harmonization(str(path), _numbers(doc["gain"], "gain", bands, path),
                         _numbers(doc["offset"], "offset", bands, path))


def resolve(spec: str | Path | Harmonization | None, bands: int = 3) -> Harmonization | None:
    """``none`` | ``hls`` | a file -> the map; None stays None (the model's own map)."""
    if spec is None or isinstance(spec, Harmonization):
        return spec
    text = str(spec).strip()
    if text.lower() == "none":
        return identity(bands)
    if text.lower() == "hls":
        return hls(bands)
    path = Path(text).expanduser()
    if not path.is_file():
        raise HarmonizeError(f"harmonize {text!r}: expected none, hls, or a YAML/JSON file with per-band "
                             f"{' and '.join(FILE_KEYS)} lists ({path} is not a file)")
    return from_file(path, bands)


def png_harmonizer(h: Harmonization, lo: float, hi: float):
    """The map in the network's [0, 1] units, for the training input pipeline: ``x -> encode(h(decode(x)))``.

    An affine map per band, x' = a * x + b with a = gain and b = (gain * lo + offset - lo) / (hi - lo);
    the exported model applies ``h`` on reflectance before its ``encode`` layer (which clips to
    [lo, hi]), so a network trained on ``clip(x', 0, 1)`` sees the same inputs at prediction time.
    """
    import tensorflow as tf

    a = tf.constant(h.gain, tf.float32)
    b = tf.constant([(g * lo + o - lo) / (hi - lo) for g, o in zip(h.gain, h.offset)], tf.float32)

    def fn(lr, hr, *rest):
        return (tf.clip_by_value(tf.cast(lr, tf.float32) * a + b, 0.0, 1.0), hr, *rest)

    return fn


def for_training(spec: str, units: str) -> Harmonization | None:
    """The map a training stage applies to its LR (``train.harmonize``): None when it is the identity
    or the data are not reflectance (natural-photo pretraining)."""
    h = resolve(spec, 3)
    if h is None or h.is_identity or units != "reflectance":
        return None
    return h
