"""Constants and errors shared by the Earth Engine provider's modules (no ``ee`` import here)."""

from __future__ import annotations

from satsr.errors import SatsrError

LANDSAT9_COLLECTION = "LANDSAT/LC09/C02/T1_L2"
L8_CLOUD_PROPERTY = "CLOUD_COVER"
S2_CLOUD_PROPERTY = "CLOUDY_PIXEL_PERCENTAGE"
#: The band whose projection is a scene's native grid (30 m for Landsat, 10 m for Sentinel-2).
LANDSAT_GRID_BAND = "SR_B4"
S2_GRID_BAND = "B4"
#: QA_PIXEL bits 0-4: fill, dilated cloud, cirrus, cloud, cloud shadow. Clear = none set.
QA_NOT_CLEAR_BITS = 0b11111
CS_BAND = "cs_cdf"
BYTES_PER_PIXEL = 2  # both products are uint16
FAILURES_NAME = "gee_failures.csv"
#: Which chips are finished for which plan: a rerun skips them without a single request.
PROGRESS_NAME = "gee_progress.json"


class GeeError(SatsrError, RuntimeError):
    """The Earth Engine provider cannot go on (bad setup, nothing matched, service unreachable)."""


class GeeAuthError(GeeError):
    """Credentials or project for Earth Engine are missing or unusable; the message says how to fix it."""


class GeeConnectionError(GeeError):
    """Earth Engine could not be reached (network, timeouts, 5xx) even after retrying."""


class GeeQuotaError(GeeError):
    """The circuit breaker opened: too many consecutive quota errors. Finished pairs are kept; rerun later."""
