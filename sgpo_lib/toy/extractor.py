"""The offline strategy extractor of the toy world (sgpo-method.md section 1, offline).

`OfflineExtractor` has the interface of an LLM client: `complete(messages_list)` gives one raw
completion per chat, `sample(messages_list, n)` gives `n`. For an extraction prompt it
searches the *whole* message text for the trace each strategy leaves in a toy strong
response, and answers with that strategy as raw JSON in the three-field schema
(`wording.strategy_fields`), worded with paraphrases drawn from a generator seeded by
`(seed, prompt)`: the same prompt always gets the same answer, different responses get
different wordings. Its output goes through the same JSON repair and validation as a real
extractor's. Candidate `j > 0` of `sample` draws from `(seed, prompt, j)`; candidate 0 is
`complete`'s answer.

Realism: about a third of clean answers come in a ```json code fence; with probability
`fault_rate` the answer is faulty in one of the ways real extractors fail (a step that copies
the instance's numbers, truncated JSON, a missing field). A prompt with no recognisable
strong response gets a refusal sentence instead of JSON.

Rank prompts (`strategies.select.rank_messages`) get a deterministic ranking: fewest digits
first (a strategy that copies no number is the least instance-bound), then the shortest
text (the easiest for a small student to execute), then the candidate number.

Departure, for v1 reproduction: every draw is keyed by the v1 wording of the extraction prompt
(`V1_PROMPT`, rebuilt from the problem, solution and step range found in the prompt), and a
fault is drawn and applied to v1's five fields before they are folded into the three
(`records.fold_v1_fields`); a truncated answer is cut where v1's was and re-emitted, still
cut off, in the new shape. So with one candidate the library is v1's: same wordings, same
faults, same outcomes.
"""

from __future__ import annotations

import json
import random
import re

from ..core.records import fold_v1_fields
from ..strategies.library import repair_json
from .wording import v1_fields
from .world import stable_seed

# (family, strategy key) -> the sentence its strong response always contains (see families.py);
# each ends with the final answer, which a "leak" fault copies.
TRACES: dict[tuple[str, str], re.Pattern] = {
    ("sum", "running_total"): re.compile(r"Left to right, [\d+\-]+ = \d+\."),
    ("sum", "gains_then_losses"): re.compile(r"Gains \d+, losses \d+: [\d+\-]+ = \d+\."),
    ("remainder", "digit_sum"): re.compile(r"\d+ has digit sum \d+, so it leaves \d+\."),
    ("remainder", "reduce_as_you_go"): re.compile(r"Reducing digit by digit, \d+ leaves \d+\."),
    ("mul", "column_carry"): re.compile(r"Column by column, \d+\*\d+ = \d+\."),
    ("mul", "products_then_carries"): re.compile(r"Digit products [\d, ]+ combine to \d+\."),
    ("linear", "undo_backwards"): re.compile(r"Undoing from the end, \d+ goes back to x = \d+\."),
    ("linear", "inverse_chain"): re.compile(r"Inverse chain [\d+\-/, ]+ on \d+ gives x = \d+\."),
}
REFUSAL = "I could not find a complete solution to extract a strategy from."
V1_PROMPT = """You distil reusable problem-solving strategies from worked solutions. Answer with one JSON object and nothing else.
Below is a problem and a correct solution written by a strong solver.
Describe the general strategy behind the solution so that a weaker solver could apply it to
other problems of the same type. Be abstract: do not state the final answer and do not copy
numbers from this particular problem.

Return exactly this JSON schema (all values plain text):
{{"name": "short name of the strategy",
 "problem_type": "the kind of problem it applies to",
 "key_insight": "one sentence",
 "steps": ["{min_steps} to {max_steps} abstract steps, no numbers from this instance"],
 "pitfalls": ["common mistakes to avoid"]}}

Problem:
{problem}

Solution:
{solution}"""
_PROMPT_RE = re.compile(r"\nProblem:\n(?P<problem>.*)\n\nSolution:\n(?P<solution>.*)\Z", re.S)
_STEP_RANGE_RE = re.compile(r"(\d+) to (\d+) high-level procedural steps")
_CANDIDATE_RE = re.compile(r"^Candidate (\d+): (\{.*\})$", re.M)
CODE_FENCE_RATE = 0.3
FAULTS = ("leak", "truncated", "missing_field")


