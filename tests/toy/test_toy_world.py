"""Tests of the toy world: problems, splits, strong responses, strategies, extractor, tokenizer."""

from __future__ import annotations

import json
import random
import re

import pytest

from sgpo_lib.config.toy_presets import toy_preset
from sgpo_lib.core.records import Problem, Strategy
from sgpo_lib.toy import OfflineExtractor, ToyWorldConfig, family_strategies, generate_world
from sgpo_lib.toy.config import PretrainConfig, StudentConfig
from sgpo_lib.toy.extractor import REFUSAL
from sgpo_lib.toy.families import FAMILIES, drill, get_family
from sgpo_lib.toy.wording import WORDINGS

SMALL = ToyWorldConfig(n_train=40, n_test=20, n_ood=20)
EQUATION = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")


def last_boxed(text: str) -> str | None:
    found = re.findall(r"\\boxed\{([^{}]*)\}", text)
    return found[-1] if found else None


@pytest.fixture(scope="module")
def world():
    return generate_world(SMALL, seed=3)


def all_problems(world) -> list[Problem]:
    return [p for split in world.values() for p in split]


def test_same_seed_same_world_and_other_seed_differs(world):
    again = generate_world(SMALL, seed=3)
    assert [p.to_dict() for p in all_problems(again)] == [p.to_dict() for p in all_problems(world)]
    other = generate_world(SMALL, seed=4)
    assert [p.problem for p in other["test"]] != [p.problem for p in world["test"]]


def test_problem_records_follow_the_contract(world):
    assert set(world) == {"train", "test", "ood"}
    for split, problems in world.items():
        assert len(problems) == len(SMALL.families) * {"train": 40, "test": 20, "ood": 20}[split]
        for p in problems:
            family = p.meta["family"]
            assert p.source == f"toy/{family}" and p.split == split and p.answer_kind == "exact"
            assert p.meta["problem_type"] == family and p.meta["strategy"] in get_family(family).strategy_keys
            assert Problem.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    ids = [p.id for p in all_problems(world)]
    assert len(ids) == len(set(ids))


