"""Running the Earth Engine provider: one worker per chip (search, screen, pick, download), the
manifest and failure log, resume state, and the circuit-breaker stop."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from satsr.data.sources.gee.auth import resolve_auth
from satsr.data.sources.gee.client import Backend, EarthEngineBackend
from satsr.data.sources.gee.common import (
    BYTES_PER_PIXEL,
    CS_BAND,
    FAILURES_NAME,
    L8_CLOUD_PROPERTY,
    LANDSAT_GRID_BAND,
    PROGRESS_NAME,
    QA_NOT_CLEAR_BITS,
    S2_CLOUD_PROPERTY,
    S2_GRID_BAND,
    GeeConnectionError,
    GeeError,
    GeeQuotaError,
)
from satsr.data.sources.gee.plan import (
    Location,
    landsat_collections,
    landsat_sensor,
    pair_grids,
    plan_locations,
    rank_pairs,
    same_zone,
    scenes_table,
)
from satsr.data.sources.gee.retry import Retrier, is_retryable
from satsr.util import atomic_path, redact

log = logging.getLogger(__name__)

#: Params that change what is planned; the others (auth, concurrency, retries) do not.
_OPERATIONAL = {"project", "credentials_file", "max_concurrent_requests", "max_retries", "backoff_initial_s",
                "backoff_max_s", "request_deadline_s", "quota_breaker_errors", "max_request_bytes",
                "max_request_side_px"}


@dataclass
class Failure:
    stage: str  # search | clear_l8 | clear_s2 | projection | download
    chip: str  # the chip it cost something (it is not marked finished, so a rerun tries again)
    key: str  # chip key, chip:scene id, or pair id
    error: str


def _message(err: BaseException) -> str:
    return f"{type(err).__name__}: {redact(str(err))}"


def _pair_key(region: str, crs: str, x0: float, y0: float, lr_width: int, lr_id: str, hr_id: str) -> tuple:
    """What makes a pair the same pair across runs (not its id, which may shift)."""
    return (str(region), str(crs), round(float(x0), 3), round(float(y0), 3), int(lr_width), str(lr_id), str(hr_id))


def _row_key(r: dict[str, Any]) -> tuple:
    return _pair_key(r["region"], r["crs"], r["x0"], r["y0"], r["lr_width"], r["lr_scene_id"], r["hr_scene_id"])


def _belongs(row: dict[str, Any], loc: Location) -> bool:
    """A manifest row of this chip (its grid may sit on a scene lattice within one LR pixel of the plan)."""
    g = loc.lr_grid
    return (row["region"] == loc.region and row["crs"] == g.crs and int(row["lr_width"]) == g.width
            and abs(float(row["x0"]) - g.x0) < g.pixel and abs(float(row["y0"]) - g.y0) < g.pixel)


def plan_hash(params: Params) -> str:
    """Identifies a plan: a chip finished under it is skipped on rerun without any request."""
    gee = params.source.gee.model_dump(mode="json", exclude=_OPERATIONAL)
    text = json.dumps({"gee": gee, "lr_size": params.source.lr_size}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Run:
    """State shared by the chip workers; every change of the manifest is written atomically at once."""

    def __init__(self, params: Params, out_dir: Path, backend: Backend, retrier: Retrier,
                 previous: dict[tuple, dict[str, Any]], progress: dict[str, list[str]]) -> None:
        self.params, self.gee, self.out_dir = params, params.source.gee, out_dir
        self.backend, self.retrier = backend, retrier
        self.previous, self.progress = previous, progress
        self.rows: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self.done: dict[str, list[str]] = {}
        self.ids: set[str] = set()
        self.lattices: dict[int, list[float] | None] = {}
        self.lock = threading.RLock()
        self.lattice_lock = threading.Lock()  # held during a request: not the lock every worker needs

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        return self.retrier.call(what, fn, *args)

    def fail(self, stage: str, loc: Location, key: str, err: BaseException) -> None:
        log.warning("gee %s failed for %s: %s", stage, key, _message(err))
        with self.lock:
            self.failures.append(Failure(stage, loc.key, key, _message(err)))

    def failed(self, loc: Location) -> bool:
        with self.lock:
            return any(f.chip == loc.key for f in self.failures)

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        with self.lock:
            self.rows.extend(rows)
            self.ids.update(r["pair_id"] for r in rows)
            # atomic, after every change: a kill loses only the pairs in flight
            write_manifest(self.out_dir, self.rows or pd.DataFrame(columns=COLUMNS))

    def new_id(self, index: int, lr_date: str, loc: Location) -> tuple[int, str]:
        with self.lock:
            taken = self.ids | {r["pair_id"] for r in self.previous.values()}
            while (pair_id := f"{index:05d}_{lr_date}_{loc.lon:.4f}_{loc.lat:.4f}") in taken:
                index += 1
            self.ids.add(pair_id)
            return index, pair_id

    def lattice(self, loc: Location, scene_id: str) -> list[float] | None:
        """A Landsat scene transform of this zone, asked once per zone when the search gave none."""
        zone = loc.zone
        with self.lattice_lock:
            if zone not in self.lattices:
                try:
                    proj = self.call(f"projection {scene_id}", self.backend.scene_projection, scene_id,
                                     LANDSAT_GRID_BAND)
                    self.lattices[zone] = proj.get("transform")
                except GeeQuotaError:
                    raise
                except Exception as err:  # noqa: BLE001 - the convention is used instead, and said so
                    self.fail("projection", loc, scene_id, err)
                    self.lattices[zone] = None
            return self.lattices[zone]


# ------------------------------------------------------------------------------------ one chip
def _screen(run: _Run, loc: Location, stage: str, ids: Sequence[str], fn: Callable[..., dict[str, float]],
            *args: Any) -> dict[str, float]:
    """Clear fractions of ``ids`` in one request; if it fails for good, one request per scene, so a
    bad scene costs itself (recorded) and not the chip's other candidates."""
    if not ids:
        return {}
    try:
        return run.call(f"{stage} {loc.key}", fn, list(ids), *args)
    except GeeQuotaError:
        raise
    except Exception as err:  # noqa: BLE001
        if len(ids) == 1:
            run.fail(stage, loc, f"{loc.key}:{ids[0]}", err)
            return {}
        log.info("gee %s for %s failed as a batch (%s); screening scene by scene", stage, loc.key, _message(err))
    out: dict[str, float] = {}
    for scene_id in ids:
        try:
            out.update(run.call(f"{stage} {scene_id}", fn, [scene_id], *args))
        except GeeQuotaError:
            raise
        except Exception as err:  # noqa: BLE001
            run.fail(stage, loc, f"{loc.key}:{scene_id}", err)
    return out


