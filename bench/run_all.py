"""Run every benchmark, each in its own subprocess, and print one summary table.

Issue 7 ("Done when": one command, all CPU benchmarks in <= 10 minutes on 2 cores, GPU ones
only where a GPU is present). CPU: the distillation loss at 4096 x 32000 x 512 (one warm-up
and one timed step per variant, to fit the budget), rollout throughput (tiny random Qwen2,
transformers and vLLM), the grader, the training step (ours vs TRL), the teacher source and
the demo's notebook timings. GPU (when `torch.cuda.is_available()`): the loss at
8192 x 151936 x 1536 (Qwen2.5-1.5B's vocabulary and width) and rollouts on Qwen2.5-1.5B from a
local folder (`--gpu-model-dir` or `SGPO_BENCH_GPU_MODEL`; nothing is downloaded). A
benchmark that fails, hangs past `--timeout` or is not there yet is reported as such and the
others still run. Torch threads: `--threads` (default 1) for rollouts, train step and teacher
(small models: on a shared 2-core machine a second thread mostly adds contention), and
`--loss-threads` (default 2) for the loss benchmark's large matmuls; the grader has none.

    python -m bench.run_all [--quick] [--threads 1] [--loss-threads 2] [--only train_step teacher]
Writes outputs/bench/summary.json (jobs, rows) and one log per benchmark in outputs/bench/logs/.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.summary import COLUMNS, SUMMARY_FILE, row, rows_for, status_row

GPU_MODEL_ENV = "SGPO_BENCH_GPU_MODEL"
QWEN_1_5B = {"vocab": "151936", "hidden": "1536"}
DEFAULT_TIMEOUT_S = 600
MTIME_SLACK_S = 1.0  # file-system timestamp granularity when telling a fresh JSON from an old one


@dataclass(frozen=True)
class Job:
    """One benchmark run: `python -m bench.<module> *args`, results in `outputs/bench/<name>.json`."""

    name: str
    module: str
    args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    writes: Path | None = None  # where the child writes its JSON when not at the standard place
    skip: str = ""  # a reason not to run it


def cpu_jobs(quick: bool, threads: int, loss_threads: int) -> list[Job]:
    """The CPU benchmarks; `quick` shrinks sizes and repeats for a smoke run."""
    t, lt = ("--threads", str(threads)), ("--threads", str(loss_threads))
    size = ("--tokens", "1024") if quick else ("--tokens", "4096")
    step = ("--repeats", "1", "--rounds", "1", "--max-new-tokens", "16") if quick else ("--repeats", "3", "--rounds", "2")
    return [
        Job("losses", "bench_losses", (*size, "--vocab", "32000", "--hidden", "512", "--repeats", "1", *lt)),
        Job("rollouts", "bench_rollouts", ("--repeats", "1", "--max-new-tokens", "16") + t if quick else ("--repeats", "3") + t),
        Job("grader", "bench_grader", ("--repeats", "1", "--limit", "200") if quick else ()),
        Job("train_step", "bench_train_step", step + t),
        Job("teacher", "bench_teacher", step + t),
        Job("demo", "bench_demo"),
    ]


def gpu_jobs(model_dir: str | None, tmp: Path) -> list[Job]:
    """The GPU benchmarks; rollouts on Qwen2.5-1.5B need its local folder."""
    out = str(_bench_dir() / "losses_gpu.json")
    losses = Job("losses_gpu", "bench_losses", ("--device", "cuda", "--tokens", "8192", "--vocab", QWEN_1_5B["vocab"],
                                                "--hidden", QWEN_1_5B["hidden"], "--repeats", "3", "--out", out))
    if not model_dir or not Path(model_dir).is_dir():
        reason = f"no local Qwen2.5-1.5B folder (pass --gpu-model-dir or set {GPU_MODEL_ENV}; nothing is downloaded)"
        return [losses, Job("rollouts_gpu", "bench_rollouts", skip=reason)]
    rollouts = Job("rollouts_gpu", "bench_rollouts", ("--model-dir", model_dir, "--repeats", "3"),
                   env={"SGPO_OUTPUTS": str(tmp)}, writes=tmp / "bench" / "rollouts.json")
    return [losses, rollouts]


def _bench_dir() -> Path:
    from sgpo_lib.core.paths import outputs_dir

    return outputs_dir() / "bench"


def _wait(cmd: list[str], log: Path, env: dict, timeout_s: float) -> int | str:
    """Run `cmd` in its own process group; on timeout kill that group. Exit code or "timeout"."""
    from sgpo_lib.core.paths import REPO_ROOT

    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "timeout"


def run_job(job: Job, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run one benchmark; its status (ok, failed, missing, skipped), wall time and log."""
    if job.skip:
        return {"status": "skipped", "reason": job.skip}
    if importlib.util.find_spec(f"bench.{job.module}") is None:
        return {"status": "missing", "reason": f"bench/{job.module}.py not found"}
    target = _bench_dir() / f"{job.name}.json"
    written = job.writes or target
    log = _bench_dir() / "logs" / f"{job.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **job.env}
    started, t0 = time.time() - MTIME_SLACK_S, time.perf_counter()
    rc = _wait([sys.executable, "-m", f"bench.{job.module}", *job.args], log, env, timeout_s)
    fresh = written.exists() and written.stat().st_mtime >= started
    if fresh and written != target:
        shutil.copyfile(written, target)
    job_out = {"rc": rc, "wall_s": time.perf_counter() - t0, "log": str(log), "args": list(job.args)}
    if rc == 0 and fresh:
        return {"status": "ok", **job_out}
    reason = f"exit {rc}" if rc != 0 else "no fresh results JSON"
    return {"status": "failed", "reason": f"{reason}; see {log}", **job_out}


