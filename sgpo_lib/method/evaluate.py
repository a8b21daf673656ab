"""Evaluation on unguided prompts (sgpo-method.md §8, §9).

At test time the student never sees a strategy. Per benchmark (the `source` of each problem)
and split we report avg@k, the paper's metric: the mean accuracy of k samples at
`eval.temperature` / `eval.top_p` (paper: 0.6 / 0.95), with its own k per benchmark
(`eval.k_by_benchmark`, paper: MATH500 4, AMC23 32, OlympiadBench 4, AIME24 32; `eval.k` for
the others). Extras [ours]: greedy accuracy, and pass@k with the unbiased estimator of Chen
et al. (2021) from the same k samples. Each table has a `macro` row per split (the unweighted
mean over its benchmarks); `paper_average` is the paper's headline number: the mean avg@k over
its four benchmarks (over every benchmark when none of them is evaluated, e.g. the toy world's
families, where it equals the macro row).

Every evaluation keeps its per-problem outcomes (`evaluate_rows`: problem id, split, benchmark,
greedy reward and `correct` samples out of `k`); the trainer writes them to the run's
`eval_problems.jsonl` beside the table of `evals.jsonl`, so the report can pair two methods problem
by problem (`analysis.paired`). The step-0 evaluation of a run whose start model is content-addressed
(a toy student or an SFT warm-up under the cache root) depends only on that model, the evaluation
settings, the problems and the seed, so its per-problem rows are computed once and shared by every
run with the same key (`start_eval_cache`): SFT, GRPO, HPT and LUFFY of one seed share the base
student's, SFT+GRPO, SGPO and its ablations the warm-up's.

Sample j of problem i has the seed `derive_seed(derive_seed(seed, tag, id_i), j)` whatever
its k and batch, so one k for every benchmark makes exactly the generate calls of a single-k
evaluation.
"""

from __future__ import annotations

import logging
from math import comb
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from ..core import cache_files, fileio
from ..core.cache import cache_dir, cache_root
from ..core.records import Problem
from ..core.run_folder import EVAL_PROBLEMS_FILE
from ..core.seeding import derive_seed
from ..data import prompts
from ..model.generation import SamplingSpec, generate_counts

log = logging.getLogger(__name__)

PAPER_BENCHMARKS = ("math500", "amc23", "olympiadbench", "aime24")  # §8: the four the paper averages
METRICS = ("greedy", "avg@k", "pass@k")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    Example:
        >>> pass_at_k(4, 0, 2), pass_at_k(4, 4, 2), round(pass_at_k(4, 1, 2), 3)
        (0.0, 1.0, 0.5)
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def benchmark_name(source: str) -> str:
    """The benchmark part of a problem source: `toy/sum` -> `sum`, `math500` -> `math500`."""
    return source.rsplit("/", 1)[-1]


def k_for(source: str, k: int, k_by_benchmark: Mapping[str, int]) -> int:
    """The number of samples of a benchmark: its entry of `k_by_benchmark`, else `k`.

    Example:
        >>> k_for("amc23", 4, {"amc23": 32}), k_for("toy/sum", 4, {"amc23": 32})
        (32, 4)
    """
    return k_by_benchmark.get(benchmark_name(source), k)


def summarize(rows: list[dict]) -> pd.DataFrame:
    """Per (split, source) table from per-problem rows with `greedy` (0/1), `correct` (samples
    correct out of `k`) and `k`; columns `split, source, n, greedy, avg@k, pass@k, k`.

    Adds one `macro` row per split: the unweighted mean over its benchmarks (its `k` is the
    benchmarks' common k, None when they differ).
    """
    df = pd.DataFrame(rows)
    df["avg@k"] = df["correct"] / df["k"]
    df["pass@k"] = [pass_at_k(int(k), int(c), int(k)) for c, k in zip(df["correct"], df["k"])]
    means = {m: (m, "mean") for m in METRICS}
    table = (df.groupby(["split", "source"], sort=True)
               .agg(n=("greedy", "size"), **means, k=("k", "first"))
               .reset_index())
    macro = table.groupby("split").agg(n=("n", "sum"), **means, k=("k", lambda ks: ks.iloc[0] if ks.nunique() == 1 else None))
    macro = macro.reset_index().assign(source="macro")
    out = pd.concat([table, macro[table.columns]], ignore_index=True)
    out["k"] = pd.Series([None if pd.isna(k) else int(k) for k in out["k"]], index=out.index, dtype=object)
    return out  # k: ints in JSON, null for a macro row over different k


