"""The ``folder`` provider: import an existing dataset into the raw layout (GeoTIFF chips + manifest).

Three layouts are understood (``source.folder.layout``):

* ``seed_tif``: the seed project's Earth Engine export, ``<id>_<date>_L8_<lon>_<lat>.tif`` beside
  ``<id>_<date>_S2_<lon>_<lat>.tif``. Imported unchanged (one chip per file): its 1-3 px size
  mismatches are kept and only logged, so the filter stage rejects them with a reason instead of
  this stage hiding them.
* ``seed_png``: the seed's ``train_LR``/``train_HR``/``val_LR``/``val_HR`` folders (8-bit stretched
  or satsr's own 16-bit PNGs). Not georeferenced: chips get a local pixel grid (LR 30 units, HR 10
  units, origin 0,0, no CRS) and keep the dataset's split in ``source_split``.
* ``pattern``: any pairs matched by ``lr_pattern``/``hr_pattern`` (named group ``key``). Large
  co-located scenes are cut into chips of ``source.lr_size`` LR pixels (HR exactly 3x, each chip
  with its own transform) when ``cut_into_chips``, inside the two files' common exactly nested
  window (satsr.data.nesting): an integer HR-pixel origin offset or a non-3x extent that the
  georeferences state is cut at the matching HR offset, refined by content within
  ``coregister_hr_px`` whole HR pixels; only the sub-HR-pixel residual is left to the filter.

Chips keep their source dtype and record their radiometric encoding (satsr tag + GDAL
scale/offset), so later stages decode them with ``geotiff.encoding_of``. A missing partner or an
unreadable file never stops the import: it is logged, and the pair still gets a manifest row with
an empty file name so the filter stage reports it (``missing_lr`` / ``missing_hr``).

Modules: :mod:`.discover` (finding and pairing each layout's files), :mod:`.chipping` (cutting a
``pattern`` scene into exactly nested chips), :mod:`.reading` and :mod:`.encoding` (reading source
files and deciding what their values mean), :mod:`.write` (chips and manifest rows), :mod:`.jobs`
(the plan they share), :mod:`.provider` (the run: resume, manifest).
"""

from satsr.data.sources.folder.chipping import TAG_NESTING
from satsr.data.sources.folder.discover import IMAGE_SUFFIXES, LAYOUT_HELP, SEED_PNG_SPLITS, SEED_TIF_RE
from satsr.data.sources.folder.encoding import detect_encoding, is_pseudo_reflectance
from satsr.data.sources.folder.jobs import parse_date
from satsr.data.sources.folder.provider import FINGERPRINT_NAME, run
from satsr.data.sources.folder.write import write_chip

__all__ = [
    "FINGERPRINT_NAME", "IMAGE_SUFFIXES", "LAYOUT_HELP", "SEED_PNG_SPLITS", "SEED_TIF_RE", "TAG_NESTING",
    "detect_encoding", "is_pseudo_reflectance", "parse_date", "run", "write_chip",
]
