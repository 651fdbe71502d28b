"""The errors of ``satsr predict``."""

from __future__ import annotations

from satsr.errors import SatsrError


class PredictError(SatsrError, ValueError):
    """Bad input, model or output for ``predict``; the message names the file and what was expected."""


class PredictWarning(UserWarning):
    """Something the analyst should know about an otherwise finished prediction (e.g. all nodata)."""
