"""Ranks that agree: what every rank of an `accelerate launch` run must do together.

- `sum_grads`: every trainable parameter's gradient is summed over the ranks on every step,
  as one flat buffer in which a parameter without a gradient on this rank counts as zeros. A
  rank whose share of the step produced no loss (`train.rl_coef: 0` and no correct guided
  rollout, say) still joins the same single all-reduce, so no rank waits for a collective that
  another rank skipped.
- `summed`, `all_finite`, `gather_rows`, `mean_over_ranks`: the step's other collectives (global
  token counts for the normalisers, a non-finite loss skipped by all ranks together, the rows
  every rank must hold, metrics averaged over the ranks); each is a no-op on one rank.
- `rank_zero_first`: strategy extraction and cache builds on rank 0 while the others wait.
- `process_group_kwargs`: `train.dist_timeout_s` passed to the process group, so a rank that
  waits longer than that for the others fails instead of idling for the backend's default.
- `check_shared_folder`: every rank (of every machine) sees rank 0's run folder, or all stop
  with an error naming the path.
- `collective_timeout`: such a failure rewritten as an error that names the step and the rank.
- `StopOnSigterm`: SIGTERM ends the rank within seconds even while it waits inside a collective
  (a Python handler would only run once the collective returned): a thread woken through the
  signal wakeup fd lets the main process checkpoint the last completed step when its state is
  whole (`last_step.LastCompletedStep`), writes STATUS `failed` naming the step and what became
  of the checkpoint, and exits the process. Every rank writes STATUS; rank 0's line, written
  after its save, is normally the last.
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object

log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM
TOKEN_FILE = "RANK0_TOKEN"


def process_group_kwargs(timeout_s: float) -> list:
    """Accelerator `kwargs_handlers` that set the process group's collective timeout."""
    from accelerate.utils import InitProcessGroupKwargs

    return [InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=timeout_s))]


@contextmanager
def rank_zero_first(timeout_s: float):
    """Under `accelerate launch` (WORLD_SIZE > 1): rank 0 runs the block (strategy extraction, data
    and cache builds) while the other ranks wait at a barrier for up to `timeout_s`, then they run
    it, reading what rank 0 cached. The process group is started here, with that timeout (the
    Accelerator then joins it); the barrier is a gloo group, so it needs no GPU. One process: the
    block runs."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield
        return
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
    group = dist.new_group(backend="gloo", timeout=timeout)
    if dist.get_rank() != 0:
        dist.barrier(group)
    yield
    if dist.get_rank() == 0:
        dist.barrier(group)


def close_process_group() -> None:
    """Destroy the process group before the interpreter exits (gloo's threads otherwise can abort
    the process at exit: "terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_grads(params: list[torch.nn.Parameter], reduce_sum) -> None:
    """Sum the gradients of `params` over the ranks in one all-reduce (`reduce_sum(tensor)`).

    A parameter with no gradient on this rank contributes zeros; one that has no gradient on any
    rank keeps `grad = None` (as in a one-rank run, so AdamW leaves it alone that step). The
    buffer is float32 (mixed parameter dtypes, bf16 sums) and carries one "has a gradient" count
    per parameter after the gradients."""
    grads = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params]
    has = torch.tensor([float(p.grad is not None) for p in params], device=grads[0].device)
    total = reduce_sum(torch.cat(grads + [has]))
    offset, counts = 0, total[-len(params):]
    for p, count in zip(params, counts.tolist()):
        n = p.numel()
        p.grad = total[offset:offset + n].view_as(p).to(p.dtype, copy=True) if count > 0 else None
        offset += n


def summed(acc, values: list[float], floor: float) -> list[float]:
    """`values` summed over the ranks (float64), each at least `floor`."""
    local = torch.tensor(values, dtype=torch.float64, device=acc.device)
    total = acc.reduce(local, "sum") if acc.num_processes > 1 else local
    return total.clamp_min(floor).tolist()


def all_finite(acc, loss: float) -> bool:
    """True when the loss is finite on every rank (all ranks then skip, or step, together)."""
    bad = torch.tensor([0.0 if np.isfinite(loss) else 1.0], device=acc.device)
    return float(acc.reduce(bad, "sum") if acc.num_processes > 1 else bad) == 0.0


def gather_rows(rows: list) -> list:
    """Every rank's `rows`, concatenated in rank order, on every rank (the list itself on one rank)."""
    return gather_object(rows)


def mean_over_ranks(acc, metrics: dict) -> dict:
    """Each metric averaged over the ranks that report it (every rank sees its own share)."""
    if acc.num_processes == 1:
        return metrics
    per_rank = gather_object([metrics])
    keys = dict.fromkeys(k for m in per_rank for k in m)
    return {k: float(np.mean([m[k] for m in per_rank if k in m])) for k in keys}


