"""Every Earth Engine request satsr makes, and nothing else: the only module of satsr that imports
``ee`` (lazily, in :meth:`EarthEngineBackend.initialize`). Tests replace this class with a fake.

Each method makes exactly one request, so the caller's :class:`~.retry.Retrier` can retry and
count them one by one. Per chip, search and screening take four ``getInfo`` calls, whatever the
number of candidate scenes: one ``reduceColumns`` per sensor for the search, one per sensor for
the clear fraction (``map`` + ``reduceRegion`` over the candidates, pulled back in one
``reduceColumns``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from satsr.data.grids import Grid
from satsr.data.sources.gee.auth import AUTH_HELP, EeAuth
from satsr.data.sources.gee.common import CS_BAND, QA_NOT_CLEAR_BITS, S2_GRID_BAND, GeeAuthError, GeeError
from satsr.data.sources.gee.retry import is_retryable
from satsr.util import redact


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


_WKT_ELT = re.compile(r'"elt_([01])_([012])"\s*,\s*([-+0-9.eE]+)')


def parse_transform_wkt(wkt: str | None) -> list[float] | None:
    """``Projection.transform()``'s WKT (``PARAM_MT["Affine", PARAMETER["elt_0_0", 30.0], ...]``)
    -> [scaleX, shearX, translateX, shearY, scaleY, translateY]; None when it is not one."""
    if not wkt or "Affine" not in wkt:
        return None
    m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # WKT omits elements equal to the identity's
    for row, col, value in _WKT_ELT.findall(wkt):
        m[int(row)][int(col)] = float(value)
    return [*m[0], *m[1]]


class Backend(Protocol):
    """The seam between satsr and Earth Engine: one request per call."""

    def initialize(self) -> None: ...

    def search_scenes(self, collections: Sequence[str], grid: Grid, start: dt.date, end: dt.date,
                      cloud_property: str, max_cloud: float, grid_band: str) -> list[dict[str, Any]]: ...

    def landsat_clear_fractions(self, image_ids: Sequence[str], grid: Grid) -> dict[str, float]: ...

    def s2_clear_fractions(self, image_ids: Sequence[str], grid: Grid, cloud_score_collection: str,
                           threshold: float) -> dict[str, float]: ...

    def scene_projection(self, image_id: str, band: str) -> dict[str, Any]: ...

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid,
                       resampling: str | None) -> np.ndarray: ...


class EarthEngineBackend:
    """The real :class:`Backend`. Methods are thread-safe."""

    def __init__(self, auth: EeAuth, deadline_s: float | None = None) -> None:
        self.auth = auth
        self.deadline_s = deadline_s
        self._ee: Any = None

    # -- setup
    def initialize(self) -> None:
        """Authenticate, bind the project, set the HTTP deadline.

        A transient failure (network, timeout, 429/5xx) is raised as it is, for the caller to retry
        and finally report as a connection problem; anything else is a :class:`GeeAuthError` with
        the setup help (key material redacted).
        """
        try:
            import ee
        except ImportError:
            raise GeeError("source.provider=gee needs the earthengine-api package: "
                           "pip install earthengine-api") from None
        ee.data.setMaxRetries(0)  # retries are ours (Retrier), with backoff, a breaker and a concurrency cap
        try:
            if self.auth.key_file is not None:
                credentials: Any = ee.ServiceAccountCredentials(self.auth.email, str(self.auth.key_file))
            else:
                credentials = "persistent"  # EE user credentials, then ADC / the metadata server
            ee.Initialize(credentials, project=self.auth.project)
        except Exception as err:  # noqa: BLE001 - sorted into transient vs setup problems
            if is_retryable(err):
                raise
            if "authorize access" in str(err):  # ee.data.get_persistent_credentials found nothing
                raise GeeAuthError(
                    "No Earth Engine credentials found. ee.Initialize looked for `earthengine authenticate` "
                    f"credentials, Application Default Credentials and a metadata server.\n{AUTH_HELP}"
                ) from None
            raise GeeAuthError(
                f"Earth Engine initialisation failed for {self.auth.describe()}: "
                f"{type(err).__name__}: {redact(str(err))}\n{AUTH_HELP}"
            ) from None
        if self.deadline_s:
            ee.data.setDeadline(int(self.deadline_s * 1000))  # ee's default: no timeout at all
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
    def search_scenes(self, collections: Sequence[str], grid: Grid, start: dt.date, end: dt.date,
                      cloud_property: str, max_cloud: float, grid_band: str) -> list[dict[str, Any]]:
        """Scenes of ``collections`` touching the chip, acquired in [start, end] (days, inclusive),
        with 0 <= ``cloud_property`` <= ``max_cloud``, with the native projection of ``grid_band``:
        ``[{'id', 'time' (ms UTC), 'cloud', 'crs', 'transform' (list or None), 'mgrs'}]``. One getInfo."""
        ee = self.ee
        rect = self._rect(grid)

        def meta(image: Any) -> Any:
            # copied into ordinary properties before merging, so no system property has to survive merge()
            proj = image.select(grid_band).projection()
            mgrs = image.get("MGRS_TILE") if grid_band == S2_GRID_BAND else ""  # Sentinel-2's UTM zone + tile
            return image.set({"satsr_id": image.get("system:id"), "satsr_time": image.get("system:time_start"),
                              "satsr_crs": proj.crs(), "satsr_transform": proj.transform(), "satsr_mgrs": mgrs})

        coll = None
        for name in collections:
            part = (
                ee.ImageCollection(name)
                .filterBounds(rect)
                .filterDate(start.isoformat(), (end + dt.timedelta(days=1)).isoformat())
                .filter(ee.Filter.lte(cloud_property, max_cloud))
                .filter(ee.Filter.gte(cloud_property, 0))  # Landsat writes -1 where it could not tell
                .map(meta)
            )
            coll = part if coll is None else coll.merge(part)
        columns = ["satsr_id", "satsr_time", cloud_property, "satsr_crs", "satsr_transform", "satsr_mgrs"]
        rows = coll.reduceColumns(ee.Reducer.toList(len(columns)), columns).get("list").getInfo() or []
        return [{"id": r[0], "time": int(r[1]), "cloud": float(r[2]), "crs": r[3],
                 "transform": parse_transform_wkt(r[4]), "mgrs": r[5] or None} for r in rows]

    def _clear_fractions(self, images: Any, grid: Grid) -> dict[str, float]:
        """``images``: one-band 0/1 'clear' images tagged ``satsr_id`` -> mean over the chip, one getInfo."""
        ee = self.ee
        rect = self._rect(grid)

        def mean(image: Any) -> Any:
            # unmask(0, sameFootprint=False): masked or off-scene pixels count as not clear
            stats = image.unmask(0, False).rename("clear").reduceRegion(
                reducer=ee.Reducer.mean(), geometry=rect, crs=grid.crs, crsTransform=grid.affine, maxPixels=int(1e9))
            return image.set("satsr_clear", stats.get("clear"))

        rows = images.map(mean).reduceColumns(ee.Reducer.toList(2), ["satsr_id", "satsr_clear"]).get("list").getInfo()
        return {r[0]: (0.0 if r[1] is None else float(r[1])) for r in rows or []}

    def landsat_clear_fractions(self, image_ids: Sequence[str], grid: Grid) -> dict[str, float]:
        """Share of the chip's 30 m pixels with ``QA_PIXEL & 0b11111 == 0``, per scene (one request)."""
        ee = self.ee

        def clear(image_id: str) -> Any:
            return ee.Image(image_id).select("QA_PIXEL").bitwiseAnd(QA_NOT_CLEAR_BITS).eq(0).set("satsr_id", image_id)

        return self._clear_fractions(ee.ImageCollection([clear(i) for i in image_ids]), grid)

    def s2_clear_fractions(self, image_ids: Sequence[str], grid: Grid, cloud_score_collection: str,
                           threshold: float) -> dict[str, float]:
        """Share of the chip's 10 m pixels with Cloud Score+ ``cs_cdf >= threshold``, per scene."""
        ee = self.ee
        scores = ee.ImageCollection(cloud_score_collection)

        def clear(image_id: str) -> Any:
            linked = ee.Image(image_id).linkCollection(scores, [CS_BAND])
            return linked.select(CS_BAND).gte(threshold).set("satsr_id", image_id)

        return self._clear_fractions(ee.ImageCollection([clear(i) for i in image_ids]), grid)

    def scene_projection(self, image_id: str, band: str) -> dict[str, Any]:
        """Native projection of one band: ``{'crs': 'EPSG:32622', 'transform': [30, 0, x, 0, -30, y]}``."""
        info = self.ee.Image(image_id).select(band).projection().getInfo()
        return {"crs": info.get("crs"), "transform": [float(v) for v in info.get("transform", [])] or None}

    def compute_pixels(self, image_id: str, bands: Sequence[str], grid: Grid, resampling: str | None) -> np.ndarray:
        """``bands`` of one image on ``grid`` as a (bands, h, w) uint16 array; fill (0) off-scene.

        ``resampling`` None: nearest neighbour, i.e. the native pixels when ``grid`` lies on the
        image's own lattice (the Landsat side). Otherwise 'bilinear' / 'bicubic' (the HR side).
        """
        ee = self.ee
        image = ee.Image(image_id).select(list(bands))
        if resampling is not None:
            image = image.resample(resampling).round()
        image = image.unmask(0, False).toUint16()
        arr = ee.data.computePixels({"expression": image, "fileFormat": "NUMPY_NDARRAY", "grid": ee_grid(grid)})
        return np.stack([np.asarray(arr[b]) for b in bands]).astype(np.uint16, copy=False)
