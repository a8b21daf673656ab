"""Atomic file writes and JSONL helpers.

Every JSON, JSONL, YAML and checkpoint write goes to a temporary file in the same folder,
is flushed and fsynced, then renamed over the target: a reader (or a resumed run) never
sees a half-written file, and a write killed half-way leaves the old file intact.
Appending to `metrics.jsonl` is the one non-atomic write: each line is written with a
single `write` call and readers skip a torn last line (`read_jsonl(..., tolerate_torn_tail=True)`).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()


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
