"""Single-writer locks: one process at a time writes a checkpoint folder or runs a tune worker.

Why: killing only ``dvc`` leaves its stage process running. A rerun would resume from the orphan's
checkpoint while the orphan still trains, and both would write one checkpoint and one MLflow run.

One lock is one file, ``<target>.lock`` beside the folder it guards (so clearing or moving the folder
aside never touches it):

* the OS lock is ``flock(2)`` on that file, held while the work runs. The kernel drops it when the
  process ends in any way, SIGKILL included, so on one host a dead holder never blocks anybody;
* the file holds a JSON payload ``{pid, host, started, command}`` naming the holder. It is written
  atomically: a temporary file is written, locked, then renamed over the lock file; whoever locks a
  file checks that the path still names it (else tries again). A free lock file that still holds a
  payload was left by a killed holder: it is taken over and the takeover logged;
* a heartbeat thread touches the file every ``stale_after_s / 6`` seconds;
* across hosts ``flock`` may not reach (it depends on the network filesystem). A payload of ANOTHER
  host whose heartbeat is younger than ``locks.stale_after_s`` (params.yaml) therefore counts as
  held; an older one is taken over with a warning; env ``SATSR_FORCE_LOCK=1`` takes it over at once
  (only when that host's process is known to be gone). A lock held by flock is never overridden;
* on release the payload file is removed while still locked, then unlocked.

A refusal is a :class:`LockHeldError` (exit status 75, EX_TEMPFAIL: "try again later") whose message
names the lock file and the holder's pid, host, start time and command.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satsr.errors import SatsrError
from satsr.util import atomic_path, redact

log = logging.getLogger(__name__)

ENV_FORCE = "SATSR_FORCE_LOCK"
SUFFIX = ".lock"
#: Default of params.yaml ``locks.stale_after_s`` (for callers without params).
DEFAULT_STALE_AFTER_S = 900.0
#: How long a busy lock is retried before refusing: covers the instant a holder swaps in its payload.
RETRY_S = 0.5


class LockHeldError(SatsrError, RuntimeError):
    """Another process holds the lock; the message names it (pid, host, start, command)."""

    exit_code = 75


def lock_path(target: str | Path) -> Path:
    """``<target>.lock``, beside ``target`` (a folder that may be moved aside or removed)."""
    target = Path(target)
    return target.with_name(target.name + SUFFIX)


def host_name() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie still does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def force_requested() -> bool:
    return os.environ.get(ENV_FORCE, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a lock, from its payload; ``age_s`` = seconds since its last heartbeat."""

    pid: int | None
    host: str
    started: str
    command: str
    age_s: float | None = None

    @classmethod
    def parse(cls, text: str, age_s: float | None = None) -> Holder | None:
        try:
            doc = json.loads(text)
            return cls(int(doc["pid"]), str(doc["host"]), str(doc.get("started", "?")),
                       str(doc.get("command", "?")), age_s)
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        beat = f", last heartbeat {self.age_s:.0f} s ago" if self.age_s is not None else ""
        return f"pid {self.pid} on host {self.host} since {self.started} (command: {self.command}{beat})"


def _read_holder(fd: int) -> Holder | None:
    st = os.fstat(fd)
    try:
        text = os.pread(fd, 65536, 0).decode(errors="replace")
    except OSError:
        return None
    return Holder.parse(text, max(0.0, time.time() - st.st_mtime)) if text.strip() else None