def _search(run: _Run, loc: Location) -> tuple[pd.DataFrame, pd.DataFrame]:
    gee = run.gee
    l8 = run.call(f"search Landsat {loc.key}", run.backend.search_scenes, landsat_collections(gee), loc.lr_grid,
                  gee.start_date, gee.end_date, L8_CLOUD_PROPERTY, gee.max_scene_cloud_l8, LANDSAT_GRID_BAND)
    s2 = run.call(f"search S2 {loc.key}", run.backend.search_scenes, [gee.s2_collection], loc.hr_grid,
                  gee.start_date, gee.end_date, S2_CLOUD_PROPERTY, gee.max_scene_cloud_s2, S2_GRID_BAND)
    l8, s2 = scenes_table(loc.key, l8, gee.max_scene_cloud_l8), scenes_table(loc.key, s2, gee.max_scene_cloud_s2)
    # Landsat is never resampled, so a scene projected in another zone cannot serve this chip's grid
    other = ~same_zone(l8, loc.zone)
    s2 = s2.assign(foreign=~same_zone(s2, loc.zone))  # resampled across zones only when allowed, and last
    if gee.s2_other_zone == "skip":
        s2 = s2[~s2["foreign"]]
    if other.any():
        log.info("gee %s: %d Landsat scenes projected in another UTM zone skipped", loc.key, int(other.sum()))
    return l8[~other].reset_index(drop=True), s2.reset_index(drop=True)


