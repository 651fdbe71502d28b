"""Retrying Earth Engine requests: which errors are transient, backoff, the concurrency cap, and a
circuit breaker for quota exhaustion.

ee turns a ``googleapiclient.errors.HttpError`` into ``EEException(reason)`` (``ee.data.
_execute_cloud_call``), which carries no status code: the HTTP status is on the chained
exception, ``err.__context__.resp.status``. A 502 or 503 with an HTML body arrives as
``EEException('Ok')``, so the status, not the message, decides.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from satsr.config import GeeParams
from satsr.data.sources.gee.common import GeeQuotaError
from satsr.util import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Sleep used between retries; a module attribute so tests can replace it.
_sleep: Callable[[float], None] = time.sleep

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
#: For errors that carry no HTTP status at all (ee's own, or a message-only wrapper).
_RETRYABLE_TEXT = re.compile(
    r"too many (concurrent )?(requests|aggregations)|quota|rate.?limit|resources? exhausted"
    r"|capacity exceeded|service (is )?(currently )?unavailable|internal error|backend error"
    r"|deadline exceeded|timed out|temporar|try again|connection (reset|aborted|refused)",
    re.IGNORECASE,
)
_QUOTA_TEXT = re.compile(r"quota|rate.?limit|too many (concurrent )?(requests|aggregations)|resources? exhausted",
                         re.IGNORECASE)
#: Transport failures (by class name, so neither httplib2 nor google.auth need importing here).
_RETRYABLE_TYPES = ("ConnectionError", "TimeoutError", "RemoteDisconnected", "ServerNotFoundError",
                    "TransportError", "IncompleteRead")


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the exceptions it was raised from or during (``__cause__`` / ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def status_of(err: BaseException) -> int | None:
    """HTTP status of an error or of the error it wraps: ``resp.status`` of googleapiclient's
    HttpError (what ee chains under its EEException), or ``status_code`` (requests)."""
    for e in _chain(err):
        for value in (getattr(getattr(e, "resp", None), "status", None), getattr(e, "status_code", None)):
            try:
                if value is not None:
                    return int(value)
            except (TypeError, ValueError):
                continue
    return None


def is_retryable(err: BaseException) -> bool:
    """429 / 500 / 502 / 503 / 504, dropped connections and timeouts: worth another try."""
    status = status_of(err)
    if status is not None:
        return status in RETRYABLE_STATUS
    for e in _chain(err):
        if any(cls.__name__ in _RETRYABLE_TYPES for cls in type(e).__mro__) or getattr(e, "retryable", False) is True:
            return True
    return bool(_RETRYABLE_TEXT.search(str(err)))


def is_quota_error(err: BaseException) -> bool:
    """A quota or rate-limit refusal (HTTP 429, or a message that says so without a status)."""
    status = status_of(err)
    if status is not None:
        return status == 429
    return bool(_QUOTA_TEXT.search(str(err)))


class Retrier:
    """Runs backend calls with at most ``max_concurrent_requests`` in flight, retrying transient
    errors with exponential backoff and jitter (sleeping outside the concurrency slot).

    Circuit breaker: ``quota_breaker_errors`` quota errors in a row (any request, any thread; a
    success resets the count) open it, and from then on every call raises :class:`GeeQuotaError`
    at once, so a daily or tier limit stops the run instead of retrying for hours.
    """

    def __init__(self, gee: GeeParams, sleep: Callable[[float], None] | None = None, seed: int | None = None) -> None:
        self.max_retries = gee.max_retries
        self.initial = gee.backoff_initial_s
        self.cap = gee.backoff_max_s
        self.breaker_limit = gee.quota_breaker_errors
        self.slots = threading.BoundedSemaphore(gee.max_concurrent_requests)
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.retries = 0
        self.quota_streak = 0
        self.opened: str | None = None  # the message of the error that opened the breaker

    def delay(self, attempt: int) -> float:
        """Equal jitter: half of ``initial * 2**attempt`` (capped) plus a random half."""
        base = min(self.cap, self.initial * (2.0**attempt))
        with self._lock:
            return base / 2.0 + self._rng.uniform(0.0, base / 2.0)

    def _check(self) -> None:
        if self.opened is not None:
            raise GeeQuotaError(
                f"Earth Engine quota exhausted: {self.breaker_limit} consecutive quota errors "
                f"(last: {self.opened}). Stopped; finished pairs are kept, rerun later to resume."
            )

    def _record(self, err: BaseException | None) -> None:
        with self._lock:
            if err is None:
                self.quota_streak = 0
            elif is_quota_error(err):
                self.quota_streak += 1
                if self.quota_streak >= self.breaker_limit and self.opened is None:
                    self.opened = redact(str(err))[:200] or type(err).__name__

    def call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(self.max_retries + 1):
            self._check()
            with self.slots:
                self._check()
                try:
                    result = fn(*args)
                except Exception as err:
                    self._record(err)
                    self._check()
                    if attempt >= self.max_retries or not is_retryable(err):
                        raise
                    message = redact(str(err))[:200]
                    status = status_of(err)
                else:
                    self._record(None)
                    return result
            wait = self.delay(attempt)
            with self._lock:
                self.retries += 1
            log.info("%s: transient error (HTTP %s: %s); retry %d/%d in %.1f s", what, status or "-", message,
                     attempt + 1, self.max_retries, wait)
            (self._sleep or _sleep)(wait)
        raise AssertionError("unreachable")  # pragma: no cover
