"""The verifier: reward r ∈ {0, 1} for a completion (sgpo-method.md, Notation and section 2).

`Grader.grade_many(texts, problems)` sends every completion, cut to its last `tail_kb` KB, to
killable worker processes (`sgpo_lib.grading.pool`); extraction (`sgpo_lib.grading.extract`)
and equivalence (`sgpo_lib.grading.check`, `sgpo_lib.grading.sets`) both run there, under a
per-answer budget of `budget_s` seconds (default 2) that includes replacing a stuck worker
(each worker keeps a warm process that forks the replacement in milliseconds). Answers travel in batches; strings and plain numbers are decided
before math-verify is asked.

Every outcome is a `Grade(reward, reason, pred)`; failures are wrong answers with a reason,
never exceptions; the reward is 1 exactly when the reason is "correct". Reasons (`REASONS`):
"correct", "wrong", "no_answer" (nothing to extract), "unparsed" (the prediction is not a
complete math expression: leftover text, code, or too long), "restated" (the answer restates
the problem's own unevaluated expression, `sgpo_lib.grading.restate`: a reward hack),
"polarity" (a yes/no or true/false reference, and the answer states the other polarity or
none, `sgpo_lib.grading.words`), "timeout" (over budget), "error" (the worker crashed, or the
reference does not parse: a data problem). `Grader.reasons` counts them; `reason_counts` gives
per-batch counts for the step metrics (`grade/<reason>`), which the report sums per run.

Model text is data, never code: nothing evaluates it; the worker's safeguards are described
in `sgpo_lib.grading.worker`.

Departures from plain math-verify: our own extractor (the same answer whatever the
benchmark; several boxes on the final line form a set, or against a one-item reference the
last of them counts; without a box, the answer the final sentence states, and the whole equation
against an equation reference), plain-text math (`sqrt`, `pi`, `ln`, `3.2 x 10^-5`) and unicode
roots read as LaTeX, multiple-choice letters with their label,
yes/no = true/false, plain numbers compared by the numeric policy (`numeric_policy`: a decimal
reference accepts what rounds to it, else a relative tolerance; see `sgpo_lib.grading.check`),
percent signs (and, in a problem stated in percent, `0.625` = `62.5`: each task carries the
problem), intervals vs inequalities and `+ k pi` families, and no reward for restating the
question.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from ..core.records import Problem
from .check import DEFAULT_NUMERIC_POLICY, NUMERIC_POLICIES, normalize_exact, normalize_latex_light, to_latex_number
from .extract import extract_answer
from .pool import WorkerPool

__all__ = ["Grade", "Grader", "grade", "grader_for", "reason_counts", "extract_answer", "normalize_exact",
           "normalize_latex_light", "to_latex_number", "REASONS"]

log = logging.getLogger(__name__)

DEFAULT_BUDGET_S = 2.0
DEFAULT_TAIL_KB = 8
KILL_MARGIN_S = 0.25  # of the budget, kept for killing a stuck worker and reading the reply
WORKER_MEMORY_LIMIT_MB = 2048
REASONS = ("correct", "wrong", "no_answer", "unparsed", "restated", "polarity", "timeout", "error")
PROBLEM_CHARS = 8192  # of the problem statement sent with each answer (restatement, percent and yes/no rules)


@dataclass(frozen=True)
class Grade:
    """`reward` in {0.0, 1.0}; `reason` one of `REASONS`; `pred` the extracted answer ("" if none)."""

    reward: float
    reason: str
    pred: str


def reason_counts(reasons) -> dict[str, int]:
    """`{"grade/<reason>": count}` for every reason in `REASONS` (zeros included), for metrics.

    >>> reason_counts(["correct", "timeout", "correct"])["grade/correct"]
    2
    """
    counts = Counter(reasons)
    return {f"grade/{r}": counts.get(r, 0) for r in REASONS}


def _to_grade(result: dict) -> Grade:
    if result.get("blocked"):
        log.warning("grading worker refused %s while grading %r", sorted(set(result["blocked"])), result["pred"][:80])
    reason = result["reason"] if result["reason"] in REASONS else "error"
    return Grade(1.0 if reason == "correct" else 0.0, reason, result["pred"])


class Grader:
    """Grades batches of completions in `workers` killable processes.

    Workers start on the first call and stay up until `close()` (or the end of a `with`
    block). `reasons` counts every grade it has given.

    Example:
        >>> p = Problem(id="t1", problem="2+2?", answer="4", source="toy", split="test", answer_kind="exact")
        >>> with Grader() as g:
        ...     g.grade_many(["so \\\\boxed{4}", "I think 5"], [p, p])
        [Grade(reward=1.0, reason='correct', pred='4'), Grade(reward=0.0, reason='wrong', pred='5')]
    """

    def __init__(self, budget_s: float = DEFAULT_BUDGET_S, workers: int = 2, tail_kb: int = DEFAULT_TAIL_KB,
                 batch_size: int = 16, memory_limit_mb: int = WORKER_MEMORY_LIMIT_MB,
                 numeric_policy: str = DEFAULT_NUMERIC_POLICY):
        if budget_s <= 2 * KILL_MARGIN_S or workers < 1 or tail_kb < 1 or numeric_policy not in NUMERIC_POLICIES:
            raise ValueError(f"Grader: need budget_s > {2 * KILL_MARGIN_S}, workers >= 1, tail_kb >= 1 and "
                             f"numeric_policy in {NUMERIC_POLICIES}, got {budget_s}, {workers}, {tail_kb}, {numeric_policy!r}")
        self.budget_s, self.workers, self.tail_kb, self.numeric_policy = budget_s, workers, tail_kb, numeric_policy
        self.batch_size, self.memory_limit_mb = batch_size, memory_limit_mb
        self.reasons: Counter = Counter()
        self._pool: WorkerPool | None = None
        self._closed_restarts = 0

    def grade_many(self, texts: list[str], problems: list[Problem]) -> list[Grade]:
        """One Grade per (text, problem) pair, in order."""
        if len(texts) != len(problems):
            raise ValueError(f"grade_many: {len(texts)} texts but {len(problems)} problems")
        bad = sorted({p.answer_kind for p in problems} - {"math", "exact"})
        if bad:
            raise ValueError(f"grade_many: unknown answer_kind {bad} (expected 'math' or 'exact')")
        tail = self.tail_kb * 1024
        tasks = [{"text": t[-tail:], "gold": p.answer, "kind": p.answer_kind, "problem": p.problem[:PROBLEM_CHARS],
                  "policy": self.numeric_policy} for t, p in zip(texts, problems)]
        grades = [_to_grade(r) for r in self._get_pool().run(tasks)] if tasks else []
        self.reasons.update(g.reason for g in grades)
        return grades

    def _get_pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(self.workers, self.budget_s - KILL_MARGIN_S, self.memory_limit_mb,
                                    tail_chars=self.tail_kb * 1024, batch_size=self.batch_size)
        return self._pool

    @property
    def restarts(self) -> int:
        """How many workers were killed and replaced (timeouts and crashes)."""
        return self._closed_restarts + (self._pool.restarts if self._pool else 0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._closed_restarts += self._pool.restarts
            self._pool = None

    def __enter__(self) -> "Grader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def grader_for(cfg) -> Grader:
    """The `Grader` a run uses, from its `grading` params (`sgpo_lib.config.GradingConfig`)."""
    g = cfg.grading
    return Grader(budget_s=g.budget_s, workers=g.workers, tail_kb=g.tail_kb, batch_size=g.batch_size,
                  numeric_policy=g.numeric_policy)


def grade(text: str, problem: Problem, budget_s: float = DEFAULT_BUDGET_S) -> Grade:
    """Grade one completion (starts a one-worker `Grader`: use `Grader` for batches)."""
    with Grader(budget_s=budget_s, workers=1) as grader:
        return grader.grade_many([text], [problem])[0]
