"""The verifier: reward r ∈ {0, 1} for a completion (sgpo-method.md, Notation and section 2).

1. `extract_answer` finds the prediction in the text: the last `\\boxed{...}` / `\\fbox{...}`
   (nested braces balanced), else the last `#### ...` line (GSM8K style), else the last
   "the answer is ..." / "final answer: ...", else the last number.
2. `Problem.answer_kind == "exact"` (toy world) compares strings after light normalisation
   (`normalize_exact`: no whitespace, no trailing full stop), in this process.
   `answer_kind == "math"` first tries the same kind of string match on lightly normalised
   LaTeX, then asks math-verify (`parse` + `verify`, both wrapped in `\\boxed{}`) in a worker
   process with a hard wall-clock limit per answer (`sgpo_lib.grading_pool`).
3. Every outcome is a `Grade(reward, reason, pred)`; failures are counted wrong answers with a
   reason, never exceptions: "correct", "wrong", "no_answer", "too_long", "timeout",
   "parse_error" (math-verify found no expression in the prediction), "gold_parse_error" (nor
   in the reference: a data problem), "worker_error" (the worker died). `Grader.reasons` counts them.

Model text is data, never code: nothing here evaluates it; the worker's safeguards are
described in `sgpo_lib.grading_worker`.

Departures from plain math-verify: the prediction comes from our own extractor (so the same
answer is graded whatever the benchmark), scientific notation such as `1.07e16` is rewritten
as `1.07\\times10^{16}` (latex2sympy would read `e` as Euler's number), and an answer longer
than `max_answer_chars` is rejected as "too_long" before any parser sees it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

from .grading_pool import WorkerPool
from .records import Problem

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
MAX_ANSWER_CHARS = 1000
WORKER_MEMORY_LIMIT_MB = 2048
REASONS = ("correct", "wrong", "no_answer", "too_long", "timeout", "parse_error",
           "gold_parse_error", "worker_error")

_BOX_RE = re.compile(r"\\(boxed|fbox)\s*\{")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS_RE = re.compile(r"(?i)(?:final answer|the answer)(?:\s+is)?\s*:?\s*([^\n]+?)(?=\.\s|\.?\s*(?:\n|$))")
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SCI_RE = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_LATEX_NOISE_RE = re.compile(r"\\left|\\right|\\[!,;:]|\\displaystyle|\^\{?\\circ\}?|\s+")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_ONE_CHAR_GROUP_RE = re.compile(r"([_^])\{(\w)\}")


@dataclass(frozen=True)
class Grade:
    """`reward` in {0.0, 1.0}; `reason` one of `REASONS`; `pred` the extracted answer ("" if none)."""

    reward: float
    reason: str
    pred: str


def _balanced(text: str, start: int) -> str | None:
    """The text from `start` up to the brace that closes an already-open `{`, or None."""
    depth, i = 1, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "{") - (c == "}")
        if depth == 0:
            return text[start:i]
        i += 1
    return None


def _last_boxed(text: str) -> tuple[str, str] | None:
    """(content, "boxed"|"fbox") of the last outermost box with balanced braces."""
    found, end = None, -1
    for m in _BOX_RE.finditer(text):
        if m.start() < end:
            continue  # nested inside the box found before
        content = _balanced(text, m.end())
        if content is not None:
            found, end = (content.strip(), m.group(1)), m.end() + len(content) + 1
    return found


def _clean(s: str) -> str:
    """Strip markdown bold, math delimiters and a final full stop around a one-line answer."""
    s = s.strip().rstrip(".").strip().strip("*").strip()
    s = re.sub(r"^(\$+|\\\(|\\\[)|(\$+|\\\)|\\\])$", "", s).strip()
    return s.rstrip(".").strip()


def extract_answer(text: str) -> tuple[str | None, str]:
    """(prediction, how) with how in {"boxed", "fbox", "hash", "answer_is", "last_number", "none"}.

    Example:
        >>> extract_answer("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
        ('\\\\frac{1}{2}', 'boxed')
        >>> extract_answer("She pays 3 * 4 = 12 dollars.\\n#### 12")
        ('12', 'hash')
        >>> extract_answer("Thus the answer is: **1,024**.")
        ('1024', 'answer_is')
        >>> extract_answer("no digits here")
        (None, 'none')
    """
    boxed = _last_boxed(text)
    if boxed:
        return boxed
    for how, regex in (("hash", _HASH_RE), ("answer_is", _ANSWER_IS_RE)):
        found = [c for c in map(_clean, regex.findall(text)) if c]
        if found:
            return (found[-1].replace(",", "") if _THOUSANDS_RE.match(found[-1]) else found[-1]), how
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return numbers[-1].replace(",", ""), "last_number"
    return None, "none"


def normalize_exact(s: str) -> str:
    """Toy-world normalisation: no whitespace, no trailing full stops.

    >>> normalize_exact(" 4 2 . ")
    '42'
    """
    return re.sub(r"\s+", "", s).rstrip(".")


def normalize_latex_light(s: str) -> str:
    """String form used for the quick equality test before math-verify (formatting only).

    >>> normalize_latex_light("\\\\text{B, E, G}") == normalize_latex_light("B,E,G")
    True
    >>> normalize_latex_light("E_{1}, E_2")
    'E_1,E_2'
    >>> normalize_latex_light("45^\\circ, 135^\\circ")
    '45,135'
    """
    s = _clean(s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac"))
    s = _ONE_CHAR_GROUP_RE.sub(r"\1\2", _TEXT_WRAP_RE.sub(r"\1", s))
    return normalize_exact(_LATEX_NOISE_RE.sub("", s))


def to_latex_number(s: str) -> str:
    """`1.07e16` -> `1.07\\times10^{16}`; anything else unchanged.

    >>> to_latex_number("2.88e-19")
    '2.88\\\\times10^{-19}'
    """
    m = _SCI_RE.match(s.strip())
    return f"{m.group(1)}\\times10^{{{m.group(2)}}}" if m else s


def _status_to_grade(result: dict, pred: str) -> Grade:
    if result.get("blocked"):
        log.warning("grading worker refused %s while checking %r", sorted(set(result["blocked"])), pred[:80])
    if result["ok"]:
        return Grade(1.0, "correct", pred)
    status = result["status"]
    reason = {"ok": "wrong", "error": "worker_error"}.get(status, status)
    return Grade(0.0, reason if reason in REASONS else "worker_error", pred)


class Grader:
    """Grades batches of completions; math equivalence runs in `workers` killable processes.

    Workers start on the first math answer that needs math-verify, and stay up until
    `close()` (or the end of a `with` block). `reasons` counts every grade it has given.

    Example:
        >>> p = Problem(id="t1", problem="2+2?", answer="4", source="toy", split="test", answer_kind="exact")
        >>> with Grader() as g:
        ...     g.grade_many(["so \\\\boxed{4}", "I think 5"], [p, p])
        [Grade(reward=1.0, reason='correct', pred='4'), Grade(reward=0.0, reason='wrong', pred='5')]
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2,
                 max_answer_chars: int = MAX_ANSWER_CHARS,
                 memory_limit_mb: int = WORKER_MEMORY_LIMIT_MB):
        if timeout_s <= 0 or workers < 1:
            raise ValueError(f"Grader: need timeout_s > 0 and workers >= 1, got {timeout_s}, {workers}")
        self.timeout_s, self.workers = timeout_s, workers
        self.max_answer_chars, self.memory_limit_mb = max_answer_chars, memory_limit_mb
        self.reasons: Counter = Counter()
        self._pool: WorkerPool | None = None
        self._closed_restarts = 0

    def _local_grade(self, text: str, problem: Problem) -> tuple[str, Grade | None]:
        """(pred, Grade) when no worker is needed, else (pred, None): math-verify decides."""
        pred, _how = extract_answer(text)
        if pred is None:
            return "", Grade(0.0, "no_answer", "")
        if len(pred) > self.max_answer_chars:
            return pred, Grade(0.0, "too_long", pred[: self.max_answer_chars])
        if problem.answer_kind == "exact":
            same = normalize_exact(pred) == normalize_exact(problem.answer)
            return pred, Grade(float(same), "correct" if same else "wrong", pred)
        if problem.answer_kind != "math":
            raise ValueError(f"problem {problem.id}: unknown answer_kind {problem.answer_kind!r} (expected 'math' or 'exact')")
        if normalize_latex_light(pred) == normalize_latex_light(problem.answer):
            return pred, Grade(1.0, "correct", pred)
        return pred, None

    def grade_many(self, texts: list[str], problems: list[Problem]) -> list[Grade]:
        """One Grade per (text, problem) pair, in order."""
        if len(texts) != len(problems):
            raise ValueError(f"grade_many: {len(texts)} texts but {len(problems)} problems")
        grades: list[Grade | None] = []
        pending: list[tuple[int, str]] = []
        for i, (text, problem) in enumerate(zip(texts, problems)):
            pred, local = self._local_grade(text, problem)
            grades.append(local)
            if local is None:
                pending.append((i, pred))
        if pending:
            tasks = [{"pred": to_latex_number(pred), "gold": to_latex_number(problems[i].answer)}
                     for i, pred in pending]
            for (i, pred), result in zip(pending, self._get_pool().run(tasks)):
                grades[i] = _status_to_grade(result, pred)
        self.reasons.update(g.reason for g in grades)
        return grades

    def _get_pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(self.workers, self.timeout_s, self.memory_limit_mb)
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


def grade(text: str, problem: Problem, timeout_s: float = DEFAULT_TIMEOUT_S) -> Grade:
    """Grade one completion (starts a one-worker `Grader` for math answers: use `Grader` for batches)."""
    with Grader(timeout_s=timeout_s, workers=1) as grader:
        return grader.grade_many([text], [problem])[0]