def check_shared_folder(out_dir: Path, acc) -> None:
    """Every rank sees rank 0's run folder: rank 0 writes a fresh token to `out_dir/RANK0_TOKEN`,
    every rank reads it back, and all stop together, naming the path and the ranks, when one
    does not (several machines need the run folder on a filesystem they all share)."""
    from accelerate.utils import broadcast_object_list, gather_object

    path = Path(out_dir) / TOKEN_FILE
    token = broadcast_object_list([secrets.token_hex(16) if acc.is_main_process else None])[0]
    if acc.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token)
    acc.wait_for_everyone()
    seen = path.read_text() if path.exists() else None
    blind = [rank for rank, ok in gather_object([(acc.process_index, seen == token)]) if not ok]
    if blind:
        raise RuntimeError(f"ranks {blind} do not see rank 0's run folder: {path} is missing or holds another token "
                           "there; put the output root (output.root) on a filesystem every machine shares")


def is_timeout(exc: BaseException) -> bool:
    """True for the error a collective raises when the process group's timeout expires."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("timed out" in text or "timeout" in text)


def collective_timeout(exc: BaseException, step: int, rank: int, world: int, timeout_s: float) -> RuntimeError:
    """The error that ends a run whose collective timed out, naming the step, the ranks and the key."""
    return RuntimeError(
        f"step {step}: rank {rank} of {world} waited more than train.dist_timeout_s = {timeout_s:g} s for the "
        f"other ranks (ranks 0..{world - 1}) in a collective; one rank is slower than the timeout allows or "
        f"stopped: read the other ranks' logs, or raise train.dist_timeout_s ({exc})")


def _default_sigterm_in_child() -> None:
    """A forked child does not report its own SIGTERM through the parent's wakeup pipe."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:  # forked from another thread: nothing was set up in it
        pass


os.register_at_fork(after_in_child=_default_sigterm_in_child)


class StopOnSigterm:
    """SIGTERM -> STATUS `failed` ("stopped by SIGTERM at step N on rank R; <note>") and exit 143
    within seconds, whatever the main thread is doing. A Python handler only runs when the main
    thread returns from C (never, inside a hung collective), but the interpreter's C-level handler
    writes the signal number to the wakeup fd at once: a thread reading it does the stopping. Use
    as a context manager around the training loop; `step_of()` names the step in progress and
    `before_exit()` (the main process's checkpoint, `LastCompletedStep.save_for_stop`) runs first
    and returns the note. Outside the main thread it does nothing and the default SIGTERM action
    stands."""

    HOLD_S = 120.0  # how long `hold_if_stopping` keeps the main thread while the stop runs

    def __init__(self, out_dir: Path, rank: int, write_status):
        self.out_dir, self.rank, self.write_status = Path(out_dir), rank, write_status
        self.step_of = lambda: 0
        self.before_exit = lambda: ""
        self._active, self._stopping = False, threading.Event()

    def __enter__(self) -> "StopOnSigterm":
        if threading.current_thread() is threading.main_thread():
            read_fd, self._write_fd = os.pipe()
            os.set_blocking(self._write_fd, False)
            self._handler = signal.signal(signal.SIGTERM, lambda *_: None)  # the thread acts, not the handler
            self._wakeup = signal.set_wakeup_fd(self._write_fd)
            threading.Thread(target=self._wait, args=(read_fd,), name="sgpo-sigterm", daemon=True).start()
            self._active = True
        return self

    def _wait(self, read_fd: int) -> None:
        while True:
            data = os.read(read_fd, 64)
            if not data:  # the context ended
                os.close(read_fd)
                return
            if signal.SIGTERM in data:
                break
        self._stopping.set()
        message = f"stopped by SIGTERM at step {self.step_of()} on rank {self.rank}"
        try:
            note = self.before_exit()
        except Exception as e:  # the stop goes on: the run resumes from the latest checkpoint
            note = f"no checkpoint: writing it failed ({type(e).__name__}: {e})"
        message += f"; {note}" if note else ""
        log.error(message)
        try:
            self.write_status(self.out_dir, "failed", message)
        finally:
            os._exit(SIGTERM_EXIT)

    def hold_if_stopping(self) -> None:
        """In the main thread's error path: while a SIGTERM stop runs (the other ranks gone, a
        collective failed), wait for it to exit the process rather than overwrite its STATUS or
        end the interpreter under its checkpoint save."""
        if self._stopping.is_set():
            time.sleep(self.HOLD_S)

    def __exit__(self, *exc) -> None:
        if self._active:
            signal.set_wakeup_fd(self._wakeup)
            signal.signal(signal.SIGTERM, self._handler)
            os.close(self._write_fd)
