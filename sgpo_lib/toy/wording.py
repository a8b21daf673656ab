"""The toy world's strategies, with a pool of paraphrases for each field.

A strategy here is written in v1's fields (name, key_insight, 3-6 steps, pitfalls) and stored
in the three fields of sgpo-method.md section 1 by `records.fold_v1_fields` (strategy = name
and key insight; the pitfalls end the last step), so the guided prompt text is exactly v1's and
the toy students pretrained on it need no new pretraining. The *canonical* wording (the first paraphrase of every field) is what
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

from ..core.records import Strategy, fold_v1_fields

# family -> strategy key -> field -> paraphrases (steps: a list of alternative step lists).
WORDINGS: dict[str, dict[str, dict[str, list]]] = {
    "sum": {
        "running_total": {
            "name": ["Running total", "Keep a total", "Term by term"],
            "key_insight": ["One term at a time keeps sums small.", "Update one total per term."],
            "steps": [
                ["Start at the first number.", "Apply the next term.", "Repeat to the end."],
                ["Take the first number.", "Add or subtract each term.", "Stop after the last."],
            ],
            "pitfalls": [["Skip no term."], ["Keep each sign."]],
        },
        "gains_then_losses": {
            "name": ["Gains then losses", "Gains first", "Split the signs"],
            "key_insight": ["Add all gains, then take all losses.", "Group plus terms before minus."],
            "steps": [
                ["List gains and losses.", "Add each gain.", "Subtract each loss."],
                ["Sort terms by sign.", "Add the plus terms.", "Then the minus terms."],
            ],
            "pitfalls": [["Miss no loss."], ["Minus is a loss."]],
        },
    },
    "remainder": {
        "digit_sum": {
            "name": ["Digit sum", "Sum the digits", "Cast out nines"],
            "key_insight": ["The digit sum keeps the remainder.", "Only the digit sum matters."],
            "steps": [
                ["Add all the digits.", "Fold the sum to a digit.", "Reduce by the divisor."],
                ["Sum digits in order.", "Add digits of the sum.", "Take the remainder."],
            ],
            "pitfalls": [["Nine leaves zero."], ["Skip no zero digit."]],
        },
        "reduce_as_you_go": {
            "name": ["Reduce as you go", "Fold each sum", "Running fold"],
            "key_insight": ["Fold every sum below ten.", "Keep the running sum one digit."],
            "steps": [
                ["Start at the first digit.", "Add a digit, fold if big.", "Reduce by the divisor."],
                ["Take the lead digit.", "Add each digit and fold.", "Take the remainder."],
            ],
            "pitfalls": [["Fold every time."], ["Nine leaves zero."]],
        },
    },
    "mul": {
        "column_carry": {
            "name": ["Column product", "Carry leftward", "Digit by digit"],
            "key_insight": ["Small digit products plus carries.", "Multiply digits from the right."],
            "steps": [
                ["Multiply the last digit.", "Add the carry, keep one digit.", "Move left to the end."],
                ["Begin at the ones digit.", "Multiply and add the carry.", "Carry the tens left."],
            ],
            "pitfalls": [["Drop no carry."], ["Write the top in full."]],
        },
        "products_then_carries": {
            "name": ["Products first", "Two passes", "List then carry"],
            "key_insight": ["List digit products, then carry.", "Multiply first, carry after."],
            "steps": [
                ["List each digit product.", "From the right add carries.", "Keep one digit each."],
                ["Multiply every digit.", "Carry right to left.", "Write the top in full."],
            ],
            "pitfalls": [["Drop no carry."], ["Start from the right."]],
        },
    },
    "linear": {
        "undo_backwards": {
            "name": ["Work backwards", "Undo from the end", "Reverse it"],
            "key_insight": ["Undo each operation, last first.", "Inverses undo the chain."],
            "steps": [
                ["Start at the result.", "Undo the last operation.", "Repeat back to x."],
                ["Take the final value.", "Apply each inverse.", "What is left is x."],
            ],
            "pitfalls": [["Undo in reverse."], ["Divide undoes times."]],
        },
        "inverse_chain": {
            "name": ["Inverse chain", "Inverses first", "Plan then undo"],
            "key_insight": ["Write the inverses, then apply.", "A plan keeps the order."],
            "steps": [
                ["Invert each operation.", "List them last to first.", "Apply them in order."],
                ["Write each inverse.", "Reverse their order.", "Apply them to the result."],
            ],
            "pitfalls": [["Minus undoes plus."], ["Keep reversed order."]],
        },
    },
}


def v1_fields(family: str, key: str, rng: random.Random | None = None) -> dict:
    """The v1 fields of one strategy: canonical wording, or paraphrases drawn with `rng`."""
    pool = WORDINGS[family][key]
    pick = (lambda options: options[0]) if rng is None else rng.choice
    return {
        "name": pick(pool["name"]),
        "problem_type": family,
        "key_insight": pick(pool["key_insight"]),
        "steps": list(pick(pool["steps"])),
        "pitfalls": list(pick(pool["pitfalls"])),
    }


def strategy_fields(family: str, key: str, rng: random.Random | None = None) -> dict:
    """The three §1 fields of one strategy (`v1_fields` folded; the same draws from `rng`)."""
    return fold_v1_fields(v1_fields(family, key, rng))


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