def read_holder(path: str | Path) -> Holder | None:
    """The payload of lock file ``path`` (None when absent, empty or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _command(limit: int = 300) -> str:
    """This process's command line on one line, secrets redacted, cut to ``limit`` characters."""
    try:
        argv = [a.decode(errors="replace") for a in Path("/proc/self/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        argv = [sys.executable, *sys.argv]
    text = " ".join(redact(shlex.join(argv)).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _names_same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class Lock:
    """An exclusive lock on ``path`` guarding ``what`` (words for the messages), as a context manager.

    ``stale_after_s``: a payload of another host older than this is taken over (see the module
    docstring); ``force`` (default: env SATSR_FORCE_LOCK) takes such a payload over at once.
    """

    def __init__(self, path: str | Path, what: str, *, stale_after_s: float = DEFAULT_STALE_AFTER_S,
                 force: bool | None = None):
        self.path = Path(path)
        self.what = what
        self.stale_after_s = float(stale_after_s)
        self.force = force_requested() if force is None else force
        self.took_over: Holder | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # ------------------------------------------------------------------------------ acquire
    def _refuse(self, holder: Holder | None, extra: str = "") -> LockHeldError:
        who = holder.describe() if holder else "another process (its payload is not readable yet)"
        hint = (f"; stop that process (kill {holder.pid} on {holder.host}) or wait for it to finish, then rerun"
                if holder and holder.pid else "; wait for it to finish, then rerun")
        return LockHeldError(f"{self.path}: {self.what} is in use: held by {who}{extra}{hint}")

    def _open_locked(self) -> int:
        """An fd of the current lock file, flock-ed; raises LockHeldError when it stays held."""
        deadline = time.monotonic() + RETRY_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = read_holder(self.path)
                if time.monotonic() < deadline or holder is None and time.monotonic() < deadline + 2:
                    time.sleep(0.05)
                    continue
                extra = ""
                if holder and holder.host == host_name() and holder.pid and not pid_alive(holder.pid):
                    extra = " [that pid is gone: a child process it started still holds the lock]"
                raise self._refuse(holder, extra) from None
            if _names_same_file(fd, self.path):
                return fd
            os.close(fd)  # replaced (a new payload) or removed (released) after we opened it: again

    def acquire(self) -> Lock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this Lock object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open_locked()
        try:
            previous = _read_holder(fd)
            if previous is not None:  # a payload left in a free file: its holder was killed
                self._check_takeover(previous)
            self._fd = self._write_payload()
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        os.close(fd)  # the old file (now replaced by our payload); its flock goes with it
        self._start_heartbeat()
        return self

    def _check_takeover(self, previous: Holder) -> None:
        """The file is free but names a holder: take it over, or refuse (a fresh one of another host)."""
        if previous.host == host_name():
            state = "is gone" if previous.pid is None or not pid_alive(previous.pid) else \
                "no longer holds it (that pid now belongs to another process)"
            log.warning("%s: took over the lock of %s: it was %s and that process %s", self.path, self.what,
                        previous.describe(), state)
        elif self.force:
            log.warning("%s: took over the lock of %s from another host (%s set): it was %s", self.path, self.what,
                        ENV_FORCE, previous.describe())
        elif previous.age_s is not None and previous.age_s > self.stale_after_s:
            log.warning("%s: took over the stale lock of %s: it was %s, silent for more than locks.stale_after_s "
                        "= %.0f s", self.path, self.what, previous.describe(), self.stale_after_s)
        else:
            raise self._refuse(previous, f" [another host: taken over only after locks.stale_after_s = "
                                         f"{self.stale_after_s:.0f} s without a heartbeat, or at once with "
                                         f"{ENV_FORCE}=1 once that process is known to be gone]")
        self.took_over = previous

    def _write_payload(self) -> int:
        """Write our payload to a temporary file, lock it, and rename it over the lock file."""
        payload = {"pid": os.getpid(), "host": host_name(),
                   "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "command": _command(), "what": self.what}
        with atomic_path(self.path) as tmp:
            fd = os.open(tmp, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else knows this file yet
                os.write(fd, (json.dumps(payload) + "\n").encode())
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd

    # ------------------------------------------------------------------------------ heartbeat
    def _start_heartbeat(self) -> None:
        interval = max(0.05, self.stale_after_s / 6)
        fd = self._fd

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    os.utime(fd)
                except OSError:
                    return

        self._stop.clear()
        self._beat = threading.Thread(target=beat, name=f"lock-heartbeat {self.path.name}", daemon=True)
        self._beat.start()

    # ------------------------------------------------------------------------------ release
    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        fd, self._fd = self._fd, None
        try:
            if _names_same_file(fd, self.path):
                self.path.unlink()
        except OSError as err:
            log.warning("%s: could not remove the lock file: %s", self.path, err)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def dir_lock(target: str | Path, what: str, stale_after_s: float = DEFAULT_STALE_AFTER_S,
             force: bool | None = None) -> Lock:
    """The lock of folder ``target`` (file ``<target>.lock`` beside it); use as ``with dir_lock(...)``."""
    return Lock(lock_path(target), what, stale_after_s=stale_after_s, force=force)


@contextmanager
def flock_file(path: str | Path) -> Iterator[None]:
    """Hold ``flock`` on an existing file while the block runs, with no payload: marks a temporary
    file as being written (satsr.predict.writer), so ``flocked`` tells a live writer's file from one
    a killed run left; the kernel drops the lock when the process dies."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def flocked(path: str | Path) -> bool:
    """Whether a live process holds ``flock`` on ``path`` (False when it is absent)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
