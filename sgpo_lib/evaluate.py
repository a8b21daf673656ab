"""Evaluation on unguided prompts (sgpo-method.md, Evaluation).

At test time the student never sees a strategy. Per benchmark (the `source` of each
problem) and split we report greedy accuracy, avg@k (mean accuracy over k samples) and
pass@k with the unbiased estimator of Chen et al. (2021), plus the macro average over
benchmarks.
"""

from __future__ import annotations

import logging
from math import comb

import pandas as pd

from . import prompts
from .records import Problem
from .seeding import derive_seed

log = logging.getLogger(__name__)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    Example:
        >>> pass_at_k(4, 0, 2), pass_at_k(4, 4, 2), round(pass_at_k(4, 1, 2), 3)
        (0.0, 1.0, 0.5)
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(rows: list[dict], k: int) -> pd.DataFrame:
    """Per (split, source) table from per-problem rows with `greedy` (0/1) and `samples` (list of 0/1).

    Adds one `macro` row per split: the unweighted mean over its benchmarks.
    """
    df = pd.DataFrame(rows)
    df["avg@k"] = df["samples"].map(lambda s: sum(s) / len(s))
    df["pass@k"] = df["samples"].map(lambda s: pass_at_k(len(s), int(sum(s)), k))
    table = (df.groupby(["split", "source"], sort=True)
               .agg(n=("greedy", "size"), greedy=("greedy", "mean"), **{"avg@k": ("avg@k", "mean"), "pass@k": ("pass@k", "mean")})
               .reset_index())
    macro = table.groupby("split").agg(n=("n", "sum"), greedy=("greedy", "mean"), **{"avg@k": ("avg@k", "mean"), "pass@k": ("pass@k", "mean")}).reset_index()
    macro["source"] = "macro"
    return pd.concat([table, macro[table.columns]], ignore_index=True)


def evaluate(generator, tokenizer, problems: list[Problem], grader, *, k: int, temperature: float,
             max_new_tokens: int, instruction: str, seed: int, tag: str = "eval") -> pd.DataFrame:
    """Greedy + k samples per problem on unguided prompts; returns `summarize`'s table."""
    from .generation import SamplingSpec

    texts = [prompts.render(tokenizer, prompts.unguided_messages(p, instruction)) for p in problems]
    seeds = [derive_seed(seed, tag, p.id) for p in problems]
    greedy = generator.generate(texts, SamplingSpec(temperature=0.0, max_new_tokens=max_new_tokens, n=1), seeds)
    sampled = generator.generate(texts, SamplingSpec(temperature=temperature, max_new_tokens=max_new_tokens, n=k), seeds)
    g_grades = grader.grade_many([c[0].text for c in greedy], problems)
    flat = [c.text for cs in sampled for c in cs]
    s_grades = grader.grade_many(flat, [p for p in problems for _ in range(k)])
    rows = []
    for i, p in enumerate(problems):
        rows.append({"split": p.split, "source": p.source, "problem_id": p.id,
                     "greedy": g_grades[i].reward, "samples": [g.reward for g in s_grades[i * k : (i + 1) * k]]})
    return summarize(rows, k)
