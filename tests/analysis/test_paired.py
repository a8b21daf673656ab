"""Paired comparisons over (seed, problem) cells (issue 25, item 5): the crossed seeds × problems
variance against the ANOVA written out by hand in float64, its floor and its one-seed / one-problem
cases, its coverage under the model it assumes (where a t interval over cells undercovers), and the
cells built from run frames with per-problem outcomes, or without them (older runs, with a note); with
problems nested in fixed benchmarks, the macro mean's variance against its by-hand loops and its coverage."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sgpo_lib.analysis import paired, paper, results


def _anova_by_hand(y):
    """Var(grand mean) = (MS_S + MS_P - MS_E) / (S P) and its Satterthwaite df, with explicit loops."""
    S, P = len(y), len(y[0])
    g = sum(sum(r) for r in y) / (S * P)
    rs = [sum(r) / P for r in y]
    cs = [sum(y[s][p] for s in range(S)) / S for p in range(P)]
    ms_s = P * sum((rs[s] - g) ** 2 for s in range(S)) / (S - 1)
    ms_p = S * sum((cs[p] - g) ** 2 for p in range(P)) / (P - 1)
    ms_e = sum((y[s][p] - rs[s] - cs[p] + g) ** 2 for s in range(S) for p in range(P)) / ((S - 1) * (P - 1))
    total = ms_s + ms_p - ms_e
    df = total**2 / (ms_s**2 / (S - 1) + ms_p**2 / (P - 1) + ms_e**2 / ((S - 1) * (P - 1)))
    return total / (S * P), df


def test_crossed_variance_is_the_two_way_anova_estimate():
    # by hand: grand 2.5; seed means 2, 3; problem means 1.5, 3, 3: MS_S = 3 * 0.5 = 1.5, MS_P = 2 * 1.5 / 2 = 1.5,
    # residuals 0, -.5, .5, 0, .5, -.5: MS_E = 1 / 2 = 0.5; Var = 2.5 / 6, df = 2.5^2 / (1.5^2 + 1.5^2 / 2 + 0.5^2 / 2)
    var, df = paired.crossed_variance(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 3.0]]))
    assert var == pytest.approx(2.5 / 6, abs=1e-15) and df == pytest.approx(6.25 / 3.5, abs=1e-15)
    y = np.random.default_rng(0).normal(size=(3, 7)) + np.array([[0.0], [1.0], [-0.5]])
    assert paired.crossed_variance(y) == pytest.approx(_anova_by_hand(y.tolist()), rel=1e-12)


def test_crossed_variance_floor_and_degenerate_shapes():
    # MS_S = MS_P = 0, MS_E = 1: the estimate -1/4 is floored at MS_E / (S P) = 1/4 on (S-1)(P-1) = 1 df
    assert paired.crossed_variance(np.array([[1.0, 0.0], [0.0, 1.0]])) == (0.25, 1.0)
    one_seed = np.array([[1.0, 2.0, 4.0]])  # sample variance 7/3 over 3 problems
    assert paired.crossed_variance(one_seed) == pytest.approx((7 / 9, 2.0))
    assert paired.crossed_variance(one_seed.T) == pytest.approx((7 / 9, 2.0))  # one problem: over seeds
    assert all(math.isnan(v) for v in paired.crossed_variance(np.array([[3.0]])))


def test_paired_interval_uses_seeds_and_problems_crossed():
    cells = pd.Series([1.0, 2.0, 3.0, 2.0, 4.0, 3.0],
                      index=pd.MultiIndex.from_product([[0, 1], ["a", "b", "c"]], names=["seed", "problem_id"]))
    mean, low, high = paired.paired_interval(cells)
    half = stats.t.ppf(0.975, 6.25 / 3.5) * math.sqrt(2.5 / 6)
    assert mean == 2.5 and (low, high) == pytest.approx((2.5 - half, 2.5 + half), abs=1e-12)
    assert paired.paired_interval(cells.drop((1, "c"))) == pytest.approx(  # a problem missing from a seed is dropped
        paired.paired_interval(cells.drop([(0, "c"), (1, "c")])))
    assert paired.paired_interval(cells * 0) == (0.0, 0.0, 0.0)  # no spread: no width, and 0 is inconclusive
    assert paper.verdict(paired.paired_interval(cells * 0), -3.4) == "inconclusive"


def test_the_crossed_interval_covers_about_95_percent_where_a_t_over_cells_does_not():
    """Seeds move every problem together: under d = mu + a_s + b_p + e (3 seeds, 32 problems, unit
    variances) the crossed interval covers mu about 95% of the time (Satterthwaite on 3 seeds: 92-93%);
    a t interval over the 96 cells as if they were independent covers far less."""
    rng, S, P, hits, naive, n = np.random.default_rng(1), 3, 32, 0, 0, 1000
    for _ in range(n):
        d = rng.normal(0, 1.0, (S, 1)) + rng.normal(0, 1.0, (1, P)) + rng.normal(0, 1.0, (S, P))
        var, df = paired.crossed_variance(d)
        hits += abs(d.mean()) <= stats.t.ppf(0.975, df) * math.sqrt(var)
        naive += abs(d.mean()) <= stats.t.ppf(0.975, S * P - 1) * d.std(ddof=1) / math.sqrt(S * P)
    assert 0.90 <= hits / n <= 0.98 and naive / n < 0.60


def _stratified_by_hand(tables):
    """Var(macro mean) = var_s(m_s) / S + sum_f (MS_P,f - MS_E,f) / (F^2 S n_f), floored at the MS_E
    terms, and its Satterthwaite df, with explicit loops (S >= 2)."""
    F, S = len(tables), len(tables[0])
    m = [sum(sum(t[s]) / len(t[s]) for t in tables) / F for s in range(S)]
    mbar = sum(m) / S
    terms = [(sum((v - mbar) ** 2 for v in m) / (S - 1) / S, S - 1)]
    floor = []
    for t in tables:
        n = len(t[0])
        g = sum(sum(r) for r in t) / (S * n)
        rs = [sum(r) / n for r in t]
        cs = [sum(t[s][p] for s in range(S)) / S for p in range(n)]
        ms_p = S * sum((c - g) ** 2 for c in cs) / (n - 1)
        ms_e = sum((t[s][p] - rs[s] - cs[p] + g) ** 2 for s in range(S) for p in range(n)) / ((S - 1) * (n - 1))
        terms += [(ms_p / (F * F * S * n), n - 1), (-ms_e / (F * F * S * n), (S - 1) * (n - 1))]
        floor.append((ms_e / (F * F * S * n), (S - 1) * (n - 1)))
    use = floor if sum(v for v, _ in terms) <= sum(v for v, _ in floor) else terms
    total = sum(v for v, _ in use)
    return total, total**2 / sum(v * v / df for v, df in use)


def test_stratified_variance_is_the_nested_anova_estimate_and_one_benchmark_is_the_crossed_one():
    rng = np.random.default_rng(2)
    tables = [rng.normal(mu, 1.0, (3, n)) + rng.normal(0, 0.5, (3, 1)) for mu, n in ((0.0, 4), (5.0, 9), (-2.0, 2))]
    assert paired.stratified_variance(tables) == pytest.approx(_stratified_by_hand([t.tolist() for t in tables]), rel=1e-12)
    floored = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])]  # MS_S = MS_P = 0: the floor
    assert paired.stratified_variance(floored) == pytest.approx(_stratified_by_hand([t.tolist() for t in floored]), rel=1e-12)
    assert paired.stratified_variance(tables[1:2]) == pytest.approx(paired.crossed_variance(tables[1]), rel=1e-12)
    one_seed = [np.array([[1.0, 2.0, 4.0]]), np.array([[0.0, 2.0]])]  # variances 7/3 over 3 and 2 over 2, F = 2
    assert paired.stratified_variance(one_seed)[0] == pytest.approx((7 / 3 / 3 + 2 / 2) / 4, rel=1e-12)


def test_the_macro_interval_covers_the_macro_mean_and_the_crossed_one_overstates_it_with_benchmark_effects():
    """Fixed benchmarks of 8-32 problems whose means differ by 10 points (sd 1 for seeds, problems and
    noise): the stratified interval covers the macro mean about 95% of the time; one crossed table over
    all problems counts the benchmarks' differences as problem spread (and centres on the pooled mean)."""
    rng, S, sizes, mus = np.random.default_rng(3), 3, (8, 16, 24, 32), (0.0, 10.0, -10.0, 5.0)
    hits, ratio, n = 0, [], 1000
    for _ in range(n):
        seed = rng.normal(0, 1.0, (S, 1))
        tables = [mu + seed + rng.normal(0, 1.0, (1, k)) + rng.normal(0, 1.0, (S, k)) for mu, k in zip(mus, sizes)]
        var, df = paired.stratified_variance(tables)
        macro = np.mean([t.mean() for t in tables])
        hits += abs(macro - np.mean(mus)) <= stats.t.ppf(0.975, df) * math.sqrt(var)
        ratio.append(paired.crossed_variance(np.hstack(tables))[0] / var)
    assert 0.90 <= hits / n <= 0.98 and np.median(ratio) > 2


