"""Errors of a training stage. Both are user-facing (satsr.errors.SatsrError): the message names
the stage, the architecture and the file or key involved, and says what to do."""

from __future__ import annotations

from satsr.errors import SatsrError


class TrainError(SatsrError, RuntimeError):
    """Training cannot start or go on; the message names the stage, arch and the file involved."""


class NonFiniteLossError(TrainError):
    """The loss became NaN or inf; the last good checkpoint is kept."""
