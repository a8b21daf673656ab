"""Run the numbered notebook sequence for one params file with papermill.

`run_pipeline(params_file, overrides, run_id)` executes `notebooks/00_*.ipynb` ...
`07_report.ipynb` in order into `outputs/<run_id>/NN_<name>.ipynb` (papermill injects the
`parameters` cell), then renders `report.html`. The params are validated first, with every
training run the experiment will make. The pipeline holds the run folder's lock (a second
pipeline on the same run fails at once). The run's STATUS is `running` (with the pid) while
it goes, `failed` with the error if a notebook raises (the executed notebook shows where),
`done` at the end, or `partial` when a training run of the experiment did not finish (failed,
or its folder held by another process: `results.missing_runs` names them, the command exits
non-zero). `only` runs some notebooks and leaves STATUS `partial`; a run is `done`
only when every notebook ran, so a plain `pipeline` after a partial one runs them all.
A folder made by other code or holding another config is refused (`runs.check_folder`; the
error names the two ways on). A run already `done` is not redone unless `force`, which removes
the previous execution first (trained runs included; the content-keyed cache stays).
`SGPO_OUTPUTS` is pinned to an absolute path before any kernel starts. The heavy stages are cached (students,
strategies, and every finished training run), so a re-run after a failure resumes where it
stopped. `timings.json` keeps the last time of every notebook.

Progress: the notebooks' kernels log to `progress.log` in the run folder (`SGPO_PROGRESS`),
and the pipeline prints each new line with the notebook's name, or a `running` line after
`HEARTBEAT_S` seconds without one. The kernels talk to papermill over local IPC sockets
(`ipc_kernel_manager`), not TCP ports.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from ..analysis.report import REPORT_NOTEBOOK, render_report
from ..analysis.results import missing_runs
from ..config.run import check_variants, load_config
from ..core import fileio
from ..core.code_fingerprint import CodeChangedError
from ..core.fileio import DiskFullError
from ..core.locks import LOCK_FILE, run_lock
from ..core.paths import NOTEBOOKS_DIR, pin_outputs, resolve
from ..core.run_folder import PROGRESS_ENV, read_status, write_status
from .runs import check_folder, make_run_id, run_dir_for

log = logging.getLogger(__name__)

ONE_LINE_ERRORS = {c.__name__: c for c in (DiskFullError, CodeChangedError)}  # raised again as one line
HEARTBEAT_S = 8.0  # a line at least every 10 s, with the polling on top


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def selected(only: list[str] | None) -> list[Path]:
    """The notebooks to run: all, or those whose stem is in `only` (an unknown stem raises)."""
    stems = [nb.stem for nb in notebooks()]
    unknown = [s for s in only or [] if s not in stems]
    if unknown:
        raise ValueError(f"--only takes notebook stems; unknown {unknown}; choose from {stems}")
    return [nb for nb in notebooks() if not only or nb.stem in only]


def is_complete(run_dir: Path) -> bool:
    """STATUS done, `report.html` present and every notebook timed (a partial run is not complete)."""
    timings = fileio.read_json(run_dir / "timings.json") if (run_dir / "timings.json").exists() else {}
    return (read_status(run_dir) == "done" and (run_dir / "report.html").exists()
            and all(nb.stem in timings for nb in notebooks()))


def _elapsed(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def _tail(path: Path, offset: int, stem: str, stop: threading.Event, t0: float) -> None:
    """Print the lines of `path` past `offset` as `[stem +elapsed] message`, or a heartbeat after a quiet spell."""
    last, buffer = time.monotonic(), ""
    while True:
        stopping = stop.wait(min(0.5, HEARTBEAT_S / 4))
        if path.exists():
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(offset)
                buffer += f.read()
                offset = f.tell()
        *lines, buffer = buffer.split("\n")
        for line in lines:
            parts = line.split(" ", 3)
            log.info("[%s +%s] %s", stem, _elapsed(time.monotonic() - t0), parts[3] if len(parts) == 4 else line)
            last = time.monotonic()
        if stopping:
            return
        if time.monotonic() - last >= HEARTBEAT_S:
            log.info("[%s +%s] running", stem, _elapsed(time.monotonic() - t0))
            last = time.monotonic()


@contextmanager
def progress(run_dir: Path, stem: str) -> Iterator[None]:
    """While a notebook runs: its kernel logs to `run_dir/progress.log`, which is tailed here."""
    path, before = Path(run_dir) / "progress.log", os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(path)
    stop = threading.Event()
    offset = path.stat().st_size if path.exists() else 0
    thread = threading.Thread(target=_tail, args=(path, offset, stem, stop, time.monotonic()), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


def ipc_kernel_manager() -> type:
    """nbclient's kernel manager talking to the kernel over local IPC sockets instead of TCP: no
    network port, and no "Kernel is running over TCP without encryption" warning from the kernel.
    Each kernel gets socket paths of its own (jupyter_client's default, `kernel-ipc-N` in the
    working folder, is shared: two pipelines at once talk to each other's kernels)."""
    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:
            return os.path.join(tempfile.gettempdir(), f"sgpo-kernel-{uuid.uuid4().hex}-ipc")

    return IPCKernelManager


def _execute(nb: Path, run_dir: Path, params: dict) -> float:
    """Run one notebook into the run folder; returns its seconds (STATUS failed if it raises)."""
    write_status(run_dir, "running", f"notebook: {nb.name}")
    t0 = time.perf_counter()
    try:
        with progress(run_dir, nb.stem):
            import papermill as pm  # its first import takes seconds on a loaded machine: under the heartbeat

            pm.execute_notebook(str(nb), str(run_dir / nb.name), parameters=params, cwd=str(NOTEBOOKS_DIR),
                                kernel_name="python3", progress_bar=False, log_output=False,
                                kernel_manager_class=ipc_kernel_manager())
    except BaseException as e:
        write_status(run_dir, "failed", f"notebook: {nb.name}\n{type(e).__name__}: {e}")
        one_line = ONE_LINE_ERRORS.get(getattr(e, "ename", ""))
        if one_line is not None:  # the kernel's message says how to go on: without its traceback
            raise one_line(f"{nb.name}: {e.evalue}") from None
        raise
    return round(time.perf_counter() - t0, 1)


def clear(run_dir: Path) -> None:
    """Remove what a previous execution left in `run_dir` (its lock stays): `force` redoes the
    trained runs too, which would otherwise be skipped as done or resumed from their checkpoints."""
    old = [p for p in Path(run_dir).iterdir() if p.name != LOCK_FILE]
    for path in old:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if old:
        log.info("force: removed the %d entries of the previous execution of %s", len(old), run_dir)


def run_pipeline(params_file: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                 only: list[str] | None = None, force: bool = False) -> Path:
    """Execute the notebooks; returns the path of `report.html` (the run folder if no report yet)."""
    pin_outputs()
    cfg = check_variants(load_config(params_file, overrides), str(params_file))
    run_id = make_run_id(params_file, cfg) if run_id is None else run_id
    run_dir, todo = run_dir_for(cfg, run_id), selected(only)
    with run_lock(run_dir):
        if force and not only:  # with --only, the other notebooks' results stay
            clear(run_dir)
        check_folder(run_dir, cfg)
        if not only and not force and is_complete(run_dir):
            log.info("%s is done; pass --force (force=True) to redo it", run_dir)
            return run_dir / "report.html"
        params = {"params_file": str(resolve(params_file)), "overrides": overrides or {}, "run_id": run_id}
        timings_path = run_dir / "timings.json"
        timings = fileio.read_json(timings_path) if timings_path.exists() else {}
        for i, nb in enumerate(todo, 1):
            log.info("notebook %d/%d: %s", i, len(todo), nb.name)
            timings[nb.stem] = _execute(nb, run_dir, params)
            fileio.write_json(timings_path, timings)
            log.info("%s done in %.1f s", nb.name, timings[nb.stem])
        report = render_report(run_dir) if todo[-1].stem == REPORT_NOTEBOOK else run_dir
        missing = missing_runs(run_dir)
        if only:
            write_status(run_dir, "partial", f"notebooks run: {sorted(timings)}; run the pipeline without --only "
                                             "to complete the run")
        elif missing:
            write_status(run_dir, "partial", f"training runs that did not finish: {missing}; run the pipeline "
                                             "again to retry them (finished runs are kept)")
        else:
            write_status(run_dir, "done")
    return report
