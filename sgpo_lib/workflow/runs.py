"""Run folders, seeding, status and the metrics stream (conventions.md, points 4, 12, 13).

`start_run(params_file, overrides, run_id)` is the one entry every notebook and CLI stage
calls. It validates the params, derives `run_id = <params stem>-<sha1(resolved config)[:8]>`
(so a changed setting can never land in, or resume, another run's folder), creates
`outputs/<run_id>/` with `config.yaml`, `params_source.yaml`, `env.json`, `code.diff`, and
seeds `random`/`numpy`/`torch` once from the config's single `seed`. Calling it again for
the next notebook of the same run reuses the folder; a folder whose `config.yaml` differs
from the resolved config is refused naming the keys, and so is one made by other code
(`check_folder`, `code_fingerprint`) unless `output.reuse: config`. `env.json` and `code.diff`
are rewritten by every execution (`record_code`). A run id given by hand must be a safe folder
name (`paths.safe_name`), and a link under the root must not lead out of it.

STATUS names the process of a `running` run, so that a killed one reads `stale`. A resumed
training run first rewinds its step logs (`metrics.jsonl`, `evals.jsonl`, `eval_problems.jsonl`, `completions/`) to
its checkpoint (`rewind_logs`), so a re-run after a kill at any point writes them exactly as an
uninterrupted run. `Progress` logs step/total and ETA lines, which the pipeline shows.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config.run import RunConfig, check_variants, config_to_yaml, load_config
from ..config.schema import differing_keys, dotted_get
from ..core import fileio
from ..core.code_fingerprint import ENV_FILE, check_code
from ..core.environment import record_code
from ..core.paths import inside, output_root, resolve, safe_name
from ..core.run_folder import PROGRESS_ENV

log = logging.getLogger(__name__)


def make_run_id(params_file: str | Path, cfg: RunConfig) -> str:
    """`<params stem>-<first 8 hex of the config digest>`, deterministic."""
    return f"{Path(params_file).stem}-{cfg.digest()[:8]}"


def run_dir_for(cfg: RunConfig, run_id: str) -> Path:
    """`<outputs root>/<run_id>`; the run id must be a safe folder name, and an existing folder of
    that name must not be a link leading outside the root (no path can escape the root)."""
    root = output_root(cfg.output.root)
    path = root / safe_name(run_id, "run id")
    inside(root, path)
    return path


def start_run(
    params_file: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None
) -> tuple[RunConfig, Path]:
    """Validate params, create or reuse the run folder, seed every RNG. Returns (cfg, run_dir)."""
    cfg = check_variants(load_config(params_file, overrides), str(params_file))
    run_id = make_run_id(params_file, cfg) if run_id is None else run_id
    run_dir = run_dir_for(cfg, run_id)
    check_folder(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        fileio.write_text(run_dir / "config.yaml", config_to_yaml(cfg))
        fileio.write_text(run_dir / "params_source.yaml", resolve(params_file).read_text(encoding="utf-8"))
        fileio.write_json(run_dir / "overrides.json", overrides or {})
    elif load_config(run_dir / "config.yaml").output.reuse != cfg.output.reuse:
        # the same config but for `output.reuse` (check_folder): the runs a stage makes from the
        # run's config.yaml (its sweeps) must reuse their folders as this execution says
        fileio.write_text(run_dir / "config.yaml", config_to_yaml(cfg))
    record_code(run_dir)
    seed_everything(cfg.seed)
    configure_logging(run_dir)
    log.info("run %s in %s", run_id, run_dir)
    return cfg, run_dir


def check_folder(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse to reuse `run_dir` for `cfg` when it holds a run of another config (FileExistsError
    naming each differing key with both values; `output.reuse` is not compared) or of other code
    (`code_fingerprint.check_code`). A folder without `config.yaml`, `env.json` or STATUS holds no run yet."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        try:
            held = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            held = None
        if not isinstance(held, dict):
            raise FileExistsError(f"{config_path}: not a readable config; give another run id / --out-dir")
        held.get("output", {}).pop("reuse", None)
        now = cfg.identity()
        diff = differing_keys(held, now)
        if diff:
            shown = "; ".join(f"{k}: {dotted_get(held, k)!r} there, {dotted_get(now, k)!r} here" for k in diff[:12])
            raise FileExistsError(
                f"{run_dir}: holds a run with a different config ({len(diff)} keys differ: {shown}); pick another "
                "run id / --out-dir, or leave run_id None (the default id is derived from the config)")
    if any((run_dir / name).exists() for name in ("config.yaml", ENV_FILE, "STATUS")):
        check_code(run_dir, cfg.output.reuse)


def seed_everything(seed: int) -> None:
    """Seed `random`, `numpy` and `torch` once; every other stream derives its own seed."""
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


def _progress_bars_off() -> None:
    """The Hugging Face progress bars off: the hub's switch, which transformers reads when it is
    imported (later, by what needs it), and transformers' own when it is imported already."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    if "transformers.utils.logging" in sys.modules:
        sys.modules["transformers.utils.logging"].disable_progress_bar()


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
        _progress_bars_off()
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


# ---------------------------------------------------------------- status


# ---------------------------------------------------------------- metrics


# ---------------------------------------------------------------- resuming and completions

