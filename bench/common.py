"""What every benchmark CLI does at the end: write its JSON under outputs/bench/ and print it."""

from __future__ import annotations

import json
from pathlib import Path

from sgpo_lib.core.fileio import write_json
from sgpo_lib.core.paths import outputs_dir


def publish(out: dict, name: str, table: str, path: str | Path | None = None) -> Path:
    """Write `out` to `path` (default `outputs/bench/<name>.json`), print `table`, the config and the path."""
    path = Path(path) if path else outputs_dir() / "bench" / f"{name}.json"
    write_json(path, out)
    print(table)
    print(f"config: {json.dumps(out.get('config'), default=str)}\nwritten: {path}")
    return path