def _rows(name: str, job: dict) -> list[dict]:
    if job["status"] != "ok":
        return [status_row(name, job)]
    data = json.loads((_bench_dir() / f"{name}.json").read_text(encoding="utf-8"))
    return rows_for(name, data)


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    """Rows as a fixed-width text table."""
    cells = [[_fmt(r[c]) for c in COLUMNS] for r in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(COLUMNS)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in [list(COLUMNS)] + cells)


def run(quick: bool = False, threads: int = 1, loss_threads: int = 2, only: list[str] | None = None,
        gpu_model_dir: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run the benchmarks (CPU always, GPU when present); returns what summary.json holds."""
    import torch

    from sgpo_lib.core.fileio import write_json

    load_before, t0, gpu = os.getloadavg(), time.perf_counter(), torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as tmp:
        jobs = cpu_jobs(quick, threads, loss_threads) + (gpu_jobs(gpu_model_dir, Path(tmp)) if gpu else [])
        results = {}
        for job in jobs:
            if only and job.name not in only:
                continue
            print(f"[run_all] {job.name} ...", flush=True)
            results[job.name] = run_job(job, timeout_s)
            print(f"[run_all] {job.name}: {results[job.name]['status']} "
                  f"({results[job.name].get('wall_s', 0.0):.0f} s)", flush=True)
    rows = [r for name, job in results.items() for r in _rows(name, job)]
    if not gpu:
        rows.append(row("gpu", "skipped: no GPU (torch.cuda.is_available() is False)"))
    summary = {"created": datetime.datetime.now().isoformat(timespec="seconds"), "quick": quick, "threads": threads,
               "loss_threads": loss_threads,
               "gpu": torch.cuda.get_device_name(0) if gpu else None, "loadavg_before": load_before,
               "loadavg_after": os.getloadavg(), "total_s": time.perf_counter() - t0, "jobs": results, "rows": rows}
    write_json(_bench_dir() / SUMMARY_FILE, summary)
    return summary


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and one repeat (smoke run)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the rollout, train-step and teacher benchmarks")
    p.add_argument("--loss-threads", type=int, default=2, help="torch threads of the loss benchmark (large matmuls)")
    p.add_argument("--only", nargs="+", default=None, help="benchmark names to run (default: all)")
    p.add_argument("--gpu-model-dir", default=os.environ.get(GPU_MODEL_ENV), help="local Qwen2.5-1.5B folder")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per benchmark before it is killed")
    a = p.parse_args(argv)
    summary = run(a.quick, a.threads, a.loss_threads, a.only, a.gpu_model_dir, a.timeout)
    print(table(summary["rows"]))
    print(f"total {summary['total_s']:.0f} s, torch threads {a.threads} (losses {a.loss_threads}), load average before "
          f"{summary['loadavg_before'][0]:.2f} after {summary['loadavg_after'][0]:.2f}; "
          f"written: {_bench_dir() / SUMMARY_FILE}")
    return summary


if __name__ == "__main__":
    main()
