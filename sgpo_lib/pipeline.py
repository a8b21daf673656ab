"""Run the numbered notebook sequence for one params file with papermill.

`run_pipeline(params_file, overrides, run_id)` executes `notebooks/00_*.ipynb` ...
`06_report.ipynb` in order into `outputs/<run_id>/NN_<name>.ipynb` (papermill injects the
`parameters` cell), then renders `report.html`. The run's STATUS is `running` while it goes,
`failed` with the error if a notebook raises (the executed notebook shows where), `done` at
the end. A run already `done` is not redone unless `force`. The heavy stages are cached
(students, strategies, and every finished training run), so a re-run after a failure
resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from . import io
from .config import load_config
from .paths import NOTEBOOKS_DIR, resolve
from .runs import make_run_id, read_status, run_dir_for, write_status

log = logging.getLogger(__name__)


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def run_pipeline(params_file: str | Path, overrides: dict[str, Any] | None = None, run_id: str | None = None,
                 only: list[str] | None = None, force: bool = False) -> Path:
    """Execute the notebooks; returns the path of `report.html`."""
    import papermill as pm

    from .report import render_report

    cfg = load_config(params_file, overrides)
    run_id = run_id or make_run_id(params_file, cfg)
    run_dir = run_dir_for(cfg, run_id)
    if read_status(run_dir) == "done" and not force and (run_dir / "report.html").exists():
        log.info("%s is done; pass force=True to redo it", run_dir)
        return run_dir / "report.html"
    run_dir.mkdir(parents=True, exist_ok=True)
    params = {"params_file": str(resolve(params_file)), "overrides": overrides or {}, "run_id": run_id}
    timings = {}
    for nb in notebooks():
        if only and nb.stem not in only:
            continue
        write_status(run_dir, "running", f"notebook: {nb.name}")
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(nb), str(run_dir / nb.name), parameters=params, cwd=str(NOTEBOOKS_DIR),
                                kernel_name="python3", progress_bar=False, log_output=False)
        except Exception as e:
            write_status(run_dir, "failed", f"notebook: {nb.name}\n{type(e).__name__}: {e}")
            raise
        timings[nb.stem] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.1f s", nb.name, timings[nb.stem])
    io.write_json(run_dir / "timings.json", timings)
    report = render_report(run_dir)
    write_status(run_dir, "done")
    return report
