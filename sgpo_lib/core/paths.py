"""Paths resolved from the repository root, never from the working directory.

Papermill (the caller's cwd), nbval and Jupyter (the notebook's folder) then agree on
where `params/`, `outputs/` and `../shared/data` are (conventions.md, point 11).
`SGPO_OUTPUTS` and `SGPO_SHARED_DATA` override the two data locations: `SGPO_OUTPUTS` moves
the cache and the run folders of every params file that keeps the default `output.root:
outputs`. Every name that becomes a folder under it (run ids, sweep grid values) goes through
`safe_name`, and `inside` refuses a path that would land outside the root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = REPO_ROOT / "params"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def outputs_dir() -> Path:
    """Root of all run folders (`outputs/` unless `SGPO_OUTPUTS` is set)."""
    return Path(os.environ.get("SGPO_OUTPUTS", REPO_ROOT / "outputs"))


DEFAULT_OUTPUT_ROOT = "outputs"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,-]*$")
MAX_NAME = 160


def output_root(configured: str = DEFAULT_OUTPUT_ROOT) -> Path:
    """The root of run folders for `output.root`: `outputs_dir()` for the default, else resolved."""
    return outputs_dir() if configured == DEFAULT_OUTPUT_ROOT else resolve(configured)


def safe_name(name: str, what: str) -> str:
    """`name` if it is a safe folder name (letters, digits, `._=+,-`; no `/`, no `..`), else ValueError.

    Example:
        >>> safe_name("toy-smoke-1a2b3c4d", "run id")
        'toy-smoke-1a2b3c4d'
    """
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name or len(name) > MAX_NAME:
        raise ValueError(f"{what} {name!r} is not a safe folder name: use letters, digits and ._=+,- only "
                         f"(no '/', no '..', no spaces or newlines, not starting with '.' or '-'), at most {MAX_NAME} characters")
    return name


def inside(root: Path, path: Path) -> Path:
    """`path` resolved, if it lies inside `root` (after resolving links), else ValueError."""
    root_r, path_r = Path(root).resolve(), Path(path).resolve()
    if path_r != root_r and root_r not in path_r.parents:
        raise ValueError(f"{path} is outside the outputs root {root_r}; write under it (set SGPO_OUTPUTS or "
                         "output.root to move the root)")
    return path_r


def shared_data_dir() -> Path:
    """The read-only real data beside the checkout (`../shared/data`), or `SGPO_SHARED_DATA`."""
    return Path(os.environ.get("SGPO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path as given, else relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