def _chip(run: _Run, loc: Location) -> None:
    """Search, screen, pick and download the pairs of one chip; failures cost only what failed."""
    gee = run.gee
    mine = [r for r in run.previous.values() if _belongs(r, loc)]
    finished = run.progress.get(loc.key)
    if finished is not None and set(finished) <= {r["pair_id"] for r in mine}:
        run.add([r for r in mine if r["pair_id"] in set(finished)])
        run.done[loc.key] = list(finished)
        return
    try:
        l8, s2 = _search(run, loc)
    except GeeQuotaError:
        raise
    except Exception as err:  # noqa: BLE001 - keep this chip's earlier pairs; a rerun tries again
        run.fail("search", loc, loc.key, err)
        run.add(mine)
        return

    # screening: only scenes that could still pair, each sensor in one request
    lr_ids = rank_pairs(l8, s2, gee.max_days_apart)["lr_scene_id"].unique().tolist()
    clear = _screen(run, loc, "clear_l8", lr_ids, run.backend.landsat_clear_fractions, loc.lr_grid)
    l8 = l8.assign(clear_fraction=l8["scene_id"].map(clear))
    l8 = l8[l8["clear_fraction"] >= gee.min_clear_fraction_l8]
    hr_ids = rank_pairs(l8, s2, gee.max_days_apart)["hr_scene_id"].unique().tolist()
    clear = _screen(run, loc, "clear_s2", hr_ids, run.backend.s2_clear_fractions, loc.hr_grid,
                    gee.cloud_score_collection, gee.cs_clear_threshold)
    s2 = s2.assign(clear_fraction=s2["scene_id"].map(clear))
    s2 = s2[s2["clear_fraction"] >= gee.min_clear_fraction_s2]

    ranked = rank_pairs(l8, s2, gee.max_days_apart)
    lr_meta, hr_meta = l8.set_index("scene_id"), s2.set_index("scene_id")
    groups = (ranked.groupby("month", sort=True) if gee.one_pair_per_month
              else ranked.sort_values(["lr_time", "hr_time"]).groupby(["lr_scene_id", "hr_scene_id"], sort=False))
    months = [f"{d:%Y-%m}" for d in pd.period_range(gee.start_date, gee.end_date, freq="M")]
    kept: list[dict[str, Any]] = []
    ids: list[str] = []
    try:
        for k, (_, group) in enumerate(groups):
            k = months.index(group["month"].iloc[0]) if gee.one_pair_per_month else k
            ordered = group.sort_values("rank").to_dict("records")
            candidates = [_candidate(run, loc, p, lr_meta, hr_meta) for p in ordered]
            earlier = next((run.previous[c[-1]] for c in candidates if c[-1] in run.previous), None)
            if earlier is not None:  # finished by an earlier run: never downloaded again
                kept.append(earlier)
                ids.append(earlier["pair_id"])
                continue
            for p, lr_grid, hr_grid, extra, _ in candidates:
                index, pair_id = run.new_id(loc.ordinal * 10000 + k, p["lr_date"], loc)
                try:
                    row = _download(run, loc, p, index, pair_id, lr_grid, hr_grid, extra)
                except GeeQuotaError:
                    raise
                except Exception as err:  # noqa: BLE001 - one pair never stops the chip
                    run.fail("download", loc, pair_id, err)
                    if is_retryable(err):
                        break  # transient: the same best pair is tried again on rerun
                    continue  # this candidate is broken for good: the month's next one
                run.add([row])
                ids.append(pair_id)
                break
    finally:
        run.add(kept)
    if not run.failed(loc):
        with run.lock:
            run.done[loc.key] = ids


def _transform_of(value: Any) -> list[float] | None:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) and len(value) == 6 else None


def _candidate(run: _Run, loc: Location, p: dict[str, Any], lr_meta: pd.DataFrame,
               hr_meta: pd.DataFrame) -> tuple[dict[str, Any], Grid, Grid, dict[str, Any], tuple]:
    """A ranked pair with its grids (from the scenes' own projections) and its resume key."""
    lr_transform = _transform_of(lr_meta.at[p["lr_scene_id"], "transform"])
    if lr_transform is None:
        lr_transform = _transform_of(run.lattice(loc, p["lr_scene_id"]))
    hr_crs = hr_meta.at[p["hr_scene_id"], "crs"]
    hr_transform = _transform_of(hr_meta.at[p["hr_scene_id"], "transform"])
    lr_grid, hr_grid, extra = pair_grids(loc, lr_transform, hr_crs if isinstance(hr_crs, str) else None, hr_transform,
                                         run.gee.hr_resampling)
    key = _pair_key(loc.region, lr_grid.crs, lr_grid.x0, lr_grid.y0, lr_grid.width, p["lr_scene_id"], p["hr_scene_id"])
    return p, lr_grid, hr_grid, extra, key


def _fetch(run: _Run, image_id: str, bands: Sequence[str], grid: Grid, resampling: str | None) -> np.ndarray:
    """One image on one grid, tiled under the request limits and mosaicked back."""
    gee = run.gee
    mosaic = np.zeros((len(bands), grid.height, grid.width), dtype=np.uint16)
    tiles = grids.split_request(grid, len(bands), BYTES_PER_PIXEL, gee.max_request_bytes, gee.max_request_side_px)
    for col, row, sub in tiles:
        arr = np.asarray(run.call(f"pixels {image_id}", run.backend.compute_pixels, image_id, tuple(bands), sub,
                                  resampling))
        if arr.shape != (len(bands), sub.height, sub.width):
            raise GeeError(f"{image_id}: got pixels of shape {arr.shape}, "
                           f"expected {(len(bands), sub.height, sub.width)}")
        mosaic[:, row:row + sub.height, col:col + sub.width] = arr
    return mosaic


