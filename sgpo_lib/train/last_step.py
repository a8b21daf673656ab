"""The last completed step, kept so that a SIGTERM can checkpoint it (`distributed.StopOnSigterm`).

A step is completed once the main process has logged it (and checkpointed it when
`train.checkpoint_every` says so). From then until the first optimizer update of the next step
(`moving`), the weights, the optimizer and the scheduler equal those after that step: sampling,
grading, the no-grad passes, the backward passes and the all-reduce of the next step leave
them alone. The trainer's own state (the non-finite counter, the pass-gap alpha, which the next
step's sampling already updates) and the RNG are copied when the step completes. So a SIGTERM
in that window writes the checkpoint a `checkpoint_every: 1` run would have written, and a
resumed run reaches the same weights as an uninterrupted one.

From the first optimizer update of a step until it is logged (the updates, the engine's sync,
the evaluation) no step's state is whole: the stop writes no checkpoint and says so, and the
run resumes from the latest checkpoint. One lock serialises the stop's save, the trainer's own
checkpoints and the start of an update: an update never begins under a save (the stop exits the
process before releasing it), and a stop that arrives during the trainer's own save waits for it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

from ..model.checkpoint import rng_state

SaveFn = Callable[[int, dict, dict | None], None]  # (step, extra, rng or None for the current one)


class LastCompletedStep:
    """The main process's view of the last completed step; `save` writes one checkpoint."""

    def __init__(self, save: SaveFn):
        self._save, self._lock = save, threading.Lock()
        self.step, self._moving = 0, False
        self._pending: tuple[dict, dict] | None = None  # (extra, rng) of a step not checkpointed

    def completed(self, step: int, extra: dict, checkpoint: bool) -> None:
        """Step `step` is logged; write its checkpoint now (`checkpoint`) or keep its state for a stop."""
        with self._lock:
            if checkpoint:
                self._save(step, extra, None)
            self.step, self._moving = step, False
            self._pending = None if checkpoint else (copy.deepcopy(extra), rng_state())

    def resumed(self, step: int) -> None:
        """Restored from the checkpoint of `step`: it is the completed step, already on disk."""
        with self._lock:
            self.step, self._moving, self._pending = step, False, None

    def moving(self) -> None:
        """Before an optimizer update: from here on the weights are past the completed step."""
        with self._lock:
            self._moving = True

    def save_for_stop(self, wait_s: float = 30.0) -> str:
        """Called by the stopping thread just before the process exits: write the completed
        step's checkpoint when the state is whole; returns what was done, for STATUS. Holds the
        lock on return (the process exits), so that no update starts after the save."""
        if not self._lock.acquire(timeout=wait_s):
            return f"no checkpoint: the trainer held its checkpoint lock for more than {wait_s:g} s"
        if self._moving:
            return (f"no checkpoint: SIGTERM came after an optimizer update of step {self.step + 1}, before "
                    f"its log; a rerun resumes from the latest checkpoint")
        if self._pending is None:
            return (f"no checkpoint needed: the last completed step {self.step} is the latest checkpoint"
                    if self.step else "no checkpoint: no step was completed")
        extra, rng = self._pending
        self._save(self.step, extra, rng)
        return f"checkpoint of the last completed step {self.step} written; a rerun resumes from it"
