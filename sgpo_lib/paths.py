"""Paths resolved from the repository root, never from the working directory.

Papermill (the caller's cwd), nbval and Jupyter (the notebook's folder) then agree on
where `params/`, `outputs/` and `../shared/data` are (conventions.md, point 11).
`SGPO_OUTPUTS` and `SGPO_SHARED_DATA` override the two data locations.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = REPO_ROOT / "params"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


def outputs_dir() -> Path:
    """Root of all run folders (`outputs/` unless `SGPO_OUTPUTS` is set)."""
    return Path(os.environ.get("SGPO_OUTPUTS", REPO_ROOT / "outputs"))


def shared_data_dir() -> Path:
    """The read-only real data beside the checkout (`../shared/data`), or `SGPO_SHARED_DATA`."""
    return Path(os.environ.get("SGPO_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def resolve(path: str | os.PathLike) -> Path:
    """An absolute path as given, else relative to the repository root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p
