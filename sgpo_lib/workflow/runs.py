"""Run folders, seeding, status and the metrics stream (conventions.md, points 4, 12, 13).

`start_run(params_file, overrides, run_id)` is the one entry every notebook and CLI stage
calls. It validates the params, derives `run_id = <params stem>-<sha1(resolved config)[:8]>`
(so a changed setting can never land in, or resume, another run's folder), creates
`outputs/<run_id>/` with `config.yaml`, `params_source.yaml`, `env.json`, `code.diff`, and
seeds `random`/`numpy`/`torch` once from the config's single `seed`. Calling it again for
the next notebook of the same run reuses the folder; a folder whose `config.yaml` differs
from the resolved config is refused. A run id given by hand must be a safe folder name
(`paths.safe_name`), so no run folder can land outside the outputs root.

STATUS names the process of a `running` run, so that a killed one reads `stale`. A resumed
training run first rewinds its step logs (`metrics.jsonl`, `evals.jsonl`, `completions/`) to
its checkpoint (`rewind_logs`), so a re-run after a kill at any point writes them exactly as an
uninterrupted run. `Progress` logs step/total and ETA lines, which the pipeline shows.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core import fileio
from ..config.run import RunConfig, check_variants, config_to_yaml, load_config
from ..core.machine import cpu_facts
from ..core.run_folder import PROGRESS_ENV
from ..core.paths import REPO_ROOT, output_root, resolve, safe_name

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "vllm", "datasets", "math-verify", "papermill",
                      "tokenizers", "numpy")


def make_run_id(params_file: str | Path, cfg: RunConfig) -> str:
    """`<params stem>-<first 8 hex of the config digest>`, deterministic."""
    return f"{Path(params_file).stem}-{cfg.digest()[:8]}"


def run_dir_for(cfg: RunConfig, run_id: str) -> Path:
    """`<outputs root>/<run_id>`; the run id must be a safe folder name (no path can escape the root)."""
    return output_root(cfg.output.root) / safe_name(run_id, "run id")


def start_run(
    params_file: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None
) -> tuple[RunConfig, Path]:
    """Validate params, create or reuse the run folder, seed every RNG. Returns (cfg, run_dir)."""
    cfg = check_variants(load_config(params_file, overrides), str(params_file))
    run_id = make_run_id(params_file, cfg) if run_id is None else run_id
    run_dir = run_dir_for(cfg, run_id)
    resolved = config_to_yaml(cfg)
    config_path = run_dir / "config.yaml"
    if config_path.exists() and config_path.read_text(encoding="utf-8") != resolved:
        raise FileExistsError(
            f"{run_dir}: holds a run with a different config; pick another run_id or leave it None "
            "(the default id is derived from the config)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config_path.exists():
        fileio.write_text(config_path, resolved)
        fileio.write_text(run_dir / "params_source.yaml", resolve(params_file).read_text(encoding="utf-8"))
        fileio.write_json(run_dir / "overrides.json", overrides or {})
        fileio.write_json(run_dir / "env.json", environment())
        fileio.write_text(run_dir / "code.diff", _git("diff", "HEAD"))
    seed_everything(cfg.seed)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto imported by transformers in a kernel
    configure_logging(run_dir)
    log.info("run %s in %s", run_id, run_dir)
    return cfg, run_dir


def seed_everything(seed: int) -> None:
    """Seed `random`, `numpy` and `torch` once; every other stream derives its own seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RunRelativeFormatter(logging.Formatter):
    """Shows paths inside the run folder relative to it, and those beside it (the cache) as `../…`."""

    def __init__(self, fmt: str, datefmt: str, run_dir: Path):
        super().__init__(fmt, datefmt)
        self.run_dir = Path(run_dir).resolve()

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(f"{self.run_dir}/", "").replace(f"{self.run_dir.parent}/", "../")


def in_kernel() -> bool:
    """True inside a Jupyter kernel (its `sys.stdout` is ipykernel's stream to the cell)."""
    return type(sys.stdout).__module__.startswith("ipykernel")


def configure_logging(run_dir: Path | None = None, level: int = logging.INFO) -> None:
    """Console handlers for the `sgpo_lib` logger (idempotent), and a file handler on
    `$SGPO_PROGRESS` when the pipeline set it. In a notebook kernel, records below WARNING go to
    stdout (a plain cell output, not a red stderr box) with paths relative to `run_dir`, warnings to
    stderr; elsewhere everything goes to stderr. The transformers progress bars are switched off in
    a kernel (they would be stderr boxes)."""
    logger = logging.getLogger("sgpo_lib")
    fmt, datefmt = "%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S"
    for handler in [h for h in logger.handlers if getattr(h, "_sgpo", False)]:
        logger.removeHandler(handler)
    if in_kernel():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        info, warn = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
        info.addFilter(lambda record: record.levelno < logging.WARNING)
        warn.setLevel(logging.WARNING)
        console = [info, warn]
    else:
        console = [logging.StreamHandler(sys.stderr)]
    for handler in console:
        handler.setFormatter(RunRelativeFormatter(fmt, datefmt, run_dir) if run_dir else logging.Formatter(fmt, datefmt))
        handler._sgpo = True
        logger.addHandler(handler)
    progress = os.environ.get(PROGRESS_ENV)
    if progress and not any(getattr(h, "baseFilename", None) == str(Path(progress).resolve()) for h in logger.handlers):
        file_handler = logging.FileHandler(progress, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(fmt, datefmt))
        logger.addHandler(file_handler)
    logger.setLevel(level)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment() -> dict[str, Any]:
    """Versions, device, CPU facts (`machine.cpu_facts`) and git commit for `env.json`."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                versions[name] = metadata.version(name + "-cpu")
            except metadata.PackageNotFoundError:
                versions[name] = None
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "cuda_devices": torch.cuda.device_count(),
        "cpu": cpu_facts(),
        "git_commit": _git("rev-parse", "HEAD").strip(),
        "git_dirty": bool(_git("status", "--porcelain").strip()),
    }


# ---------------------------------------------------------------- status


# ---------------------------------------------------------------- metrics


# ---------------------------------------------------------------- resuming and completions

