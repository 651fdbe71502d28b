"""Which Earth Engine errors are retried, the quota circuit breaker, and initialisation, with errors
raised exactly as the ee client raises them (a real HttpError through ee.data._execute_cloud_call)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import ee
import httplib2
import pytest

from satsr.config import GeeParams
from satsr.data.sources import gee
from satsr.data.sources.gee import retry
from satsr.data.sources.gee.auth import EeAuth

_spec = importlib.util.spec_from_file_location("gee_fake", Path(__file__).with_name("gee_fake.py"))
fake = sys.modules.get("gee_fake") or importlib.util.module_from_spec(_spec)
if "gee_fake" not in sys.modules:
    sys.modules["gee_fake"] = fake
    _spec.loader.exec_module(fake)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("html", [False, True])
def test_transient_http_errors_are_retryable_by_their_chained_status(status: int, html: bool) -> None:
    err = fake.ee_error(status, "Service Unavailable", html=html)
    assert type(err) is ee.EEException and err.__context__.resp.status == status  # as ee raises it
    if html:
        assert str(err) == "Ok"  # ee's reason for an HTML body: nothing in the message to go on
    assert gee.status_of(err) == status
    assert gee.is_retryable(err)
    assert gee.is_quota_error(err) == (status == 429)


@pytest.mark.parametrize("status, message", [(400, "Image.load: Image asset 'X' not found."),
                                             (400, "User memory limit exceeded."),
                                             (403, "Permission denied."), (404, "Not found.")])
def test_permanent_http_errors_are_not_retried(status: int, message: str) -> None:
    err = fake.ee_error(status, message)
    assert str(err) == message and gee.status_of(err) == status
    assert not gee.is_retryable(err) and not gee.is_quota_error(err)


def test_transport_failures_and_message_only_errors() -> None:
    assert gee.is_retryable(TimeoutError("timed out"))  # the deadline (ee.data.setDeadline) expired
    assert gee.is_retryable(TimeoutError("read timed out"))
    assert gee.is_retryable(ConnectionResetError("reset by peer"))
    assert gee.is_retryable(httplib2.ServerNotFoundError("Unable to find the server"))
    assert gee.is_retryable(ee.EEException("Too many concurrent aggregations."))  # no status at all
    assert gee.is_quota_error(ee.EEException("Quota exceeded for quota metric 'x'"))
    assert not gee.is_retryable(ee.EEException("Image.load: Image asset 'X' not found."))


def _retrier(**kw) -> tuple[retry.Retrier, list[float]]:
    sleeps: list[float] = []
    params = GeeParams(max_concurrent_requests=2, backoff_initial_s=0.5, backoff_max_s=4.0, **kw)
    return retry.Retrier(params, sleep=sleeps.append, seed=1), sleeps


def test_an_html_502_is_retried_then_succeeds() -> None:
    r, sleeps = _retrier(max_retries=3)
    answers = iter([lambda: fake.raise_http(502, "Bad Gateway", html=True), lambda: fake.raise_http(503), lambda: 7])
    assert r.call("x", lambda: next(answers)()) == 7
    assert len(sleeps) == 2 and r.retries == 2
    with pytest.raises(ee.EEException):  # a 400 is raised at once
        r.call("x", fake.raise_http, 400, "Image.load: not found")
    assert len(sleeps) == 2


def test_circuit_breaker_opens_after_consecutive_quota_errors_and_a_success_resets_it() -> None:
    r, sleeps = _retrier(max_retries=3, quota_breaker_errors=5)
    with pytest.raises(ee.EEException):  # 4 quota errors: retries run out, breaker still closed
        r.call("x", fake.raise_http, 429, fake.QUOTA_DAY)
    assert r.quota_streak == 4 and r.opened is None
    assert r.call("x", lambda: 1) == 1 and r.quota_streak == 0  # a success resets the streak
    calls = []

    def over_quota() -> None:
        calls.append(1)
        fake.raise_http(429, fake.QUOTA_DAY)

    with pytest.raises(ee.EEException):
        r.call("y", over_quota)  # 4 more in a row
    assert len(calls) == 4 and r.opened is None
    with pytest.raises(gee.GeeQuotaError, match="5 consecutive quota errors") as err:
        r.call("y", over_quota)  # the 5th opens the breaker at once, without waiting for retries
    assert len(calls) == 5 and "Quota exceeded" in str(err.value) and "rerun" in str(err.value)
    assert isinstance(err.value, gee.GeeError)
    with pytest.raises(gee.GeeQuotaError):  # open: fails at once, the service is not asked again
        r.call("z", over_quota)
    assert len(calls) == 5 and len(sleeps) == 3 + 3


# ------------------------------------------------------------------------------------ initialisation
@pytest.fixture
def fake_ee(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    seen: dict[str, list] = {"init": [], "deadline": [], "retries": []}
    monkeypatch.setattr(ee.data, "setDeadline", seen["deadline"].append)
    monkeypatch.setattr(ee.data, "setMaxRetries", seen["retries"].append)
    return seen


def _backend(**kw) -> gee.EarthEngineBackend:
    return gee.EarthEngineBackend(EeAuth(project="proj"), **kw)


def test_initialize_uses_persistent_or_adc_credentials_and_sets_the_deadline(fake_ee, monkeypatch) -> None:
    monkeypatch.setattr(ee, "Initialize", lambda creds, project=None: fake_ee["init"].append((creds, project)))
    _backend(deadline_s=90).initialize()
    # 'persistent': ee.Initialize's own search (EE credentials, then ADC / the metadata server)
    assert fake_ee["init"] == [("persistent", "proj")]
    assert fake_ee["deadline"] == [90_000] and fake_ee["retries"] == [0]


@pytest.mark.parametrize("transient", [lambda: fake.raise_http(503, "x", html=True),
                                       lambda: (_ for _ in ()).throw(httplib2.ServerNotFoundError("no DNS")),
                                       lambda: (_ for _ in ()).throw(TimeoutError("timed out"))])
def test_a_transient_failure_during_initialize_is_not_an_auth_error(fake_ee, monkeypatch, transient) -> None:
    monkeypatch.setattr(ee, "Initialize", lambda *a, **k: transient())
    with pytest.raises(gee.GeeConnectionError, match="could not reach Earth Engine") as err:
        gee.run(fake.small_params(max_retries=2), Path("/nonexistent/never-created"), _backend())
    assert not isinstance(err.value, gee.GeeAuthError) and "credentials were not the problem" in str(err.value)


def test_a_transient_failure_during_initialize_is_retried(fake_ee, monkeypatch, tmp_path) -> None:
    answers = iter([lambda: fake.raise_http(500, "Internal error"), lambda: None])
    monkeypatch.setattr(ee, "Initialize", lambda *a, **k: next(answers)())
    r, sleeps = _retrier(max_retries=2)
    gee.provider._initialize(_backend(), r)
    assert len(sleeps) == 1


def test_an_auth_failure_during_initialize_is_an_auth_error_with_help(fake_ee, monkeypatch) -> None:
    def refuse(*a, **k):
        raise ee.EEException("Please authorize access to your Earth Engine account by running earthengine "
                             "authenticate")

    monkeypatch.setattr(ee, "Initialize", refuse)
    with pytest.raises(gee.GeeAuthError, match="EE_PROJECT") as err:
        gee.provider._initialize(_backend(), _retrier()[0])
    assert "earthengine authenticate" in str(err.value)
    with pytest.raises(gee.GeeAuthError):  # a 403 from the service too
        monkeypatch.setattr(ee, "Initialize", lambda *a, **k: fake.raise_http(403, "Permission denied"))
        gee.provider._initialize(_backend(), _retrier()[0])
