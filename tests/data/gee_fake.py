"""A fake Earth Engine backend for the gee provider's tests, and the kill test's child process.

It implements ``satsr.data.sources.gee.client.Backend`` (the one seam where a fake is allowed),
answers deterministically (same answers in every process, so checksums compare across runs),
records every call, tracks how many are in flight, and injects faults **as ee raises them**: an
HTTP failure is a real ``googleapiclient.errors.HttpError`` (an ``httplib2.Response`` with the
status) passed through ee's own translation, ``ee.data._execute_cloud_call``, so the test sees
``EEException(reason)`` with the HttpError on ``__context__``, exactly like the real client.

Scenes follow the real products' grids: Landsat in the chip's northern UTM zone (EPSG:326xx)
with pixel edges at 15 (mod 30) m; Sentinel-2 in 327xx south of the equator, edges on multiples
of 10 m, an MGRS tile name starting with the zone.

Run as a script (``python gee_fake.py OUT_DIR CALLS_LOG``) it builds the dataset of
:func:`small_params` with a slow fake, logging each ``compute_pixels`` call to CALLS_LOG; the test
kills it part way. ``python gee_fake.py --count`` prints the requests per chip of whole runs.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import googleapiclient.errors
import httplib2
import numpy as np
from ee import data as ee_data

from satsr.config import GeeParams, Params, Region, SourceParams
from satsr.data import grids
from satsr.data.grids import Grid

L8_DAYS, S2_DAYS = 16, 5
GETINFO_METHODS = ("search_scenes", "landsat_clear_fractions", "s2_clear_fractions", "scene_projection")
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class _FailingCall:
    """Stands in for a googleapiclient HttpRequest whose ``execute`` gets an HTTP error back."""

    def __init__(self, status: int, message: str, html: bool) -> None:
        self.status, self.message, self.html = status, message, html

    def execute(self, num_retries: int = 0) -> Any:
        resp = httplib2.Response({"status": str(self.status), "content-type":
                                  "text/html" if self.html else "application/json; charset=UTF-8"})
        if self.html:  # what a proxy or load balancer answers: no JSON error body
            content = f"<html><body><h1>{self.status} {self.message}</h1></body></html>".encode()
        else:
            content = json.dumps({"error": {"code": self.status, "message": self.message,
                                            "status": _STATUS.get(self.status, "UNKNOWN")}}).encode()
        raise googleapiclient.errors.HttpError(resp, content, uri="https://earthengine.googleapis.com/v1/projects/"
                                               "p/value:compute")


def raise_http(status: int, message: str = "", html: bool = False) -> None:
    """Raise an HTTP failure exactly as the ee client does (its own translation function)."""
    ee_data._execute_cloud_call(_FailingCall(status, message, html))  # raises EEException from HttpError


def ee_error(status: int, message: str = "", html: bool = False) -> Exception:
    """The exception object ee raises for an HTTP failure (for tests of the classification)."""
    try:
        raise_http(status, message, html)
    except Exception as err:  # noqa: BLE001
        return err
    raise AssertionError("ee did not raise")


QUOTA_DAY = ("Quota exceeded for quota metric 'Compute requests' and limit 'Compute requests per day' "
             "of service 'earthengine.googleapis.com'.")


def _crc(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def small_params(**gee: Any) -> Params:
    """Five chip locations in two regions (south and north of the equator), three months."""
    base: dict[str, Any] = {
        "regions": [
            Region(name="south", mode="line", start=(-52.5, -3.2), heading_deg=90, count=3),
            Region(name="north", mode="between", start=(-87.2, 14.9), end=(-87.1, 15.0), count=2),
        ],
        "start_date": dt.date(2020, 1, 1),
        "end_date": dt.date(2020, 3, 31),
        "max_concurrent_requests": 4,
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.01,
    }
    base.update(gee)
    return Params(source=SourceParams(provider="gee", lr_size=16, gee=GeeParams(**base)))


def expected_pixels(image_id: str, bands: Sequence[str], grid: Grid) -> np.ndarray:
    """The fake's pixels: a function of ground position, so tiles mosaic back seamlessly."""
    cols = (grid.x0 / grid.pixel + np.arange(grid.width))[None, :]
    rows = (-grid.y0 / grid.pixel + np.arange(grid.height))[:, None]
    seed = _crc(image_id) % 997
    return np.stack([((cols * 3 + rows * 7 + seed + 50 * b) % 3000 + 500) for b in range(len(bands))]).astype(np.uint16)


