"""Command line: the same stage functions the notebooks call, without Jupyter.

    python -m sgpo_lib pipeline --params params/toy-demo.yaml      # notebooks 00-07 + report
    python -m sgpo_lib prepare  --params params/toy-smoke.yaml     # one stage
    python -m sgpo_lib train    --params P --set distill.coef=0 --out-dir DIR   # one run
    python -m sgpo_lib sweep    --params P --grid distill.coef=0,0.5,1 --grid seed=0,1 --out DIR

Folders given to `train --out-dir` and `sweep --out` are relative to the repository (like
every path here) and must lie inside the outputs root; exit status 1 when a sweep has runs
that did not finish.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from .analysis.results import missing_runs, summary  # loaded by workflow.sweep anyway
from .config.run import load_config
from .config.yaml12 import parse_assignment, yaml_load
from .core.code_fingerprint import CodeChangedError
from .core.fileio import DiskFullError
from .core.locks import run_lock
from .core.paths import inside, output_root, pin_outputs, resolve
from .workflow import stages
from .workflow.runs import configure_logging, start_run
from .workflow.sweep import grid, kill_children, run_sweep, unfinished

COMMANDS = {
    "pipeline": "run notebooks 00-07 of one params file into its run folder and render report.html",
    "train": "train one config (params + --set overrides) into --out-dir",
    "sweep": "train every point of a --grid, one folder each, and print a summary table",
    "prepare": "stage 00: problems, base student(s), premise table",
    "extract": "stage 01: the strategy library and its rejection report",
    "rollouts": "stage 02: paired rollouts of the base student (p_auto vs p_guided)",
    "main": "stage 03: SGPO and the baselines over experiment.seeds (main table)",
    "ablate": "stage 04: the SGPO ablations of experiment.ablations",
    "scaling": "stage 05: methods over experiment.scaling_sizes",
    "study": "stage 06: the study of the paper's unknown choices (experiment.unknowns)",
}


def _overrides(assignments: list[str]) -> dict:
    return dict(parse_assignment(a) for a in assignments or [])


def _grid(axes: list[str]) -> dict[str, list]:
    out = {}
    for axis in axes or []:
        key, _, values = axis.partition("=")
        out[key] = [yaml_load(v) for v in values.split(",")]
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sgpo_lib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", required=True, help="params YAML file")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dotted override (repeatable)")
        if name not in ("train", "sweep"):  # those name their folder with --out-dir / --out
            p.add_argument("--run-id", default=None, help="run folder name under the outputs root "
                           "(letters, digits, ._=+,-; default <params stem>-<config hash>)")
        if name == "pipeline":
            p.add_argument("--only", nargs="+", metavar="STEM",
                           help="notebook stems to run, e.g. 00_prepare 03_train_sgpo (default all; the run is "
                                "then marked partial, not done)")
            p.add_argument("--force", action="store_true", help="redo a run whose STATUS is done")
        if name == "train":
            p.add_argument("--out-dir", required=True, help="folder of this training run, inside the outputs root (e.g. outputs/my-run)")
        if name == "sweep":
            p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="one axis (repeatable)")
            p.add_argument("--out", required=True, help="root folder of the sweep, inside the outputs root (e.g. outputs/sweep-coef)")
            p.add_argument("--parallel", type=int, default=1, help="runs at once, as subprocesses when > 1")
    return parser


def _folder(params: str, overrides: dict, given: str) -> Path:
    """`given` (relative to the repository) if it lies inside the params' outputs root and is
    neither the root itself (it holds every run and the cache) nor a pipeline's run folder, else
    ValueError."""
    root = output_root(load_config(params, overrides).output.root)
    folder = inside(root, resolve(given))
    if folder == root.resolve():
        raise ValueError(f"{given} is the outputs root itself; name a folder under it (e.g. {root / 'my-run'})")
    if (folder / "timings.json").exists():
        raise ValueError(f"{folder} holds a pipeline's run (timings.json); name a folder of its own")
    return folder


def _kill_own_group_on_sigterm() -> None:
    """A sweep's child leads its own process group: SIGTERM (the sweep died) takes the group down."""
    if os.getsid(0) == os.getpid():
        signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))


def _sweep(args, overrides: dict) -> int:
    signal.signal(signal.SIGTERM, lambda *_: (kill_children(), os._exit(143)))
    root, axes = _folder(args.params, overrides, args.out), _grid(args.grid)
    variants = grid(**axes)
    table = run_sweep(args.params, variants, root, base_overrides=overrides, parallel=args.parallel,
                      train_fn=stages.train_variant)
    table.to_csv(root / "sweep_table.csv", index=False)
    print(summary(table, list(axes)).to_string())
    print(f"full table: {root / 'sweep_table.csv'}")
    bad = unfinished(root, variants)
    if bad:
        print(f"{len(bad)} of {len(variants)} runs did not finish: {bad}", file=sys.stderr)
    return 1 if bad else 0


def _stage(args, overrides: dict) -> None:
    cfg, run_dir = start_run(args.params, overrides, args.run_id)
    with run_lock(run_dir):
        result = stages.STAGES[args.command](cfg, run_dir)
    for name, value in (result.items() if isinstance(result, dict) else [("", result)]):
        shown = f"{len(value)} rows" if isinstance(value, list) else value  # e.g. the signal's per-token rows
        print(f"{name}:\n{shown}\n" if name else shown)


def _pipeline(args, overrides: dict) -> int:
    """Run the pipeline, print its tables and the report's path; 1 when training runs are missing."""
    from .analysis.report import terminal_tables  # the report's and the notebooks' libraries: not in `train`
    from .workflow.pipeline import run_pipeline
    report = run_pipeline(args.params, overrides, args.run_id, args.only, args.force)
    run_dir = report.parent if report.name == "report.html" else report
    tables = terminal_tables(run_dir)
    print(f"{tables}\n\nreport: {report}" if tables else f"report: {report}")
    missing = missing_runs(run_dir)
    if missing and not args.only:
        print(f"{len(missing)} training runs did not finish, the run is partial: {missing}; run the pipeline again "
              "to retry them", file=sys.stderr)
    return 1 if missing and not args.only else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    configure_logging()
    try:
        pin_outputs()  # one absolute SGPO_OUTPUTS for every kernel and child
        return _command(args, _overrides(args.set))
    except (CodeChangedError, DiskFullError) as e:  # one line that says how to go on, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _command(args, overrides: dict) -> int:
    if args.command == "pipeline":
        return _pipeline(args, overrides)
    elif args.command == "train":
        _kill_own_group_on_sigterm()
        stages.train_variant(args.params, overrides, _folder(args.params, overrides, args.out_dir))
    elif args.command == "sweep":
        return _sweep(args, overrides)
    else:
        _stage(args, overrides)
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