def paper_average(table: pd.DataFrame, metric: str = "avg@k") -> pd.Series:
    """Per split: the mean of `metric` over the paper's four benchmarks that were evaluated
    (`PAPER_BENCHMARKS`, §9), or over every benchmark when none of them was (the toy families).

    `table` is `summarize`'s table (or rows of evals.jsonl of one step); `macro` rows are ignored.
    """
    per_bench = table[table["source"] != "macro"]
    out = {}
    for split, g in per_bench.groupby("split", sort=True):
        paper = g[g["source"].map(benchmark_name).isin(PAPER_BENCHMARKS)]
        out[split] = float((paper if len(paper) else g)[metric].mean())
    return pd.Series(out, name=f"paper_average/{metric}", dtype=float)


def evaluate(generator, tokenizer, problems: list[Problem], grader, *, tag: str = "eval", **kwargs) -> pd.DataFrame:
    """Greedy + k samples per problem (k per benchmark, `k_for`) on unguided prompts; returns
    `summarize`'s table. Keywords: those of `evaluate_rows`."""
    return table_of(evaluate_rows(generator, tokenizer, problems, grader, tag=tag, **kwargs), tag)


def shard_rows(generator, tokenizer, problems: list[Problem], grader, rank: int, world: int, **kwargs) -> list:
    """One rank's share of an evaluation: `(position, row)` for problems `rank, rank + world, ...`.
    Each problem's seeds derive from its id, so the gathered rows of every rank (`gathered_rows`)
    make the rows of a one-rank `evaluate_rows` of the same problems."""
    mine = list(range(rank, len(problems), world))
    rows = evaluate_rows(generator, tokenizer, [problems[i] for i in mine], grader, **kwargs) if mine else []
    return list(zip(mine, rows))


def gathered_rows(indexed_rows: list) -> list[dict]:
    """The per-problem rows of every rank's `shard_rows`, concatenated, in the problems' order."""
    return [row for _, row in sorted(indexed_rows, key=lambda pair: pair[0])]


def table_of(rows: list[dict], tag: str = "eval") -> pd.DataFrame:
    """`summarize`'s table of per-problem rows, its paper average logged."""
    table = summarize(rows)
    log.info("%s: paper average avg@k %s", tag, paper_average(table).round(4).to_dict())
    return table


def log_step(out_dir: Path, step: int, per_problem: list[dict], write: bool) -> list[dict]:
    """The step's table rows from its per-problem rows; with `write` (the main process) both are
    appended to the run folder (`evals.jsonl`, `EVAL_PROBLEMS_FILE`)."""
    rows = [{**r, "step": step} for r in table_of(per_problem).to_dict("records")]
    for name, logged in (("evals.jsonl", rows), (EVAL_PROBLEMS_FILE, [{"step": step, **r} for r in per_problem])):
        for r in logged if write else ():
            fileio.append_jsonl(Path(out_dir) / name, r)
    return rows


