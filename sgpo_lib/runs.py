"""Run folders, seeding, status and the metrics stream (conventions.md, points 4, 12, 13).

`start_run(params_file, overrides, run_id)` is the one entry every notebook and CLI stage
calls. It validates the params, derives `run_id = <params stem>-<sha1(resolved config)[:8]>`
(so a changed setting can never land in, or resume, another run's folder), creates
`outputs/<run_id>/` with `config.yaml`, `params_source.yaml`, `env.json`, `code.diff`, and
seeds `random`/`numpy`/`torch` once from the config's single `seed`. Calling it again for
the next notebook of the same run reuses the folder; a folder whose `config.yaml` differs
from the resolved config is refused naming the keys, and so is one made by other code
(`check_folder`, `code_fingerprint`) unless `output.reuse: config`. `env.json` and `code.diff`
are rewritten by every execution (`record_code`). A run id given by hand must be a safe folder
name (`paths.safe_name`), and a link under the root must not lead out of it.

STATUS names the process of a `running` run, so that a killed one reads `stale`. A resumed
training run first rewinds its step logs (`metrics.jsonl`, `evals.jsonl`, `completions/`) to
its checkpoint (`rewind_logs`), so a re-run after a kill at any point writes them exactly as an
uninterrupted run. `Progress` logs step/total and ETA lines, which the pipeline shows.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import io
from .code_fingerprint import ENV_FILE, KEY as CODE_KEY, check_code, fingerprint
from .config import RunConfig, check_variants, config_to_yaml, load_config
from .locks import identity, process_alive
from .machine import cpu_facts
from .paths import REPO_ROOT, inside, output_root, resolve, safe_name
from .schema import differing_keys, dotted_get

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "vllm", "datasets", "math-verify", "papermill",
                      "tokenizers", "numpy")


def make_run_id(params_file: str | Path, cfg: RunConfig) -> str:
    """`<params stem>-<first 8 hex of the config digest>`, deterministic."""
    return f"{Path(params_file).stem}-{cfg.digest()[:8]}"


def run_dir_for(cfg: RunConfig, run_id: str) -> Path:
    """`<outputs root>/<run_id>`; the run id must be a safe folder name, and an existing folder of
    that name must not be a link leading outside the root (no path can escape the root)."""
    root = output_root(cfg.output.root)
    path = root / safe_name(run_id, "run id")
    inside(root, path)
    return path


def start_run(
    params_file: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None
) -> tuple[RunConfig, Path]:
    """Validate params, create or reuse the run folder, seed every RNG. Returns (cfg, run_dir)."""
    cfg = check_variants(load_config(params_file, overrides), str(params_file))
    run_id = make_run_id(params_file, cfg) if run_id is None else run_id
    run_dir = run_dir_for(cfg, run_id)
    check_folder(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        io.write_text(run_dir / "config.yaml", config_to_yaml(cfg))
        io.write_text(run_dir / "params_source.yaml", resolve(params_file).read_text(encoding="utf-8"))
        io.write_json(run_dir / "overrides.json", overrides or {})
    record_code(run_dir)
    seed_everything(cfg.seed)
    configure_logging()
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto imported by transformers in a kernel
    log.info("run %s in %s", run_id, run_dir)
    return cfg, run_dir


def check_folder(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse to reuse `run_dir` for `cfg` when it holds a run of another config (FileExistsError
    naming each differing key with both values; `output.reuse` is not compared) or of other code
    (`code_fingerprint.check_code`). A folder without `config.yaml`, `env.json` or STATUS holds no run yet."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        try:
            held = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            held = None
        if not isinstance(held, dict):
            raise FileExistsError(f"{config_path}: not a readable config; give another run id / --out-dir")
        held.get("output", {}).pop("reuse", None)
        now = cfg.identity()
        diff = differing_keys(held, now)
        if diff:
            shown = "; ".join(f"{k}: {dotted_get(held, k)!r} there, {dotted_get(now, k)!r} here" for k in diff[:12])
            raise FileExistsError(
                f"{run_dir}: holds a run with a different config ({len(diff)} keys differ: {shown}); pick another "
                "run id / --out-dir, or leave run_id None (the default id is derived from the config)")
    if any((run_dir / name).exists() for name in ("config.yaml", ENV_FILE, "STATUS")):
        check_code(run_dir, cfg.output.reuse)


def record_code(run_dir: Path) -> None:
    """`env.json` and `code.diff` of the code executing now: rewritten by every execution, so they
    describe the last one (the fingerprint that `check_folder` compares is in `env.json`)."""
    io.write_json(Path(run_dir) / ENV_FILE, environment())
    io.write_text(Path(run_dir) / "code.diff", _git("diff", "HEAD"))


def seed_everything(seed: int) -> None:
    """Seed `random`, `numpy` and `torch` once; every other stream derives its own seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


