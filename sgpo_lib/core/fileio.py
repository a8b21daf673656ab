"""Atomic file writes and JSONL helpers.

Every JSON, JSONL, YAML and checkpoint write goes to a temporary file in the same folder,
is flushed and fsynced, then renamed over the target: a reader (or a resumed run) never
sees a half-written file, and a write killed half-way leaves the old file intact.
Appending to `metrics.jsonl` is the one non-atomic write: each line is written with a
single `write` call and readers skip a torn last line (`read_jsonl(..., tolerate_torn_tail=True)`).
Files are made readable by everyone the umask allows (0644 as a rule, like any file a program
writes: a report is meant to be shared), not `mkstemp`'s owner-only 0600. A full disk raises
`DiskFullError`, one line naming the folder, the free space and what to delete; `overwrite` puts
a small file (STATUS) in place, in its own blocks, when no temporary file fits any more.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


class DiskFullError(OSError):
    """A write found no space left; the message says where, how much was free and what to delete."""


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask (read once: reading it means setting it for an instant)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full(path: Path) -> DiskFullError:
    """The one-line error for a write of `path` that found the disk full."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB"
    except OSError:
        free = "an unknown amount"
    return DiskFullError(f"disk full: writing {path} failed with {free} free in {path.parent}; delete old run "
                         "folders, or the checkpoints/ of finished runs, under the outputs root (or its cache/, "
                         "rebuilt on demand), then run again: the run resumes where it stopped")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path` (mode 0666 less the
    umask, as `open` would make it)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise disk_full(path) if e.errno == errno.ENOSPC else e from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full(path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def overwrite(path: str | os.PathLike, text: str) -> None:
    """Write `text` over `path` in place (not atomic): an existing file takes it in the blocks it
    already has, so a short file such as STATUS can still be written on a full disk."""
    path = Path(path)
    with open(path, "r+" if path.exists() else "w", encoding="utf-8") as f:
        f.write(text)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write rows as JSON lines atomically (the whole file at once)."""
    write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON line with a single write call (see module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise disk_full(path) from None
        raise


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | os.PathLike, tolerate_torn_tail: bool = False) -> list[dict]:
    """Read JSON lines; a malformed line raises with the file and line number.

    With `tolerate_torn_tail`, a malformed *last* line (a crash mid-append) is skipped.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if tolerate_torn_tail and i == len(lines):
                break
            raise ValueError(f"{path}:{i}: malformed JSON line ({e.msg})") from e
    return rows


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save` atomically (checkpoints)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