def evaluate_rows(generator, tokenizer, problems: list[Problem], grader, *, k: int, temperature: float,
                  max_new_tokens: int, instruction: str, seed: int, tag: str = "eval", top_p: float = 1.0,
                  k_by_benchmark: Mapping[str, int] | None = None) -> list[dict]:
    """One row per problem (`summarize`'s input, `eval_problems.jsonl`'s rows): its id, split and
    benchmark (`source`), the greedy reward and `correct`, how many of its `k` samples were right."""
    texts = [prompts.render(tokenizer, prompts.unguided_messages(p, instruction)) for p in problems]
    seeds = [derive_seed(seed, tag, p.id) for p in problems]
    ks = [k_for(p.source, k, k_by_benchmark or {}) for p in problems]
    greedy = generator.generate(texts, SamplingSpec(temperature=0.0, max_new_tokens=max_new_tokens, n=1), seeds)
    sampled = generate_counts(generator, texts, SamplingSpec(temperature=temperature, top_p=top_p,
                                                             max_new_tokens=max_new_tokens), seeds, ks)
    g_grades = grader.grade_many([c[0].text for c in greedy], problems)
    s_grades = grader.grade_many([c.text for cs in sampled for c in cs], [p for p, ki in zip(problems, ks) for _ in range(ki)])
    rows, start = [], 0
    for i, p in enumerate(problems):
        rows.append({"split": p.split, "source": p.source, "problem_id": p.id, "k": ks[i],
                     "greedy": g_grades[i].reward, "correct": int(sum(g.reward for g in s_grades[start : start + ks[i]]))})
        start += ks[i]
    return rows


def run_eval_kwargs(cfg) -> dict:
    """`evaluate`'s keywords from a run's settings (`cfg`, a `RunConfig` read duck-typed: `eval.*`,
    the instruction, the seed; `eval.max_new_tokens` null = `rollout.max_new_tokens`)."""
    e = cfg.eval
    return dict(k=e.k, temperature=e.temperature, top_p=e.top_p, k_by_benchmark=e.k_map,
                max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens, instruction=cfg.instruction, seed=cfg.seed)


def eval_metrics(rows: list[dict]) -> dict[str, float]:
    """`eval/<split>/<source>/<greedy|avg@k|pass@k>` of one evaluation's table rows (metrics.jsonl keys)."""
    return {f"eval/{r['split']}/{r['source']}/{m}": r[m] for r in rows for m in ("greedy", "avg@k", "pass@k")}


def run_results(method: str, evals: list[dict]) -> dict:
    """`results.json` of a run from its `evals.jsonl` rows: the step-0 and the last evaluation."""
    last = max(r["step"] for r in evals)
    return {"method": method, "final_step": last, "base_eval": [r for r in evals if r["step"] == 0],
            "final_eval": [r for r in evals if r["step"] == last]}


def start_eval_cache(cfg, model_dir: Path, problems: list[Problem]) -> Path | None:
    """The cache file of the step-0 evaluation's per-problem rows of `cfg` from `model_dir`, or None
    when the model folder is not content-addressed (not under the cache root: a hub name or a user's folder)."""
    root, model_dir = cache_root(cfg).resolve(), Path(model_dir).resolve()
    if root not in model_dir.parents:
        return None
    key = {"model_dir": str(model_dir.relative_to(root)), "model": cfg.model, "eval": cfg.eval, "seed": cfg.seed,
           "grading": cfg.grading, "backend": cfg.rollout.backend, "instruction": cfg.instruction,
           "max_new_tokens": cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens, "problems": [p.id for p in problems]}
    return cache_dir(cfg, "start_evals", key) / "problems.json"  # per-problem rows (a table.json was the old form)


def cached_rows(path: Path | None, compute: Callable[[], list[dict]], write: bool = True) -> list[dict]:
    """`compute()` (per-problem rows), read from / written to `path` (a JSON list, sealed:
    `cache_files`) when it is given (written when `write`: one rank writes); a cached file cut,
    garbled or replaced is computed again, with a warning."""
    if path is not None and cache_files.intact(path):
        log.debug("step-0 evaluation from the cache: %s", path)
        return fileio.read_json(path)
    rows = compute()
    if path is not None and write:
        fileio.write_json(path, rows)
        cache_files.seal(path)
    return rows
