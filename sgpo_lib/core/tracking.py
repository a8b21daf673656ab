"""Experiment tracking sinks behind `output.report_to`: none, tensorboard, trackio, wandb.

`metrics.jsonl` in the run folder is always written (the record of truth); a sink mirrors each
row's numbers to a tracker. `tensorboard` (the default, a core dependency) and `trackio` are
local and need no account (event files under `<run>/tensorboard/`, a local trackio project);
`wandb` needs a login. Each package is imported only when selected, and a missing one fails at
the start of the run with the install command (the `tracking` extra of pyproject.toml).
"""

from __future__ import annotations

import importlib
import numbers
from pathlib import Path
from typing import Any

PROJECT = "sgpo"
EXTRA = "pip install -e '.[tracking]'"
PACKAGES = {"tensorboard": "tensorboard", "trackio": "trackio", "wandb": "wandb"}


def _import(report_to: str, module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"output.report_to: {report_to} needs the '{PACKAGES[report_to]}' package ({e}); "
                          f"install it ({EXTRA}) or set output.report_to: none") from e


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if k not in ("step", "time") and isinstance(v, numbers.Real) and not isinstance(v, bool)}


class TensorBoardSink:
    """Scalars into TensorBoard event files under `log_dir`."""

    def __init__(self, log_dir: Path):
        _import("tensorboard", "tensorboard")
        self.writer = _import("tensorboard", "torch.utils.tensorboard").SummaryWriter(log_dir=str(log_dir))

    def log(self, row: dict[str, Any]) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, global_step=row["step"])
        self.writer.flush()


class ModuleSink:
    """trackio or wandb: `init(project, name, config)` once, then `log(values, step=step)`."""

    def __init__(self, report_to: str, name: str, config: dict[str, Any]):
        self.module = _import(report_to, report_to)
        self.run = self.module.init(project=PROJECT, name=name, config=config)

    def log(self, row: dict[str, Any]) -> None:
        (self.run if hasattr(self.run, "log") else self.module).log(_scalars(row), step=row["step"])


def make_sink(report_to: str, run_dir: Path, config: dict[str, Any]):
    """The sink `output.report_to` selects for the run in `run_dir` (None for `none`)."""
    run_dir = Path(run_dir)
    if report_to == "none":
        return None
    if report_to == "tensorboard":
        return TensorBoardSink(run_dir / "tensorboard")
    return ModuleSink(report_to, f"{run_dir.parent.name}/{run_dir.name}", config)
