"""Generic helpers every layer uses: atomic writes, file checksums and secret redaction.

They live here, outside ``satsr.data``, so that tracking, training, evaluation and prediction share
one implementation without importing the data layer (or rasterio). Nothing here has side effects at
import: in particular the process umask is never changed (a temporary file is created with mode 0666
and the kernel applies the umask, exactly as for a plain ``open(path, "w")``).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Suffix of every temporary file; a killed writer leaves ``.<name>.<random>.part`` behind, never a
#: truncated file under the final name (providers sweep these on resume).
PART_SUFFIX = ".part"


# --------------------------------------------------------------------------------- atomic writes
def _create_temp(dest: Path) -> Path:
    """A new, empty, uniquely named file beside ``dest`` with the permissions of a plain new file."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; it replaces ``dest`` only when the block succeeds.

    The caller writes the temporary file however it likes (rasterio, Pillow, pandas); on an
    exception, or a kill, the final name keeps its previous content (or stays absent).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a small text file (state, run ids, metrics, YAML/JSON) atomically and fsynced."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return path


# ------------------------------------------------------------------------------------ checksums
def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (rasters can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ redaction
REDACTED = "<redacted>"
#: Key names that may hold secrets (matched anywhere in the dotted key, case-insensitive). Earth
#: Engine's ``credentials_file`` is only a path, but a pointer to a key on someone's disk all the same.
SECRET_KEY = re.compile(r"key|secret|token|passw|credential", re.IGNORECASE)
#: ``scheme://user:password@host`` -> ``scheme://<redacted>@host``.
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
#: PEM blocks (service-account private keys) and a JSON/YAML ``private_key`` field.
_PEM = re.compile(r"-----BEGIN [A-Z ]*-----.*?(-----END [A-Z ]*-----|$)", re.DOTALL)
_KEY_FIELD = re.compile(r"""(["']?private_key["']?\s*[:=]\s*)(["']).*?(\2|$)""", re.DOTALL)


def _is_set(value: Any) -> bool:
    return not (value is None or (isinstance(value, str) and value == ""))


def redact(obj: Any) -> Any:
    """``obj`` with secrets removed, before it is logged, stored or shown.

    Text: key material (PEM blocks, ``private_key`` fields) and credentials inside URLs are
    replaced. Mappings (flat dotted params or nested documents): the value of a secret-looking key is
    ``<redacted>`` when set, other values are redacted recursively; lists likewise. Anything else is
    returned unchanged.
    """
    if isinstance(obj, str):
        text = _KEY_FIELD.sub(rf"\1{REDACTED}", _PEM.sub("<redacted key>", obj))
        return _URL_USERINFO.sub(rf"\1{REDACTED}@", text)
    if isinstance(obj, Mapping):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and _is_set(v) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj
