"""A pool of killable grading worker processes with a hard wall-clock limit per answer.

Used by `sgpo_lib.grading.Grader` (architecture.md, `grading`: "equivalence through math-verify,
with a per-answer timeout"). `concurrent.futures.ProcessPoolExecutor` cannot stop one running
task, and math-verify's own `signal.alarm` timeout cannot interrupt work inside C code (a
giant integer power), so each worker is a plain subprocess (`grading_worker.py`, run by path
with `python -P`: no `__main__` re-import as with multiprocessing's spawn, no fork of a parent
that holds threads) that gets one answer at a time. A worker that does not reply within
`timeout_s` is killed and replaced; its answer gets the status "timeout". A worker that dies
gives "worker_error". Neither ever raises: only a worker that cannot *start* raises.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).with_name("grading_worker.py")
READ_CHUNK_BYTES = 65536
CLOSE_GRACE_S = 1.0


@dataclass
class _Worker:
    """One child process; `task` is the index it is working on, `deadline` its time limit."""

    proc: subprocess.Popen
    deadline: float
    ready: bool = False
    task: int | None = None
    buffer: bytes = b""
    started_at: float = field(default_factory=time.monotonic)

    def fileno(self) -> int:
        return self.proc.stdout.fileno()

    def kill(self) -> None:
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


class WorkerPool:
    """`n_workers` grading processes; `run(tasks)` returns one result dict per task, in order.

    A task is `{"pred": str, "gold": str}`; a result is the worker's reply (`ok`, `status`,
    `blocked`) plus `seconds`, or `{"ok": False, "status": "timeout"|"worker_error"}`.
    """

    def __init__(self, n_workers: int, timeout_s: float, memory_limit_mb: int,
                 startup_timeout_s: float = 60.0, max_start_failures: int = 3):
        if n_workers < 1 or timeout_s <= 0:
            raise ValueError(f"WorkerPool: need n_workers >= 1 and timeout_s > 0, got {n_workers}, {timeout_s}")
        self.n_workers, self.timeout_s = n_workers, timeout_s
        self.memory_limit_mb, self.startup_timeout_s = memory_limit_mb, startup_timeout_s
        self.max_start_failures = max_start_failures
        self.restarts = 0
        self._start_failures = 0
        self._workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)

    def _spawn(self) -> _Worker:
        argv = [sys.executable, "-P", str(WORKER_PATH), "--memory-mb", str(self.memory_limit_mb)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, close_fds=True)
        worker = _Worker(proc, deadline=time.monotonic() + self.startup_timeout_s)
        self._workers.append(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.remove(worker)
        self.restarts += 1
        self._spawn()

    def _start_failed(self, worker: _Worker, why: str) -> None:
        self._start_failures += 1
        if self._start_failures >= self.max_start_failures:
            self.close()
            raise RuntimeError(f"grading worker {WORKER_PATH} failed to start: {why}")
        log.warning("grading worker failed to start (%s); retrying", why)
        self._replace(worker)

    def _send(self, worker: _Worker, index: int, task: dict, queue: deque) -> None:
        """Give `task` to an idle worker; a worker that died while idle is replaced and the
        task goes back to the front of the queue (it did not cause the death)."""
        worker.task, worker.deadline = index, time.monotonic() + self.timeout_s
        worker.started_at = time.monotonic()
        try:
            if worker.proc.poll() is not None:
                raise BrokenPipeError
            worker.proc.stdin.write((json.dumps(task) + "\n").encode())
            worker.proc.stdin.flush()
        except OSError:
            queue.appendleft(index)
            self._replace(worker)

    def _on_line(self, worker: _Worker, line: bytes, results: list) -> None:
        reply = json.loads(line)
        if "error" in reply:
            self._start_failed(worker, reply["error"])
        elif reply.get("ready"):
            worker.ready, self._start_failures = True, 0
        elif worker.task is not None:
            reply["seconds"] = time.monotonic() - worker.started_at
            results[worker.task], worker.task = reply, None

    def _on_readable(self, worker: _Worker, results: list) -> None:
        data = os.read(worker.fileno(), READ_CHUNK_BYTES)
        if not data:  # the worker died
            if worker.task is not None:
                results[worker.task] = {"ok": False, "status": "worker_error"}
            if worker.task is not None or worker.ready:
                self._replace(worker)
            else:
                self._start_failed(worker, f"exit code {worker.proc.wait()}")
            return
        worker.buffer += data
        while b"\n" in worker.buffer and worker in self._workers:
            line, worker.buffer = worker.buffer.split(b"\n", 1)
            self._on_line(worker, line, results)

    def _on_expired(self, now: float, results: list) -> None:
        for worker in [w for w in self._workers if w.deadline < now and (w.task is not None or not w.ready)]:
            if worker.task is None:
                self._start_failed(worker, f"no reply within {self.startup_timeout_s} s")
                continue
            log.info("grading answer %d timed out after %.1f s; restarting its worker", worker.task, self.timeout_s)
            results[worker.task] = {"ok": False, "status": "timeout", "seconds": self.timeout_s}
            self._replace(worker)

    def run(self, tasks: list[dict]) -> list[dict]:
        """Grade all tasks; each worker holds at most one task at a time."""
        results: list[dict | None] = [None] * len(tasks)
        queue = deque(range(len(tasks)))
        while len(self._workers) < self.n_workers:
            self._spawn()
        while queue or any(w.task is not None for w in self._workers):
            for worker in [w for w in self._workers if w.ready and w.task is None]:
                while queue and worker.task is None and worker in self._workers:
                    index = queue.popleft()
                    self._send(worker, index, tasks[index], queue)
            waiting = [w.deadline for w in self._workers if w.task is not None or not w.ready]
            wait_s = max(0.0, min(waiting, default=0.0) - time.monotonic())
            readable, _, _ = select.select(self._workers, [], [], wait_s)
            for worker in readable:
                if worker in self._workers:
                    self._on_readable(worker, results)
            self._on_expired(time.monotonic(), results)
        return results

    def close(self) -> None:
        self._finalizer()
