"""Cache files that know they are whole: a row count and a checksum beside each, written last.

The content-keyed cache under `<outputs root>/cache` (step-0 evaluations, strategy libraries,
premise tables, the SFT warm-up's record) is read back by later runs, so a file cut short,
garbled or replaced by another valid one (an empty list) would be used without a word.
`seal(path)` writes `<file>.check.json` (`rows`, `sha256`) after the file itself; `intact(path)`
checks both and, for an entry that is missing its seal, was cut or changed, logs a warning naming
the file and what is wrong and returns False: the caller then rebuilds the entry. Rows are the
lines of JSONL, the items of a JSON list (1 for an object) and the lines of CSV after its header.
Entries cached before seals existed have none and are rebuilt once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from . import fileio

log = logging.getLogger(__name__)

SUFFIX = ".check.json"


def seal_path(path: Path) -> Path:
    """`<file>.check.json` beside `path`."""
    return Path(path).with_name(Path(path).name + SUFFIX)


def rows(path: Path, data: bytes) -> int:
    """Rows of a cache file's bytes, by its suffix (see the module docstring); ValueError if garbled.

    Example:
        >>> rows(Path("t.jsonl"), b'{"a": 1}\\n{"a": 2}\\n'), rows(Path("t.json"), b"[]"), rows(Path("p.csv"), b"h\\n1\\n")
        (2, 0, 1)
    """
    text = data.decode("utf-8")
    if path.suffix == ".json":
        value = json.loads(text)
        return len(value) if isinstance(value, list) else 1
    lines = [line for line in text.splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        for line in lines:
            json.loads(line)
        return len(lines)
    return max(len(lines) - 1, 0)


def seal(path: Path) -> None:
    """Write the seal of the complete file `path` (after it: a file without one is not trusted)."""
    data = Path(path).read_bytes()
    fileio.write_json(seal_path(path), {"rows": rows(Path(path), data), "sha256": hashlib.sha256(data).hexdigest()})


def intact(path: Path, warn: bool = True) -> bool:
    """Whether the cache file `path` exists and matches its seal (row count and checksum); False
    with a warning naming the file and the fault otherwise (none for a file that is not there)."""
    path = Path(path)
    if not path.exists():
        return False
    fault = _fault(path)
    if fault and warn:
        log.warning("cache entry %s %s: rebuilding it", path, fault)
    return fault is None


def _fault(path: Path) -> str | None:
    """What is wrong with a cache file against its seal, or None."""
    try:
        expected = fileio.read_json(seal_path(path))
        want_rows, want_sha = int(expected["rows"]), str(expected["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"has no readable seal ({seal_path(path).name})"
    data = path.read_bytes()
    try:
        found = rows(path, data)
    except ValueError:
        return f"is garbled (not valid {path.suffix[1:].upper()})"
    if found != want_rows:
        return f"holds {found} rows where {want_rows} were written"
    if hashlib.sha256(data).hexdigest() != want_sha:
        return "differs from what was written (checksum)"
    return None