class FakeBackend:
    """Records calls. Faults: ``fail_first`` compute_pixels calls answer 429; ``broken`` maps a part of
    an image id to (status, message) or an exception, raised by its compute_pixels requests
    (``broken_screening``: by the clear-fraction requests that include it);
    ``quota_after`` answers every request after that many with a daily-quota 429; ``other_zone``
    puts this share of the scenes in the next UTM zone; ``landsat_lattice`` moves Landsat's pixel
    edges; ``with_transforms=False`` leaves the search's transforms unknown."""

    def __init__(
        self, *, delay_s: float = 0.0, pixel_delay_s: float = 0.0, fail_first: int = 0,
        broken: dict[str, tuple[int, str] | BaseException] | None = None,
        broken_screening: dict[str, tuple[int, str] | BaseException] | None = None, calls_log: Path | None = None,
        quota_after: int | None = None, other_zone: float = 0.0,
        landsat_lattice: tuple[float, float] = (15.0, 15.0), with_transforms: bool = True,
    ) -> None:
        self.delay_s, self.pixel_delay_s, self.fail_first = delay_s, pixel_delay_s, fail_first
        self.broken, self.broken_screening = broken or {}, broken_screening or {}
        self.calls_log, self.quota_after, self.other_zone = calls_log, quota_after, other_zone
        self.landsat_lattice, self.with_transforms = landsat_lattice, with_transforms
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.projections: dict[str, dict[str, Any]] = {}  # of the scenes the searches returned
        self.initialized = False
        self.in_flight = self.max_in_flight = self.failed = 0
        self._lock = threading.Lock()

    # bookkeeping and faults around every request
    def _enter(self, name: str, args: tuple[Any, ...], ids: Sequence[str] = (),
               faults: dict[str, tuple[int, str] | BaseException] | None = None) -> None:
        with self._lock:
            self.calls.append((name, args))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            over_quota = self.quota_after is not None and len(self.calls) > self.quota_after
        try:
            time.sleep(self.delay_s)
            if over_quota:
                raise_http(429, QUOTA_DAY)
            for part, fault in (faults or {}).items():
                if any(part in i for i in ids):
                    if isinstance(fault, BaseException):
                        raise fault
                    raise_http(*fault)
        except BaseException:
            self._leave()
            raise

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    def getinfo_calls(self) -> int:
        return sum(1 for n, _ in self.calls if n in GETINFO_METHODS)

    def initialize(self) -> None:
        self.initialized = True

    # scenes
    def _zone(self, scene_id: str, zone: int) -> int:
        return zone + 1 if _crc(scene_id, "zone") % 1000 < self.other_zone * 1000 else zone

    def search_scenes(self, collections: Sequence[str], grid: Grid, start: dt.date, end: dt.date,
                      cloud_property: str, max_cloud: float, grid_band: str) -> list[dict[str, Any]]:
        self._enter("search_scenes", (tuple(collections), grid, start, end, cloud_property, max_cloud, grid_band))
        try:
            zone = grids.epsg_zone(grid.crs)
            out = []
            for collection in collections:
                s2 = "COPERNICUS" in collection
                step, prefix = (S2_DAYS, "S2") if s2 else (L8_DAYS, collection.split("/")[1])
                tile = int(grid.x0 // 1000)
                day = start + dt.timedelta(days=_crc(collection, tile) % step)
                while day <= end:
                    scene_id = f"{collection}/{prefix}_{tile}_{day:%Y%m%d}"
                    cloud = float(_crc(scene_id, "cloud") % 300) / 10.0  # 0 .. 30 %
                    if cloud <= max_cloud:  # the server-side filter
                        t = dt.datetime(day.year, day.month, day.day, 10, 30, tzinfo=dt.UTC)
                        proj = self._projection(scene_id, grid, zone, s2)
                        with self._lock:
                            proj = self.projections.setdefault(scene_id, proj)  # a scene has one grid
                        out.append({"id": scene_id, "time": int(t.timestamp() * 1000), "cloud": cloud, **proj})
                    day += dt.timedelta(days=step)
            if not self.with_transforms:
                out = [{**s, "transform": None} for s in out]
            return out
        finally:
            self._leave()

    def _projection(self, scene_id: str, grid: Grid, zone: int, s2: bool) -> dict[str, Any]:
        z = self._zone(scene_id, zone)
        if s2:  # Sentinel-2: 327xx south of the equator, edges on multiples of 10 m
            south = grid.y0 < 0
            ty = (grid.y0 + (10_000_000 if south else 0)) // 10_000 * 10_000 + 9_780
            crs = f"EPSG:{(32700 if south else 32600) + z}"
            return {"crs": crs, "transform": [10.0, 0.0, 300_000.0, 0.0, -10.0, float(ty)], "mgrs": f"{z:02d}MAB"}
        lx, ly = self.landsat_lattice  # Landsat: always 326xx, centres on multiples of 30 m
        tx = (grid.x0 - 60_000) // 30 * 30 + lx % 30
        ty = (grid.y0 + 60_000) // 30 * 30 + ly % 30
        return {"crs": f"EPSG:{32600 + z}", "transform": [30.0, 0.0, float(tx), 0.0, -30.0, float(ty)], "mgrs": None}

    def scene_projection(self, image_id: str, band: str) -> dict[str, Any]:
        self._enter("scene_projection", (image_id, band))
        try:
            with self._lock:
                known = self.projections.get(image_id)
            if known is not None:
                return {"crs": known["crs"], "transform": known["transform"]}
            lx, ly = self.landsat_lattice  # a scene never searched for: a corner on the same lattice
            return {"crs": None, "transform": [30.0, 0.0, 300_000.0 + lx % 30, 0.0, -30.0, 30_000.0 + ly % 30]}
        finally:
            self._leave()

    def clear(self, image_id: str) -> float:
        return 0.5 if _crc(image_id, "clear") % 5 == 0 else 1.0 - (_crc(image_id, "frac") % 20) / 1000

    def landsat_clear_fractions(self, image_ids: Sequence[str], grid: Grid) -> dict[str, float]:
        self._enter("landsat_clear_fractions", (tuple(image_ids), grid), image_ids, self.broken_screening)
        try:
            return {i: self.clear(i) for i in image_ids}
        finally:
            self._leave()

    def s2_clear_fractions(self, image_ids: Sequence[str], grid: Grid, cloud_score_collection: str,
                           threshold: float) -> dict[str, float]:
        self._enter("s2_clear_fractions", (tuple(image_ids), grid, cloud_score_collection, threshold), image_ids,
                    self.broken_screening)
        try:
            return {i: self.clear(i) for i in image_ids}
        finally:
            self._leave()

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid, resampling: str | None) -> np.ndarray:
        self._enter("compute_pixels", (image_id, tuple(bands), grid, resampling), [image_id], self.broken)
        try:
            time.sleep(self.pixel_delay_s)
            with self._lock:
                burst = self.failed < self.fail_first
                self.failed += burst
            if burst:
                raise_http(429, "Too many concurrent aggregations.")
            if self.calls_log is not None:
                with self._lock, open(self.calls_log, "a") as f:
                    f.write(f"{image_id} {grid.x0:.0f} {grid.y0:.0f} {grid.pixel:.0f}\n")
            return expected_pixels(image_id, bands, grid)
        finally:
            self._leave()