def test_splits_are_disjoint(world):
    texts = {split: {p.problem for p in problems} for split, problems in world.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["ood"] and not texts["test"] & texts["ood"]


def n_lines(world, split: str, name: str, key: str) -> list[int]:
    family = get_family(name)
    return [family.execute(p.meta["params"], key).count("\n") for p in world[split] if p.meta["family"] == name]


def test_ood_is_harder_every_strategy_needs_more_steps(world):
    for name in SMALL.families:
        for key in get_family(name).strategy_keys:
            assert min(n_lines(world, "ood", name, key)) > max(n_lines(world, "test", name, key)), (name, key)


def strong_at(rate: float, world) -> dict[str, str]:
    """Problem id -> the strong response written at skip rate `rate` (same problems and strategies)."""
    return {p.id: get_family(p.meta["family"]).strong(p.meta["params"], p.meta["strategy"], rate) for p in all_problems(world)}


def test_strong_responses_are_correct_at_every_skip_rate(world):
    assert {p.id: p.strong_response for p in all_problems(world)} == strong_at(SMALL.strong_skip_rate, world)
    for rate in (0.0, SMALL.strong_skip_rate, 0.6, 1.0):
        for pid, text in strong_at(rate, world).items():
            answer = next(p.answer for p in all_problems(world) if p.id == pid)
            assert last_boxed(text) == answer, (rate, pid)
            if EQUATION.search(text):  # the kept execution lines' arithmetic is right
                assert_arithmetic_is_right(text, (rate, pid))


def test_skip_rate_zero_spells_every_step_and_one_only_the_summary(world):
    explicit, compressed = strong_at(0.0, world), strong_at(1.0, world)
    for p in all_problems(world):
        family, inst, key = get_family(p.meta["family"]), p.meta["params"], p.meta["strategy"]
        steps, summary = family.steps(inst, key), family.summary(inst, key)
        assert explicit[p.id] == "\n".join(steps + [summary, f"\\boxed{{{p.answer}}}"]), p.id
        assert compressed[p.id] == f"{summary}\n\\boxed{{{p.answer}}}", p.id  # the pre-v5 compressed style
        assert family.execute(inst, key) == "\n".join(steps + [f"\\boxed{{{p.answer}}}"])


def test_a_lower_skip_rate_only_adds_lines_back(world):
    rates = (1.0, 0.6, 0.25, 0.0)
    by_rate = [strong_at(r, world) for r in rates]
    for pid in by_rate[0]:
        kept = [set(r[pid].split("\n")) for r in by_rate]
        assert all(a <= b for a, b in zip(kept, kept[1:])), pid
    lines = [sum(t.count("\n") for t in r.values()) for r in by_rate]
    assert lines == sorted(lines) and lines[0] < lines[-1]
    steps = sum(len(get_family(p.meta["family"]).steps(p.meta["params"], p.meta["strategy"])) for p in all_problems(world))
    skipped = (lines[-1] - lines[2]) / steps
    assert 0.15 < skipped < 0.35  # about a quarter of the steps jumped at 0.25


def test_strong_responses_do_not_depend_on_the_world_seed_stream(world):
    p = world["train"][0]
    family = get_family(p.meta["family"])
    again = family.strong(p.meta["params"], p.meta["strategy"], SMALL.strong_skip_rate)
    assert again == p.strong_response  # a function of (instance, strategy, rate): pretraining writes the same text


def assert_arithmetic_is_right(text: str, where) -> None:
    equations = EQUATION.findall(text)
    assert equations, where
    for a, op, b, c in equations:
        a, b, c = int(a), int(b), int(c)
        if op == "/":
            assert b * c == a, (where, text)
        else:
            assert {"+": a + b, "-": a - b, "*": a * b}[op] == c, (where, text)


def test_every_step_by_step_execution_is_correct_arithmetic(world):
    for p in all_problems(world):
        family = get_family(p.meta["family"])
        for key in family.strategy_keys:
            text = family.execute(p.meta["params"], key)
            assert last_boxed(text) == p.answer, (p.id, key)
            assert_arithmetic_is_right(text, (p.id, key))


def test_background_drills_are_correct_one_step_facts():
    rng = random.Random(0)
    for _ in range(200):
        text, target = drill(rng)
        assert text.startswith("Compute ") and target.count("\n") == 1
        if " mod " in text:
            a, m = map(int, re.findall(r"\d+", text))
            assert last_boxed(target) == str(a % m)
        else:
            assert_arithmetic_is_right(target, text)


def test_canonical_strategies_are_abstract_and_well_formed(world):
    strategies = family_strategies()
    assert set(strategies) == set(FAMILIES)
    for family, items in strategies.items():
        assert [s.id.rsplit("/", 1)[1] for s in items] == list(get_family(family).strategy_keys)
        for s in items:
            assert isinstance(s, Strategy) and s.problem_type == family
            assert 3 <= len(s.steps) <= 6 and "\nKey insight: " in s.strategy and "\nPitfalls: " in s.steps[-1]
            text = " ".join([s.problem_type, s.strategy, *s.steps])
            assert not re.search(r"\d", text), text  # no digit at all, so no number of any instance


def test_every_paraphrase_is_digit_free_with_three_to_six_steps():
    for per_key in WORDINGS.values():
        for pool in per_key.values():
            assert all(3 <= len(steps) <= 6 for steps in pool["steps"])
            texts = [x for field in pool.values() for item in field for x in (item if isinstance(item, list) else [item])]
            assert not any(re.search(r"\d", t) for t in texts)


def extraction_prompt(p: Problem) -> list[dict]:
    """A stand-in extraction prompt: the strong response appears verbatim somewhere inside."""
    return [{"role": "system", "content": "You extract reusable strategies. Reply with JSON."},
            {"role": "user", "content": f"Problem:\n{p.problem}\n\nSolution:\n{p.strong_response}\n\nReturn the JSON."}]


def parse_reply(text: str) -> dict:
    return json.loads(re.sub(r"^```json\n|\n```$", "", text.strip()))


def test_extractor_recovers_the_strategy_of_each_strong_response(world):
    problems = world["train"]
    replies = OfflineExtractor(seed=0, fault_rate=0.0).complete([extraction_prompt(p) for p in problems])
    assert len(replies) == len(problems)
    for p, reply in zip(problems, replies):
        row = parse_reply(reply)
        assert set(row) == {"problem_type", "strategy", "steps"}
        assert row["problem_type"] == p.meta["family"]
        name = row["strategy"].split("\n")[0]
        assert name in WORDINGS[p.meta["family"]][p.meta["strategy"]]["name"], (p.id, row)
    assert len({parse_reply(r)["strategy"] for r in replies}) > len(SMALL.families) * 2  # wording varies
    assert any(r.startswith("```json") for r in replies) and any(r.startswith("{") for r in replies)


def test_extractor_is_deterministic_and_seeded(world):
    prompts = [extraction_prompt(p) for p in world["test"]]
    assert OfflineExtractor(seed=1).complete(prompts) == OfflineExtractor(seed=1).complete(prompts)
    assert OfflineExtractor(seed=1).complete(prompts) != OfflineExtractor(seed=2).complete(prompts)


def test_extractor_faults_are_realistic_failures(world):
    replies = OfflineExtractor(seed=0, fault_rate=1.0).complete([extraction_prompt(p) for p in world["train"]])
    for p, reply in zip(world["train"], replies):
        try:
            row = json.loads(reply)
        except json.JSONDecodeError:
            continue  # truncated
        assert "steps" not in row or p.answer in " ".join(row["steps"])  # dropped field, or a leaked answer


def test_extractor_without_a_strong_response_refuses():
    assert OfflineExtractor().complete([[{"role": "user", "content": "Extract a strategy from: nothing."}]]) == [REFUSAL]


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown families"):
        ToyWorldConfig(families=("sum", "calculus"))
    with pytest.raises(ValueError, match="n_test"):
        ToyWorldConfig(n_test=0)
    with pytest.raises(ValueError, match="extractor_fault_rate"):
        ToyWorldConfig(extractor_fault_rate=1.5)
    with pytest.raises(ValueError, match="strong_skip_rate"):
        ToyWorldConfig(strong_skip_rate=-0.1)
    with pytest.raises(ValueError, match="size"):
        StudentConfig(size="huge")
    with pytest.raises(ValueError, match="guided_fraction"):
        PretrainConfig(guided_fraction=-0.1)
    with pytest.raises(KeyError, match="unknown toy preset"):
        toy_preset("large")


def test_tokenizer_reloads_identically_as_a_qwen2_folder(tmp_path):
    from transformers import AutoTokenizer, Qwen2Config

    from sgpo_lib.data.prompts import render, unguided_messages
    from sgpo_lib.toy.tokenizer import build_tokenizer, tokenizer_corpus

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    Qwen2Config(vocab_size=len(tok)).save_pretrained(tmp_path)  # model_type qwen2 changes how AutoTokenizer loads
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in tokenizer_corpus()[:50] + ["Héllo  wörld\n\n", "58-7=51 -1+4-6\n\\boxed{48}"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert loaded(text, add_special_tokens=False)["input_ids"] == ids and loaded.decode(ids) == text
    assert loaded.eos_token == "<|end|>" and loaded.pad_token == "<|pad|>" and loaded.pad_token_id != loaded.eos_token_id
    p = generate_world(ToyWorldConfig(n_train=1, n_test=1, n_ood=1), 0)["test"][0]
    prompt = render(loaded, unguided_messages(p, ""))
    assert prompt == f"<|user|>{p.problem}<|end|><|assistant|>"
    digits = loaded.convert_ids_to_tokens(loaded("1234567890")["input_ids"])
    assert digits == list("1234567890")
