"""Single-writer locks with real processes: a live holder is refused by name (pid, host, start,
command), a SIGKILLed holder's lock is taken over (and logged), another host's lock counts as held
until it goes stale or SATSR_FORCE_LOCK=1, and the payload is a complete JSON document."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from satsr import locks

HOLDER = textwrap.dedent("""
    import sys, time
    from satsr.locks import dir_lock
    with dir_lock(sys.argv[1], "test folder"):
        print("held", flush=True)
        time.sleep(120)
""")
TRY = textwrap.dedent("""
    import sys
    from satsr.errors import SatsrError
    from satsr.locks import dir_lock
    try:
        with dir_lock(sys.argv[1], "test folder"):
            print("acquired", flush=True)
    except SatsrError as err:
        print(f"satsr: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
""")


def _start_holder(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=20)


def test_second_process_is_refused_naming_the_holder_then_takes_over_after_sigkill(tmp_path, caplog):
    target = tmp_path / "ckpt" / "rdn"
    holder = _start_holder(target)
    try:
        path = locks.lock_path(target)
        payload = json.loads(path.read_text())
        assert payload["pid"] == holder.pid and payload["host"] == socket.gethostname()
        assert payload["started"].endswith("+00:00")
        assert payload["command"].startswith(sys.executable) and "\n" not in payload["command"]  # one line
        second = subprocess.run([sys.executable, "-c", TRY, str(target)], capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 75, second.stderr
        line = second.stderr.strip()
        assert line.startswith(f"satsr: {path}: test folder is in use: held by pid {holder.pid} on host "
                               f"{socket.gethostname()} since {payload['started']}"), line
        assert f"kill {holder.pid}" in line and "\n" not in line
        with pytest.raises(locks.LockHeldError, match=f"pid {holder.pid}"):  # in-process too
            locks.dir_lock(target, "test folder").acquire()
    finally:
        _kill(holder)
    # the kernel dropped the flock with the process; its payload is still in the file
    assert json.loads(locks.lock_path(target).read_text())["pid"] == holder.pid
    caplog.set_level(logging.WARNING, "satsr.locks")
    with locks.dir_lock(target, "test folder") as lock:
        assert lock.took_over is not None and lock.took_over.pid == holder.pid
        assert json.loads(locks.lock_path(target).read_text())["pid"] == os.getpid()
    assert f"took over the lock of test folder: it was pid {holder.pid}" in caplog.text and "is gone" in caplog.text
    assert not locks.lock_path(target).exists()  # released: removed
    after = subprocess.run([sys.executable, "-c", TRY, str(target)], capture_output=True, text=True, timeout=60)
    assert after.returncode == 0 and after.stdout.strip() == "acquired"


def _foreign_payload(path: Path, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": 4242, "host": "gpu-elsewhere", "started": "2026-01-01T00:00:00+00:00",
                                "command": "satsr finetune rdn"}))
    t = time.time() - age_s
    os.utime(path, (t, t))


def test_another_hosts_lock_counts_until_stale_or_forced(tmp_path, monkeypatch, caplog):
    target = tmp_path / "work"
    path = locks.lock_path(target)
    monkeypatch.delenv(locks.ENV_FORCE, raising=False)
    _foreign_payload(path, age_s=5)
    with pytest.raises(locks.LockHeldError) as err:
        locks.dir_lock(target, "tune worker", stale_after_s=60).acquire()
    msg = str(err.value)
    assert "held by pid 4242 on host gpu-elsewhere since 2026-01-01T00:00:00+00:00" in msg
    assert "locks.stale_after_s = 60 s" in msg and locks.ENV_FORCE in msg
    assert json.loads(path.read_text())["host"] == "gpu-elsewhere"  # untouched by the refusal

    caplog.set_level(logging.WARNING, "satsr.locks")
    monkeypatch.setenv(locks.ENV_FORCE, "1")
    with locks.dir_lock(target, "tune worker", stale_after_s=60) as lock:
        assert lock.took_over.host == "gpu-elsewhere"
    assert "from another host (SATSR_FORCE_LOCK set)" in caplog.text

    monkeypatch.delenv(locks.ENV_FORCE)
    _foreign_payload(path, age_s=120)
    with locks.dir_lock(target, "tune worker", stale_after_s=60) as lock:
        assert lock.took_over.pid == 4242
    assert "silent for more than locks.stale_after_s = 60 s" in caplog.text


def test_heartbeat_keeps_a_long_holder_fresh(tmp_path):
    lock = locks.dir_lock(tmp_path / "x", "x", stale_after_s=0.3).acquire()
    try:
        old = time.time() - 100
        os.utime(lock.path, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.path.stat().st_mtime < 5
        assert locks.read_holder(lock.path).pid == os.getpid()
    finally:
        lock.release()
    assert not lock.path.exists() and not lock.held


def test_release_training_refuses_through_the_cli_with_one_line(tmp_path, capsys):
    """`satsr release train` while another process holds its work folder: one `satsr: <lock>: ...`
    line naming the holder, exit status 75, before any training."""
    import yaml

    from satsr.cli import main

    work = tmp_path / "release_work"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"release": {"work_dir": str(work), "data_root": str(tmp_path / "none")}}))
    holder = _start_holder(work)
    try:
        assert main(["release", "train", "--params", str(params_file)]) == 75
    finally:
        _kill(holder)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"satsr: {work}.lock: release work folder {work} is in use: held by pid "
                              f"{holder.pid} on host {socket.gethostname()} since ")
    assert "Traceback" not in "\n".join(err)
    assert not work.exists()
