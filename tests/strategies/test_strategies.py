"""Strategy validation on malformed extractor outputs, extraction through a `complete`
callable, and the library (JSONL round trip, own strategy, same-type retrieval)."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

from sgpo_lib.core.records import Problem, Strategy
from sgpo_lib.strategies.library import (
    Rejection,
    StrategyLibrary,
    extraction_messages,
    make_limits,
    parse_strategy,
    repair_json,
)
from sgpo_lib.strategies.select import extract_strategies

PROBLEM = Problem(id="p1", problem="What is the remainder when 1234 * 5678 is divided by 97?", answer="41",
                  source="toy/remainder", split="train", strong_response="1234*5678 = 7006652, mod 97 = 41.")
GOOD = {
    "problem_type": "modular arithmetic",
    "strategy": "Remainders can be taken before multiplying, which keeps numbers small.",
    "steps": ["Reduce each factor modulo the divisor.", "Multiply the small remainders.",
              "Reduce the product modulo the divisor again, not forgetting the final reduction."],
}


def _raw(**changes) -> str:
    return json.dumps({**GOOD, **changes})


def test_clean_json_is_accepted_with_provenance():
    s = parse_strategy(_raw(), PROBLEM, extractor="gpt-x")
    assert isinstance(s, Strategy)
    assert s.steps == tuple(GOOD["steps"]) and s.source_problem_id == "p1"
    assert s.provenance["extractor"] == "gpt-x" and s.provenance["source"] == "toy/remainder"
    assert s.provenance["repaired"] is False and len(s.provenance["raw_sha256"]) == 64
    assert s.id == parse_strategy(_raw(), PROBLEM).id  # stable


@pytest.mark.parametrize("raw", [
    "Here is the strategy you asked for:\n" + _raw() + "\nLet me know if you need more.",
    "```json\n" + _raw() + "\n```",
    "```\n" + json.dumps(GOOD, indent=2) + "\n```\nDone.",
    _raw().replace('"]', '",]').replace("}", ",}"),  # trailing commas
    "The set {a, b} is irrelevant. " + _raw(),  # a brace in the prose first
])
def test_repaired_outputs_are_accepted(raw):
    s = parse_strategy(raw, PROBLEM)
    assert isinstance(s, Strategy), s
    assert s.provenance["repaired"] is True and s.strategy == GOOD["strategy"]


def test_raw_newlines_inside_strings_are_read():
    s = parse_strategy(_raw().replace("Multiply the small", "Multiply the\tsmall\n"), PROBLEM)
    assert isinstance(s, Strategy), s
    assert s.steps[1] == "Multiply the\tsmall\n remainders."


def test_truncated_json_is_closed():
    raw = _raw()
    cut_in_last_step = raw[: raw.index("final reduction")]
    s = parse_strategy(cut_in_last_step, PROBLEM)
    assert isinstance(s, Strategy) and s.steps[-1] == "Reduce the product modulo the divisor again, not forgetting the"
    cut_in_steps = raw[: raw.index("Multiply the small") + 5]
    assert parse_strategy(cut_in_steps, PROBLEM) == Rejection("step_count", "2 steps, need 3-6")
    assert repair_json('{"a": 1, "b": {"c": [1, 2')[0] == {"a": 1, "b": {"c": [1, 2]}}
    assert repair_json('{"a": 1, "b":')[0] == {"a": 1}  # a key without a value is dropped
    assert repair_json('{"a": 1, "b"')[0] == {"a": 1}


@pytest.mark.parametrize("raw, reason", [
    ("", "empty_completion"),
    ("I cannot help with that.", "invalid_json"),
    ("{this is not json}", "invalid_json"),
    ("```json\n[1, 2, 3]\n```", "invalid_json"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "steps"}), "missing_field"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "strategy"}), "missing_field"),
    (json.dumps({"name": "n", "problem_type": "t", "key_insight": "k", "steps": ["a", "b", "c"]}), "missing_field"),
    (_raw(steps="Reduce, multiply, reduce."), "wrong_type"),
    (_raw(strategy=["a", "b"]), "wrong_type"),
    (_raw(steps=["a", 2, "c"]), "wrong_type"),
    (_raw(strategy="  "), "empty_field"),
    (_raw(steps=GOOD["steps"][:2]), "step_count"),
    (_raw(steps=GOOD["steps"] * 3), "step_count"),
    (_raw(strategy="x" * 401), "too_long"),
    (_raw(problem_type="x" * 81), "too_long"),
    (_raw(steps=["y" * 390] * 3 + ["z" * 390]), "too_long"),
    (_raw(strategy="The remainder is 41 in the end."), "answer_leak"),
    (_raw(steps=GOOD["steps"] + ["Compute 1234 mod 97 and 5678 mod 97."]), "number_leak"),
    (_raw(steps=GOOD["steps"] + ["Compute 1,234 times 5,678."]), "number_leak"),
])
def test_rejections(raw, reason):
    result = parse_strategy(raw, PROBLEM)
    assert isinstance(result, Rejection) and result.reason == reason, result


def test_leak_check_limits():
    one_number = _raw(steps=GOOD["steps"] + ["Divisors such as 97 are prime."])
    assert isinstance(parse_strategy(one_number, PROBLEM), Strategy)  # max_copied_numbers=1
    assert parse_strategy(one_number, PROBLEM, max_copied_numbers=0).reason == "number_leak"
    generic = _raw(steps=GOOD["steps"] + ["Add 1 or divide by 2 when it helps."])
    small_answer = Problem(id="p2", problem="What is 17 mod 5?", answer="2", source="t", split="train")
    assert isinstance(parse_strategy(generic, small_answer), Strategy)  # 2 is a generic number
    latex = Problem(id="p3", problem="Simplify 91/26.", answer="\\frac{7}{2}", source="t", split="train")
    leak = _raw(strategy="It simplifies to $\\frac{7}{ 2}$.")
    assert parse_strategy(leak, latex).reason == "answer_leak"
    with pytest.raises(ValueError, match="unknown strategy limits"):
        make_limits(max_stepz=3)


def test_extraction_prompt_asks_for_the_schema():
    system, user = extraction_messages(PROBLEM, min_steps=2, max_steps=4)
    assert system["role"] == "system" and user["role"] == "user"
    for text in ('"problem_type"', '"strategy"', '"steps"', "principle, theorem or technique", "no concrete computation",
                 "2 to 4", PROBLEM.problem, PROBLEM.strong_response):
        assert text in user["content"]
    assert '"key_insight"' not in user["content"] and '"pitfalls"' not in user["content"]


def _library(*specs) -> StrategyLibrary:
    lib = StrategyLibrary()
    for sid, ptype, words, source in specs:
        lib.add(Strategy(id=sid, problem_type=ptype, strategy=words, steps=(words,) * 3,
                         source_problem_id=sid.split("#")[0], provenance={"source": source}))
    return lib


def test_extract_strategies_counts_every_outcome(caplog):
    problems = [PROBLEM] + [Problem(id=f"q{i}", problem=f"Question {i}: what is 3 + 4?", answer="7", source="toy/sum",
                                    split="train", strong_response="3 + 4 = 7") for i in range(4)]
    problems.append(Problem(id="none", problem="?", answer="1", source="t", split="train"))
    outputs = {"p1": _raw(), "q0": "```json\n" + _raw() + "\n```", "q1": _raw(steps=["a"]),
               "q2": "Sorry.", "q3": _raw(strategy="gives 7")}
    seen = []

    def complete(messages_list):
        seen.append(len(messages_list))
        ids = [next(p.id for p in problems if p.problem in m[1]["content"] and p.strong_response in m[1]["content"])
               for m in messages_list]
        return [outputs[i] for i in ids]

    with caplog.at_level(logging.INFO, logger="sgpo_lib.strategies.select"):
        library, counts = extract_strategies(problems, complete, extractor="fake", batch_size=2)
    assert counts == Counter(accepted=2, step_count=1, invalid_json=1, answer_leak=1, no_strong_response=1)
    assert seen == [2, 2, 1]
    assert [s.source_problem_id for s in library] == ["p1", "q0"]
    assert "q2 rejected: invalid_json" in caplog.text


def test_extract_strategies_skips_strong_responses_graded_wrong():
    from sgpo_lib.grading.grader import Grader

    right = Problem(id="r", problem="2+2?", answer="4", source="toy", split="train", answer_kind="exact",
                    strong_response="so \\boxed{4}")
    wrong = Problem(id="w", problem="2+3?", answer="5", source="toy", split="train", answer_kind="exact",
                    strong_response="so \\boxed{6}")
    library, counts = extract_strategies([right, wrong], lambda ms: [_raw()] * len(ms), grader=Grader())
    assert counts == Counter(accepted=1, strong_response_wrong=1) and len(library) == 1
    _, counts = extract_strategies([right, right], lambda ms: [_raw()] * len(ms))
    assert counts == Counter(accepted=1, duplicate=1)


def test_library_round_trip_and_retrieval(tmp_path):
    lib = _library(("a#1", "modular arithmetic", "remainder divisor reduce", "toy/remainder"),
                   ("b#1", "modular arithmetic", "remainder multiply product", "toy/remainder"),
                   ("c#1", "Linear equations", "undo operations backwards", "toy/linear"))
    path = tmp_path / "library.jsonl"
    lib.save(path)
    loaded = StrategyLibrary.load(path)
    assert [s.to_dict() for s in loaded] == [s.to_dict() for s in lib]

    own = Problem(id="a", problem="anything", answer="1", source="toy/remainder", split="train")
    assert loaded.for_problem(own).id == "a#1"
    sibling = Problem(id="z", problem="the product of the remainders", answer="1", source="toy/remainder",
                      split="test")
    assert loaded.problem_type_of(sibling) == "modular arithmetic"
    assert loaded.for_problem(sibling).id == "b#1"  # more word overlap than a#1
    assert loaded.for_problem(sibling, retrieve=False) is None
    typed = Problem(id="y", problem="solve by undoing", answer="1", source="elsewhere", split="test",
                    meta={"problem_type": "linear  EQUATIONS"})
    assert loaded.for_problem(typed).id == "c#1"
    stranger = Problem(id="x", problem="?", answer="1", source="elsewhere", split="test")
    assert loaded.for_problem(stranger) is None


def test_library_rejects_duplicates_and_bad_rows(tmp_path):
    lib = _library(("a#1", "t", "w", "s"))
    with pytest.raises(ValueError, match="duplicate strategy id"):
        lib.add(lib.get("a#1"))
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x", "strategy": "n"}) + "\n")
    with pytest.raises(ValueError, match="row 1: Strategy: missing keys"):
        StrategyLibrary.load(path)
    path.write_text(json.dumps({"id": "x", "name": "n", "key_insight": "k", "strategy": "s", "steps": [],
                                "problem_type": "t"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl row 1: Strategy: has both the v1 keys"):
        StrategyLibrary.load(path)
