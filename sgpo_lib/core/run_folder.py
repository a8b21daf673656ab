"""The run folder as a record (conventions.md, points 4 and 12): STATUS, the metrics stream,
the step logs and the completion tables.

STATUS names the process of a `running` run, so that a killed one reads `stale`. A resumed
training run first rewinds its step logs (`metrics.jsonl`, `evals.jsonl`, `eval_problems.jsonl`, `completions/`) to
its checkpoint (`rewind_logs`), so a re-run after a kill at any point writes them exactly as an
uninterrupted run. `Progress` logs step/total and ETA lines, which the pipeline shows.
Creating a run folder (`start_run`) is `sgpo_lib.workflow.runs`; this module only reads and
writes what is in one, so that the trainer and the analysis can use it from below the workflow.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from . import fileio
from .code_fingerprint import fingerprint
from .locks import identity, process_alive

log = logging.getLogger(__name__)


PROGRESS_ENV = "SGPO_PROGRESS"  # set by the pipeline: its notebooks' kernels also log to this file, which it tails


class Progress:
    """Logs `<desc>: step i/total, s/step, ETA` (at most one line per `every_s`, and the last step)."""

    def __init__(self, desc: str, total: int, initial: int = 0, every_s: float = 2.0):
        self.desc, self.total, self.initial, self.every_s = desc, total, initial, every_s
        self.t0 = self.last = time.monotonic()

    def update(self, i: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s and i != self.total:
            return
        self.last = now
        per = (now - self.t0) / max(i - self.initial, 1)
        eta = time.strftime("%H:%M:%S", time.gmtime(per * (self.total - i)))
        log.info("%s: step %d/%d, %.1f s/step, ETA %s", self.desc, i, self.total, per, eta)


def write_status(run_dir: Path, state: str, detail: str = "") -> None:
    """STATUS holds `running|partial|done|failed` on its first line, then details (the error) and
    the code fingerprint (`code:`); a `running` one also names the process (`pid:`, `pid_start:`) so
    that a reader can tell a live run from one that was killed."""
    detail = f"code: {fingerprint()}\n{detail}"
    if state == "running":
        me = identity()
        detail = f"pid: {me['pid']}\npid_start: {me['start']}\nsince: {me['since']}\n{detail}"
    path, text = Path(run_dir) / "STATUS", f"{state}\n{detail}".rstrip() + "\n"
    try:
        fileio.write_text(path, text)
    except fileio.DiskFullError:  # no room for a temporary file: STATUS takes its own blocks
        fileio.overwrite(path, text)


def read_status(run_dir: Path) -> str:
    """The first line of STATUS, "" when there is none, and `stale` for a `running` one whose
    process is gone (killed: the next run resumes it)."""
    path = Path(run_dir) / "STATUS"
    if not path.exists():
        return ""
    state, *lines = path.read_text(encoding="utf-8").split("\n")
    state = state.strip()
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    if state == "running" and fields.get("pid", "").isdigit() and not process_alive(int(fields["pid"]), fields.get("pid_start")):
        return "stale"
    return state


@contextmanager
def status_guard(run_dir: Path, stage: str) -> Iterator[None]:
    """Mark the run `running` during `stage`, `failed` with the traceback if it raises."""
    write_status(run_dir, "running", f"stage: {stage}")
    try:
        yield
    except BaseException:
        write_status(run_dir, "failed", f"stage: {stage}\n{traceback.format_exc()}")
        raise


class NullSink:
    """A tracking sink that does nothing (same signature as a real one: no `if wandb:`)."""

    def log(self, row: dict[str, Any]) -> None:
        pass


class ConsoleSink:
    """Logs a compact line of chosen keys for each row."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys

    def log(self, row: dict[str, Any]) -> None:
        parts = [f"{k}={row[k]:.4g}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}" for k in self.keys if k in row]
        log.info("%s", " ".join(parts))


class MetricsLogger:
    """Appends one JSON object per step to `metrics.jsonl` (always with `step`) and fans out to sinks."""

    def __init__(self, path: str | Path, sinks: tuple[Any, ...] = ()):
        self.path = Path(path)
        self.sinks = sinks or (NullSink(),)

    def log(self, step: int, **values: Any) -> dict[str, Any]:
        row = {"step": int(step), "time": time.time(), **{k: _jsonable(v) for k, v in values.items()}}
        fileio.append_jsonl(self.path, row)
        for sink in self.sinks:
            sink.log(row)
        return row

    def read(self) -> list[dict[str, Any]]:
        return fileio.read_jsonl(self.path, tolerate_torn_tail=True) if self.path.exists() else []


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, (str, int, float, bool, type(None), list, dict)):
        return v
    return json.loads(json.dumps(v, default=str))


EVAL_PROBLEMS_FILE = "eval_problems.jsonl"  # per-problem outcomes of every evaluation (`method.evaluate.evaluate_rows`)
LOGS_BY_STEP = ("metrics.jsonl", "evals.jsonl", EVAL_PROBLEMS_FILE, "alpha.jsonl")


def rewind_logs(run_dir: Path, step: int) -> None:
    """Make the step logs of a resumed run what they were at checkpoint `step` (-1: no checkpoint,
    the run starts over): rows past it go from every JSONL and `completions/` files past it go,
    so the re-run writes them exactly once."""
    run_dir = Path(run_dir)
    for name in LOGS_BY_STEP:
        path = run_dir / name
        if path.exists():
            fileio.write_jsonl(path, [r for r in fileio.read_jsonl(path, tolerate_torn_tail=True) if r.get("step", 0) <= step])
    for path in sorted((run_dir / "completions").glob("step_*.jsonl")):
        if int(path.name[5:11]) > step:
            path.unlink()


def write_completions(run_dir: Path, step: int, paired, strategy_for, suffix: str = "") -> Path:
    """`completions/step_NNNNNN<suffix>.jsonl`: one row per rollout of the step (prompt, strategy,
    response, reward, grade reason), for reading what the policy wrote."""
    question = {p.id: p.problem for p in paired.problems}
    strategies = {p.id: strategy_for(p) for p in paired.problems}
    rows = [{"step": step, "problem_id": r.problem_id, "prompt": question[r.problem_id], "guided": r.guided,
             "strategy": _strategy_text(strategies[r.problem_id]) if r.guided else "",
             "response": r.text, "reward": r.reward, "grade": r.grade_reason, "pred": r.pred}
            for r in paired.rollouts]
    path = Path(run_dir) / "completions" / f"step_{step:06d}{suffix}.jsonl"
    fileio.write_jsonl(path, rows)
    return path


def _strategy_text(strategy) -> str:
    return strategy.strategy if strategy is not None else ""


def read_completions(run_dir: Path, last: int = 1):
    """The completion tables of the `last` logged steps of a run (a pandas DataFrame)."""
    files = sorted((Path(run_dir) / "completions").glob("step_*.jsonl"))[-last:] if last else []
    return pd.DataFrame([r for f in files for r in fileio.read_jsonl(f)])
