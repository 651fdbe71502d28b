"""Real Landsat-8/9 x Sentinel-2 pairs from Google Earth Engine.

The only module of satsr that talks to Earth Engine (and the only one that imports ``ee``, lazily,
inside :class:`EarthEngineBackend`), so everything else installs and runs without an account.

Flow, for every chip location of every ``source.gee.regions`` moving-square scan:

1. **Plan.** Search both collections over the chip (scene-level cloud filters), pair scenes at most
   ``max_days_apart`` apart (:func:`match_scenes`, a pure function on tables), screen the candidates
   by their pixel-level clear fraction *inside the chip* (Landsat ``QA_PIXEL``, Sentinel-2 Cloud
   Score+), then keep one best pair per month.
2. **Download.** ``computePixels`` of both scenes onto exactly nested UTM grids (30 m / 10 m, one
   upper-left corner), tiled under the request limits, written as GeoTIFFs with their metadata.

All network calls go through one seam (:class:`EarthEngineBackend`); tests swap in a fake. Every
call is wrapped by :class:`Retrier` (exponential backoff with jitter on 429 / 5xx / quota errors)
and capped at ``max_concurrent_requests`` in flight. A failure that retrying cannot fix costs one
pair (or one location's plan), is logged and recorded in ``gee_failures.csv``, and never stops the
dataset. The manifest is rewritten atomically after every finished pair, so a killed run resumes
where it stopped: pairs whose files match the manifest's checksums are never downloaded again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from satsr.config import GeeParams, Params
from satsr.data import grids
from satsr.data.geotiff import TAG_SENSOR, write_geotiff
from satsr.data.grids import Grid
from satsr.data.manifest import (
    COLUMNS,
    MANIFEST_NAME,
    chip_name,
    grid_columns,
    is_complete,
    pair_row,
    prune_unlisted,
    read_manifest,
    write_manifest,
)
from satsr.data.radiometry import L8_C2_L2, LANDSAT_RGB, S2_RGB, S2_SR
from satsr.errors import SatsrError
from satsr.util import redact  # key material never reaches a log, message or file

log = logging.getLogger(__name__)

LANDSAT9_COLLECTION = "LANDSAT/LC09/C02/T1_L2"
L8_CLOUD_PROPERTY = "CLOUD_COVER"
S2_CLOUD_PROPERTY = "CLOUDY_PIXEL_PERCENTAGE"
#: QA_PIXEL bits 0-4: fill, dilated cloud, cirrus, cloud, cloud shadow. Clear = none set.
QA_NOT_CLEAR_BITS = 0b11111
CS_BAND = "cs_cdf"
BYTES_PER_PIXEL = 2  # both products are uint16
FAILURES_NAME = "gee_failures.csv"

#: Environment variables, in order of precedence; they win over params.yaml.
ENV_KEY_FILES = ("EE_SERVICE_ACCOUNT_KEY_FILE", "GOOGLE_APPLICATION_CREDENTIALS")
ENV_PROJECT = "EE_PROJECT"

AUTH_HELP = (
    "How to authenticate Earth Engine for satsr (source.provider=gee):\n"
    "  * service account: export EE_SERVICE_ACCOUNT_KEY_FILE=/path/to/key.json "
    "(or GOOGLE_APPLICATION_CREDENTIALS, or the key file's *path* in source.gee.credentials_file); "
    "the account must be registered for Earth Engine;\n"
    "  * or user credentials: run `earthengine authenticate` once "
    "(stores ~/.config/earthengine/credentials);\n"
    "  * and always a Cloud project with the Earth Engine API enabled: export EE_PROJECT=my-project "
    "(or source.gee.project).\n"
    "Without an account, use the offline demo: source.provider=demo."
)

T = TypeVar("T")
#: Sleep used between retries; a module attribute so tests can replace it.
_sleep: Callable[[float], None] = time.sleep


class GeeError(SatsrError, RuntimeError):
    """The Earth Engine provider cannot go on (bad setup, nothing matched)."""


class GeeAuthError(GeeError):
    """Credentials or project for Earth Engine are missing or unusable; the message says how to fix it."""


# ------------------------------------------------------------------------------------ credentials
@dataclass(frozen=True)
class EeAuth:
    """Where the credentials are, never what they are: the key's contents stay in its file."""

    project: str
    key_file: Path | None = None  # service-account JSON key; None = user credentials
    email: str | None = None

    def describe(self) -> str:
        """Safe for logs: account kind, email, key *path* and project only."""
        if self.key_file is not None:
            return f"service account {self.email} (key file {self.key_file}), project {self.project}"
        return f"user credentials, project {self.project}"


