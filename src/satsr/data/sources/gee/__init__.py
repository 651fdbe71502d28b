"""Real Landsat-8/9 x Sentinel-2 pairs from Google Earth Engine (``source.provider=gee``).

Modules: :mod:`.client` (the only one that imports ``ee``: every request, one per call),
:mod:`.retry` (transient errors, backoff, concurrency cap, quota circuit breaker), :mod:`.plan`
(chips on Landsat's grid, pairing and ranking; pure), :mod:`.provider` (the run: one worker per
chip, manifest, resume), :mod:`.auth` and :mod:`.check` (``satsr ee-check``).

Grids. The LR chip is Landsat's **native** pixels: the chip lies in the northern UTM zone of its
centre (EPSG:326xx, negative northings south of the equator, as Landsat products are) with its
corner on the Landsat scene's own lattice (Collection 2: centres on multiples of 30 m, edges at
15 mod 30), so nothing on the Landsat side is resampled. The HR grid nests exactly (same corner,
10 m); Sentinel-2's own edges sit on multiples of 10 m, 5 m away, so the HR is resampled with
``source.gee.hr_resampling`` and the offset is recorded in the manifest's ``extra``. Landsat
scenes projected in another zone are skipped; Sentinel-2 ones are skipped or resampled
(``source.gee.s2_other_zone``, recorded).

Flow per chip: two searches and two clear-fraction screenings (4 getInfo, whatever the number of
candidates), then the best pair per month (chip clear fraction, then days apart) is downloaded
with ``computePixels``, tiled under the request limits. A failure costs what failed (that scene
or that pair, recorded in gee_failures.csv); a chip finished under the same plan is skipped on
rerun (gee_progress.json), and complete pairs are never downloaded again.
"""

from satsr.data.sources.gee.auth import AUTH_HELP, ENV_KEY_FILES, ENV_PROJECT, EeAuth, resolve_auth
from satsr.data.sources.gee.client import Backend, EarthEngineBackend, ee_grid, parse_transform_wkt
from satsr.data.sources.gee.common import (
    FAILURES_NAME,
    PROGRESS_NAME,
    GeeAuthError,
    GeeConnectionError,
    GeeError,
    GeeQuotaError,
)
from satsr.data.sources.gee.plan import (
    PAIR_COLUMNS,
    Location,
    describe_plan,
    match_scenes,
    pair_grids,
    plan_locations,
    rank_pairs,
    scenes_table,
)
from satsr.data.sources.gee.provider import run
from satsr.data.sources.gee.retry import Retrier, is_quota_error, is_retryable, status_of
from satsr.util import redact

__all__ = [
    "AUTH_HELP", "ENV_KEY_FILES", "ENV_PROJECT", "FAILURES_NAME", "PAIR_COLUMNS", "PROGRESS_NAME", "Backend",
    "EarthEngineBackend", "EeAuth", "GeeAuthError", "GeeConnectionError", "GeeError", "GeeQuotaError", "Location",
    "Retrier", "describe_plan", "ee_grid", "is_quota_error", "is_retryable", "match_scenes", "pair_grids",
    "parse_transform_wkt", "plan_locations", "rank_pairs", "redact", "resolve_auth", "run", "scenes_table",
    "status_of",
]
