"""The code a run was made by, and the check that stops a folder from being reused by other code.

A run folder is named by its config (`runs.make_run_id`), so after an edit of the library the
same config finds the old folder, and without this check a notebook, the pipeline or a sweep
would show the old code's numbers as new ones. `fingerprint()` hashes every `sgpo_lib/**/*.py`
(relative path and bytes, sorted): any edit, committed or not, changes it, and it does not
depend on git (a copy without `.git` works) nor on how the files are laid out in subpackages.
Each execution records it in `env.json` (`code_fingerprint`) and in STATUS (`code:`);
`check_code` compares it wherever a folder is reused and, on a mismatch, raises
`CodeChangedError` naming the two ways on: a new run id, or `output.reuse: config` to reuse the
folder on purpose. The content-keyed caches under `<outputs root>/cache` (students, strategies,
warm-ups, step-0 evaluations) are not keyed on the code; see the README.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # sgpo_lib/
ENV_FILE = "env.json"
KEY = "code_fingerprint"


class CodeChangedError(RuntimeError):
    """A run folder was made by other code than the one running now."""


@functools.lru_cache(maxsize=1)
def fingerprint() -> str:
    """16 hex digits of the sha1 over every `sgpo_lib/**/*.py` (relative path, then bytes). Cached
    per process: a process runs the code it imported, even if the files change under it."""
    h = hashlib.sha1()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def recorded(run_dir: Path) -> str | None:
    """The fingerprint of the code that last executed in `run_dir`: `env.json`'s, else STATUS's
    `code:` line; None when the folder records none (made before fingerprints, or never run)."""
    run_dir = Path(run_dir)
    try:
        value = json.loads((run_dir / ENV_FILE).read_text(encoding="utf-8")).get(KEY)
        if value:
            return value
    except (OSError, ValueError, AttributeError):
        pass
    try:
        lines = (run_dir / "STATUS").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return next((line.split(": ", 1)[1] for line in lines if line.startswith("code: ")), None)


def check_code(run_dir: Path, reuse: str, what: str = "run folder") -> None:
    """Raise `CodeChangedError` when `run_dir` was made by other code and `reuse` is not `config`."""
    before, now = recorded(run_dir), fingerprint()
    if before == now or reuse == "config":
        return
    made_by = f"code {before}" if before else "code of an unknown version (no code fingerprint recorded)"
    raise CodeChangedError(
        f"{run_dir}: this {what} was made by {made_by}, and the library is now code {now}; its results would "
        "be shown as the new code's. Two ways on: give a new run id (run_id=... / --run-id, or another "
        "--out-dir / --out) to run the new code from scratch, or set output.reuse: config (e.g. --set "
        "output.reuse=config) to reuse this folder on purpose")


def remove_runs_of_other_code(root: Path) -> None:
    """Delete the run folders directly under `root` that other code made (the test roots' clean-up:
    a test run measures the code under test); `root/cache`, content-keyed, stays."""
    root = Path(root)
    for run_dir in root.glob("*/") if root.exists() else ():
        if run_dir.name != "cache" and recorded(run_dir) != fingerprint():
            shutil.rmtree(run_dir)