def test_the_projection_predicts_the_macro_means_variance_of_a_larger_design():
    """Under y = mu_f + a_s + b_p + e (unit variances, 4 benchmarks): measured on 3 seeds x 16 problems
    each, the projection to 6 seeds x 32 problems averages to the exact 1/6 + 1/(4 * 32) + 1/(4 * 6 * 32);
    with the same design it is the estimate itself."""
    rng, F, projected = np.random.default_rng(4), 4, []
    for _ in range(2000):
        seed = rng.normal(0, 1.0, (3, 1))
        tables = [mu + seed + rng.normal(0, 1.0, (1, 16)) + rng.normal(0, 1.0, (3, 16)) for mu in range(F)]
        terms = paired.variance_terms(tables)
        projected.append(paired.projected_standard_error(terms, 3, 6, 2.0) ** 2)
    assert np.mean(projected) == pytest.approx(1 / 6 + 1 / (F * 32) + 1 / (F * 6 * 32), rel=0.1)
    assert paired.projected_standard_error(terms, 3, 3, 1.0) ** 2 == pytest.approx(terms["seeds"] + terms["problems"], rel=1e-12)
    assert terms["seeds"] + terms["problems"] == pytest.approx(paired.stratified_variance(tables)[0], rel=1e-12)


def test_paired_interval_is_centred_on_the_macro_mean_of_benchmarks_of_different_sizes():
    index = [(s, src, f"{src}-{i}") for s in (0, 1) for src, k in (("a", 2), ("b", 4)) for i in range(k)]
    values = [1.0, 2.0, 10.0, 10.0, 11.0, 12.0, 2.0, 2.0, 11.0, 10.0, 10.0, 12.0]
    cells = pd.Series(values, index=pd.MultiIndex.from_tuples(index, names=["seed", "source", "problem_id"]))
    mean, _, high = paired.paired_interval(cells)
    assert mean == pytest.approx((1.75 + 10.75) / 2) and mean != pytest.approx(np.mean(values))
    table = paired.seeds_by_units(cells)
    var, df = paired.stratified_variance([table["a"].to_numpy(), table["b"].to_numpy()])
    assert high - mean == pytest.approx(stats.t.ppf(0.975, df) * math.sqrt(var), rel=1e-12)


