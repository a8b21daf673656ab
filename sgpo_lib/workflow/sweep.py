"""Sweeps as plain data: a grid of override dicts, one isolated folder per run, a table.

`grid(**axes)` returns the override dicts of the Cartesian product; `run_name` turns one
into `distill.estimator=sampled_seed=1` (`paths.run_name`). `run_sweep` runs each variant in its own folder
(in-process, or as `python -m sgpo_lib train` subprocesses with `parallel > 1`, one GPU each
when there are GPUs, else an equal share of the CPU cores); a variant whose STATUS is `done`
is skipped, and a failure is recorded in its STATUS while the others go on. Every variant's
folder name (a safe name: grid values with `/` or `..` are refused), config and existing folder
(another config or other code there is refused, `runs.check_folder`) are checked before the
first run starts. Children run in their own process group, die with the sweep
(Linux `PR_SET_PDEATHSIG`, then they kill their group) and append to `stdout.log`. Reading a
sweep back (`collect`, `summary`) is `results.py`'s.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from ..analysis.results import collect
from ..config.run import load_config
from ..core.locks import RunLockedError, holder
from ..core.paths import REPO_ROOT, inside, run_name
from ..core.run_folder import read_status, write_status
from .runs import check_folder

log = logging.getLogger(__name__)
_CHILDREN: set[subprocess.Popen] = set()  # this sweep's running `train` children


def grid(**axes: list[Any]) -> list[dict[str, Any]]:
    """Cartesian product of dotted-key axes.

    Example:
        >>> grid(**{"distill.coef": [0, 1], "seed": [0]})
        [{'distill.coef': 0, 'seed': 0}, {'distill.coef': 1, 'seed': 0}]
    """
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


WAKE_S = 0.2  # how often the sweep's main thread wakes while its runs go on (to act on signals)


def _die_with_parent() -> None:
    """In a sweep's child, before exec: receive SIGTERM when the sweep dies (even by SIGKILL)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG (Linux)


def _spawn(cmd: list[str], env: dict, log_path: Path) -> int:
    """Run `cmd` in its own process group, appending to `log_path`; returns its exit code."""
    with open(log_path, "a") as logf:  # append: a re-run never truncates the log of an earlier attempt
        logf.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    _CHILDREN.add(proc)
    try:
        return proc.wait()
    finally:
        _CHILDREN.discard(proc)


def kill_children() -> None:
    """SIGKILL the process group of every running child of this sweep (on Ctrl-C, SIGTERM)."""
    for proc in list(_CHILDREN):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def device_groups(devices: list[str], gpus_per_run: int) -> list[str]:
    """`CUDA_VISIBLE_DEVICES` values of the runs that fit side by side, `gpus_per_run` GPUs each.

    Example:
        >>> device_groups([str(i) for i in range(8)], 4)
        ['0,1,2,3', '4,5,6,7']
    """
    if gpus_per_run > max(1, len(devices)) or (gpus_per_run > 1 and not devices):
        raise ValueError(f"experiment.gpus_per_run = {gpus_per_run}, but {len(devices)} GPUs are visible: "
                         "lower experiment.gpus_per_run or run on a node with that many GPUs")
    return [",".join(devices[i : i + gpus_per_run]) for i in range(0, len(devices) - gpus_per_run + 1, gpus_per_run)]


def accelerate_launch(ranks: int, port: int, log_dir: Path) -> list[str]:
    """This interpreter's `accelerate launch` of `ranks` processes on one machine, before its target (a script,
    or `-m module`). Its own rendezvous port; precision and dynamo from the params, not from a user's
    accelerate config file; the elastic agent's per-rank folders under `log_dir` (by default torch makes a new
    `/tmp/torchelastic_*` for every launch and leaves it there)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(ranks),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
            str(port), "--log_dir", str(log_dir)]


def _launcher(gpus: int, port: int, out_dir: Path) -> list[str]:
    """`python -m sgpo_lib` alone, or under `accelerate launch` on `gpus` GPUs (launch folders in the run's `launch/`)."""
    if gpus == 1:
        return [sys.executable, "-m", "sgpo_lib"]
    return accelerate_launch(gpus, port, out_dir / "launch") + ["-m", "sgpo_lib"]


def _subprocess_run(params_file: str, overrides: dict, out_dir: Path, device: str | None, cpu_threads: int,
                    port: int = 29500) -> None:
    env = dict(os.environ)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    else:  # runs side by side on the CPU share its cores (oversubscribed torch threads run many times slower)
        env["OMP_NUM_THREADS"] = str(cpu_threads)
    gpus = len(device.split(",")) if device else 1
    cmd = _launcher(gpus, port, out_dir) + ["train", "--params", str(params_file), "--out-dir", str(out_dir)]
    for k, v in overrides.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    out_dir.mkdir(parents=True, exist_ok=True)
    code = _spawn(cmd, env, out_dir / "stdout.log")
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}; see {out_dir / 'stdout.log'}")


