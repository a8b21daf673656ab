"""Paths resolved from the repository root, never from the working directory.

Papermill (the caller's cwd), nbval and Jupyter (the notebook's folder) then agree on
where `params/`, `outputs/` and `../shared/data` are (conventions.md, point 11).
`SGPO_OUTPUTS` and `SGPO_SHARED_DATA` override the two data locations: `SGPO_OUTPUTS` moves
the cache and the run folders of every params file that keeps the default `output.root:
outputs` (relative to the repository root; empty is refused; the command line pins it to an
absolute path before any kernel starts, `pin_outputs`). Every name that becomes a folder under it (run ids, sweep grid values) goes through
`safe_name`, and `inside` refuses a path that would land outside the root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS_DIR = REPO_ROOT / "params"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


OUTPUTS_ENV = "SGPO_OUTPUTS"


def outputs_dir() -> Path:
    """Root of all run folders: `outputs/` unless `SGPO_OUTPUTS` is set; a relative value is taken
    from the repository root, like every path here (a kernel runs in `notebooks/`, the shell
    anywhere), and an empty one is refused (it would silently mean another folder)."""
    value = os.environ.get(OUTPUTS_ENV)
    if value is None:
        return REPO_ROOT / "outputs"
    if not value.strip():
        raise ValueError(f"{OUTPUTS_ENV} is set but empty; unset it (the root is then {REPO_ROOT / 'outputs'}) "
                         "or set it to a folder")
    return Path(value) if Path(value).is_absolute() else resolve(value).resolve()


def nbval_outputs_dir() -> Path:
    """The outputs root of the test suites' notebook runs (nbval, then the report test's smoke
    pipeline, which reuses their trained runs): `<outputs root>/nbval`, never a JupyterLab folder."""
    return outputs_dir() / "nbval"


def pin_outputs() -> Path:
    """`outputs_dir()`, written back to `SGPO_OUTPUTS` as an absolute path when the variable is set,
    once, before any kernel or child process starts: they inherit one folder, whatever their cwd."""
    root = outputs_dir()
    if OUTPUTS_ENV in os.environ:
        os.environ[OUTPUTS_ENV] = str(root)
    return root


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
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name or len(name) > MAX_NAME:
        raise ValueError(f"{what} {name!r} is not a safe folder name: use letters, digits and ._=+,- only "
                         f"(no '/', no '..', no spaces or newlines, not starting with '.' or '-'), at most {MAX_NAME} characters")
    return name


def run_name(overrides: dict) -> str:
    """A folder name from overrides, e.g. `distill.estimator=sampled_seed=1`; a key or value that
    is not a safe folder name (a `/`, `..`, spaces) raises ValueError naming it.

    Example:
        >>> run_name({"distill.estimator": "sampled", "seed": 1})
        'distill.estimator=sampled_seed=1'
    """
    for k, v in overrides.items():
        safe_name(f"{k}={v}", f"sweep value {k}={v!r} (it becomes a folder name):")
    return safe_name("_".join(f"{k}={v}" for k, v in overrides.items()) or "base", "sweep run name")


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
