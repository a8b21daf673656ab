"""Calibrate the toy world's regime (issue 25, item 1): base, SFT warm-up and SFT+GRPO only.

For each world seed, one run folder of the demo params (with `--set` overrides), in which this
runs, in one process: stage `prepare` for the default student size only (pretraining, premise
table), the paired rollouts of the starting student (notebook 02's, for the KL shares), the
`sft_grpo` run of each seed under `main/` (which builds the SFT warm-up first), then
`workflow.regime` (the table of notebook 03, `regime.json`). No SGPO, GRPO-from-base, HPT, LUFFY
or ablation run is started or read. Prints, per world seed, the table with the paper's values
beside, and the CPU seconds (this process and its children: core-seconds, the measure that
does not depend on what else shares the machine) and wall seconds of each phase.

    OMP_NUM_THREADS=1 python -m bench.calibrate_regime --world-seeds 0,1 --seeds 0,1,2 \
        [--set world.strong_skip_rate=0.25 --set train.steps=40]
Writes outputs/bench/calibrate_regime.jsonl (appends one record per world seed).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

PARAMS = "params/toy-demo.yaml"


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (grader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """CPU and wall seconds of named phases."""

    def __init__(self):
        self.phases: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        cpu, wall = cpu_seconds(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.phases[name] = {"cpu_s": round(cpu_seconds() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)}
        print(f"  {name}: {self.phases[name]}", flush=True)
        return out


def calibrate(world_seed: int, seeds: list[int], sets: dict) -> dict:
    """The regime of one world seed (see the module docstring); returns its record."""
    import sgpo_lib
    from sgpo_lib.workflow import regime, stages
    from sgpo_lib.workflow.sweep import run_name

    overrides = {**sets, "world_seed": world_seed, "experiment.scaling_sizes": [], "experiment.methods": ["sft_grpo"],
                 "experiment.seeds": seeds, "experiment.ablations": []}
    cfg, run_dir = sgpo_lib.start_run(PARAMS, overrides)
    print(f"world_seed {world_seed}: {run_dir}", flush=True)
    timer = Timer()
    timer("prepare (student, premise)", stages.prepare, cfg, run_dir)
    timer("paired rollouts (starting student)", stages.paired_rollouts, cfg, run_dir)
    for seed in seeds:
        variant = {"train.method": "sft_grpo", "seed": seed}
        timer(f"sft_grpo seed {seed}", stages.train_variant, str(run_dir / "config.yaml"), variant,
              run_dir / "main" / run_name(variant))
    table = timer("regime table", regime.regime, cfg, run_dir)
    curve = test_curve(run_dir / "main")
    return {"world_seed": world_seed, "run_dir": str(run_dir), "overrides": sets, "timings": timer.phases,
            "regime": json.loads((run_dir / regime.REGIME_FILE).read_text()), "curve": curve.to_dict(),
            "printed": _printed(table) + "\ntest macro avg@k by step (rows: seed):\n" + str(curve)}


def test_curve(main_dir: Path):
    """Test macro avg@k of every evaluation (columns: step) of each sft_grpo run (rows: seed), in points:
    with a constant learning rate, the step-N evaluation of a longer run is an N-step run's."""
    import pandas as pd

    from sgpo_lib.core.fileio import read_jsonl

    rows = [{"seed": int(d.name.rsplit("=", 1)[1]), "step": r["step"], "avg@k": 100 * r["avg@k"]}
            for d in sorted(main_dir.glob("train.method=sft_grpo_seed=*")) for r in read_jsonl(d / "evals.jsonl")
            if r["source"] == "macro" and r["split"] == "test"]
    return pd.DataFrame(rows).pivot_table(index="seed", columns="step", values="avg@k").round(1)


def _printed(table: dict) -> str:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        return "\n".join(str(table[k]) for k in ("premise", "accuracy", "per_seed", "kl"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-seeds", default="0,1", help="comma-separated world seeds")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override of the demo params (YAML value), e.g. world.strong_skip_rate=0.25")
    args = parser.parse_args(argv)
    from sgpo_lib.config.yaml12 import parse_assignment

    sets = dict(parse_assignment(s) for s in args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    from sgpo_lib.core.paths import outputs_dir

    out = outputs_dir() / "bench" / "calibrate_regime.jsonl"
    for world_seed in (int(w) for w in args.world_seeds.split(",")):
        record = calibrate(world_seed, seeds, sets)
        print(record["printed"], flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        with Path(out).open("a") as f:
            f.write(json.dumps({k: v for k, v in record.items() if k != "printed"}, default=str) + "\n")


if __name__ == "__main__":
    main()
