"""LoRA adapters saved for the vLLM engine (`adapters/step_NNNNNN`), pruned so they do not fill the disk.

After every optimizer step the main process saves the adapter that every rank's engine loads
next; at r 64 on a 7B model one folder is ~650 MB, so 886 steps would keep ~570 GB. `prune`
keeps the `train.keep_adapters` newest (the one the engines have just loaded among them) and
those at the step of a checkpoint in `checkpoints/`, and deletes the rest. A resumed run saves
the adapter of its checkpoint's step again from the restored weights, so it needs no old folder.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

_STEP = re.compile(r"step_(\d+)(\.pt)?$")


def adapter_dir(out_dir: Path, step: int) -> Path:
    """The folder of the adapter saved after `step`."""
    return Path(out_dir) / "adapters" / f"step_{step:06d}"


def _steps(folder: Path, pattern: str) -> set[int]:
    return {int(m.group(1)) for p in folder.glob(pattern) if (m := _STEP.search(p.name))}


def prune(out_dir: Path, keep: int) -> list[Path]:
    """Delete the adapter folders of `out_dir` other than the `keep` newest and those a checkpoint
    refers to (same step); returns the deleted folders."""
    steps = sorted(_steps(Path(out_dir) / "adapters", "step_*"))
    kept = set(steps[-keep:]) | _steps(Path(out_dir) / "checkpoints", "step_*.pt")
    deleted = [adapter_dir(out_dir, s) for s in steps if s not in kept]
    for folder in deleted:
        shutil.rmtree(folder, ignore_errors=True)
    if deleted:
        log.debug("adapters: deleted %d old folders, kept steps %s", len(deleted), sorted(kept & set(steps)))
    return deleted
