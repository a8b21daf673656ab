"""Resumable checkpoints: trainable weights, optimizer, scheduler, RNG states, data position.

Each checkpoint is one `step_NNNNNN.pt` written atomically (temp file + rename), then
`latest.json` is re-pointed atomically, so a run killed at any instant resumes from the last
complete checkpoint; a damaged newest checkpoint or `latest.json` (a disk full, a copy cut
short) falls back to the previous checkpoint with a warning. Only the `keep` newest are kept. The data position is the
step itself: batches and sampling seeds are derived from `(seed, step, ...)`. The trainer's own state rides in
`extra` (the non-finite counter and the section-5 pass-gap alpha state, `problem_id -> alpha`).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from ..core import fileio
from .policy import load_trainable_state, trainable_state

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(ckpt_dir: Path, step: int, model, optimizer, scheduler, extra: dict | None = None, keep: int = 2,
         rng: dict | None = None) -> Path:
    """Write `step_NNNNNN.pt`, point `latest.json` at it, prune older ones beyond `keep`. `rng`: the
    RNG states to store (`rng_state()` taken earlier); None takes the current ones."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / f"step_{step:06d}.pt"
    fileio.save_torch(path, {
        "step": step,
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng or rng_state(),
        "extra": extra or {},
    })
    fileio.write_json(ckpt_dir / "latest.json", {"step": step, "file": path.name})
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep]:
        old.unlink()
    log.debug("checkpoint %s", path)
    return path


def _candidates(ckpt_dir: Path) -> list[Path]:
    """Checkpoint files to try, best first: the one `latest.json` names, then the others newest first."""
    pointer, on_disk = ckpt_dir / "latest.json", sorted(ckpt_dir.glob("step_*.pt"), reverse=True)
    if not pointer.exists():
        return on_disk
    try:
        named = ckpt_dir / fileio.read_json(pointer)["file"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s is unreadable (%s: %s); falling back to the checkpoints on disk", pointer, type(e).__name__, e)
        return on_disk
    return [named] + [p for p in on_disk if p != named]


def load_latest(ckpt_dir: Path) -> dict[str, Any] | None:
    """The newest checkpoint that loads, or None when there is none. A damaged one (a truncated
    file, a bad `latest.json`) is skipped with a warning naming it, for the previous one."""
    for path in _candidates(Path(ckpt_dir)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            int(state["step"])
            return state
        except Exception as e:  # torch.load raises many types for a damaged file
            log.warning("checkpoint %s cannot be loaded (%s: %s); trying the previous one", path, type(e).__name__, e)
    return None


def check_model_files(model_dir: Path, rebuilt_from: Path | None = None) -> None:
    """Open every `*.safetensors` of a model folder; a damaged one raises naming the file and the
    folder to delete for a rebuild (`rebuilt_from`, when the model is part of a larger cache entry)."""
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as e:
            raise RuntimeError(f"{path}: cannot be read ({type(e).__name__}: {e}); the folder is damaged: "
                               f"delete {rebuilt_from or model_dir} and run again to rebuild it") from e


def restore(state: dict[str, Any], model, optimizer, scheduler) -> int:
    """Load weights, optimizer, scheduler and RNG states; returns the step to resume after."""
    load_trainable_state(model, state["trainable"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
