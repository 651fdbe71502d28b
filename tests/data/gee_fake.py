"""A fake Earth Engine backend for the gee provider's tests, and the kill test's child process.

It implements the same methods as ``satsr.data.sources.gee.EarthEngineBackend`` (the one seam
where a fake is allowed), answers deterministically (same answers in every process, so checksums
can be compared across runs), records every call, tracks how many calls are in flight, and can
inject 429 bursts, always-failing and non-retryable errors.

Run as a script (``python gee_fake.py OUT_DIR CALLS_LOG``) it builds the dataset of
:func:`small_params` with a slow fake, logging each ``compute_pixels`` call to CALLS_LOG; the test
kills it part way.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from satsr.config import GeeParams, Params, Region, SourceParams
from satsr.data.grids import Grid

L8_DAYS, S2_DAYS = 16, 5


class FakeHttpError(Exception):
    """Like googleapiclient's HttpError: carries an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"<HttpError {status}: {message}>")
        self.status_code = status


class FakeEEException(Exception):
    """Like ee.EEException: only the server's message, no status."""


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
    """Records calls; ``fail_first`` calls to compute_pixels raise 429; ``broken`` ids fail for good."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        pixel_delay_s: float = 0.0,
        fail_first: int = 0,
        broken: dict[str, Exception] | None = None,
        calls_log: Path | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.pixel_delay_s = pixel_delay_s
        self.fail_first = fail_first
        self.broken = broken or {}
        self.calls_log = calls_log
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.initialized = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.failed = 0
        self._lock = threading.Lock()

    # bookkeeping around every request
    def _enter(self, name: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self.calls.append((name, args))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    def initialize(self) -> None:
        self.initialized = True

    def search_scenes(self, collection: str, grid: Grid, start: dt.date, end: dt.date,
                      cloud_property: str, max_cloud: float) -> list[dict[str, Any]]:
        self._enter("search_scenes", (collection, grid, start, end, cloud_property, max_cloud))
        try:
            time.sleep(self.delay_s)
            step, prefix = (S2_DAYS, "S2") if "COPERNICUS" in collection else (L8_DAYS, collection.split("/")[1])
            tile = int(grid.x0 // 1000)
            day = start + dt.timedelta(days=_crc(collection, tile) % step)
            out = []
            while day <= end:
                scene_id = f"{collection}/{prefix}_{tile}_{day:%Y%m%d}"
                cloud = float(_crc(scene_id, "cloud") % 300) / 10.0  # 0 .. 30 %
                if cloud <= max_cloud:  # the server-side filter
                    t = dt.datetime(day.year, day.month, day.day, 10, 30, tzinfo=dt.UTC)
                    out.append({"id": scene_id, "time": int(t.timestamp() * 1000), "cloud": cloud})
                day += dt.timedelta(days=step)
            return out
        finally:
            self._leave()

    def _clear(self, image_id: str) -> float:
        return 0.5 if _crc(image_id, "clear") % 5 == 0 else 1.0

    def landsat_clear_fraction(self, image_id: str, grid: Grid) -> float:
        self._enter("landsat_clear_fraction", (image_id, grid))
        try:
            time.sleep(self.delay_s)
            return self._clear(image_id)
        finally:
            self._leave()

    def s2_clear_fraction(self, image_id: str, grid: Grid, cloud_score_collection: str, threshold: float) -> float:
        self._enter("s2_clear_fraction", (image_id, grid, cloud_score_collection, threshold))
        try:
            time.sleep(self.delay_s)
            return self._clear(image_id)
        finally:
            self._leave()

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid) -> np.ndarray:
        self._enter("compute_pixels", (image_id, tuple(bands), grid))
        try:
            time.sleep(self.delay_s + self.pixel_delay_s)
            with self._lock:
                burst = self.failed < self.fail_first
                self.failed += burst
            if burst:
                raise FakeHttpError(429, "Too Many Requests")
            for part, err in self.broken.items():
                if part in image_id:
                    raise err
            if self.calls_log is not None:
                with self._lock, open(self.calls_log, "a") as f:
                    f.write(f"{image_id} {grid.x0:.0f} {grid.y0:.0f} {grid.pixel:.0f}\n")
            return expected_pixels(image_id, bands, grid)
        finally:
            self._leave()


if __name__ == "__main__":  # the kill test's child: a slow download, killed part way
    from satsr.data.sources import gee

    out_dir, calls_log = Path(sys.argv[1]), Path(sys.argv[2])
    gee.run(small_params(max_concurrent_requests=2), out_dir, FakeBackend(pixel_delay_s=0.12, calls_log=calls_log))