def _user_credentials_present(env: Mapping[str, str]) -> bool:
    """Persistent EE credentials (`earthengine authenticate`) or gcloud application-default ones."""
    home = Path(env.get("HOME") or Path.home())
    gcloud = Path(env["CLOUDSDK_CONFIG"]) if env.get("CLOUDSDK_CONFIG") else home / ".config" / "gcloud"
    return (home / ".config" / "earthengine" / "credentials").is_file() or (
        gcloud / "application_default_credentials.json"
    ).is_file()


def resolve_auth(gee: GeeParams, env: Mapping[str, str] | None = None) -> EeAuth:
    """Find credentials and project from env vars (first) or params; fail at once, with help, if absent.

    Only the key file's ``type`` and ``client_email`` are read; no part of it is kept, logged or
    repeated in an error message.
    """
    env = os.environ if env is None else env
    source, key_path = next(((name, env[name]) for name in ENV_KEY_FILES if env.get(name)), (None, None))
    if key_path is None and gee.credentials_file:
        source, key_path = "source.gee.credentials_file", gee.credentials_file
    if key_path is not None and key_path.lstrip().startswith("{"):
        raise GeeAuthError(f"{source} must be the *path* of a key file, not the key itself.\n{AUTH_HELP}")
    project = env.get(ENV_PROJECT) or gee.project

    key_file: Path | None = None
    email: str | None = None
    if key_path is not None:
        key_file = Path(key_path).expanduser()
        if not key_file.is_file():
            raise GeeAuthError(f"{source}: key file {key_file} does not exist.\n{AUTH_HELP}")
        try:
            info = json.loads(key_file.read_text())
        except (OSError, ValueError):
            raise GeeAuthError(f"{source}: {key_file} is not a readable JSON key file.\n{AUTH_HELP}") from None
        kind = info.get("type") if isinstance(info, dict) else None
        if kind == "service_account" and info.get("client_email") and info.get("private_key"):
            email = str(info["client_email"])
        elif kind == "authorized_user" and source == "GOOGLE_APPLICATION_CREDENTIALS":
            key_file = None  # application-default user credentials; ee picks them up itself
        else:
            raise GeeAuthError(
                f"{source}: {key_file} is not a service-account key (needs type 'service_account', "
                f"'client_email' and 'private_key').\n{AUTH_HELP}"
            )
    elif not _user_credentials_present(env):
        raise GeeAuthError(f"No Earth Engine credentials found.\n{AUTH_HELP}")
    if not project:
        raise GeeAuthError(f"No Earth Engine project set (EE_PROJECT or source.gee.project).\n{AUTH_HELP}")
    return EeAuth(project=project, key_file=key_file, email=email)


# ------------------------------------------------------------------------------------ the seam
def ee_grid(grid: Grid) -> dict[str, Any]:
    """A :class:`Grid` as the ``grid`` argument of ``ee.data.computePixels`` (PixelGrid)."""
    sx, shx, tx, shy, sy, ty = grid.affine
    return {
        "dimensions": {"width": grid.width, "height": grid.height},
        "affineTransform": {
            "scaleX": sx, "shearX": shx, "translateX": tx, "shearY": shy, "scaleY": sy, "translateY": ty,
        },
        "crsCode": grid.crs,
    }


class Backend(Protocol):
    """The seam between satsr and Earth Engine: what :func:`run` needs, one request per call."""

    def initialize(self) -> None: ...

    def search_scenes(self, collection: str, grid: Grid, start: dt.date, end: dt.date, cloud_property: str,
                      max_cloud: float) -> list[dict[str, Any]]: ...

    def landsat_clear_fraction(self, image_id: str, grid: Grid) -> float: ...

    def s2_clear_fraction(self, image_id: str, grid: Grid, cloud_score_collection: str,
                          threshold: float) -> float: ...

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid) -> np.ndarray: ...


