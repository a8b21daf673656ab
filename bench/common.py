"""What every benchmark CLI does at the end: write its JSON under outputs/bench/ and print it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from collections.abc import Callable

from sgpo_lib.core.fileio import write_json
from sgpo_lib.core.paths import outputs_dir


def publish(out: dict, name: str, table: str, path: str | Path | None = None) -> Path:
    """Write `out` to `path` (default `outputs/bench/<name>.json`), print `table`, the config and the path."""
    path = Path(path) if path else outputs_dir() / "bench" / f"{name}.json"
    write_json(path, out)
    print(table)
    print(f"config: {json.dumps(out.get('config'), default=str)}\nwritten: {path}")
    return path


def demo_params_main(doc: str, name: str, run: Callable[[str, int], dict], table: Callable[[dict], str],
                     steps: int, steps_help: str, argv=None) -> dict:
    """The CLI of a benchmark on the demo's student: `--params`, `--steps`, `--out`; runs and publishes."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--params", default="params/toy-demo.yaml", help="params file (its student is built if not cached)")
    p.add_argument("--steps", type=int, default=steps, help=steps_help)
    p.add_argument("--out", default=None, help=f"JSON path (default outputs/bench/{name}.json)")
    a = p.parse_args(argv)
    out = run(a.params, a.steps)
    publish(out, name, table(out), a.out)
    return out
