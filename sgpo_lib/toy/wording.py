"""The toy world's strategies, with a pool of paraphrases for each field.

A strategy here is the schema of sgpo-method.md section 1 (name, problem_type, key_insight,
3-6 steps, pitfalls). The *canonical* wording (the first paraphrase of every field) is what
`family_strategies()` returns, for the oracle and for evaluation. The offline extractor and
the guided pretraining examples draw any combination of paraphrases, the way a real
extractor LLM words the same procedure differently from one response to the next, so the
student learns to follow the procedure rather than one exact string.

No wording contains a digit: strategies are abstract by construction (the leak check of
sgpo-method.md section 1 must never fire on a clean one). Texts are kept short because the
toy tokenizer is character-level and the strategy block is part of every guided prompt.
"""

from __future__ import annotations

import random

from ..records import Strategy

# family -> strategy key -> field -> paraphrases (steps: a list of alternative step lists).
WORDINGS: dict[str, dict[str, dict[str, list]]] = {
    "sum": {
        "running_total": {
            "name": ["Running total", "Keep a running total", "One change at a time"],
            "key_insight": [
                "Apply one change at a time so each sum stays small.",
                "Update a single total after every term.",
                "Small one-term updates avoid a big mental sum.",
            ],
            "steps": [
                ["Start from the first number.", "Apply the next term to the total.", "Repeat until no terms remain."],
                ["Take the first number as the total.", "Add or subtract the next term.", "Go on to the last term."],
            ],
            "pitfalls": [["Do not skip a term."], ["Keep each sign with its term."]],
        },
        "gains_then_losses": {
            "name": ["Gains then losses", "Add gains first", "Split gains and losses"],
            "key_insight": [
                "Add every gain before any loss, one term at a time.",
                "Group the added terms, then the removed ones.",
            ],
            "steps": [
                ["List the gains and the losses.", "Add each gain to the start.", "Then subtract each loss."],
                ["Sort terms into gains and losses.", "Add the gains one by one.", "Subtract the losses one by one."],
            ],
            "pitfalls": [["Do not forget a loss."], ["A minus sign marks a loss."]],
        },
    },
    "remainder": {
        "digit_sum": {
            "name": ["Digit sum", "Sum the digits", "Casting out nines"],
            "key_insight": [
                "A number and its digit sum leave the same remainder by three or nine.",
                "Only the digit sum matters for three and nine.",
            ],
            "steps": [
                ["Add the digits one at a time.", "While the sum has two digits, add its digits.", "Take the remainder of that digit."],
                ["Sum all digits in order.", "Fold the sum into one digit.", "Reduce that digit by the divisor."],
            ],
            "pitfalls": [["A final nine leaves remainder zero by nine."], ["Do not skip a zero digit."]],
        },
        "reduce_as_you_go": {
            "name": ["Reduce as you go", "Running digit fold", "Fold every sum"],
            "key_insight": [
                "Fold each two-digit sum at once so numbers stay below ten.",
                "Keep the running digit sum a single digit.",
            ],
            "steps": [
                ["Start with the first digit.", "Add the next digit; fold a two-digit sum.", "Reduce the last digit by the divisor."],
                ["Begin at the leading digit.", "Add each digit, folding sums above nine.", "Take the remainder at the end."],
            ],
            "pitfalls": [["Fold after every addition."], ["A final nine leaves remainder zero by nine."]],
        },
    },
    "mul": {
        "column_carry": {
            "name": ["Column multiplication", "Right to left with carries", "Digit by digit"],
            "key_insight": [
                "Multiply one digit at a time from the right and carry the tens.",
                "Small digit products plus carries build the answer.",
            ],
            "steps": [
                ["Multiply the rightmost digit.", "Add the carry; keep the ones, carry the tens.", "Move left; write the last result in full."],
                ["Begin with the ones digit.", "Multiply, add the carry, keep one digit.", "Carry the rest to the next digit left."],
            ],
            "pitfalls": [["Do not drop a carry."], ["Write the final column in full."]],
        },
        "products_then_carries": {
            "name": ["Products then carries", "Digit products first", "Two passes"],
            "key_insight": [
                "Write every digit product first, then combine them with carries.",
                "Separate the multiplying from the carrying.",
            ],
            "steps": [
                ["Multiply each digit by the multiplier.", "From the right, add the carry to each product.", "Keep one digit, carry the rest."],
                ["List all digit products.", "Go right to left adding carries.", "Write the leftmost result in full."],
            ],
            "pitfalls": [["Do not drop a carry."], ["Combine from the right."]],
        },
    },
    "linear": {
        "undo_backwards": {
            "name": ["Work backwards", "Undo from the end", "Reverse the chain"],
            "key_insight": [
                "Undo the operations in reverse order with their inverses.",
                "Each step of the chain can be undone from the result.",
            ],
            "steps": [
                ["Start from the result.", "Undo the last operation with its inverse.", "Repeat back to x."],
                ["Take the final value.", "Apply the inverse of each operation, last first.", "The value left is x."],
            ],
            "pitfalls": [["Undo in reverse order."], ["Divide to undo a product."]],
        },
        "inverse_chain": {
            "name": ["Inverse chain", "Write the inverses first", "Plan then undo"],
            "key_insight": [
                "List the inverse operations first, then apply them in order.",
                "A written plan of inverses keeps the order right.",
            ],
            "steps": [
                ["Invert every operation.", "List them from last to first.", "Apply them to the result in that order."],
                ["Write each inverse, last operation first.", "Apply the list to the result.", "The value left is x."],
            ],
            "pitfalls": [["Minus undoes plus; divide undoes times."], ["Keep the reversed order."]],
        },
    },
}


def strategy_fields(family: str, key: str, rng: random.Random | None = None) -> dict:
    """The schema fields of one strategy: canonical wording, or paraphrases drawn with `rng`."""
    pool = WORDINGS[family][key]
    pick = (lambda options: options[0]) if rng is None else rng.choice
    return {
        "name": pick(pool["name"]),
        "problem_type": family,
        "key_insight": pick(pool["key_insight"]),
        "steps": list(pick(pool["steps"])),
        "pitfalls": list(pick(pool["pitfalls"])),
    }


def strategy_id(family: str, key: str) -> str:
    return f"toy/{family}/{key}"


def make_strategy(family: str, key: str, rng: random.Random | None = None) -> Strategy:
    """A `Strategy` record for (family, key); canonical wording when `rng` is None."""
    fields = strategy_fields(family, key, rng)
    return Strategy(id=strategy_id(family, key), provenance={"origin": "toy-canonical" if rng is None else "toy-paraphrase"}, **fields)


def family_strategies(families: tuple[str, ...] | None = None) -> dict[str, list[Strategy]]:
    """The canonical strategies, keyed by family (= `problem_type`)."""
    names = families if families is not None else tuple(WORDINGS)
    return {f: [make_strategy(f, k) for k in WORDINGS[f]] for f in names}