class EarthEngineBackend:
    """Every Earth Engine request satsr makes, and nothing else (tests replace this class).

    Methods are thread-safe and make exactly one request each, so :class:`Retrier` can retry and
    count them one by one.
    """

    def __init__(self, auth: EeAuth) -> None:
        self.auth = auth
        self._ee: Any = None

    # -- setup
    def initialize(self) -> None:
        """Authenticate and bind the project; errors become :class:`GeeAuthError` (key redacted)."""
        try:
            import ee
        except ImportError:
            raise GeeError("source.provider=gee needs the earthengine-api package: "
                           "pip install earthengine-api") from None
        try:
            if self.auth.key_file is not None:
                credentials: Any = ee.ServiceAccountCredentials(self.auth.email, str(self.auth.key_file))
            else:
                credentials = "persistent"
            ee.Initialize(credentials, project=self.auth.project)
        except Exception as err:  # noqa: BLE001 - any failure here is a setup problem
            raise GeeAuthError(
                f"Earth Engine initialisation failed for {self.auth.describe()}: "
                f"{type(err).__name__}: {redact(str(err))}\n{AUTH_HELP}"
            ) from None
        ee.data.setMaxRetries(0)  # retries are ours (Retrier), with backoff and a concurrency cap
        self._ee = ee

    @property
    def ee(self) -> Any:
        if self._ee is None:
            raise GeeError("EarthEngineBackend.initialize() must be called first")
        return self._ee

    def _rect(self, grid: Grid) -> Any:
        xmin, ymin, xmax, ymax = grid.bounds
        return self.ee.Geometry.Rectangle([xmin, ymin, xmax, ymax], proj=grid.crs, geodesic=False)

    # -- requests
    def search_scenes(
        self, collection: str, grid: Grid, start: dt.date, end: dt.date, cloud_property: str, max_cloud: float
    ) -> list[dict[str, Any]]:
        """Scenes touching the chip, acquired in [start, end] (days, inclusive), with
        0 <= ``cloud_property`` <= ``max_cloud``: ``[{'id', 'time' (ms UTC), 'cloud'}]``."""
        ee = self.ee
        coll = (
            ee.ImageCollection(collection)
            .filterBounds(self._rect(grid))
            .filterDate(start.isoformat(), (end + dt.timedelta(days=1)).isoformat())
            .filter(ee.Filter.lte(cloud_property, max_cloud))
            .filter(ee.Filter.gte(cloud_property, 0))  # Landsat writes -1 where it could not tell
        )
        table = coll.reduceColumns(ee.Reducer.toList(3), ["system:id", "system:time_start", cloud_property])
        rows = table.get("list").getInfo() or []
        return [{"id": r[0], "time": int(r[1]), "cloud": float(r[2])} for r in rows]

    def _mean_clear(self, clear: Any, grid: Grid) -> float:
        # unmask(0, sameFootprint=False): masked or off-scene pixels count as not clear
        stats = clear.unmask(0, False).rename("clear").reduceRegion(
            reducer=self.ee.Reducer.mean(),
            geometry=self._rect(grid),
            crs=grid.crs,
            crsTransform=grid.affine,
            maxPixels=int(1e9),
        )
        value = stats.get("clear").getInfo()
        return 0.0 if value is None else float(value)

    def landsat_clear_fraction(self, image_id: str, grid: Grid) -> float:
        """Share of the chip's 30 m pixels with ``QA_PIXEL & 0b11111 == 0``."""
        image = self.ee.Image(image_id)
        return self._mean_clear(image.select("QA_PIXEL").bitwiseAnd(QA_NOT_CLEAR_BITS).eq(0), grid)

    def s2_clear_fraction(self, image_id: str, grid: Grid, cloud_score_collection: str, threshold: float) -> float:
        """Share of the chip's 10 m pixels with Cloud Score+ ``cs_cdf >= threshold``."""
        ee = self.ee
        image = ee.Image(image_id).linkCollection(ee.ImageCollection(cloud_score_collection), [CS_BAND])
        return self._mean_clear(image.select(CS_BAND).gte(threshold), grid)

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid) -> np.ndarray:
        """``bands`` of one image on ``grid`` as a (bands, h, w) uint16 array; fill (0) off-scene."""
        ee = self.ee
        image = ee.Image(image_id).select(list(bands)).unmask(0, False).toUint16()
        arr = ee.data.computePixels(
            {"expression": image, "fileFormat": "NUMPY_NDARRAY", "grid": ee_grid(grid)}
        )
        return np.stack([np.asarray(arr[b]) for b in bands]).astype(np.uint16, copy=False)


# ------------------------------------------------------------------------------------ retrying
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
_RETRYABLE_TEXT = re.compile(
    r"\b(408|429|500|502|503|504)\b|too many (concurrent )?(requests|aggregations)|quota|rate.?limit"
    r"|resources? exhausted|capacity exceeded|service (is )?(currently )?unavailable|internal error"
    r"|backend error|deadline exceeded|temporar|try again|connection (reset|aborted|refused)",
    re.IGNORECASE,
)
_RETRYABLE_TYPES = ("ConnectionError", "TimeoutError", "RemoteDisconnected", "ServerNotFoundError", "TransportError")


def _status_of(err: BaseException) -> int | None:
    """HTTP status carried by an exception, if any (googleapiclient HttpError, requests, ...)."""
    for value in (getattr(err, "status_code", None), getattr(getattr(err, "resp", None), "status", None),
                  getattr(err, "code", None), getattr(err, "status", None)):
        try:
            if value is not None:
                return int(value)
        except (TypeError, ValueError):
            continue
    return None


def is_retryable(err: BaseException) -> bool:
    """429 / 5xx / quota and concurrency errors, and dropped connections: worth another try.

    Earth Engine's own exceptions carry only the server's message (e.g. "Too many concurrent
    aggregations.", "Quota exceeded ..."), hence the message test next to the status code.
    """
    status = _status_of(err)
    if status is not None and 400 <= status < 600:
        return status in _RETRYABLE_STATUS
    if any(cls.__name__ in _RETRYABLE_TYPES for cls in type(err).__mro__):
        return True
    return bool(_RETRYABLE_TEXT.search(str(err)))


