"""The offline strategy extractor of the toy world (sgpo-method.md section 1, offline).

`OfflineExtractor.complete` has the signature of an LLM client: a list of chat-message lists
in, one raw completion text per list out. It searches the *whole* message text (it does not
depend on the wording of the extraction prompt) for the trace each strategy leaves in a toy
strong response, and answers with that strategy as raw JSON in the extraction schema, worded
with paraphrases drawn from a generator seeded by `(seed, prompt text)`: the same prompt
always gets the same answer, different responses get different wordings. Its output goes
through the same JSON repair and validation as a real extractor's.

Realism: about a third of clean answers come in a ```json code fence; with probability
`fault_rate` the answer is faulty in one of the ways real extractors fail (a step that copies
the instance's numbers, truncated JSON, a missing field). A prompt with no recognisable
strong response gets a refusal sentence instead of JSON.
"""

from __future__ import annotations

import json
import random
import re

from .wording import strategy_fields
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


class OfflineExtractor:
    """A deterministic stand-in for an extractor LLM, for the toy world."""

    def __init__(self, seed: int = 0, fault_rate: float = 0.02):
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"OfflineExtractor: fault_rate must be in [0, 1], got {fault_rate}")
        self.seed, self.fault_rate = seed, fault_rate

    def complete(self, messages_list: list[list[dict]]) -> list[str]:
        """One raw completion (JSON text, usually) per chat-message list."""
        return [self._complete_one("\n".join(str(m.get("content", "")) for m in msgs)) for msgs in messages_list]

    def _complete_one(self, text: str) -> str:
        found = recognise(text)
        if found is None:
            return REFUSAL
        family, key, trace = found
        rng = random.Random(stable_seed(self.seed, text))
        fields = strategy_fields(family, key, rng)
        if rng.random() < self.fault_rate:
            return _faulty(fields, trace, rng)
        body = json.dumps(fields, indent=rng.choice((None, 2)))
        return f"```json\n{body}\n```" if rng.random() < CODE_FENCE_RATE else body


def _faulty(fields: dict, trace: str, rng: random.Random) -> str:
    """A realistic failure: copied numbers, a cut-off answer, or a dropped field."""
    kind = rng.choice(FAULTS)
    if kind == "leak":
        numbers = re.findall(r"\d+", trace)
        fields["steps"] = fields["steps"] + [f"Start from {numbers[0]} and finish at {numbers[-1]}."]
        return json.dumps(fields)
    if kind == "truncated":
        body = json.dumps(fields)
        return body[: rng.randint(len(body) // 3, len(body) - 2)]
    return json.dumps({k: v for k, v in fields.items() if k != "steps"})
