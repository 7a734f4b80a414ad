"""Result files written whole or not at all.

A kill, a crash or a full disk in the middle of ``torch.save`` or ``json.dump`` leaves a
truncated file, and if it had the name of a good one, the good one is gone. Every result
file is therefore written under a temporary name in the same directory and renamed over
the target only once it is complete: ``os.replace`` within one filesystem is atomic, so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` if the block succeeds,
    deletes it if the block raises. The suffix is kept, so writers that read it still work."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as f:  # on disk before the rename makes it the real file
            os.fsync(f.fileno())
        umask = os.umask(0)  # some writers create private files (0600); give it the usual mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """``Path.write_text``, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``payload`` as indented JSON (anything not JSON-native as its ``str``), atomically."""
    return write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