def _download(run: _Run, loc: Location, p: dict[str, Any], index: int, pair_id: str, lr_grid: Grid, hr_grid: Grid,
              extra: dict[str, Any]) -> dict[str, Any]:
    """Fetch and write both chips of a pair; returns its manifest row."""
    gee = run.gee
    lr = _fetch(run, p["lr_scene_id"], LANDSAT_RGB, lr_grid, None)
    hr = _fetch(run, p["hr_scene_id"], S2_RGB, hr_grid, gee.hr_resampling)
    sensor = landsat_sensor(p["lr_scene_id"])
    lr_file = chip_name(index, p["lr_date"], sensor, loc.lon, loc.lat)
    hr_file = chip_name(index, p["hr_date"], "S2", loc.lon, loc.lat)
    common = {"PROVIDER": "gee", "PAIR_ID": pair_id, "REGION": loc.region}
    lr_tags = {
        **common, "SENSOR": sensor, TAG_SENSOR: sensor, "SCENE_ID": p["lr_scene_id"],
        "DATE_ACQUIRED": p["lr_date"], "TIME_ACQUIRED": pd.Timestamp(p["lr_time"]).isoformat(),
        L8_CLOUD_PROPERTY: f"{p['lr_cloud']:g}", "CLEAR_FRACTION": f"{p['lr_clear_fraction']:.6f}",
        "CLEAR_TEST": f"QA_PIXEL & {QA_NOT_CLEAR_BITS:#b} == 0", "RESAMPLING": "none (native Landsat grid)",
    }
    hr_tags = {
        **common, "SENSOR": "S2", TAG_SENSOR: "S2", "SCENE_ID": p["hr_scene_id"],
        "DATE_ACQUIRED": p["hr_date"], "TIME_ACQUIRED": pd.Timestamp(p["hr_time"]).isoformat(),
        S2_CLOUD_PROPERTY: f"{p['hr_cloud']:g}", "CLEAR_FRACTION": f"{p['hr_clear_fraction']:.6f}",
        "CLEAR_TEST": f"Cloud Score+ {CS_BAND} >= {gee.cs_clear_threshold:g}",
        "RESAMPLING": gee.hr_resampling, "HR_OFFSET_M": json.dumps(extra.get("hr_offset_m")),
    }
    lr_sha = write_geotiff(run.out_dir / lr_file, lr, lr_grid, L8_C2_L2, LANDSAT_RGB, lr_tags)
    hr_sha = write_geotiff(run.out_dir / hr_file, hr, hr_grid, S2_SR, S2_RGB, hr_tags)
    return pair_row(
        pair_id=pair_id, provider="gee", region=loc.region, lon=loc.lon, lat=loc.lat,
        **grid_columns(lr_grid, hr_grid),
        lr_file=lr_file, hr_file=hr_file, lr_sha256=lr_sha, hr_sha256=hr_sha,
        lr_date=p["lr_date"], hr_date=p["hr_date"], days_apart=int(p["days_apart"]),
        lr_scene_id=p["lr_scene_id"], hr_scene_id=p["hr_scene_id"],
        lr_cloud=float(p["lr_cloud"]), hr_cloud=float(p["hr_cloud"]),
        lr_clear_fraction=float(p["lr_clear_fraction"]), hr_clear_fraction=float(p["hr_clear_fraction"]),
        extra=json.dumps({"chip": loc.key, **extra}, sort_keys=True),
    )


# ------------------------------------------------------------------------------------ resume state
def _old_rows(out_dir: Path) -> list[dict[str, Any]]:
    """Complete gee rows of a previous run; anything unreadable counts as absent."""
    if not (out_dir / MANIFEST_NAME).is_file():
        return []
    try:
        df = read_manifest(out_dir)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        log.warning("gee: ignoring unreadable previous manifest (%s); pairs will be fetched again", err)
        return []
    return [r for r in df.to_dict("records") if r.get("provider") == "gee" and is_complete(out_dir, r)]


def _read_progress(out_dir: Path, plan: str) -> dict[str, list[str]]:
    try:
        state = json.loads((out_dir / PROGRESS_NAME).read_text())
        return dict(state["done"]) if state.get("plan") == plan else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_state(out_dir: Path, run: _Run, plan: str) -> None:
    with atomic_path(out_dir / PROGRESS_NAME) as tmp:
        tmp.write_text(json.dumps({"plan": plan, "done": dict(sorted(run.done.items()))}, indent=1))
    path = out_dir / FAILURES_NAME
    if run.failures:
        pd.DataFrame([f.__dict__ for f in run.failures]).to_csv(path, index=False)
    else:
        path.unlink(missing_ok=True)


