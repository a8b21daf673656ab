"""Result tables from collected sweeps: the main table, the ablation table, the scaling table.

Input is `sweep.collect(root)`: one row per (run, phase, split, benchmark). Tables report
greedy accuracy (or another metric) in points, as mean ± std over seeds, per benchmark, the
macro average over benchmarks (`avg`) and the OOD macro average (`ood`).
"""

from __future__ import annotations

import pandas as pd

POINTS = 100.0


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"


def long_table(df: pd.DataFrame, group: str, metric: str = "greedy", phase: str = "final") -> pd.DataFrame:
    """Per (group value, split, source): mean, std, number of seeds, in points."""
    done = df[(df["status"] == "done") & (df["phase"] == phase)]
    agg = done.groupby([group, "split", "source"])[metric].agg(["mean", "std", "count"]).reset_index()
    agg[["mean", "std"]] = agg[["mean", "std"]].fillna(0.0) * POINTS
    return agg


def wide_table(df: pd.DataFrame, group: str, metric: str = "greedy", with_base: bool = True) -> pd.DataFrame:
    """Rows = `group` values (e.g. methods); columns = test benchmarks, `avg`, `ood`.

    With `with_base`, a `base` row holds the untrained student (step-0 eval, seed-averaged).
    """
    parts = [long_table(df, group, metric)]
    if with_base:
        base = long_table(df, group, metric, phase="base").groupby(["split", "source"])[["mean", "std", "count"]].first().reset_index()
        base[group] = "base"
        parts.insert(0, base)
    long = pd.concat(parts, ignore_index=True)
    long["cell"] = [_fmt(m, s, int(c)) for m, s, c in zip(long["mean"], long["std"], long["count"])]
    long["column"] = [("avg" if sp == "test" else "ood") if src == "macro" else src.split("/")[-1]
                      for sp, src in zip(long["split"], long["source"])]
    long = long[(long["split"] == "test") | (long["source"] == "macro")]
    order = list(dict.fromkeys(long[group]))
    table = long.pivot_table(index=group, columns="column", values="cell", aggfunc="first").reindex(order)
    cols = [c for c in table.columns if c not in ("avg", "ood")] + [c for c in ("avg", "ood") if c in table.columns]
    return table[cols]


def base_accuracy(df: pd.DataFrame, group: str, split: str = "test", metric: str = "greedy") -> float | None:
    """The untrained student's macro accuracy on `split`, in points (None without step-0 evals)."""
    base = long_table(df, group, metric, phase="base")
    macro = base[(base["source"] == "macro") & (base["split"] == split)]
    return float(macro["mean"].iloc[0]) if len(macro) else None


def numeric_table(df: pd.DataFrame, group: str, metric: str = "greedy") -> pd.DataFrame:
    """Macro test/OOD means and stds per `group` value (for plots)."""
    long = long_table(df, group, metric)
    macro = long[long["source"] == "macro"]
    return macro.pivot_table(index=group, columns="split", values=["mean", "std"]).sort_index()


def grade_reasons(metrics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rollout grades by reason (`grade/<reason>` of metrics.jsonl, summed over steps), one row per run."""
    rows = {run: df.filter(like="grade/").sum().rename(lambda c: c.split("/", 1)[1]) for run, df in metrics.items()}
    return pd.DataFrame(rows).T.fillna(0).astype(int) if rows else pd.DataFrame()
