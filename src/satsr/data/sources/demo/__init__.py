"""Offline demo provider: SYNTHETIC Sentinel-2-like landscapes with a simulated Landsat-8 partner.

Nothing here is real imagery. The provider exists so that a fresh machine without an Earth Engine
account can run the whole pipeline (``make demo``, the tests). It writes the same raw layout as the
``gee`` provider -- uint16 DN in the real encodings, the real band names, seed-style file names,
nested 30 m / 10 m UTM grids, acquisition tags and the common manifest -- so every later stage
runs unchanged. Every file says what it is: tag ``SATSR_DEMO=1``, a ``DESCRIPTION`` tag, and
``is_demo=True`` / ``provider=demo`` in the manifest. Scene ids look like real ones but are made
up.

Modules: :mod:`.plan` (locations, dates, defects and ids of every pair; pure), :mod:`.noise`
(FFT-filtered random fields), :mod:`.landscape` (the 10 m scene of a location in a given month),
:mod:`.defects` (the planted bad pairs), :mod:`.generate` (the sensor model's partner, chips,
GeoTIFFs and manifest rows of one location) and :mod:`.provider` (the run: resume, workers,
manifest).

Determinism: every random draw comes from ``numpy.random.default_rng([seed, stream, index])``
with ``seed = source.demo.seed``, so the files are byte-identical for the same params whatever
the number of workers. Resume: pairs whose files match the manifest checksums and carry this
generator's parameter fingerprint are not generated again; files outside the plan are removed.
"""

from satsr.data.sources.demo.defects import DEFECTS
from satsr.data.sources.demo.generate import DESCRIPTION, PROVIDER, TAG_DEMO, TAG_FINGERPRINT
from satsr.data.sources.demo.plan import (
    GENERATOR_VERSION,
    PlannedPair,
    demo_locations,
    fingerprint,
    location_region,
    mgrs_tile,
    plan_pairs,
    wrs2_path_row,
)
from satsr.data.sources.demo.provider import run

__all__ = [
    "DEFECTS", "DESCRIPTION", "GENERATOR_VERSION", "PROVIDER", "TAG_DEMO", "TAG_FINGERPRINT", "PlannedPair",
    "demo_locations", "fingerprint", "location_region", "mgrs_tile", "plan_pairs", "run", "wrs2_path_row",
]