def recognise(text: str) -> tuple[str, str, str] | None:
    """(family, strategy key, matched trace) of the last strong-response trace in `text`."""
    best = None
    for (family, key), pattern in TRACES.items():
        for m in pattern.finditer(text):
            if best is None or m.start() > best[0]:
                best = (m.start(), family, key, m.group(0))
    return None if best is None else best[1:]


def draw_key(text: str) -> str:
    """The text whose hash seeds the draws: the v1 extraction prompt of the same problem
    (see the module docstring), or `text` itself when it is not an extraction prompt."""
    found, steps = _PROMPT_RE.search(text), _STEP_RANGE_RE.search(text)
    if found is None or steps is None:
        return text
    return V1_PROMPT.format(min_steps=steps[1], max_steps=steps[2], **found.groupdict())


def rank_answer(text: str) -> str | None:
    """The toy's ranking of the candidates listed in a rank prompt (None: not a rank prompt)."""
    found = _CANDIDATE_RE.findall(text)
    if not found:
        return None

    def score(item: tuple[str, str]) -> tuple[int, int, int]:
        fields = json.loads(item[1])
        body = " ".join([fields["strategy"], *fields["steps"]])
        return sum(ch.isdigit() for ch in body), len(body), int(item[0])

    return json.dumps({"ranking": [int(number) for number, _ in sorted(found, key=score)]})


class OfflineExtractor:
    """A deterministic stand-in for an extractor LLM, for the toy world."""

    def __init__(self, seed: int = 0, fault_rate: float = 0.02):
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"OfflineExtractor: fault_rate must be in [0, 1], got {fault_rate}")
        self.seed, self.fault_rate = seed, fault_rate

    def complete(self, messages_list: list[list[dict]]) -> list[str]:
        """One raw completion (JSON text, usually) per chat-message list."""
        return [self._answer(_text(msgs), 0) for msgs in messages_list]

    def sample(self, messages_list: list[list[dict]], n: int) -> list[list[str]]:
        """`n` raw completions per chat-message list (the first is `complete`'s)."""
        return [[self._answer(_text(msgs), j) for j in range(n)] for msgs in messages_list]

    def _answer(self, text: str, candidate: int) -> str:
        ranking = rank_answer(text)
        if ranking is not None:
            return ranking
        found = recognise(text)
        if found is None:
            return REFUSAL
        family, key, trace = found
        parts = (self.seed, draw_key(text)) if candidate == 0 else (self.seed, draw_key(text), candidate)
        rng = random.Random(stable_seed(*parts))
        fields = v1_fields(family, key, rng)
        if rng.random() < self.fault_rate:
            return _faulty(fields, trace, rng)
        body = json.dumps(fold_v1_fields(fields), indent=rng.choice((None, 2)))
        return f"```json\n{body}\n```" if rng.random() < CODE_FENCE_RATE else body


def _text(messages: list[dict]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


def _faulty(fields: dict, trace: str, rng: random.Random) -> str:
    """A realistic failure: copied numbers, a cut-off answer, or a dropped field (on the v1
    fields, folded after; a cut-off answer stays cut off)."""
    kind = rng.choice(FAULTS)
    if kind == "leak":
        numbers = re.findall(r"\d+", trace)
        fields["steps"] = fields["steps"] + [f"Start from {numbers[0]} and finish at {numbers[-1]}."]
        return json.dumps(fold_v1_fields(fields))
    if kind == "truncated":
        body = json.dumps(fields)
        cut = body[: rng.randint(len(body) // 3, len(body) - 2)]
        try:
            kept, _ = repair_json(cut)
        except ValueError:
            return cut
        return json.dumps(fold_v1_fields(kept)).rstrip("]}")
    return json.dumps(fold_v1_fields({k: v for k, v in fields.items() if k != "steps"}))
