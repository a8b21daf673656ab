"""Strategy extraction, validation and the strategy library (sgpo-method.md §1).

An extractor LLM reads a problem and a strong model's correct solution (`extraction_messages`)
and returns JSON with the three §1 fields: `problem_type`, `strategy` (the principle /
theorem / technique) and procedural `steps` (high level, no computation, no answer); other
keys are ignored. `parse_strategy` turns each raw completion into a `Strategy` or a
`Rejection` with a reason; `strategies.select.extract_strategies` sends the prompts, samples the
candidates and selects one per problem. Every limit is a keyword argument (a
`StrategyLimits` field, e.g. `max_steps=5`), so a config can set it.

Validation, in order: JSON repair (prose or code fences around the object, trailing commas,
truncated output closed at the last complete value; raw control characters such as newlines
inside strings are read as they are), required fields, types, length limits
(`StrategyLimits`), then the leak check: a strategy that states the reference answer, or copies
more than `max_copied_numbers` of the problem's numbers, is a trajectory, not a strategy.

`StrategyLibrary` stores strategies as JSONL (ids and provenance: extractor, source problem,
sha256 of the raw completion) and answers `for_problem`: the problem's own strategy, else the
same-`problem_type` strategy with the largest word overlap with the problem (ties by id).

Departures: numbers in `generic_numbers` (0, 1, 2 by default) count neither as copied numbers
nor as an answer leak, since "add 1" or "divide by 2" is method, not instance; a non-numeric
answer leaks when its normalised form (no spaces, `$`, `\\left`/`\\right`) is a substring.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..core.fileio import read_jsonl, write_jsonl
from ..core.records import V1_STRATEGY_KEYS, Problem, Strategy

log = logging.getLogger(__name__)

Messages = list[dict]
CompleteFn = Callable[[list[Messages]], list[str]]

EXTRACTION_SYSTEM = (
    "You distil reusable problem-solving strategies from worked solutions. "
    "Answer with one JSON object and nothing else."
)
EXTRACTION_TEMPLATE = """Below is a problem and a correct solution written by a strong solver.
Describe the general strategy behind the solution so that a weaker solver could apply it to
other problems of the same type. Be abstract: do not state the final answer, do not copy
numbers from this particular problem and do not carry out any computation.

Return exactly this JSON schema (all values plain text):
{{"problem_type": "the kind of problem it applies to",
 "strategy": "the principle, theorem or technique that solves it, in one or two sentences",
 "steps": ["{min_steps} to {max_steps} high-level procedural steps: no concrete computation, no numbers from this instance, no answer"]}}

Problem:
{problem}

