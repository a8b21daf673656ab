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

The tables report the macro average: the unweighted mean over benchmarks (families), which are fixed
(the next run evaluates on the same benchmarks, not on new ones drawn at random). So when the cells
name their benchmark and each has at least two problems, the problems are nested in their benchmark
(`stratified_variance`): the mean is the macro mean m = (1/F) Σ_f ȳ_f, and only the spread of
problems *within* a benchmark enters its variance,

    Var(m) = var_s(m_s) / S + Σ_f (MS_P,f − MS_E,f) / (F² · S · n_f)

with m_s seed s's macro mean, and MS_P,f, MS_E,f benchmark f's problem and residual mean squares
(its own S × n_f table). With one benchmark this is the crossed estimate above. The differences
between benchmarks' means (on the toy 92% of a problem's mean square: `linear` near 83 points, `mul`
near 3) are no error of the macro mean; counting them as problem spread, as one crossed table over all
problems does, overstated the toy's standard errors by about a third; with benchmarks of different
sizes (MATH500's 500 beside AIME's 30) it also centred the interval on the pooled mean, not on the
macro mean that the tables print. `variance_terms` splits this variance into its seed, noise and problem
parts and `projected_standard_error` scales them to another design (`bench/power.py`).

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


def mean_squares(y_S_P: np.ndarray) -> tuple[float, float, float]:
    """The two-way ANOVA mean squares `(MS_S, MS_P, MS_E)` of a seeds × problems table (S, P ≥ 2)."""
    S, P = y_S_P.shape
    grand, seeds, problems = y_S_P.mean(), y_S_P.mean(axis=1, keepdims=True), y_S_P.mean(axis=0, keepdims=True)
    return (P * float(((seeds - grand) ** 2).sum()) / (S - 1), S * float(((problems - grand) ** 2).sum()) / (P - 1),
            float(((y_S_P - seeds - problems + grand) ** 2).sum()) / ((S - 1) * (P - 1)))


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
    ms_s, ms_p, ms_e = mean_squares(y)
    total = ms_s + ms_p - ms_e
    if total <= ms_e:  # the floor: the residual's own share, with its own df
        return ms_e / (S * P), float((S - 1) * (P - 1))
    df = total**2 / (ms_s**2 / (S - 1) + ms_p**2 / (P - 1) + ms_e**2 / ((S - 1) * (P - 1)))
    return total / (S * P), float(df)


def stratified_variance(tables_S_Pf: list[np.ndarray]) -> tuple[float, float]:
    """`(Var(macro mean), degrees of freedom)` for problems nested in fixed benchmarks: one complete
    seeds × problems table per benchmark, the same seeds in the same row order, each with at least two
    problems (module docstring). The floor is the residuals' own share, Σ_f MS_E,f / (F² S n_f); one
    seed: Σ_f var_f / (F² n_f) over each benchmark's problems. Degrees of freedom: Satterthwaite's.

    Example:
        >>> [round(v, 4) for v in stratified_variance([np.array([[1.0, 2.0], [2.0, 4.0]]), np.array([[9.0, 9.5], [9.0, 9.0]])])]
        [0.2227, 1.6756]
    """
    ys = [np.asarray(t, dtype=np.float64) for t in tables_S_Pf]
    S, F = ys[0].shape[0], len(ys)
    if S == 1:
        return _satterthwaite([(float(y.var(ddof=1)) / (F**2 * y.shape[1]), y.shape[1] - 1.0) for y in ys])
    seeds, benchmarks = _seed_and_benchmark_terms(ys)
    terms = [(seeds, S - 1.0)] + [t for c, ms_p, ms_e, n in benchmarks
                                  for t in ((c * ms_p, n - 1.0), (-c * ms_e, (S - 1.0) * (n - 1)))]
    floor = [(c * ms_e, (S - 1.0) * (n - 1)) for c, _, ms_e, n in benchmarks]
    return _satterthwaite(floor if sum(v for v, _ in terms) <= sum(v for v, _ in floor) else terms)


def variance_terms(tables_S_Pf: list[np.ndarray]) -> dict[str, float]:
    """`stratified_variance`'s estimate (before its floor) in three parts, for planning a design:
    `seeds` = var_s(m_s) / S (training seeds, and the sampling noise averaged into each seed's macro
    mean), `noise` = Σ_f MS_E,f / (F² S n_f) (that noise's share of `seeds`) and `problems` =
    Σ_f (MS_P,f − MS_E,f) / (F² S n_f) (problems within their benchmark); `seeds + problems` is the
    variance. Needs two seeds or more."""
    seeds, benchmarks = _seed_and_benchmark_terms([np.asarray(t, dtype=np.float64) for t in tables_S_Pf])
    return {"seeds": seeds, "noise": sum(c * ms_e for c, _, ms_e, _ in benchmarks),
            "problems": sum(c * (ms_p - ms_e) for c, ms_p, ms_e, _ in benchmarks)}


