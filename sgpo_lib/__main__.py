"""Command line: the same stage functions the notebooks call, without Jupyter.

    python -m sgpo_lib pipeline --params params/toy-demo.yaml      # notebooks 00-06 + report
    python -m sgpo_lib prepare  --params params/toy-smoke.yaml     # one stage
    python -m sgpo_lib train    --params P --set distill.coef=0 --out-dir DIR   # one run
    python -m sgpo_lib sweep    --params P --grid distill.coef=0,0.5,1 --grid seed=0,1 --out DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

STAGES = ("prepare", "extract", "rollouts", "main", "ablate", "scaling")


def _overrides(assignments: list[str]) -> dict:
    from .sweep import parse_assignment

    return dict(parse_assignment(a) for a in assignments or [])


def _grid(axes: list[str]) -> dict[str, list]:
    from .config import yaml_load

    out = {}
    for axis in axes or []:
        key, _, values = axis.partition("=")
        out[key] = [yaml_load(v) for v in values.split(",")]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sgpo_lib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pipeline", "train", "sweep", *STAGES):
        p = sub.add_parser(name)
        p.add_argument("--params", required=True, help="params YAML file")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override (repeatable)")
        p.add_argument("--run-id", default=None)
        if name == "pipeline":
            p.add_argument("--only", nargs="*", help="notebook stems to run (default all)")
            p.add_argument("--force", action="store_true", help="redo a run whose STATUS is done")
        if name == "train":
            p.add_argument("--out-dir", required=True, help="folder of this training run")
        if name == "sweep":
            p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="one axis (repeatable)")
            p.add_argument("--out", required=True, help="root folder of the sweep")
            p.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args(argv)
    from .runs import configure_logging

    configure_logging()
    overrides = _overrides(args.set)
    if args.command == "pipeline":
        from .pipeline import run_pipeline

        report = run_pipeline(args.params, overrides, args.run_id, args.only, args.force)
        print(f"report: {report}")
    elif args.command == "train":
        from .stages import train_variant

        train_variant(args.params, overrides, Path(args.out_dir))
    elif args.command == "sweep":
        from .sweep import grid, run_sweep

        table = run_sweep(args.params, grid(**_grid(args.grid)), Path(args.out), base_overrides=overrides,
                          parallel=args.parallel)
        print(table.to_string())
    else:
        from . import stages
        from .runs import start_run

        cfg, run_dir = start_run(args.params, overrides, args.run_id)
        fn = {"rollouts": stages.paired_rollouts, "main": stages.train_main, "extract": stages.extract}.get(
            args.command, getattr(stages, args.command, None))
        result = fn(cfg, run_dir)
        print(result if not isinstance(result, dict) else {k: v for k, v in result.items()})
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
