"""One process per run folder: a lock file with the holder's pid and start time.

`run_lock(folder)` holds `folder/.lock` (an exclusive `flock`, which the kernel drops when the
holder dies, so a lock left by a killed process is taken over at once; the file names the
holder so that a second process gets a clear error naming who holds it). A process whose
ancestor holds the lock (the notebook kernels of a pipeline, a sweep's in-process runs) uses
the folder under that lock. `process_alive(pid, start)` tells a live process from a dead one
or a recycled pid (the start time in `/proc/<pid>/stat` differs); STATUS uses it too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """The run folder is in use by another live process."""


def process_start(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot, from /proc), or "" when it is not running:
    gone, or a zombie (exited, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()  # from field 3 of proc(5), after the command name
    return "" if fields[0] == "Z" else fields[19]


def process_alive(pid: int, start: str | None = None) -> bool:
    """True when `pid` runs and, if `start` is given, is the same process (not a recycled pid)."""
    now = process_start(pid)
    return bool(now) and (not start or now == start)


def identity() -> dict[str, Any]:
    """This process as a lock or STATUS records it."""
    return {"pid": os.getpid(), "start": process_start(os.getpid()), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _ancestors() -> set[int]:
    out, pid = set(), os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return out


def read_holder(folder: Path) -> dict[str, Any]:
    """What `folder/.lock` says (empty when missing or unreadable)."""
    try:
        return json.loads((Path(folder) / LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


def holder(folder: Path) -> dict[str, Any] | None:
    """The live process holding `folder`'s lock, or None when the folder is free."""
    info = read_holder(folder)
    pid = info.get("pid")
    return info if isinstance(pid, int) and process_alive(pid, info.get("start")) else None


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on `path`, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the file was replaced under us by a releasing holder: lock the new one


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold `folder`'s lock for the block; raise `RunLockedError` if a live process holds it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_holder(folder)
    if previous.get("pid") in _ancestors() | {os.getpid()} and process_alive(previous["pid"], previous.get("start")):
        yield  # the pipeline or sweep that started this process holds it for us
        return
    path = folder / LOCK_FILE
    fd = _try_lock(path)
    if fd is None:
        info = read_holder(folder)
        raise RunLockedError(f"{folder} is in use by pid {info.get('pid', '?')} (since {info.get('since', '?')}); "
                             "wait for it to finish or stop that process, then run again")
    if previous and not process_alive(previous.get("pid", -1), previous.get("start")):
        log.warning("%s: taking over the stale lock of pid %s (no longer running)", folder, previous.get("pid"))
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(identity()).encode())
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def rank_zero_lock(folder: str | os.PathLike):
    """`run_lock(folder)` in the main process of a distributed launch (`RANK` 0 or unset); the
    other ranks, siblings of the main one under `accelerate launch`, work under its lock."""
    return run_lock(folder) if int(os.environ.get("RANK", "0")) == 0 else nullcontext()
