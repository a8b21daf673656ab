"""The data records that flow between the stages of a run (see architecture.md).

`Problem` is the one canonical problem record: toy-world problems and real benchmarks
(MATH500, GSM8K, ...) are both `Problem`s, so nothing downstream can tell them apart except
by `source`. `Strategy` is the three-field schema of sgpo-method.md section 1 (v1 rows
still load, see `fold_v1_fields`). `Rollout` is one sampled
completion with everything the trainer needs (token ids, sampling log-probs, reward).

All records round-trip through plain dicts (`to_dict` / `from_dict`) for JSONL storage;
`from_dict` rejects unknown or missing keys with a message naming them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


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


V1_STRATEGY_KEYS = frozenset({"name", "key_insight", "pitfalls"})


def fold_v1_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The three §1 fields of a v1 strategy dict (name, key_insight, steps, pitfalls), such
    that the v2 `Strategy.render()` equals the v1 rendering byte for byte.

    `strategy` = name, a newline, "Key insight: " + key_insight; the pitfalls (stripped, empty
    ones dropped, as v1 validation did) become a "Pitfalls: a; b" line at the end of the last
    step. A partial row (a cut-off extractor answer) maps to a partial row: `strategy` only if
    name and key_insight are both there, `steps` only if steps are; other keys pass through.

    >>> fold_v1_fields({"name": "N", "key_insight": "K", "steps": ["a ", "b"], "pitfalls": ["p", " "]})
    {'strategy': 'N\\nKey insight: K', 'steps': ['a', 'b\\nPitfalls: p']}
    """
    out = {k: v for k, v in row.items() if k not in V1_STRATEGY_KEYS | {"steps"}}
    if "name" in row and "key_insight" in row:
        out["strategy"] = f"{row['name'].strip()}\nKey insight: {row['key_insight'].strip()}"
    if "steps" in row:
        steps = [s.strip() for s in row["steps"]]
        pitfalls = [p.strip() for p in row.get("pitfalls", []) if p.strip()]
        if steps and pitfalls:
            steps[-1] += "\nPitfalls: " + "; ".join(pitfalls)
        out["steps"] = steps
    return out


@dataclass(frozen=True)
class Strategy:
    """A reusable strategy with the three fields of sgpo-method.md section 1, its id and provenance.

    `problem_type`: the kind of problem; `strategy`: the principle / theorem / technique;
    `steps`: high-level procedural steps (no concrete computation, no answer), a tuple so the
    record stays hashable and frozen. `render()` is the block of the guided prompt
    (`problem_type` is not shown: it serves retrieval, as in v1). A v1 row (name, key_insight,
    steps, pitfalls) loads through `fold_v1_fields` (`StrategyLibrary.load` warns, naming the file).
    """

    id: str
    problem_type: str
    strategy: str
    steps: tuple[str, ...]
    source_problem_id: str = ""
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(self.steps))

    def render(self) -> str:
        """The strategy block put in the guided prompt (plain text, no ids)."""
        lines = [f"Strategy: {self.strategy}", "Steps:"]
        lines += [f"{i}. {s}" for i, s in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def fields(self) -> dict[str, Any]:
        """The three §1 fields as a JSON-ready dict."""
        return {"problem_type": self.problem_type, "strategy": self.strategy, "steps": list(self.steps)}

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["steps"] = list(self.steps)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "") -> "Strategy":
        v1 = sorted(V1_STRATEGY_KEYS & set(row))
        if v1:
            if "strategy" in row:
                raise ValueError(f"{where}Strategy: has both the v1 keys {v1} and the v2 key 'strategy'")
            row = fold_v1_fields(row)
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


@dataclass
class TrainData:
    """What one training run needs besides its config (built by `assets.train_data`)."""

    model_dir: Path
    train: list[Problem]
    eval: list[Problem]
    strategy_for: Callable[[Problem], Strategy | None]