def _problem_rows(run, label, seed, per_problem, family="toy/add"):
    """`results.collect`-shaped rows of one run with per-problem outcomes {problem_id: avg@k}."""
    mean = sum(per_problem.values()) / len(per_problem)
    probs = {pid: {"avg@k": v, "greedy": v, "pass@k": float(v > 0)} for pid, v in per_problem.items()}
    return [{"run": run, "label": label, "status": "done", "train.method": "sgpo", "seed": seed, "phase": phase,
             "split": "test", "source": source, "avg@k": mean, "greedy": mean, "problems": p}
            for phase in ("base", "final") for source, p in ((family, probs), ("macro", None))]


def test_paired_cells_pair_problem_by_problem_and_fall_back_to_families_for_old_runs():
    a = [_problem_rows(f"a{s}", "A", s, {"p1": 0.5 + s / 4, "p2": 1.0, "p3": 0.0}) for s in (0, 1)]
    b = [_problem_rows(f"b{s}", "B", s, {"p1": 0.5, "p2": 0.5, "p3": 0.0}) for s in (0, 1)]
    df = pd.DataFrame([r for rows in a + b for r in rows])
    cells = paired.paired_cells(df, "label", "A", "B")
    assert paired.unit_of(cells) == paired.PROBLEM and cells.index.names == ["seed", "source", "problem_id"]
    assert cells.to_dict() == pytest.approx({(0, "toy/add", "p1"): 0.0, (0, "toy/add", "p2"): 50.0, (0, "toy/add", "p3"): 0.0,
                                             (1, "toy/add", "p1"): 25.0, (1, "toy/add", "p2"): 50.0, (1, "toy/add", "p3"): 0.0})
    old = df.assign(problems=[None if r == "b1" else p for r, p in zip(df["run"], df["problems"])])
    fallback = paired.paired_cells(old, "label", "A", "B")  # one run without per-problem rows: per seed x family
    assert paired.unit_of(fallback) == paired.FAMILY and len(fallback) == 2
    assert paired.interval_text(paired.paired_interval(fallback), paired.unit_of(fallback)).endswith("no per-problem rows)")


