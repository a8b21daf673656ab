"""Paired autonomous / guided rollouts with grading and per-problem success rates.

Implements sgpo-method.md section 2: for each problem `x` of a batch, `G` autonomous
completions `y ~ pi_old(.|prompt(x))` and `G_s` guided completions `y~ ~ pi_old(.|prompt(x, s))`
(only for problems whose `strategy_for(x)` returns a strategy), all graded, then
`p_auto(x)` and `p_guided(x)` = mean reward of each group (the inputs of section 5's weights).

Seeds: the prompt seed is `derive_seed(seed, step, problem_id, guided)` and the generator
derives sample k's seed as `derive_seed(prompt_seed, k)`, so every rollout's seed is a
stable function of `(seed, step, problem_id, guided, k)`: a resumed run redraws the same
samples (conventions.md, point 13).

Departures: `p_guided` is NaN (not 0) for a problem without a strategy or with `G_s = 0`,
so "no guidance" is never confused with "guidance that always failed".

Example (a scripted generator and grader; real ones come from `sgpo_lib.model.generation`/grading):
    >>> from types import SimpleNamespace as NS
    >>> from sgpo_lib.core.records import Problem
    >>> class Echo:
    ...     def generate(self, prompts, spec, seeds):
    ...         return [[NS(token_ids=[1], logprobs=[-0.1], text="4", finish_reason="eos",
    ...                     topk_ids=None, topk_logprobs=None)] * spec.n for _ in prompts]
    >>> class Exact:
    ...     def grade_many(self, texts, problems):
    ...         return [NS(reward=float(t == p.answer), reason="", pred=t) for t, p in zip(texts, problems)]
    >>> class Tok:
    ...     def apply_chat_template(self, messages, tokenize, add_generation_prompt):
    ...         return messages[0]["content"]
    >>> from sgpo_lib.model.generation import SamplingSpec
    >>> batch = sample_paired(Echo(), Tok(), [Problem("p1", "2+2?", "4", "toy", "train")], lambda p: None,
    ...                       n_auto=2, n_guided=2, spec=SamplingSpec(), seed=0, step=0, grader=Exact())
    >>> batch.stats[["problem_id", "p_auto", "n_auto_graded", "n_guided_graded"]].values.tolist()
    [['p1', 1.0, 2, 0]]
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import pandas as pd

from ..core.fileio import read_jsonl, write_jsonl
from ..core.records import Problem, Rollout, Strategy
from ..core.seeding import derive_seed
from ..data.prompts import DEFAULT_INSTRUCTION, guided_messages, render, unguided_messages
from ..grading.grader import reason_counts
from ..model.generation import Completion, Generator, SamplingSpec, generate_counts

logger = logging.getLogger(__name__)

# per problem: success rates, and how many rollouts of each kind were sampled and graded (0 guided
# for a problem without a strategy; not `rollout.n_guided`, the number asked for)
STATS_COLUMNS = ["problem_id", "source", "p_auto", "p_guided", "n_auto_graded", "n_guided_graded"]


class Grader(Protocol):
    """The grading contract (`sgpo_lib.grading.grader`): one grade with `reward`, `reason`, `pred` per text."""

    def grade_many(self, texts: list[str], problems: list[Problem]) -> list[Any]: ...


@dataclass
class PairedBatch:
    """One step's paired rollouts.

    `prompts_unguided[i]` / `prompts_guided[i]` are the rendered prompts of `problems[i]`
    (`prompts_guided[i]` is None without a strategy); `stats` has one row per problem with
    columns `STATS_COLUMNS`; `generate_s` / `grade_s` are wall-clock seconds.
    """

    problems: list[Problem]
    rollouts: list[Rollout]
    stats: Any  # pandas.DataFrame
    prompts_unguided: list[str]
    prompts_guided: list[str | None]
    generate_s: float
    grade_s: float

    def group(self, problem_id: str, guided: bool) -> list[Rollout]:
        """The rollouts of one problem and one kind, in sample order k = 0, 1, ..."""
        return [r for r in self.rollouts if r.problem_id == problem_id and r.guided == guided]


def prompt_seed(seed: int, step: int, problem_id: str, guided: bool) -> int:
    """The seed handed to the generator for one problem's autonomous or guided prompt."""
    return derive_seed(seed, step, problem_id, guided)