Solution:
{solution}"""

_STR_FIELDS = ("problem_type", "strategy")
_NUMBER_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d])")
_LEAK_NOISE_RE = re.compile(r"\s+|\$|\\left|\\right|\\,|\\!")
_WORD_RE = re.compile(r"[a-z]{3,}")
MAX_JSON_STARTS = 10
MAX_TRUNCATION_CUTS = 20


@dataclass(frozen=True)
class StrategyLimits:
    """Every validation limit of `parse_strategy` (sgpo-method.md §1: 3 to 6 steps)."""

    min_steps: int = 3
    max_steps: int = 6
    max_type_chars: int = 80
    max_strategy_chars: int = 400
    max_step_chars: int = 400
    max_chars: int = 1200
    max_copied_numbers: int = 1
    generic_numbers: tuple[str, ...] = ("0", "1", "2")


def make_limits(**limits: Any) -> StrategyLimits:
    """`StrategyLimits` from keyword overrides; an unknown key raises with the valid ones."""
    valid = set(StrategyLimits.__dataclass_fields__)
    unknown = sorted(set(limits) - valid)
    if unknown:
        raise ValueError(f"unknown strategy limits {unknown}; valid: {sorted(valid)}")
    made = StrategyLimits(**limits)
    if not 1 <= made.min_steps <= made.max_steps:
        raise ValueError(f"strategy limits: need 1 <= min_steps <= max_steps, got {made.min_steps}, {made.max_steps}")
    return made


@dataclass(frozen=True)
class Rejection:
    """Why an extractor output is not a strategy: `reason` is a short key, `detail` says more."""

    reason: str
    detail: str


def extraction_messages(problem: Problem, **limits: Any) -> Messages:
    """Chat messages asking the extractor for the §1 JSON of `problem.strong_response`."""
    limits = make_limits(**limits)
    if not problem.strong_response:
        raise ValueError(f"problem {problem.id}: no strong_response to extract a strategy from")
    user = EXTRACTION_TEMPLATE.format(problem=problem.problem, solution=problem.strong_response,
                                      min_steps=limits.min_steps, max_steps=limits.max_steps)
    return [{"role": "system", "content": EXTRACTION_SYSTEM}, {"role": "user", "content": user}]


def _scan_object(text: str) -> tuple[str, list[str], bool, list[tuple[int, tuple[str, ...]]]]:
    """Scan one JSON object from text[0] == "{", dropping trailing commas.

    Returns (text kept, closers still open, inside a string at the end, cut points), where a
    cut point is (length kept before a top-level-or-nested comma, closers open there).
    """
    out: list[str] = []
    closers: list[str] = []
    in_string = escaped = False
    cuts: list[tuple[int, tuple[str, ...]]] = []
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
        elif ch in "}]":
            while out and out[-1].isspace():
                out.pop()
            if out and out[-1] == ",":
                out.pop()
            if not closers or closers.pop() != ch:
                raise ValueError(f"unbalanced {ch!r}")
            if not closers:
                return "".join(out) + ch, [], False, []
        elif ch == ",":
            cuts.append((len(out), tuple(closers)))
        elif ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out), closers, in_string, cuts


def _close(kept: str, closers: Iterable[str]) -> str:
    return kept.rstrip().rstrip(",") + "".join(reversed(list(closers)))


def _candidates(text: str) -> Iterator[tuple[str, bool]]:
    """(JSON text, was repaired) candidates for the object starting at text[0]."""
    kept, closers, in_string, cuts = _scan_object(text)
    if not closers:
        yield kept, kept != text.strip()
        return
    yield _close(kept + ('"' if in_string else ""), closers), True
    for length, open_closers in reversed(cuts[-MAX_TRUNCATION_CUTS:]):
        yield _close(kept[:length], open_closers), True


def repair_json(raw: str) -> tuple[dict, bool]:
    """(parsed JSON object, repaired) from an extractor's raw text; ValueError if none parses.

    >>> repair_json('Sure! ```json\\n{"a": [1, 2,],}\\n``` Hope this helps.')
    ({'a': [1, 2]}, True)
    >>> repair_json('{"a": "x", "b": ["p", "q')
    ({'a': 'x', 'b': ['p', 'q']}, True)
    """
    fenced = re.findall(r"```(?:json)?\s*(.*?)(?:```|$)", raw, flags=re.S)
    for block in fenced + [raw]:
        starts = [m.start() for m in re.finditer(r"\{", block)][:MAX_JSON_STARTS]
        for start in starts:
            try:
                for candidate, repaired in _candidates(block[start:]):
                    try:
                        return json.loads(candidate, strict=False), repaired or block is not raw or start > 0
                    except json.JSONDecodeError:
                        continue
            except ValueError:
                continue
    raise ValueError("no JSON object found" if "{" not in raw else "JSON could not be repaired")


def _check_fields(obj: dict, limits: StrategyLimits) -> Rejection | None:
    """Required fields, types and lengths."""
    missing = [k for k in (*_STR_FIELDS, "steps") if k not in obj]
    if missing:
        return Rejection("missing_field", f"missing {missing}")
    for key in _STR_FIELDS:
        if not isinstance(obj[key], str):
            return Rejection("wrong_type", f"{key} must be a string, got {type(obj[key]).__name__}")
    if not isinstance(obj["steps"], list) or not all(isinstance(v, str) for v in obj["steps"]):
        return Rejection("wrong_type", "steps must be a list of strings")
    if any(not obj[k].strip() for k in _STR_FIELDS) or any(not s.strip() for s in obj["steps"]):
        return Rejection("empty_field", "a field or step is empty")
    if not limits.min_steps <= len(obj["steps"]) <= limits.max_steps:
        return Rejection("step_count", f"{len(obj['steps'])} steps, need {limits.min_steps}-{limits.max_steps}")
    return _check_lengths(obj, limits)


def _check_lengths(obj: dict, limits: StrategyLimits) -> Rejection | None:
    sized = [("problem_type", obj["problem_type"], limits.max_type_chars),
             ("strategy", obj["strategy"], limits.max_strategy_chars)]
    sized += [("steps", s, limits.max_step_chars) for s in obj["steps"]]
    for key, text, limit in sized:
        if len(text) > limit:
            return Rejection("too_long", f"{key}: {len(text)} chars > {limit}")
    total = sum(len(text) for _, text, _ in sized)
    if total > limits.max_chars:
        return Rejection("too_long", f"all fields: {total} chars > {limits.max_chars}")
    return None


def _numbers(text: str) -> set[str]:
    return set(_NUMBER_RE.findall(re.sub(r"(?<=\d),(?=\d{3})", "", text)))


def _leak_norm(text: str) -> str:
    return _LEAK_NOISE_RE.sub("", text.replace("\\dfrac", "\\frac")).lower()


def check_leak(text: str, problem: Problem, **limits: Any) -> Rejection | None:
    """`answer_leak` if the strategy text states the answer, `number_leak` if it copies numbers."""
    return _leak(text, problem, make_limits(**limits))


def _leak(text: str, problem: Problem, limits: StrategyLimits) -> Rejection | None:
    generic = set(limits.generic_numbers)
    answer = _leak_norm(problem.answer)
    if _NUMBER_RE.fullmatch(answer):
        leaked = answer not in generic and answer in _numbers(text)
    else:
        leaked = len(answer) > 1 and answer in _leak_norm(text)
    if leaked:
        return Rejection("answer_leak", f"states the answer {problem.answer!r}")
    copied = sorted((_numbers(problem.problem) - generic) & _numbers(text))
    if len(copied) > limits.max_copied_numbers:
        return Rejection("number_leak", f"copies {len(copied)} numbers of the problem: {copied[:8]}")
    return None


def parse_strategy(raw: str, problem: Problem, *, extractor: str = "unknown", **limits: Any) -> Strategy | Rejection:
    """Validate one extractor completion for `problem` (see the module docstring).

    `limits` are `StrategyLimits` fields (e.g. `max_steps=5`); `extractor` goes to provenance.
    """
    limits = make_limits(**limits)
    if not raw or not raw.strip():
        return Rejection("empty_completion", "the extractor returned nothing")
    try:
        obj, repaired = repair_json(raw)
    except ValueError as e:
        return Rejection("invalid_json", str(e))
    bad = _check_fields(obj, limits)
    if bad:
        return bad
    fields = {k: obj[k].strip() for k in _STR_FIELDS}
    steps = [s.strip() for s in obj["steps"]]
    leak = _leak("\n".join([*fields.values(), *steps]), problem, limits)
    if leak:
        return leak
    raw_sha = hashlib.sha256(raw.encode()).hexdigest()
    provenance = {"extractor": extractor, "source": problem.source, "raw_sha256": raw_sha, "repaired": repaired}
    return Strategy(id=f"{problem.id}#{raw_sha[:10]}", steps=tuple(steps), source_problem_id=problem.id, provenance=provenance, **fields)


def _words(text: str) -> set[str]:
    return set(_WORD_RE.findall(text.lower()))


def _type_key(problem_type: str) -> str:
    return " ".join(problem_type.lower().split())


class StrategyLibrary:
    """Strategies with ids and provenance; JSONL storage; per-problem lookup and retrieval."""

    def __init__(self, strategies: Iterable[Strategy] = ()):
        self._items: list[Strategy] = []
        self._by_id: dict[str, Strategy] = {}
        self._by_problem: dict[str, Strategy] = {}
        for s in strategies:
            self.add(s)

    def add(self, strategy: Strategy) -> None:
        if strategy.id in self._by_id:
            raise ValueError(f"duplicate strategy id {strategy.id!r}")
        self._items.append(strategy)
        self._by_id[strategy.id] = strategy
        self._by_problem.setdefault(strategy.source_problem_id, strategy)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, strategy_id: object) -> bool:
        return strategy_id in self._by_id

    def __iter__(self) -> Iterator[Strategy]:
        return iter(self._items)

    def get(self, strategy_id: str) -> Strategy:
        return self._by_id[strategy_id]

    def save(self, path: str | os.PathLike) -> None:
        write_jsonl(path, [s.to_dict() for s in self._items])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StrategyLibrary":
        rows = read_jsonl(path)
        v1 = [i for i, row in enumerate(rows, 1) if V1_STRATEGY_KEYS & set(row)]
        if v1:
            log.warning("%s: %d v1 strategy rows (first: row %d) read as strategy = name + 'Key insight: ...', "
                        "the pitfalls ending the last step (records.fold_v1_fields)", path, len(v1), v1[0])
        return cls(Strategy.from_dict(row, where=f"{path} row {i}: ") for i, row in enumerate(rows, 1))

    def problem_type_of(self, problem: Problem) -> str | None:
        """`meta["problem_type"]`, else the commonest type among strategies from the same source."""
        if problem.meta.get("problem_type"):
            return str(problem.meta["problem_type"])
        siblings = Counter(s.problem_type for s in self._items if s.provenance.get("source") == problem.source)
        return min(siblings, key=lambda t: (-siblings[t], t)) if siblings else None

    def for_problem(self, problem: Problem, retrieve: bool = True) -> Strategy | None:
        """The problem's own strategy, else (if `retrieve`) the nearest of its type by word
        overlap (ties by id), else None."""
        own = self._by_problem.get(problem.id)
        if own is not None or not retrieve:
            return own
        problem_type = self.problem_type_of(problem)
        if problem_type is None:
            return None
        same_type = [s for s in self._items if _type_key(s.problem_type) == _type_key(problem_type)]
        words = _words(problem.problem)

        def overlap(s: Strategy) -> float:
            other = _words(s.render())
            return len(words & other) / max(1, len(words | other))

        return min(same_type, key=lambda s: (-overlap(s), s.id), default=None)