def _initialize(backend: Backend, retrier: Retrier) -> None:
    """Initialise, retrying transient failures; what stays transient is a connection problem, not auth."""
    try:
        retrier.call("initialize", backend.initialize)
    except GeeError:
        raise
    except Exception as err:  # noqa: BLE001 - only transient errors get here (see EarthEngineBackend)
        raise GeeConnectionError(
            f"could not reach Earth Engine after {retrier.max_retries} retries ({_message(err)}). "
            "Check the network or proxy and rerun; credentials were not the problem."
        ) from None


# ------------------------------------------------------------------------------------ run
def run(params: Params, out_dir: Path, backend: Backend | None = None) -> pd.DataFrame:
    """Build (or resume) the real dataset in ``out_dir``; returns the manifest it wrote.

    ``backend`` defaults to :class:`EarthEngineBackend` with credentials from the environment or
    params. ``DataFrame.attrs['failures']`` lists what was skipped (also in gee_failures.csv).
    """
    gee: GeeParams = params.source.gee
    out_dir = Path(out_dir)
    if backend is None:
        auth = resolve_auth(gee)  # a named key file that is missing or wrong fails here, with help
        log.info("gee: using %s", auth.describe())
        backend = EarthEngineBackend(auth, gee.request_deadline_s)
    retrier = Retrier(gee)
    _initialize(backend, retrier)  # credentials first: the first thing a new user has to fix
    if not gee.regions:
        raise GeeError("source.gee.regions is empty: list at least one region (name, start, ...) in params.yaml")

    out_dir.mkdir(parents=True, exist_ok=True)
    for partial in out_dir.glob(".*.part"):  # atomic writes never leave them under final names
        partial.unlink(missing_ok=True)
    plan = plan_hash(params)
    locations = plan_locations(params)
    previous = {_row_key(r): r for r in _old_rows(out_dir)}
    state = _Run(params, out_dir, backend, retrier, previous, _read_progress(out_dir, plan))
    log.info("gee: %d chips; %d complete pairs from earlier runs", len(locations), len(previous))

    stop: GeeQuotaError | None = None
    complete = False
    pool = ThreadPoolExecutor(max_workers=gee.max_concurrent_requests, thread_name_prefix="gee")
    try:
        futures = {pool.submit(_chip, state, loc): loc for loc in locations}
        with tqdm(total=len(futures), desc="gee chips", unit="chip", disable=None) as bar:
            for fut in as_completed(futures):
                try:
                    fut.result()
                except GeeQuotaError as err:
                    if stop is None:
                        stop = err
                        for other in futures:
                            other.cancel()
                bar.update()
        complete = stop is None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        rows = list({r["pair_id"]: r for r in state.rows}.values())
        if not complete:  # stopped: keep every earlier pair of chips that were not reached
            seen = {_row_key(r) for r in rows}
            rows += [r for k, r in previous.items() if k not in seen]
        write_manifest(out_dir, rows or pd.DataFrame(columns=COLUMNS))
        _write_state(out_dir, state, plan)

    if stop is not None:
        left = len(locations) - len(state.done)
        raise GeeQuotaError(f"{stop} {len(rows)} pairs are complete in {out_dir}; {left} of {len(locations)} chips "
                            "are unfinished. Rerun `satsr source` (or `dvc repro`) when the quota allows: finished "
                            "chips and pairs are not requested again.")
    manifest = read_manifest(out_dir)
    if not state.failures:
        keep = {r["lr_file"] for r in rows} | {r["hr_file"] for r in rows} | {PROGRESS_NAME}
        removed = prune_unlisted(out_dir, keep)
        if removed:
            log.info("gee: removed %d files that are no longer in the manifest", len(removed))
    else:
        log.warning("gee: %d failures recorded in %s; rerun to retry them (complete pairs are kept)",
                    len(state.failures), out_dir / FAILURES_NAME)
    if manifest.empty:
        hint = (f"{len(state.failures)} requests failed (see {out_dir / FAILURES_NAME}); rerun to resume."
                if state.failures else "No scenes passed the date and cloud filters: widen the dates, raise the "
                "cloud limits or add regions (`satsr source --plan` shows the chips).")
        raise GeeError(f"gee: the dataset has no pairs. {hint}")
    log.info("gee: %d pairs in %s (%d retries)", len(manifest), out_dir, retrier.retries)
    manifest.attrs["failures"] = [f.__dict__ for f in state.failures]
    return manifest