def test_a_rows_standard_error_is_over_its_seeds_and_problems():
    rows = [r for s, v in ((0, {"p1": 0.0, "p2": 1.0}), (1, {"p1": 0.5, "p2": 1.0})) for r in _problem_rows(f"a{s}", "A", s, v)]
    se, unit = paired.row_standard_error(pd.DataFrame(rows), "label", "A")
    # points: [[0, 100], [50, 100]]: MS_S = 2 * 2 * 12.5^2 = 625, MS_P = 2 * 2 * 37.5^2 / 1 = 5625, MS_E = 4 * 12.5^2 = 625
    assert unit == paired.PROBLEM and se == pytest.approx(math.sqrt((625 + 5625 - 625) / 4), abs=1e-12)
    main = pd.DataFrame(rows).assign(**{"train.method": "sgpo"})
    assert results.main_table(main).loc["SGPO", results.SE_COLUMN] == f"{math.sqrt(5625 / 4):.1f}"


def test_collect_attaches_each_rows_per_problem_outcomes_from_eval_problems_jsonl(tmp_path):
    from sgpo_lib.core import fileio
    from sgpo_lib.core.run_folder import write_status

    run = tmp_path / "train.method=sgpo_seed=0"
    table = [{"split": "test", "source": "toy/add", "avg@k": 0.75, "greedy": 1.0, "step": s} for s in (0, 4)]
    fileio.write_json(run / "results.json", {"base_eval": table[:1], "final_eval": table[1:]})
    fileio.write_jsonl(run / "eval_problems.jsonl", [
        {"step": s, "split": "test", "source": "toy/add", "problem_id": pid, "k": 2, "greedy": 1.0, "correct": c}
        for s in (0, 4) for pid, c in (("p1", 1), ("p2", 2))])
    write_status(run, "done")
    df = results.collect(tmp_path).set_index("phase")
    assert df.loc["final", "problems"] == {"p1": {"avg@k": 0.5, "greedy": 1.0, "pass@k": 1.0},
                                           "p2": {"avg@k": 1.0, "greedy": 1.0, "pass@k": 1.0}}
    (run / "eval_problems.jsonl").unlink()  # an older run folder: no per-problem rows, no crash
    assert results.collect(tmp_path)["problems"].isna().all()


def test_main_orderings_decide_the_papers_main_table_directions_problem_by_problem():
    sgpo = [_problem_rows(f"s{s}", "SGPO", s, {"p1": 1.0, "p2": 1.0, "p3": 0.5 + s / 4}) for s in (0, 1)]
    base = [_problem_rows(f"b{s}", "SFT+GRPO", s, {"p1": 0.5, "p2": 0.0, "p3": 0.5}) for s in (0, 1)]
    main = pd.DataFrame([r for rows in sgpo + base for r in rows]).rename(columns={"label": "method"})
    found = paper.main_orderings(main).set_index("ordering")
    assert list(found.index) == ["SGPO > SFT+GRPO"]  # the other methods did not run
    cells = paired.paired_cells(main, "method", "SGPO", "SFT+GRPO")
    mean, low, high = paired.paired_interval(cells)
    assert found.loc["SGPO > SFT+GRPO", "Δ here (95% CI)"] == f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"
    assert found.loc["SGPO > SFT+GRPO", "paper Δ"] == "+2.2"
    assert found.loc["SGPO > SFT+GRPO", "here"] == paper.verdict((mean, low, high), 2.2)
