"""How many seeds and problems a run's main table needs (issue 25, item 5): measured variance, projected.

Reads a finished run folder's main-table runs (`<run>/main`), splits each row's variance of its test
macro mean into its seed, noise and problem terms (`paired.variance_terms`: problems nested in their
benchmark) and prints the standard error each row would have with other numbers of seeds and other
multiples of the problems per benchmark (`paired.projected_standard_error`), the largest over the
rows last, marked where it meets `--target`. `SE` is the measured one (the main table's); a
projection sets a negative estimate of the training seeds' variance to 0, so at the measured design
it can exceed `SE`. A projection from 3 seeds rests on a seed variance with
2 degrees of freedom: read it as the size of the design to try, not as a promise.

    python -m bench.power outputs/demo-cal-1207 [--target 1.5 --seeds 3,5,8 --problems 1,2,4]
Writes outputs/bench/power.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.common import publish
from sgpo_lib.analysis import paired, results


def projections(run_dir: Path, seeds: list[int], factors: list[float]) -> pd.DataFrame:
    """Rows: main-table methods, then `max`; columns: `SE` (measured) and `S seeds, n×` projections."""
    main = results.with_method(results.collected(Path(run_dir) / "main"))
    rows = {}
    for method in sorted(set(main["method"]), key=results.method_order):
        table = paired.seeds_by_units(paired.row_cells(main, "method", method))
        groups = paired.benchmark_tables(table)
        if not groups or len(table) < 2:
            continue
        terms, measured = paired.variance_terms(groups), len(table)
        rows[method] = {"SE": paired.stratified_variance(groups)[0] ** 0.5, **{
            f"{s} seeds, {f:g}x problems": paired.projected_standard_error(terms, measured, s, f) for s in seeds for f in factors}}
    table = pd.DataFrame(rows).T
    return pd.concat([table, table.max().to_frame("max").T]) if len(table) else table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--target", type=float, default=1.5, help="standard error to reach, points")
    ap.add_argument("--seeds", default="3,5,8")
    ap.add_argument("--problems", default="1,2,4", help="multiples of the problems per benchmark")
    args = ap.parse_args()
    table = projections(args.run_dir, [int(s) for s in args.seeds.split(",")], [float(f) for f in args.problems.split(",")])
    meets = [c for c in table.columns if c != "SE" and table.loc["max", c] <= args.target]
    text = (table.round(2).T.to_string() + f"\n\ndesigns whose largest row SE is <= {args.target}: "
            + (", ".join(meets) or "none of these"))
    publish({"config": {"run_dir": str(args.run_dir), "target": args.target}, "results": table.round(3).to_dict(),
             "meets_target": meets}, "power", text)


if __name__ == "__main__":
    main()
