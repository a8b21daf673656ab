"""Paired comparisons and standard errors over (seed, problem) cells (issue 25, item 5).

Two rows of a table (two methods, or an ablation and full SGPO) are trained with the same seeds and
evaluated on the same problems, so their difference is taken cell by cell: d_sp = a_sp − b_sp for
seed s and problem p (`paired_cells`; a problem's value is its avg@k, the mean of its k samples,
or its greedy reward). The mean difference d̄ has two sources of spread that a plain t interval over
the S·P cells would ignore: a training seed moves every problem of that seed together, and a problem
moves every seed together. We treat seeds and problems as crossed random effects,
d_sp = μ + a_s + b_p + e_sp, whose grand mean has variance σ_a²/S + σ_b²/P + σ_e²/(SP). With the
two-way ANOVA mean squares MS_S (seeds, S − 1 df), MS_P (problems, P − 1 df) and MS_E (residual,
(S − 1)(P − 1) df) an unbiased estimate is

    Var(d̄) = (MS_S + MS_P − MS_E) / (S·P)

(E[MS_S] = σ_e² + Pσ_a², E[MS_P] = σ_e² + Sσ_b², E[MS_E] = σ_e²), floored at MS_E / (S·P), the
part no design can remove, and the interval is d̄ ± t · sqrt(Var) with the Satterthwaite degrees of
freedom of that sum of mean squares (`crossed_variance`). Simulated under that model with 3 seeds and
16-48 problems it covers 92-97% (a little under 95% when seeds and problems both vary a lot: the
Satterthwaite df on 3 seeds), where a t interval over the cells as if independent covers far less
(`tests/analysis/test_paired.py`). One seed leaves the seed term out (it
cannot be estimated: the interval is then about these problems under this one training run); one
problem (a macro average per seed) leaves the problem term out: a t interval over seeds. Only
complete cells count: a problem missing from a seed is dropped.

Run folders written before the per-problem log (`eval_problems.jsonl`) hold per-benchmark means
only; their comparisons use the benchmark (family) in the problem's place, and say so
(`interval_text`). A row's standard error (`row_standard_error`) is the same variance for its
accuracies a_sp instead of differences.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

POINTS = 100.0  # accuracies are shares; tables show points
# the unit crossed with the seeds: a problem; in run folders without per-problem rows a benchmark (family),
# or the macro average (one cell per seed)
PROBLEM, FAMILY, MACRO = "problem", "family", "macro"


def crossed_variance(values_S_P: np.ndarray) -> tuple[float, float]:
    """`(Var(grand mean), degrees of freedom)` of a complete seeds × problems table (module
    docstring). One seed: the sample variance over problems / P, P − 1 df; one problem: over
    seeds / S, S − 1 df; a single cell: (nan, nan).

    Example:
        >>> [round(v, 4) for v in crossed_variance(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 3.0]]))]
        [0.4167, 1.7857]
    """
    y = np.asarray(values_S_P, dtype=np.float64)
    S, P = y.shape
    if S * P < 2:
        return math.nan, math.nan
    if S == 1 or P == 1:
        flat = y.ravel()
        return float(flat.var(ddof=1) / flat.size), float(flat.size - 1)
    grand, seeds, problems = y.mean(), y.mean(axis=1, keepdims=True), y.mean(axis=0, keepdims=True)
    ms_s = P * float(((seeds - grand) ** 2).sum()) / (S - 1)
    ms_p = S * float(((problems - grand) ** 2).sum()) / (P - 1)
    ms_e = float(((y - seeds - problems + grand) ** 2).sum()) / ((S - 1) * (P - 1))
    total = ms_s + ms_p - ms_e
    if total <= ms_e:  # the floor: the residual's own share, with its own df
        return ms_e / (S * P), float((S - 1) * (P - 1))
    df = total**2 / (ms_s**2 / (S - 1) + ms_p**2 / (P - 1) + ms_e**2 / ((S - 1) * (P - 1)))
    return total / (S * P), float(df)


def seeds_by_units(cells: pd.Series) -> pd.DataFrame:
    """`cells` (index `seed` and the unit's levels, or a flat index read as one seed each) as a
    complete seeds × units table: units missing from some seed are dropped."""
    if "seed" not in (cells.index.names or []) or cells.index.nlevels < 2:
        return pd.DataFrame({"cell": cells.to_numpy(dtype=float)}, index=pd.RangeIndex(len(cells), name="seed"))
    table = cells.unstack([n for n in cells.index.names if n != "seed"])
    return table.dropna(axis=1, how="any")


def paired_interval(cells: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of `cells` (paired differences, index `seed` × unit) and its two-sided interval at
    `level` under crossed seeds and units (`crossed_variance`): `(mean, low, high)`; the interval is
    NaN with fewer than two complete cells, and has no width when every cell is the same.

    Example:
        >>> [round(v, 2) for v in paired_interval(pd.Series([1.0, 2.0, 3.0]))]
        [2.0, -0.48, 4.48]
    """
    table = seeds_by_units(cells)
    values = table.to_numpy(dtype=float)
    mean = float(values.mean()) if values.size else math.nan
    var, df = crossed_variance(values) if values.size else (math.nan, math.nan)
    if math.isnan(var):
        return mean, math.nan, math.nan
    half = 0.0 if var == 0 else float(stats.t.ppf((1 + level) / 2, df) * math.sqrt(var))
    return mean, mean - half, mean + half


def unit_of(cells: pd.Series) -> str:
    """`PROBLEM` when `cells` are per problem (a `problem_id` level), `FAMILY` per benchmark, `MACRO`
    per seed on the macro average (the last two: runs without per-problem rows)."""
    names = cells.index.names or []
    if "problem_id" in names:
        return PROBLEM
    macro = "source" not in names or set(cells.index.get_level_values("source")) <= {"macro"}
    return MACRO if macro else FAMILY


def interval_text(interval: tuple[float, float, float], unit: str = PROBLEM) -> str:
    """`[low, high]` in points, with a note when the cells are not per problem.

    Example:
        >>> interval_text((1.0, -0.5, 2.5)), interval_text((1.0, 0.2, 1.8), FAMILY), interval_text((1.0, math.nan, math.nan))
        ('[-0.5, +2.5]', '[+0.2, +1.8] (seed × family cells: no per-problem rows)', '1 cell')
    """
    mean, low, high = interval
    if mean != mean:
        return "no pair"
    if low != low:
        return "1 cell"
    return f"[{low:+.1f}, {high:+.1f}]{UNIT_NOTES[unit]}"


UNIT_NOTES = {PROBLEM: "", FAMILY: " (seed × family cells: no per-problem rows)",
              MACRO: " (per seed on the macro average: no per-problem rows)"}


def _final_test(df: pd.DataFrame, phase: str = "final") -> pd.DataFrame:
    """Finished runs' rows of `phase` on the test split: per benchmark where the runs have it, else their macro."""
    rows = df[(df["status"] == "done") & (df["phase"] == phase) & (df["split"] == "test")]
    return rows[rows["source"] != "macro"] if (rows["source"] != "macro").any() else rows


def has_problems(rows: pd.DataFrame) -> bool:
    """Whether every row holds its per-problem outcomes (`results.collect`'s `problems` column)."""
    return len(rows) > 0 and "problems" in rows and bool(rows["problems"].map(lambda v: isinstance(v, dict) and len(v) > 0).all())


def cells_of(rows: pd.DataFrame, group: str, metric: str) -> pd.DataFrame:
    """Long cells `group, seed, source[, problem_id], value` of benchmark rows: one per problem when
    every row has its per-problem outcomes, else one per benchmark (with a logged note)."""
    if has_problems(rows):
        return pd.DataFrame([{group: g, "seed": s, "source": src, "problem_id": pid, "value": out[metric]}
                             for g, s, src, probs in zip(rows[group], rows["seed"], rows["source"], rows["problems"])
                             for pid, out in probs.items()])
    if "problems" in rows and len(rows):
        log.info("paired: some runs of %s have no eval_problems.jsonl (older runs): cells are seed × family", sorted(set(rows[group])))
    return rows.assign(value=rows[metric])[[group, "seed", "source", "value"]]


def paired_cells(df: pd.DataFrame, group: str, a: str, b: str, metric: str = "avg@k") -> pd.Series:
    """`a` minus `b` (two values of `group`, e.g. methods), in points, per (seed, problem) that both
    evaluated on the test split (same seed, same problem: paired); per (seed, benchmark) when a run
    lacks per-problem rows, per seed on the macro average when the rows hold no benchmark."""
    rows = _final_test(df)
    rows = rows[rows[group].isin([a, b])]
    cells = cells_of(rows, group, metric)
    keys = [k for k in ("seed", "source", "problem_id") if k in cells]
    table = cells.pivot_table(index=keys, columns=group, values="value", aggfunc="mean")
    if a not in table or b not in table:
        return pd.Series(dtype=float)
    return ((table[a] - table[b]) * POINTS).dropna()


def row_standard_error(df: pd.DataFrame, group: str, value: str, metric: str = "avg@k", phase: str = "final") -> tuple[float, str]:
    """`(standard error in points, unit)` of one row's test mean (`group == value`), over its seeds and
    problems (`crossed_variance` of its accuracies); NaN with fewer than two cells."""
    rows = _final_test(df, phase)
    cells = cells_of(rows[rows[group] == value], group, metric)
    keys = [k for k in ("seed", "source", "problem_id") if k in cells]
    series = cells.groupby(keys)["value"].mean() * POINTS if len(cells) else pd.Series(dtype=float)
    var, _ = crossed_variance(seeds_by_units(series).to_numpy(dtype=float)) if len(series) else (math.nan, math.nan)
    return math.sqrt(var) if var == var else math.nan, unit_of(series)