def sample_paired(
    generator: Generator,
    tokenizer,
    problems: list[Problem],
    strategy_for: Callable[[Problem], Strategy | None],
    n_auto: int,
    n_guided: int,
    spec: SamplingSpec,
    seed: int,
    step: int,
    grader: Grader,
    instruction: str = DEFAULT_INSTRUCTION,
) -> PairedBatch:
    """Sample `n_auto` unguided and `n_guided` guided completions per problem, grade them all.

    `spec.n` is ignored (replaced by `n_auto` / `n_guided`). Rollouts come out problem by
    problem: autonomous first, then guided, each in sample order.
    """
    _check_batch(problems, n_auto, n_guided)
    strategies = [strategy_for(p) if n_guided else None for p in problems]
    unguided = [render(tokenizer, unguided_messages(p, instruction)) for p in problems]
    guided = [None if s is None else render(tokenizer, guided_messages(p, s, instruction))
              for p, s in zip(problems, strategies)]
    start = time.perf_counter()
    auto_out, guided_out = _generate_paired(generator, unguided, guided, problems, n_auto, n_guided, spec, seed, step)
    generate_s = time.perf_counter() - start
    drafts = []  # (problem, guided, strategy_id, completion)
    for p, s, auto, guid in zip(problems, strategies, auto_out, guided_out):
        drafts += [(p, False, "", c) for c in auto] + [(p, True, s.id, c) for c in guid]
    start = time.perf_counter()
    grades = grader.grade_many([d[3].text for d in drafts], [d[0] for d in drafts])
    grade_s = time.perf_counter() - start
    if len(grades) != len(drafts):
        raise ValueError(f"grader returned {len(grades)} grades for {len(drafts)} texts")
    rollouts = [_rollout(p, g, sid, c, grade) for (p, g, sid, c), grade in zip(drafts, grades)]
    logger.info("paired rollouts step %d: %d problems, %d rollouts, generate %.1fs, grade %.1fs",
                step, len(problems), len(rollouts), generate_s, grade_s)
    return PairedBatch(problems, rollouts, paired_stats(problems, rollouts), unguided, guided, generate_s, grade_s)


def _check_batch(problems: list[Problem], n_auto: int, n_guided: int) -> None:
    if n_auto < 0 or n_guided < 0:
        raise ValueError(f"sample_paired: n_auto={n_auto} and n_guided={n_guided} must be >= 0")
    ids = [p.id for p in problems]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"sample_paired: duplicate problem ids in the batch: {duplicates}")


def _generate_paired(generator, unguided, guided, problems, n_auto, n_guided, spec, seed, step):
    """Autonomous and guided completions in one generator call (one batch, `generate_counts`),
    for the prompts that are not None; an empty list for the others (or for a count of 0). The
    per-rollout seeds depend on neither the call nor the other prompts."""
    P = len(problems)
    prompts, kinds, counts = unguided + guided, [False] * P + [True] * P, [n_auto] * P + [n_guided] * P
    keep = [i for i, p in enumerate(prompts) if p is not None and counts[i]]
    seeds = [prompt_seed(seed, step, problems[i % P].id, kinds[i]) for i in keep]
    comps = generate_counts(generator, [prompts[i] for i in keep], spec, seeds, [counts[i] for i in keep])
    out: list[list[Completion]] = [[] for _ in prompts]
    for i, row in zip(keep, comps):
        out[i] = row
    return out[:P], out[P:]


def _rollout(problem: Problem, guided: bool, strategy_id: str, comp: Completion, grade) -> Rollout:
    return Rollout(
        problem_id=problem.id, guided=guided, token_ids=list(comp.token_ids), logprobs=list(comp.logprobs),
        text=comp.text, reward=float(grade.reward), grade_reason=grade.reason, pred=grade.pred,
        strategy_id=strategy_id, finish_reason=comp.finish_reason,
        topk_ids=comp.topk_ids, topk_logprobs=comp.topk_logprobs,
    )


def paired_stats(problems: list[Problem], rollouts: list[Rollout]):
    """Per-problem `p_auto`, `p_guided` (mean rewards; NaN for an empty group) and group sizes."""
    rows = []
    for p in problems:
        auto = [r.reward for r in rollouts if r.problem_id == p.id and not r.guided]
        guided = [r.reward for r in rollouts if r.problem_id == p.id and r.guided]
        rows.append([p.id, p.source, _mean(auto), _mean(guided), len(auto), len(guided)])
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def rollout_metrics(paired: PairedBatch, w_P) -> dict[str, float]:
    """A training step's rollout metrics: mean `p_auto` (`reward_auto`) and `p_guided`
    (`reward_guided`, over the problems with guided rollouts), the same per source, the mean
    weight `w_mean` (`w_P`: alpha(x) per problem, (P,)), timings, generated tokens and grades by reason."""
    st = paired.stats
    m = {"reward_auto": float(st["p_auto"].mean()), "w_mean": float(w_P.mean()),
         "generate_s": paired.generate_s, "grade_s": paired.grade_s,
         "gen_tokens": sum(len(r.token_ids) for r in paired.rollouts),
         **reason_counts(r.grade_reason for r in paired.rollouts)}
    if st["n_guided_graded"].sum() > 0:
        m["alpha_mean"] = float(w_P.mean())
        m["reward_guided"] = float(st.loc[st["n_guided_graded"] > 0, "p_guided"].mean())
    for source, g in st.groupby("source"):
        m[f"p_auto/{source}"] = float(g["p_auto"].mean())
        if g["n_guided_graded"].sum() > 0:
            m[f"p_guided/{source}"] = float(g.loc[g["n_guided_graded"] > 0, "p_guided"].mean())
    return m


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def save_rollouts(path: str | Path, rollouts: list[Rollout]) -> None:
    """Write rollouts as JSONL atomically."""
    write_jsonl(path, (r.to_dict() for r in rollouts))


def load_rollouts(path: str | Path) -> list[Rollout]:
    """Read rollouts written by `save_rollouts`; a bad row raises naming the file and row."""
    return [Rollout.from_dict(row, where=f"{path}: row {i}: ") for i, row in enumerate(read_jsonl(path), 1)]