class Retrier:
    """Runs backend calls with at most ``max_concurrent_requests`` in flight, retrying transient
    errors with exponential backoff and jitter (sleeping outside the concurrency slot)."""

    def __init__(self, gee: GeeParams, sleep: Callable[[float], None] | None = None, seed: int | None = None) -> None:
        self.max_retries = gee.max_retries
        self.initial = gee.backoff_initial_s
        self.cap = gee.backoff_max_s
        self.slots = threading.BoundedSemaphore(gee.max_concurrent_requests)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.retries = 0

    def delay(self, attempt: int) -> float:
        """Equal jitter: half of ``initial * 2**attempt`` (capped) plus a random half."""
        base = min(self.cap, self.initial * (2.0**attempt))
        with self._lock:
            return base / 2.0 + self._rng.uniform(0.0, base / 2.0)

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(self.max_retries + 1):
            with self.slots:
                try:
                    return fn(*args)
                except Exception as err:
                    if attempt >= self.max_retries or not is_retryable(err):
                        raise
                    message = redact(str(err))[:200]
            wait = self.delay(attempt)
            with self._lock:
                self.retries += 1
            log.info("%s: transient error (%s); retry %d/%d in %.1f s", what, message, attempt + 1,
                     self.max_retries, wait)
            (self._sleep or _sleep)(wait)
        raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------------------------ locations
@dataclass(frozen=True)
class Location:
    """One chip of a region's moving-square scan, on its nested 30 m / 10 m UTM grids."""

    region: str
    index: int
    lon: float  # centre of the snapped grid, WGS84
    lat: float
    lr_grid: Grid
    hr_grid: Grid

    @property
    def key(self) -> str:
        return f"{self.region}/{self.index:03d}"


def _transform(src: str, dst: str, x: float, y: float) -> tuple[float, float]:
    from rasterio.warp import transform

    xs, ys = transform(src, dst, [x], [y])
    return float(xs[0]), float(ys[0])


def plan_locations(params: Params) -> list[Location]:
    """Chip locations of every region, each on grids in the UTM zone of its centre (pure, offline)."""
    src = params.source
    out = []
    for region in src.gee.regions:
        centres = grids.moving_square(
            region.start, region.count, buffer_m=src.buffer_m, step_factor=src.gee.step_factor,
            heading_deg=region.heading_deg, end=region.end if region.mode == "between" else None,
        )
        for i, (lon, lat) in enumerate(centres):
            crs = f"EPSG:{grids.utm_epsg(lon, lat)}"
            x, y = _transform("EPSG:4326", crs, lon, lat)
            lr, hr = grids.nested_grids(x, y, crs, src.lr_size)
            xmin, ymin, xmax, ymax = lr.bounds
            clon, clat = _transform(crs, "EPSG:4326", (xmin + xmax) / 2, (ymin + ymax) / 2)
            out.append(Location(region.name, i, clon, clat, lr, hr))
    return out


# ------------------------------------------------------------------------------------ matching
SCENE_COLUMNS = ["location", "scene_id", "time", "cloud"]
PAIR_COLUMNS = [
    "location", "lr_scene_id", "hr_scene_id", "lr_time", "hr_time", "lr_date", "hr_date", "days_apart",
    "month", "lr_cloud", "hr_cloud", "combined_cloud", "lr_clear_fraction", "hr_clear_fraction",
]


def scenes_table(location: str, scenes: Iterable[Mapping[str, Any]], max_cloud: float) -> pd.DataFrame:
    """Backend search results -> a scene table; drops unknown (< 0) or too high cloud cover again."""
    df = pd.DataFrame(
        [{"location": location, "scene_id": s["id"], "time": pd.to_datetime(int(s["time"]), unit="ms", utc=True),
          "cloud": float(s["cloud"])} for s in scenes],
        columns=SCENE_COLUMNS,
    )
    return df[(df["cloud"] >= 0) & (df["cloud"] <= max_cloud)].reset_index(drop=True)