def _check_variants(params_file: str, variants: list[dict], base_overrides: dict, root: Path) -> list[str]:
    """Every variant's folder name, config and existing folder, checked before the first run starts:
    a folder that holds a run of another config (a rerun with other `--set` values) or of other
    code is refused (`runs.check_folder`), so its old numbers never show under new settings."""
    names = [run_name(v) for v in variants]
    for name, v in zip(names, variants):
        check_folder(inside(root, root / name), load_config(params_file, {**base_overrides, **v}))
    return names


def run_sweep(
    params_file: str | Path,
    variants: list[dict[str, Any]],
    root: Path,
    *,
    base_overrides: dict[str, Any] | None = None,
    parallel: int = 1,
    train_fn: Callable[[str, dict, Path], Any] | None = None,
    gpus_per_run: int = 1,
) -> pd.DataFrame:
    """Run each variant into `root/<run_name>`; skip finished ones; record failures.

    `train_fn(params_file, overrides, out_dir)` runs one variant in-process (needed with
    `parallel == 1`; the project's is `stages.train_variant`, passed in by its callers so that
    this module does not depend on the stages); with `parallel > 1` each variant runs in a
    `python -m sgpo_lib train` subprocess. Every variant is validated first. A folder in use by
    another live process is left alone (counted as failed). With GPUs, each subprocess holds a
    group of `gpus_per_run` GPUs (`device_groups`) while it runs; more than one launches it under
    `accelerate launch` on them, as many runs at once as groups fit the node. Returns `collect(root)`.
    """
    devices = _gpu_ids()
    if gpus_per_run > 1:
        parallel = len(device_groups(devices, gpus_per_run))
    if parallel == 1 and train_fn is None:
        raise ValueError("run_sweep(parallel=1) needs train_fn, e.g. sgpo_lib.workflow.stages.train_variant")
    root, base_overrides = Path(root), base_overrides or {}
    names = _check_variants(str(params_file), variants, base_overrides, root)
    root.mkdir(parents=True, exist_ok=True)  # valid: collected at the end even when there is nothing to run
    free = queue.Queue()  # a group is taken by one run at a time
    for i, group in enumerate(device_groups(devices, gpus_per_run) if devices else []):
        free.put((group, 29500 + i))
    done = sum(read_status(root / n) == "done" for n in names)
    if done:
        log.info("sweep: %d of %d runs already done, read from their folders", done, len(names))

    def one(i: int) -> None:
        out_dir, overrides = root / names[i], {**base_overrides, **variants[i]}
        if read_status(out_dir) == "done":
            log.debug("sweep: %s done, skipped", out_dir.name)
            return
        if (busy := holder(out_dir)) is not None:
            log.error("sweep: %s is in use by pid %s; left alone", out_dir.name, busy["pid"])
            return
        try:
            if parallel == 1:
                train_fn(str(params_file), overrides, out_dir)
            else:
                group, port = free.get() if devices else (None, 29500)
                try:
                    _subprocess_run(str(params_file), overrides, out_dir, group,
                                    max(1, (os.cpu_count() or 1) // parallel), port)
                finally:
                    if group is not None:
                        free.put((group, port))
        except RunLockedError as e:  # another process took the folder meanwhile: its STATUS is its own
            log.error("sweep: %s", e)
        except Exception as e:  # a failed run is recorded and the sweep goes on
            log.error("sweep: %s failed: %s", out_dir.name, e)
            if read_status(out_dir) != "failed":
                write_status(out_dir, "failed", f"{type(e).__name__}: {e}")

    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        futures = [pool.submit(one, i) for i in range(len(variants))]
        while wait(futures, timeout=WAKE_S).not_done:  # the kernel may hand Ctrl-C to a worker thread: the
            pass                                          # main thread must wake to raise KeyboardInterrupt
        for f in futures:
            f.result()
    except BaseException:  # Ctrl-C: start nothing more and take the running children down first
        pool.shutdown(wait=False, cancel_futures=True)
        kill_children()
        raise
    pool.shutdown()
    return collect(root, require_complete=False)


def unfinished(root: Path, variants: list[dict[str, Any]]) -> dict[str, str]:
    """`{run name: status}` of the variants whose STATUS is not `done`."""
    statuses = {run_name(v): read_status(Path(root) / run_name(v)) for v in variants}
    return {name: status or "missing" for name, status in statuses.items() if status != "done"}


def _gpu_ids() -> list[str]:
    try:
        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []
