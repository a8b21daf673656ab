"""A pool of killable grading worker processes with a hard wall-clock limit per answer.

Used by `sgpo_lib.grading.grader.Grader` (architecture.md, `grading`). `concurrent.futures` cannot stop
one running task, and math-verify's own `signal.alarm` timeout cannot interrupt work inside C
code (a giant integer power), so each worker is a plain subprocess (`python -P -m
sgpo_lib.grading.worker`: no `__main__` re-import as with multiprocessing's spawn, no fork of a
parent that holds threads). Answers go to a worker in batches of up to `batch_size`; the worker
replies per answer, and each answer has `timeout_s` from the previous reply (or the send). When
one misses it, the worker's grading child is killed: that answer gets reason "timeout", the rest
of its batch goes back to the queue, and the worker's warm parent process forks the next child
in milliseconds (pre-spawned: nothing is imported again), so a timeout costs `timeout_s`, not a
restart. A child that crashes gives "error"; a worker process that dies is started again.
Neither ever raises: only a worker that cannot *start* raises.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
READ_CHUNK_BYTES = 65536
CLOSE_GRACE_S = 1.0
MAX_CRASHES = 2  # a task whose grading child died this often gets "error"


@dataclass
class _Worker:
    """One worker process; `pending` the (task index, task id) sent and not yet answered,
    `deadline` its time limit (for the first pending answer, or for starting up)."""

    proc: subprocess.Popen
    deadline: float
    ready: bool = False
    started: bool = False
    child_pid: int | None = None
    pending: deque = field(default_factory=deque)
    buffer: bytes = b""

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def kill(self) -> None:
        if self.child_pid is not None:
            try:
                os.kill(self.child_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:  # unflushed bytes for a dead process
                pass


def _shutdown(workers: list[_Worker]) -> None:
    """Close stdin (the worker exits on EOF); kill whatever is still alive after a grace period."""
    for w in workers:
        try:
            w.proc.stdin.close()
        except OSError:
            pass
    end = time.monotonic() + CLOSE_GRACE_S
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        w.kill()
    workers.clear()


def _timeout_result() -> dict:
    return {"reward": 0.0, "reason": "timeout", "pred": ""}


class WorkerPool:
    """`n_workers` grading processes; `run(tasks)` returns one result dict per task, in order.

    A task is `{"text": str, "gold": str, "kind": str}`; a result is the worker's reply
    (`reward`, `reason`, `pred`, `blocked`) or `{"reward": 0.0, "reason": "timeout"|"error", "pred": ""}`.
    """

    def __init__(self, n_workers: int, timeout_s: float, memory_limit_mb: int, tail_chars: int,
                 batch_size: int = 16, startup_timeout_s: float = 60.0, max_start_failures: int = 3):
        if n_workers < 1 or timeout_s <= 0 or batch_size < 1:
            raise ValueError(f"WorkerPool: need n_workers >= 1, timeout_s > 0, batch_size >= 1; "
                             f"got {n_workers}, {timeout_s}, {batch_size}")
        self.n_workers, self.timeout_s = n_workers, timeout_s
        self.memory_limit_mb, self.tail_chars, self.batch_size = memory_limit_mb, tail_chars, batch_size
        self.startup_timeout_s, self.max_start_failures = startup_timeout_s, max_start_failures
        self.restarts = 0
        self._next_id = 0
        self._crashes: dict[int, int] = {}
        self._start_failures = 0
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)

    def _spawn(self) -> _Worker:
        argv = [sys.executable, "-P", "-m", "sgpo_lib.grading.worker", "--memory-mb", str(self.memory_limit_mb)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                close_fds=True, env=env)
        worker = _Worker(proc, deadline=time.monotonic() + self.startup_timeout_s)
        self._workers.append(worker)
        return worker

    def _replace(self, worker: _Worker, queue: deque | None = None) -> None:
        """Kill `worker`, put its unanswered tasks back at the front of `queue`, start another."""
        worker.kill()
        self._workers.remove(worker)
        if queue is not None:
            queue.extendleft(i for i, _ in reversed(worker.pending))
        self.restarts += 1
        self._spawn()

    def _kill_child(self, worker: _Worker, queue: deque) -> None:
        """Kill the worker's grading child (its warm parent forks the next); unanswered tasks back to `queue`."""
        try:
            os.kill(worker.child_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        queue.extendleft(i for i, _ in reversed(worker.pending))
        worker.pending.clear()
        worker.ready, worker.deadline = False, time.monotonic() + self.startup_timeout_s
        self.restarts += 1

    def _on_crash(self, worker: _Worker, results: list, queue: deque) -> None:
        """The grading child died (not killed by us): its tasks go back to the queue, except the
        one it was on when it died for the second time, which gets "error"."""
        if worker.pending:
            index = worker.pending[0][0]
            self._crashes[index] = self._crashes.get(index, 0) + 1
            if self._crashes[index] >= MAX_CRASHES:
                results[worker.pending.popleft()[0]] = {"reward": 0.0, "reason": "error", "pred": ""}
        queue.extendleft(i for i, _ in reversed(worker.pending))
        worker.pending.clear()
        worker.ready, worker.deadline = False, time.monotonic() + self.startup_timeout_s

    def _start_failed(self, worker: _Worker, why: str) -> None:
        self._start_failures += 1
        if self._start_failures >= self.max_start_failures:
            self.close()
            raise RuntimeError(f"grading worker (python -m sgpo_lib.grading.worker) failed to start: {why}")
        log.warning("grading worker failed to start (%s); retrying", why)
        self._replace(worker)

    def _send(self, worker: _Worker, tasks: list[dict], queue: deque) -> None:
        """Give a batch from the front of `queue` to an idle worker; a worker that died while
        idle is replaced and the batch goes back to the queue (it did not cause the death)."""
        share = -(-len(queue) // self.n_workers)
        for _ in range(min(self.batch_size, share, len(queue))):
            self._next_id += 1
            worker.pending.append((queue.popleft(), self._next_id))
        worker.deadline = time.monotonic() + self.timeout_s
        payload = {"items": [{**tasks[i], "id": tid} for i, tid in worker.pending], "tail_chars": self.tail_chars}
        try:
            if worker.proc.poll() is not None:
                raise BrokenPipeError
            worker.proc.stdin.write((json.dumps(payload) + "\n").encode())
            worker.proc.stdin.flush()
        except OSError:
            self._replace(worker, queue)

    def _on_line(self, worker: _Worker, line: bytes, results: list, queue: deque) -> None:
        try:
            reply = json.loads(line)
        except ValueError:  # the start of a line from a child killed while writing it
            log.info("grading worker: dropped a partial line")
            return
        if "error" in reply:
            self._start_failed(worker, reply["error"])
        elif reply.get("ready"):
            worker.ready, worker.started, worker.child_pid, self._start_failures = True, True, reply["pid"], 0
        elif "exited" in reply:
            if reply["exited"] == worker.child_pid:
                self._on_crash(worker, results, queue)
        elif worker.pending and reply.get("id") == worker.pending[0][1]:  # else a stale reply: dropped
            results[worker.pending.popleft()[0]] = reply
            worker.deadline = time.monotonic() + self.timeout_s

    def _on_readable(self, worker: _Worker, results: list, queue: deque) -> None:
        data = os.read(worker.fileno(), READ_CHUNK_BYTES)
        if not data:  # the worker died
            if worker.pending:
                results[worker.pending.popleft()[0]] = {"reward": 0.0, "reason": "error", "pred": ""}
            if worker.started:
                self._replace(worker, queue)
            else:
                self._start_failed(worker, f"exit code {worker.proc.wait()}")
            return
        worker.buffer += data
        while b"\n" in worker.buffer and worker in self._workers:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            if line.strip():
                self._on_line(worker, line, results, queue)

    def _on_expired(self, now: float, results: list, queue: deque) -> None:
        for worker in [w for w in self._workers if w.deadline < now and (w.pending or not w.ready)]:
            if not worker.pending:
                self._start_failed(worker, f"no reply within {self.startup_timeout_s} s")
                continue
            index = worker.pending.popleft()[0]
            log.info("grading answer %d timed out after %.2f s; replacing its grading child", index, self.timeout_s)
            results[index] = _timeout_result()
            self._kill_child(worker, queue)

    def _assign(self, tasks: list[dict], queue: deque) -> None:
        """A batch to every idle ready worker."""
        for worker in [w for w in self._workers if w.ready and not w.pending]:
            if queue:
                self._send(worker, tasks, queue)

    def run(self, tasks: list[dict]) -> list[dict[str, Any]]:
        """Grade all tasks (see the class docstring)."""
        results: list[dict | None] = [None] * len(tasks)
        self._crashes.clear()
        queue = deque(range(len(tasks)))
        while len(self._workers) < self.n_workers:
            self._spawn()
        while queue or any(w.pending for w in self._workers):
            self._assign(tasks, queue)
            waiting = [w.deadline for w in self._workers if w.pending or not w.ready]
            wait_s = max(0.0, min(waiting, default=0.0) - time.monotonic())
            readable, _, _ = select.select(self._workers, [], [], wait_s)
            for worker in readable:
                if worker in self._workers:
                    self._on_readable(worker, results, queue)
            self._on_expired(time.monotonic(), results, queue)
        return results

    def close(self) -> None:
        self._finalizer()