def match_scenes(
    l8: pd.DataFrame, s2: pd.DataFrame, max_days_apart: int, one_pair_per_month: bool
) -> pd.DataFrame:
    """Pair Landsat and Sentinel-2 scenes of the same location at most ``max_days_apart`` apart.

    Inputs have :data:`SCENE_COLUMNS` (``time`` a UTC timestamp, ``cloud`` the scene cloud %), and
    optionally ``clear_fraction``. The gap is counted in calendar days (UTC). With
    ``one_pair_per_month`` only the best pair per location and month (of the Landsat date) is kept:
    lowest combined scene cloud, then the smaller gap, then the scene ids (so ties are stable).
    Output: :data:`PAIR_COLUMNS`, sorted by location and date. Pure: no I/O.
    """
    if l8.empty or s2.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)

    def side(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
        cols = ["location", "scene_id", "time", "cloud"] + (["clear_fraction"] if "clear_fraction" in table else [])
        out = table[cols].rename(columns={c: f"{prefix}_{c}" for c in cols if c != "location"})
        out[f"{prefix}_day"] = pd.to_datetime(out[f"{prefix}_time"], utc=True).dt.normalize().dt.tz_localize(None)
        return out.reset_index(drop=True)

    lr, hr = side(l8, "lr"), side(s2, "hr")
    # one Landsat row per allowed day offset, then an exact join on (location, day): no cross product
    offsets = np.arange(-max_days_apart, max_days_apart + 1)
    lr = lr.iloc[np.repeat(np.arange(len(lr)), len(offsets))].reset_index(drop=True)
    lr["join_day"] = lr["lr_day"] + pd.to_timedelta(np.tile(offsets, len(lr) // len(offsets)), unit="D")
    pairs = lr.merge(hr, left_on=["location", "join_day"], right_on=["location", "hr_day"])
    if pairs.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    pairs["lr_date"] = pairs["lr_day"].dt.strftime("%Y-%m-%d")
    pairs["hr_date"] = pairs["hr_day"].dt.strftime("%Y-%m-%d")
    pairs["days_apart"] = (pairs["hr_day"] - pairs["lr_day"]).dt.days.abs().astype(int)
    pairs["month"] = pairs["lr_day"].dt.strftime("%Y-%m")
    for col in ("lr_cloud", "hr_cloud", "lr_clear_fraction", "hr_clear_fraction"):
        pairs[col] = pairs[col].astype(float) if col in pairs else np.nan
    pairs["combined_cloud"] = pairs["lr_cloud"] + pairs["hr_cloud"]
    if one_pair_per_month:
        pairs = pairs.sort_values(["location", "month", "combined_cloud", "days_apart", "lr_scene_id", "hr_scene_id"])
        pairs = pairs.groupby(["location", "month"], sort=False).head(1)
    pairs = pairs.sort_values(["location", "lr_time", "hr_time", "lr_scene_id", "hr_scene_id"])
    return pairs[PAIR_COLUMNS].reset_index(drop=True)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCENE_COLUMNS)


# ------------------------------------------------------------------------------------ running
@dataclass
class Failure:
    stage: str  # search | clear_l8 | clear_s2 | download
    key: str  # location key or pair id
    error: str


def _gather(
    pool: ThreadPoolExecutor, jobs: Mapping[Any, Callable[[], T]], desc: str
) -> tuple[dict[Any, T], dict[Any, str]]:
    """Run independent jobs on the pool; results and (redacted) error messages by key."""
    futures: dict[Future, Any] = {pool.submit(fn): key for key, fn in jobs.items()}
    done: dict[Any, T] = {}
    errors: dict[Any, str] = {}
    for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="req", disable=None, leave=False):
        key = futures[fut]
        try:
            done[key] = fut.result()
        except Exception as err:  # noqa: BLE001 - recorded, never fatal for the dataset
            errors[key] = f"{type(err).__name__}: {redact(str(err))}"
    return done, errors


def _landsat_collections(gee: GeeParams) -> list[str]:
    colls = list(dict.fromkeys(gee.landsat_collections))
    if gee.include_landsat9 and LANDSAT9_COLLECTION not in colls:
        colls.append(LANDSAT9_COLLECTION)
    return colls


def _landsat_sensor(scene_id: str) -> str:
    """'L9' for Landsat 9 scenes, else 'L8' (the LR chip's label in names and tags)."""
    return "L9" if "LC09" in scene_id.upper() else "L8"


def plan_pairs(
    params: Params, locations: Sequence[Location], backend: Backend, retrier: Retrier, pool: ThreadPoolExecutor
) -> tuple[pd.DataFrame, list[Failure]]:
    """Search, match and cloud-screen scenes for every location. A location whose searches or
    clear-fraction requests fail (after retries) is dropped as a whole and recorded, so its plan is
    never built from partial answers."""
    gee = params.source.gee
    by_key = {loc.key: loc for loc in locations}
    failures: list[Failure] = []
    failed: set[str] = set()

    def note(stage: str, errors: Mapping[tuple[str, str], str]) -> None:
        for (loc_key, what), msg in sorted(errors.items()):
            log.warning("gee %s failed for %s (%s): %s", stage, loc_key, what, msg)
            if loc_key not in failed:
                failures.append(Failure(stage, loc_key, f"{what}: {msg}"))
                failed.add(loc_key)

    # 1. scene searches (scene-level cloud filters on the server)
    jobs: dict[tuple[str, str], Callable[[], list[dict[str, Any]]]] = {}
    for loc in locations:
        for coll in _landsat_collections(gee):
            jobs[(loc.key, coll)] = _bind(retrier, f"search {coll} {loc.key}", backend.search_scenes, coll,
                                          loc.lr_grid, gee.start_date, gee.end_date, L8_CLOUD_PROPERTY,
                                          gee.max_scene_cloud_l8)
        jobs[(loc.key, gee.s2_collection)] = _bind(retrier, f"search {gee.s2_collection} {loc.key}",
                                                   backend.search_scenes, gee.s2_collection, loc.hr_grid,
                                                   gee.start_date, gee.end_date, S2_CLOUD_PROPERTY,
                                                   gee.max_scene_cloud_s2)
    found, errors = _gather(pool, jobs, "gee search")
    note("search", errors)
    ok = [k for k in by_key if k not in failed]
    l8 = _concat([scenes_table(k, found[(k, c)], gee.max_scene_cloud_l8)
                  for k in ok for c in _landsat_collections(gee)])
    s2 = _concat([scenes_table(k, found[(k, gee.s2_collection)], gee.max_scene_cloud_s2) for k in ok])

    # 2. pixel-level clear fraction inside the chip, only for scenes that could still pair
    def screen(table: pd.DataFrame, other: pd.DataFrame, lr_side: bool) -> pd.DataFrame:
        cand = match_scenes(table if lr_side else other, other if lr_side else table, gee.max_days_apart, False)
        col = "lr_scene_id" if lr_side else "hr_scene_id"
        needed = cand[["location", col]].drop_duplicates().itertuples(index=False, name=None)
        jobs = {}
        for loc_key, scene_id in needed:
            loc = by_key[loc_key]
            if lr_side:
                jobs[(loc_key, scene_id)] = _bind(retrier, f"clear {scene_id}", backend.landsat_clear_fraction,
                                                  scene_id, loc.lr_grid)
            else:
                jobs[(loc_key, scene_id)] = _bind(retrier, f"clear {scene_id}", backend.s2_clear_fraction,
                                                  scene_id, loc.hr_grid, gee.cloud_score_collection,
                                                  gee.cs_clear_threshold)
        fractions, errors = _gather(pool, jobs, "gee clear " + ("L8" if lr_side else "S2"))
        note("clear_l8" if lr_side else "clear_s2", errors)
        table = table.assign(clear_fraction=[fractions.get((k, s), np.nan)
                                             for k, s in zip(table["location"], table["scene_id"])])
        minimum = gee.min_clear_fraction_l8 if lr_side else gee.min_clear_fraction_s2
        keep = (table["clear_fraction"] >= minimum) & ~table["location"].isin(failed)
        return table[keep].reset_index(drop=True)

    l8 = screen(l8, s2, lr_side=True)
    s2 = screen(s2, l8, lr_side=False)
    pairs = match_scenes(l8, s2, gee.max_days_apart, gee.one_pair_per_month)
    pairs = pairs[~pairs["location"].isin(failed)]
    # pair numbers follow the order of regions and chips in params.yaml, then dates
    order = {key: i for i, key in enumerate(by_key)}
    pairs = pairs.iloc[np.argsort(pairs["location"].map(order).to_numpy(), kind="stable")]
    return pairs.reset_index(drop=True), failures


def _bind(retrier: Retrier, what: str, fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    return lambda: retrier.call(what, fn, *args)


@dataclass(frozen=True)
class PairJob:
    """One planned pair, with everything needed to fetch and describe it."""

    pair_id: str
    index: int
    location: Location
    pair: dict[str, Any]  # a row of match_scenes' output

    @property
    def lr_sensor(self) -> str:
        return _landsat_sensor(self.pair["lr_scene_id"])

    @property
    def lr_file(self) -> str:
        return chip_name(self.index, self.pair["lr_date"], self.lr_sensor, self.location.lon, self.location.lat)

    @property
    def hr_file(self) -> str:
        return chip_name(self.index, self.pair["hr_date"], "S2", self.location.lon, self.location.lat)


def _pair_key(region: str, crs: str, x0: float, y0: float, lr_width: int, lr_id: str, hr_id: str) -> tuple:
    """What makes a pair the same pair across runs (not its index, which may shift)."""
    return (str(region), str(crs), round(float(x0), 3), round(float(y0), 3), int(lr_width), str(lr_id), str(hr_id))


def _fetch(backend: Backend, retrier: Retrier, gee: GeeParams, image_id: str, bands: Sequence[str],
           grid: Grid) -> np.ndarray:
    """One image on one grid, tiled under the request limits and mosaicked back."""
    mosaic = np.zeros((len(bands), grid.height, grid.width), dtype=np.uint16)
    tiles = grids.split_request(grid, len(bands), BYTES_PER_PIXEL, gee.max_request_bytes, gee.max_request_side_px)
    for col, row, sub in tiles:
        arr = np.asarray(retrier.call(f"pixels {image_id}", backend.compute_pixels, image_id, tuple(bands), sub))
        if arr.shape != (len(bands), sub.height, sub.width):
            raise GeeError(f"{image_id}: got pixels of shape {arr.shape}, "
                           f"expected {(len(bands), sub.height, sub.width)}")
        mosaic[:, row:row + sub.height, col:col + sub.width] = arr
    return mosaic


def _download(job: PairJob, backend: Backend, retrier: Retrier, gee: GeeParams, out_dir: Path) -> dict[str, Any]:
    """Fetch and write both chips of a pair; returns its manifest row."""
    p, loc = job.pair, job.location
    lr = _fetch(backend, retrier, gee, p["lr_scene_id"], LANDSAT_RGB, loc.lr_grid)
    hr = _fetch(backend, retrier, gee, p["hr_scene_id"], S2_RGB, loc.hr_grid)
    common = {"PROVIDER": "gee", "PAIR_ID": job.pair_id, "REGION": loc.region}
    lr_tags = {
        **common, "SENSOR": job.lr_sensor, TAG_SENSOR: job.lr_sensor, "SCENE_ID": p["lr_scene_id"],
        "DATE_ACQUIRED": p["lr_date"], "TIME_ACQUIRED": pd.Timestamp(p["lr_time"]).isoformat(),
        L8_CLOUD_PROPERTY: f"{p['lr_cloud']:g}", "CLEAR_FRACTION": f"{p['lr_clear_fraction']:.6f}",
        "CLEAR_TEST": f"QA_PIXEL & {QA_NOT_CLEAR_BITS:#b} == 0",
    }
    hr_tags = {
        **common, "SENSOR": "S2", TAG_SENSOR: "S2", "SCENE_ID": p["hr_scene_id"],
        "DATE_ACQUIRED": p["hr_date"], "TIME_ACQUIRED": pd.Timestamp(p["hr_time"]).isoformat(),
        S2_CLOUD_PROPERTY: f"{p['hr_cloud']:g}", "CLEAR_FRACTION": f"{p['hr_clear_fraction']:.6f}",
        "CLEAR_TEST": f"Cloud Score+ {CS_BAND} >= {gee.cs_clear_threshold:g}",
    }
    lr_sha = write_geotiff(out_dir / job.lr_file, lr, loc.lr_grid, L8_C2_L2, LANDSAT_RGB, lr_tags)
    hr_sha = write_geotiff(out_dir / job.hr_file, hr, loc.hr_grid, S2_SR, S2_RGB, hr_tags)
    return pair_row(
        pair_id=job.pair_id, provider="gee", region=loc.region, lon=loc.lon, lat=loc.lat,
        **grid_columns(loc.lr_grid, loc.hr_grid),
        lr_file=job.lr_file, hr_file=job.hr_file, lr_sha256=lr_sha, hr_sha256=hr_sha,
        lr_date=p["lr_date"], hr_date=p["hr_date"], days_apart=int(p["days_apart"]),
        lr_scene_id=p["lr_scene_id"], hr_scene_id=p["hr_scene_id"],
        lr_cloud=float(p["lr_cloud"]), hr_cloud=float(p["hr_cloud"]),
        lr_clear_fraction=float(p["lr_clear_fraction"]), hr_clear_fraction=float(p["hr_clear_fraction"]),
    )


def _old_rows(out_dir: Path) -> list[dict[str, Any]]:
    """Complete gee rows of a previous run (the resume state); anything unreadable counts as absent."""
    if not (out_dir / MANIFEST_NAME).is_file():
        return []
    try:
        df = read_manifest(out_dir)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        log.warning("gee: ignoring unreadable previous manifest (%s); pairs will be fetched again", err)
        return []
    rows = [r for r in df.to_dict("records") if r.get("provider") == "gee"]
    return [r for r in rows if is_complete(out_dir, r)]


def _remove_partials(out_dir: Path) -> None:
    """Temporary files a killed run left behind (atomic writes never leave them under final names)."""
    for p in out_dir.glob(".*.part"):
        p.unlink(missing_ok=True)


def _write_failures(out_dir: Path, failures: list[Failure]) -> None:
    path = out_dir / FAILURES_NAME
    if not failures:
        path.unlink(missing_ok=True)
        return
    pd.DataFrame([f.__dict__ for f in failures]).to_csv(path, index=False)


def _jobs(
    pairs: pd.DataFrame, by_key: Mapping[str, Location], previous: Mapping[tuple, dict[str, Any]],
    failed_locations: set[str],
) -> tuple[list[PairJob], list[dict[str, Any]]]:
    """Planned pairs -> jobs still to download, plus the earlier complete rows to keep.

    An earlier row is kept when the plan holds the same pair again, or when its location could not
    be planned this time (a network failure must not drop finished work).
    """
    where = {(loc.region, loc.lr_grid.crs, round(loc.lr_grid.x0, 3), round(loc.lr_grid.y0, 3)): key
             for key, loc in by_key.items()}
    kept = [r for k, r in previous.items() if where.get(k[:4]) in failed_locations]
    jobs: list[PairJob] = []
    for index, p in enumerate(pairs.to_dict("records")):
        loc = by_key[p["location"]]
        key = _pair_key(loc.region, loc.lr_grid.crs, loc.lr_grid.x0, loc.lr_grid.y0, loc.lr_grid.width,
                        p["lr_scene_id"], p["hr_scene_id"])
        if key in previous:
            kept.append(previous[key])
        else:
            jobs.append(PairJob(_pair_id(index, p["lr_date"], loc), index, loc, p))
    used = {r["pair_id"] for r in kept}
    for i, job in enumerate(jobs):  # an earlier pair of a changed plan may hold this id: take a fresh one
        if job.pair_id in used:
            index = len(pairs) + len(previous) + i
            jobs[i] = job = PairJob(_pair_id(index, job.pair["lr_date"], job.location), index, job.location, job.pair)
        used.add(job.pair_id)
    return jobs, kept


def _pair_id(index: int, lr_date: str, loc: Location) -> str:
    return f"{index:05d}_{lr_date}_{loc.lon:.4f}_{loc.lat:.4f}"


def run(params: Params, out_dir: Path, backend: Backend | None = None) -> pd.DataFrame:
    """Build (or resume) the real dataset in ``out_dir``; returns the manifest it wrote.

    ``backend`` defaults to :class:`EarthEngineBackend` with credentials from the environment or
    params, checked before anything else. ``DataFrame.attrs['failures']`` lists what was skipped.
    """
    gee = params.source.gee
    out_dir = Path(out_dir)
    if backend is None:
        backend = EarthEngineBackend(resolve_auth(gee))  # fails at once, with help, when absent
        log.info("gee: using %s", backend.auth.describe())
    if not gee.regions:
        raise GeeError("source.gee.regions is empty: list at least one region (name, start, ...) in params.yaml")
    backend.initialize()

    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_partials(out_dir)
    locations = plan_locations(params)
    by_key = {loc.key: loc for loc in locations}
    previous = {
        _pair_key(r["region"], r["crs"], r["x0"], r["y0"], r["lr_width"], r["lr_scene_id"], r["hr_scene_id"]): r
        for r in _old_rows(out_dir)
    }
    retrier = Retrier(gee)
    pool = ThreadPoolExecutor(max_workers=gee.max_concurrent_requests, thread_name_prefix="gee")
    try:
        pairs, failures = plan_pairs(params, locations, backend, retrier, pool)
        jobs, kept = _jobs(pairs, by_key, previous, {f.key for f in failures if f.stage != "download"})
        log.info("gee: %d pairs planned at %d locations; %d complete from earlier runs, %d to download",
                 len(pairs), len(locations), len(kept), len(jobs))
        rows = list(kept)
        write_manifest(out_dir, rows or pd.DataFrame(columns=COLUMNS))
        futures = {pool.submit(_download, job, backend, retrier, gee, out_dir): job for job in jobs}
        with tqdm(total=len(futures), desc="gee pairs", unit="pair", disable=None) as bar:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    rows.append(fut.result())
                    write_manifest(out_dir, rows)  # atomic: a kill loses only the pairs in flight
                except Exception as err:  # noqa: BLE001 - one pair never stops the dataset
                    msg = f"{type(err).__name__}: {redact(str(err))}"
                    log.warning("gee: pair %s (%s / %s) skipped: %s", job.pair_id, job.pair["lr_scene_id"],
                                job.pair["hr_scene_id"], msg)
                    failures.append(Failure("download", job.pair_id, msg))
                bar.update()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)

    write_manifest(out_dir, rows or pd.DataFrame(columns=COLUMNS))
    manifest = read_manifest(out_dir)
    _write_failures(out_dir, failures)
    if not failures:
        removed = prune_unlisted(out_dir, {r["lr_file"] for r in rows} | {r["hr_file"] for r in rows})
        if removed:
            log.info("gee: removed %d files that are no longer in the manifest", len(removed))
    else:
        log.warning("gee: %d failures recorded in %s; rerun to retry them (complete pairs are kept)",
                    len(failures), out_dir / FAILURES_NAME)
    if manifest.empty:
        hint = (f"{len(failures)} requests failed (see {out_dir / FAILURES_NAME}); rerun to resume."
                if failures else "No scenes passed the date and cloud filters: widen the dates, raise the "
                "cloud limits or add regions.")
        raise GeeError(f"gee: the dataset has no pairs. {hint}")
    log.info("gee: %d pairs in %s (%d downloaded now, %d retries)", len(manifest), out_dir,
             len(rows) - len(kept), retrier.retries)
    manifest.attrs["failures"] = [f.__dict__ for f in failures]
    return manifest
