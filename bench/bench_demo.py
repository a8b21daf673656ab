"""The whole demo: wall time per notebook, read from the newest toy-demo run.

Issue 7, item 6. `sgpo_lib.workflow.pipeline.run_pipeline` writes `timings.json` (notebook stem ->
seconds) into the run folder when the notebook sequence has finished; this reads the newest
`outputs/toy-demo-*/timings.json` (by modification time), or the one of a given run folder,
and reports the per-notebook times and their total. Nothing is run here: the demo takes
longer than the benchmark budget, so run it first (`python -m sgpo_lib ...` / `make demo`).

    python -m bench.bench_demo [--run-dir outputs/toy-demo-xxxx]
Writes outputs/bench/demo.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

RUN_GLOB = "toy-demo-*/timings.json"


def newest_timings(outputs: Path) -> Path | None:
    """The most recently written `toy-demo-*/timings.json` under `outputs`, or None."""
    found = sorted(outputs.glob(RUN_GLOB), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run(run_dir: str | Path | None = None) -> dict:
    """Per-notebook wall times of `run_dir` (default: the newest toy-demo run), or `missing`."""
    from sgpo_lib.core.fileio import read_json
    from sgpo_lib.core.paths import outputs_dir

    path = Path(run_dir) / "timings.json" if run_dir else newest_timings(outputs_dir())
    if path is None or not path.exists():
        where = path or outputs_dir() / RUN_GLOB
        return {"missing": f"no demo timings at {where}: run the demo pipeline first"}
    timings = read_json(path)
    if not isinstance(timings, dict) or not all(isinstance(v, (int, float)) for v in timings.values()):
        raise ValueError(f"{path}: expected a JSON object of notebook name -> seconds")
    return {"run_dir": str(path.parent), "timings_s": timings, "total_s": float(sum(timings.values()))}


def main(argv=None) -> dict:
    from sgpo_lib.core.fileio import write_json
    from sgpo_lib.core.paths import outputs_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run-dir", default=None, help="run folder (default: the newest outputs/toy-demo-*)")
    p.add_argument("--out", default=None, help="JSON path (default outputs/bench/demo.json)")
    a = p.parse_args(argv)
    out = run(a.run_dir)
    path = a.out or outputs_dir() / "bench" / "demo.json"
    write_json(path, out)
    if "missing" in out:
        print(out["missing"])
    else:
        print("\n".join(f"{name:<28}{s:>10.1f} s" for name, s in out["timings_s"].items()))
        print(f"{'total':<28}{out['total_s']:>10.1f} s  ({out['run_dir']})")
    print(f"written: {path}")
    return out


if __name__ == "__main__":
    main()
