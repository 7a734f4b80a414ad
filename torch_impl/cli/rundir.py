"""Output directories a run owns: one live run per directory, and no finished run overwritten.

``own_out_dir`` is how every long script opens its ``--out-dir``:
  * it takes ``<out-dir>/.lock`` (created exclusively, holding the process id, host, command
    and start time) and removes it on exit; a second run into the same directory stops at once
    with an error naming the live owner. A lock left by a process that is gone (same host,
    pid not running) is taken over, with a message; a lock from another host cannot be
    checked and is refused, naming the file to delete.
  * a directory that already holds a run's results (``markers``: the files the script writes)
    is refused unless ``resume`` (continue it) or ``overwrite`` (delete ``markers`` first, so no
    stale checkpoint can be picked up later) is given.

Nothing here is Lightning-specific; Lightning's own checkpoint naming (``last-v1.ckpt`` beside
``last.ckpt`` when two runs share a directory) is what the lock prevents.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".lock"


class OutDirError(ValueError):
    """The output directory cannot be used as asked; the message says why and what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _take_lock(lock: Path) -> None:
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
                pid, host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                raise OutDirError(f"{lock} exists but is not a lock this tool wrote; delete it if no run "
                                  "is using the directory") from None
            if host != me["host"]:
                raise OutDirError(f"{lock.parent} is locked by process {pid} on host {host} ({owner.get('command')}); "
                                  f"if that run is gone, delete {lock}") from None
            if _alive(pid):  # this process included: a second run inside one process is refused too
                raise OutDirError(f"{lock.parent} is in use by running process {pid} ({owner.get('command')}, "
                                  f"started {owner.get('started')}); wait for it to finish or choose another "
                                  "--out-dir") from None
            print(f"taking over {lock}: its owner, process {pid}, is no longer running", file=sys.stderr)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise OutDirError(f"could not take {lock}: another run took it at the same moment; choose another --out-dir")


def _release(lock: Path) -> None:
    try:
        if int(json.loads(lock.read_text())["pid"]) == os.getpid():
            lock.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def check_free_disk(out_dir: str | os.PathLike, need_bytes: int, what: str) -> None:
    """Fail before the work starts if ``out_dir`` has less than ``need_bytes`` free for ``what``."""
    free = shutil.disk_usage(out_dir).free
    if free < need_bytes:
        raise OutDirError(f"{out_dir} has {free / 1e9:.2f} GB free; {what} needs up to {need_bytes / 1e9:.2f} GB: "
                          "free some space or choose another --out-dir")


@contextmanager
def own_out_dir(out_dir: str | os.PathLike, markers: tuple[str, ...], resume: bool = False,
                overwrite: bool = False, resume_flag: str = "--resume") -> Iterator[Path]:
    """Hold ``out_dir`` for the block (see the module's docstring). ``markers``: paths, relative to
    ``out_dir``, whose presence means a run already wrote here; ``resume_flag`` is named in the error."""
    if resume and overwrite:
        raise OutDirError(f"{resume_flag} and --overwrite contradict each other; pass one")
    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutDirError(f"cannot create --out-dir {out} ({err.strerror}); choose a writable place") from None
    if not os.access(out, os.W_OK):
        raise OutDirError(f"--out-dir {out} is not writable; choose a writable place")
    lock = out / LOCK_NAME
    _take_lock(lock)
    try:
        found = [m for m in markers if (out / m).exists()]
        if found and overwrite:
            for m in found:
                shutil.rmtree(out / m) if (out / m).is_dir() else (out / m).unlink()
        elif found and not resume:
            raise OutDirError(f"--out-dir {out} already holds a run ({', '.join(found)}); pass {resume_flag} to "
                              "continue it, --overwrite to replace it, or choose another --out-dir")
        yield out
    finally:
        _release(lock)
        if created and not any(out.iterdir()):  # a run stopped by its input checks leaves nothing behind
            out.rmdir()
