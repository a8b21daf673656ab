"""The yield check of strategy extraction: too few valid strategies stops the run (sgpo-method.md §1).

`extract_strategies` counts every outcome; `check_yield` turns a library that is empty, or
that holds fewer than `strategy.min_accepted_fraction` of the extractor's outputs, into an
`ExtractionError` whose message names the cause (the commonest rejection reasons, with a
detail) and the fix for each. Without it an extractor that returns no valid JSON gives an
empty library, and SGPO silently trains with no guided rollouts. The caller (`assets`)
checks before caching, so a failed extraction is never cached or reused.
"""

from __future__ import annotations

from collections import Counter

# Counts that are not extractor outputs (the problem was never sent to the extractor).
NOT_SENT = ("no_strong_response", "strong_response_wrong")

FIXES = {
    "invalid_json": "the extractor does not answer with the JSON object: use an instruction-following "
                    "strategy.extractor_model, or raise strategy.max_tokens if its outputs are cut off",
    "empty_completion": "the extractor returned empty texts: check strategy.extractor_model and the server's log",
    "missing_field": "the JSON lacks schema fields: use an instruction-following strategy.extractor_model",
    "wrong_type": "the JSON has fields of the wrong type: use an instruction-following strategy.extractor_model",
    "step_count": "strategies have too few or too many steps: widen strategy.min_steps / strategy.max_steps",
    "too_long": "strategies are too long: raise strategy.max_chars",
    "answer_leak": "strategies state the answer: use a stronger strategy.extractor_model",
    "number_leak": "strategies copy the problem's numbers: raise strategy.max_copied_numbers",
    "http_400": "the server refused requests (often: prompt plus strategy.max_tokens longer than its context): "
                "serve with a longer context, lower strategy.max_tokens, or use shorter strong responses",
    "http_404": "the server does not know the model: strategy.extractor_model must equal the served model name",
    "missing_candidate": "the server returned fewer candidates than strategy.n_candidates (it may not support the "
                         "API's n): set strategy.n_candidates: 1",
}
DEFAULT_FIX = "see the rejection details in the log (logger sgpo_lib.strategies.library)"


class ExtractionError(RuntimeError):
    """Strategy extraction produced too few strategies to train with; the message says why and the fix."""


def accepted_fraction(counts: Counter) -> tuple[int, int]:
    """(accepted, outputs of the extractor) from `extract_strategies`' counts.

    >>> accepted_fraction(Counter(accepted=3, invalid_json=1, no_strong_response=5))
    (3, 4)
    """
    sent = sum(n for reason, n in counts.items() if reason not in NOT_SENT)
    return counts.get("accepted", 0), sent


def check_yield(counts: Counter, min_fraction: float, extractor: str, details: dict[str, str] | None = None) -> None:
    """Raise `ExtractionError` when nothing, or less than `min_fraction` of the extractor's
    outputs, was accepted. `details` maps a reason to one example detail (for the message)."""
    accepted, sent = accepted_fraction(counts)
    if sent == 0:
        raise ExtractionError(
            f"strategy extraction by {extractor}: no problem was sent to the extractor ({dict(counts)}): "
            "the training set has no strong responses graded correct. Fix: check data.train_sets (a set with "
            "strong responses, e.g. math or openr1_46k) and data.train_limit")
    if accepted > 0 and accepted >= min_fraction * sent:
        return
    rejected = Counter({r: n for r, n in counts.items() if r != "accepted" and r not in NOT_SENT})
    causes = "; ".join(
        f"{reason} x{n}" + (f" (e.g. {details[reason][:160]})" if details and reason in details else "")
        + f" -> fix: {FIXES.get(reason, DEFAULT_FIX)}"
        for reason, n in rejected.most_common(3))
    raise ExtractionError(
        f"strategy extraction by {extractor} accepted {accepted} of {sent} outputs "
        f"({accepted / sent:.0%}; strategy.min_accepted_fraction is {min_fraction}), so SGPO would train with "
        f"{'no' if accepted == 0 else 'too few'} guided rollouts. Causes: {causes}. Nothing was cached; "
        "fix the cause, or lower strategy.min_accepted_fraction to accept the yield")
