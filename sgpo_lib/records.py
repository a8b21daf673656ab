"""The data records that flow between the stages of a run (see architecture.md).

`Problem` is the one canonical problem record: toy-world problems and real benchmarks
(MATH500, GSM8K, ...) are both `Problem`s, so nothing downstream can tell them apart except
by `source`. `Strategy` is the schema of sgpo-method.md section 1. `Rollout` is one sampled
completion with everything the trainer needs (token ids, sampling log-probs, reward).

All records round-trip through plain dicts (`to_dict` / `from_dict`) for JSONL storage;
`from_dict` rejects unknown or missing keys with a message naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _from_dict(cls, row: dict[str, Any], where: str = ""):
    """Build dataclass `cls` from `row`, naming unknown or missing keys in the error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(row) - names)
    if unknown:
        raise ValueError(f"{where}{cls.__name__}: unknown keys {unknown}; expected some of {sorted(names)}")
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(row))
    if missing:
        raise ValueError(f"{where}{cls.__name__}: missing keys {missing}")
    return cls(**row)


@dataclass(frozen=True)
class Problem:
    """One problem with its reference answer.

    `source` is the benchmark or toy family (e.g. "math500", "toy/modmul"); `split` is
    "train", "test" or "ood". `answer_kind` chooses the grader: "math" (math-verify
    equivalence) or "exact" (toy world: exact string match after normalisation).
    `strong_response` is a strong model's solution when the data set provides one.
    """

    id: str
    problem: str
    answer: str
    source: str
    split: str
    answer_kind: str = "math"
    strong_response: str | None = None
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "") -> "Problem":
        return _from_dict(cls, row, where)


@dataclass(frozen=True)
class Strategy:
    """A reusable strategy (sgpo-method.md section 1), plus its id and provenance.

    `steps` and `pitfalls` are tuples so the record stays hashable and frozen.
    """

    id: str
    name: str
    problem_type: str
    key_insight: str
    steps: tuple[str, ...]
    pitfalls: tuple[str, ...] = ()
    source_problem_id: str = ""
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "pitfalls", tuple(self.pitfalls))

    def render(self) -> str:
        """The strategy block put in the guided prompt (plain text, no ids)."""
        lines = [f"Strategy: {self.name}", f"Key insight: {self.key_insight}", "Steps:"]
        lines += [f"{i}. {s}" for i, s in enumerate(self.steps, 1)]
        if self.pitfalls:
            lines.append("Pitfalls: " + "; ".join(self.pitfalls))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["steps"], row["pitfalls"] = list(self.steps), list(self.pitfalls)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "") -> "Strategy":
        return _from_dict(cls, row, where)


@dataclass
class Rollout:
    """One sampled completion of one prompt.

    `token_ids` are the completion tokens only (the prompt is rebuilt from the problem);
    `logprobs` are the sampling log-probs of those tokens under the policy that sampled them
    (pi_old). `topk_ids` / `topk_logprobs` (T lists of K) are the engine's top-k at each
    position when asked for. `grade_reason` says why a reward is what it is ("correct",
    "wrong", "no_answer", "timeout", "parse_error", ...).
    """

    problem_id: str
    guided: bool
    token_ids: list[int]
    logprobs: list[float]
    text: str
    reward: float = 0.0
    grade_reason: str = ""
    pred: str = ""
    strategy_id: str = ""
    finish_reason: str = ""
    topk_ids: list[list[int]] | None = None
    topk_logprobs: list[list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "") -> "Rollout":
        return _from_dict(cls, row, where)