def count_requests(years: int) -> dict[str, float]:
    """Requests per chip of a whole run through this seam (benchmarks/README.md quotes it)."""
    import tempfile

    from satsr.data.sources import gee

    params = small_params(start_date=dt.date(2021 - years, 1, 1), end_date=dt.date(2020, 12, 31))
    backend = FakeBackend()
    manifest = gee.run(params, Path(tempfile.mkdtemp()), backend)
    chips = len(gee.plan_locations(params))
    screened = sum(len(a[0]) for n in ("landsat_clear_fractions", "s2_clear_fractions") for a in backend.of(n))
    return {"window_years": years, "chips": chips, "pairs": len(manifest),
            "getinfo_per_chip": backend.getinfo_calls() / chips, "scenes_screened_per_chip": screened / chips,
            "compute_pixels_per_pair": len(backend.of("compute_pixels")) / len(manifest)}


if __name__ == "__main__":
    from satsr.data.sources import gee

    if sys.argv[1:2] == ["--count"]:  # python tests/data/gee_fake.py --count
        for years in (1, 7):
            print(json.dumps(count_requests(years)))
    else:  # the kill test's child: a slow download, killed part way
        out_dir, calls_log = Path(sys.argv[1]), Path(sys.argv[2])
        gee.run(small_params(max_concurrent_requests=2), out_dir, FakeBackend(pixel_delay_s=0.12, calls_log=calls_log))
