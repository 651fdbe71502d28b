"""Training PNGs: reflectance -> 16-bit RGB PNG with one documented, invertible mapping.

The seed stretched 8-bit PNGs with ad-hoc factors (L8 x4, S2 x1.4), so its models learned a
colour transform as well as super-resolution, and nothing could be turned back into reflectance.
Here both sensors are decoded to surface reflectance and mapped with one invertible formula
(``encoding.json`` next to the data documents it).

Modules: :mod:`.codec` (the 16-bit PNG encoder/reader and the reflectance <-> PNG-level mapping),
:mod:`.stats` (per-split, per-band statistics) and :mod:`.stage` (the png stage: ``run_png``).
This package re-exports their public names, so callers import ``satsr.data.png``.
"""

from satsr.data.png.codec import (
    DEFAULT_COMPRESS_LEVEL,
    PNG_FILTER_UP,
    QUICKLOOK_COMPRESS_LEVEL,
    encode_png,
    png16_to_reflectance,
    read_png16,
    reflectance_to_png16,
    write_png8,
    write_png16,
)
from satsr.data.png.stage import (
    ENCODING_NAME,
    FORMAT_VERSION,
    INDEX_NAME,
    QUICKLOOK_DIR,
    SIDES,
    decode_reflectance,
    encoding_doc,
    read_split_table,
    run_png,
)
from satsr.data.png.stats import BANDS, HIST_BINS

__all__ = [
    "BANDS",
    "DEFAULT_COMPRESS_LEVEL",
    "ENCODING_NAME",
    "FORMAT_VERSION",
    "HIST_BINS",
    "INDEX_NAME",
    "PNG_FILTER_UP",
    "QUICKLOOK_COMPRESS_LEVEL",
    "QUICKLOOK_DIR",
    "SIDES",
    "decode_reflectance",
    "encode_png",
    "encoding_doc",
    "png16_to_reflectance",
    "read_png16",
    "read_split_table",
    "reflectance_to_png16",
    "run_png",
    "write_png8",
    "write_png16",
]