def _seed_and_benchmark_terms(ys: list[np.ndarray]) -> tuple[float, list[tuple[float, float, float, int]]]:
    """`var_s(m_s) / S` and, per benchmark, `(1 / (F² S n_f), MS_P,f, MS_E,f, n_f)` (S ≥ 2)."""
    S, F = ys[0].shape[0], len(ys)
    seed_macro = np.mean([y.mean(axis=1) for y in ys], axis=0)
    return (float(seed_macro.var(ddof=1)) / S,
            [(1.0 / (F**2 * S * y.shape[1]), *mean_squares(y)[1:], y.shape[1]) for y in ys])


def projected_standard_error(terms: dict[str, float], seeds: int, new_seeds: int, problems_factor: float) -> float:
    """The standard error `variance_terms` (measured with `seeds` seeds) predicts for `new_seeds`
    seeds and `problems_factor` times the problems of each benchmark: the training part of the seed
    term scales with 1/seeds, the noise with 1/(seeds · problems), the problem term with 1/problems.

    Example:
        >>> round(projected_standard_error({"seeds": 2.0, "noise": 0.5, "problems": 2.0}, 3, 6, 2.0), 4)
        1.3693
    """
    training = max(terms["seeds"] - terms["noise"], 0.0) * seeds / new_seeds
    noise = terms["noise"] * seeds / (new_seeds * problems_factor)
    return math.sqrt(max(training + noise + terms["problems"] / problems_factor, 0.0))


def _satterthwaite(terms: list[tuple[float, float]]) -> tuple[float, float]:
    """`(Σ v, (Σ v)² / Σ (v² / df))` of `(variance term, its df)` pairs; infinite df when every term is 0."""
    total = sum(v for v, _ in terms)
    spread = sum(v**2 / df for v, df in terms if v)
    return total, (total**2 / spread if spread else math.inf)


def macro_mean_variance(table: pd.DataFrame) -> tuple[float, float, float]:
    """`(mean, Var(mean), df)` of a complete seeds × units table (`seeds_by_units`): the macro mean over
    benchmarks with problems nested in them (`stratified_variance`) when its columns name the benchmark
    (`source`) and every benchmark has at least two problems, else the grand mean with units crossed
    (`crossed_variance`)."""
    values = table.to_numpy(dtype=float)
    if not values.size:
        return math.nan, math.nan, math.nan
    if groups := benchmark_tables(table):
        return (float(np.mean([g.mean() for g in groups])), *stratified_variance(groups))
    return (float(values.mean()), *crossed_variance(values))


def benchmark_tables(table: pd.DataFrame) -> list[np.ndarray]:
    """One seeds × problems array per benchmark of a `seeds_by_units` table whose columns are
    (`source`, `problem_id`); [] when they are not, or when a benchmark has fewer than two problems."""
    names = table.columns.names or []
    if "source" not in names or "problem_id" not in names:
        return []
    groups = [table.xs(source, axis=1, level="source").to_numpy(dtype=float) for source in table.columns.unique("source")]
    return groups if all(g.shape[1] >= 2 for g in groups) else []


def seeds_by_units(cells: pd.Series) -> pd.DataFrame:
    """`cells` (index `seed` and the unit's levels, or a flat index read as one seed each) as a
    complete seeds × units table: units missing from some seed are dropped."""
    if "seed" not in (cells.index.names or []) or cells.index.nlevels < 2:
        return pd.DataFrame({"cell": cells.to_numpy(dtype=float)}, index=pd.RangeIndex(len(cells), name="seed"))
    table = cells.unstack([n for n in cells.index.names if n != "seed"])
    return table.dropna(axis=1, how="any")


def paired_interval(cells: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of `cells` (paired differences, index `seed` × unit) and its two-sided interval at
    `level` (`macro_mean_variance`: seeds and problems crossed, problems nested in their benchmark):
    `(mean, low, high)`; the interval is NaN with fewer than two complete cells, and has no width
    when every cell is the same.

    Example:
        >>> [round(v, 2) for v in paired_interval(pd.Series([1.0, 2.0, 3.0]))]
        [2.0, -0.48, 4.48]
    """
    mean, var, df = macro_mean_variance(seeds_by_units(cells))
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
    problems (`macro_mean_variance` of its accuracies); NaN with fewer than two cells."""
    series = row_cells(df, group, value, metric, phase)
    _, var, _ = macro_mean_variance(seeds_by_units(series)) if len(series) else (math.nan, math.nan, math.nan)
    return math.sqrt(var) if var == var else math.nan, unit_of(series)


def row_cells(df: pd.DataFrame, group: str, value: str, metric: str = "avg@k", phase: str = "final") -> pd.Series:
    """One row's test accuracies in points (`group == value`), indexed by seed and unit (`cells_of`)."""
    rows = _final_test(df, phase)
    cells = cells_of(rows[rows[group] == value], group, metric)
    keys = [k for k in ("seed", "source", "problem_id") if k in cells]
    return cells.groupby(keys)["value"].mean() * POINTS if len(cells) else pd.Series(dtype=float)