PROGRESS_ENV = "SGPO_PROGRESS"  # set by the pipeline: its notebooks' kernels also log to this file, which it tails


def configure_logging(level: int = logging.INFO) -> None:
    """A plain stderr handler for the `sgpo_lib` logger (idempotent; notebooks show it), and a
    file handler on `$SGPO_PROGRESS` when the pipeline set it."""
    logger = logging.getLogger("sgpo_lib")
    fmt = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_sgpo", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        handler._sgpo = True
        logger.addHandler(handler)
    progress = os.environ.get(PROGRESS_ENV)
    if progress and not any(getattr(h, "baseFilename", None) == str(Path(progress).resolve()) for h in logger.handlers):
        file_handler = logging.FileHandler(progress, encoding="utf-8")
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    logger.setLevel(level)


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


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment() -> dict[str, Any]:
    """Versions, device, CPU facts (`machine.cpu_facts`) and git commit for `env.json`."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                versions[name] = metadata.version(name + "-cpu")
            except metadata.PackageNotFoundError:
                versions[name] = None
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "cuda_devices": torch.cuda.device_count(),
        "cpu": cpu_facts(),
        "git_commit": _git("rev-parse", "HEAD").strip(),
        "git_dirty": bool(_git("status", "--porcelain").strip()),
        CODE_KEY: fingerprint(),
    }


# ---------------------------------------------------------------- status


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
        io.write_text(path, text)
    except io.DiskFullError:  # no room for a temporary file: STATUS takes its own blocks
        io.overwrite(path, text)


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


# ---------------------------------------------------------------- metrics


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
        io.append_jsonl(self.path, row)
        for sink in self.sinks:
            sink.log(row)
        return row

    def read(self) -> list[dict[str, Any]]:
        return io.read_jsonl(self.path, tolerate_torn_tail=True) if self.path.exists() else []


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        return v.item()
    if isinstance(v, (str, int, float, bool, type(None), list, dict)):
        return v
    return json.loads(json.dumps(v, default=str))


# ---------------------------------------------------------------- resuming and completions

LOGS_BY_STEP = ("metrics.jsonl", "evals.jsonl", "alpha.jsonl")


def rewind_logs(run_dir: Path, step: int) -> None:
    """Make the step logs of a resumed run what they were at checkpoint `step` (-1: no checkpoint,
    the run starts over): rows past it go from every JSONL and `completions/` files past it go,
    so the re-run writes them exactly once."""
    run_dir = Path(run_dir)
    for name in LOGS_BY_STEP:
        path = run_dir / name
        if path.exists():
            io.write_jsonl(path, [r for r in io.read_jsonl(path, tolerate_torn_tail=True) if r.get("step", 0) <= step])
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
    io.write_jsonl(path, rows)
    return path


def _strategy_text(strategy) -> str:
    return strategy.strategy if strategy is not None else ""


def read_completions(run_dir: Path, last: int = 1):
    """The completion tables of the `last` logged steps of a run (a pandas DataFrame)."""
    import pandas as pd

    files = sorted((Path(run_dir) / "completions").glob("step_*.jsonl"))[-last:] if last else []
    return pd.DataFrame([r for f in files for r in io.read_jsonl(f)])
