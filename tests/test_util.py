"""satsr.util: atomic writes (normal permissions, nothing left on failure, no umask change),
sha256 of files, and the one redaction of secrets."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import stat

import pytest

from satsr import util


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_replaces_with_the_permissions_of_a_plain_new_file(tmp_path):
    dest = tmp_path / "sub" / "state.json"
    old = _umask()
    os.umask(0o027)
    try:
        assert util.write_text_atomic(dest, "one\n") == dest
        mode = stat.S_IMODE(dest.stat().st_mode)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o640  # not mkstemp's 0600
    finally:
        os.umask(old)
    util.write_text_atomic(dest, "two\n")
    assert dest.read_text() == "two\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["state.json"]  # no temporaries left


def test_failed_write_keeps_the_previous_content_and_leaves_no_temporary(tmp_path):
    dest = tmp_path / "report.csv"
    dest.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), util.atomic_path(dest) as tmp:
        tmp.write_text("half")
        assert tmp.name.startswith(".report.csv.") and tmp.name.endswith(util.PART_SUFFIX)
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_importing_util_does_not_touch_the_umask():
    old = _umask()
    os.umask(0o077)
    try:
        importlib.reload(util)
        assert _umask() == 0o077
    finally:
        os.umask(old)


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(3 * 1024 + 7)
    (tmp_path / "b").write_bytes(data)
    assert util.sha256_file(tmp_path / "b", chunk=1024) == hashlib.sha256(data).hexdigest()


def test_redact_flat_params_nested_documents_urls_and_key_material():
    flat = {"gee.credentials_file": "/home/me/sa-key.json", "api_key": "AKIA123", "hf_token": "t0k",
            "db.password": "pw", "client_secret": "s", "gee.project": "my-project", "unset_token": None,
            "uri": "postgresql://user:hunter2@db:5432/mlflow", "lr": 0.001}
    out = util.redact(flat)
    for key in ("gee.credentials_file", "api_key", "hf_token", "db.password", "client_secret"):
        assert out[key] == util.REDACTED
    assert out["unset_token"] is None
    assert out["gee.project"] == "my-project" and out["lr"] == 0.001
    assert out["uri"] == "postgresql://<redacted>@db:5432/mlflow"
    assert "hunter2" not in json.dumps(util.redact({"a": [{"password": "hunter2"}, "http://u:hunter2@h/x"]}))
    pem = '{"private_key": "-----BEGIN PRIVATE KEY-----\\nSECRETMATERIAL\\n-----END PRIVATE KEY-----", "n": 1}'
    assert "SECRETMATERIAL" not in util.redact(pem) and '"n": 1' in util.redact(pem)
    assert util.redact("journal:/tmp/x.log") == "journal:/tmp/x.log" and util.redact(3) == 3
