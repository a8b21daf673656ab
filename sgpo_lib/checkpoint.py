"""Resumable checkpoints: trainable weights, optimizer, scheduler, RNG states, data position.

Each checkpoint is one `step_NNNNNN.pt` written atomically (temp file + rename), then
`latest.json` is re-pointed atomically, so a run killed at any instant resumes from the last
complete checkpoint. Only the `keep` newest checkpoints are kept. The data position is the
step itself: batches and sampling seeds are derived from `(seed, step, ...)`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import io
from .policy import load_trainable_state, trainable_state

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save(ckpt_dir: Path, step: int, model, optimizer, scheduler, extra: dict | None = None, keep: int = 2) -> Path:
    """Write `step_NNNNNN.pt`, point `latest.json` at it, prune older ones beyond `keep`."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / f"step_{step:06d}.pt"
    io.save_torch(path, {
        "step": step,
        "trainable": trainable_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "extra": extra or {},
    })
    io.write_json(ckpt_dir / "latest.json", {"step": step, "file": path.name})
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep]:
        old.unlink()
    log.info("checkpoint %s", path)
    return path


def load_latest(ckpt_dir: Path) -> dict[str, Any] | None:
    """The newest complete checkpoint's state dict, or None when there is none."""
    pointer = Path(ckpt_dir) / "latest.json"
    if not pointer.exists():
        return None
    path = Path(ckpt_dir) / io.read_json(pointer)["file"]
    return torch.load(path, map_location="cpu", weights_only=False)


def restore(state: dict[str, Any], model, optimizer, scheduler) -> int:
    """Load weights, optimizer, scheduler and RNG states; returns the step to resume after."""
    load_trainable_state(model, state["trainable"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])
