"""Strategy candidates and selection (sgpo-method.md §1): n candidates, the rank prompt and its
robust parsing, counts by reason; the openai extractor end to end on a fake server; the toy
extractor's candidates and ranking; v1 library rows; and the toy guided prompt, library and
pretraining texts that must stay byte-identical to v1 (main at 98b4374), so that the cached toy
students need no new pretraining."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter

import pytest
from fake_openai import FakeOpenAIServer

from sgpo_lib.config.run import RunConfig, StrategyConfig, load_config
from sgpo_lib.core.records import Problem, Strategy
from sgpo_lib.data.prompts import guided_messages
from sgpo_lib.strategies.library import StrategyLibrary, extraction_messages
from sgpo_lib.strategies.openai_client import RequestFailed
from sgpo_lib.strategies.select import extract_strategies, parse_ranking, rank_messages
from sgpo_lib.toy.extractor import OfflineExtractor, rank_answer
from sgpo_lib.toy.wording import make_strategy
from sgpo_lib.workflow import assets

PROBLEM = Problem(id="p", problem="Add 13 and 29.", answer="42", source="s", split="train",
                  strong_response="13 + 29 = 42, so \\boxed{42}.")


def _raw(strategy: str, steps=("List the terms.", "Add them in order.", "Check the total.")) -> str:
    return json.dumps({"problem_type": "sum", "strategy": strategy, "steps": list(steps)})


LONG, SHORT, LEAK = _raw("Add the terms one at a time, left to right."), _raw("Add in order."), _raw("It is 42.")


def _extract(candidates, rank_answer_text, select="rank", **kw):
    ranked = []

    def rank(prompts):
        ranked.extend(prompts)
        return [rank_answer_text] * len(prompts)

    stats = Counter()
    library, counts = extract_strategies([PROBLEM], lambda ms: [candidates[0]] * len(ms), rank=rank, stats=stats,
                                         sample=lambda ms, n: [candidates[:n]] * len(ms), n_candidates=len(candidates),
                                         select=select, **kw)
    return library, counts, stats, ranked


def test_rank_selects_the_extractors_choice_among_valid_candidates():
    library, counts, stats, ranked = _extract([LEAK, LONG, SHORT], '{"ranking": [2, 1]}')
    [chosen] = library
    assert chosen.strategy == "Add in order." and counts == Counter(accepted=1)
    assert chosen.provenance | {"raw_sha256": ""} == {"extractor": "extractor", "source": "s", "raw_sha256": "",
                                                       "repaired": False, "candidate": 2, "n_candidates": 3,
                                                       "n_valid": 2, "selected": "ranked_other"}
    assert stats == Counter({"candidate/valid": 2, "candidate/answer_leak": 1, "select/ranked_other": 1})
    [(system, user)] = ranked  # only the valid candidates are shown, numbered from 1
    assert "Candidate 1: " + LONG in user["content"] and "Candidate 2: " + SHORT in user["content"]
    assert "It is 42" not in user["content"] and PROBLEM.problem in user["content"]
    assert "strong_response" not in user["content"] and "general enough to reuse" in user["content"]


@pytest.mark.parametrize("answer, reason", [
    ("Candidate two is best.", "rank_invalid_json"),
    ('{"ranking": []}', "rank_no_ranking"),
    ('{"order": [2]}', "rank_no_ranking"),
    ('{"ranking": ["second"]}', "rank_no_ranking"),
    ('{"ranking": [true]}', "rank_no_ranking"),
    ('{"ranking": [3, 1]}', "rank_out_of_range"),
    ('{"ranking": [0]}', "rank_out_of_range"),
    (RequestFailed("http_400", "too long"), "rank_http_400"),
])
def test_an_unusable_ranking_falls_back_to_the_first_valid_candidate(answer, reason):
    library, counts, stats, _ = _extract([LEAK, LONG, SHORT], answer)
    assert next(iter(library)).strategy == "Add the terms one at a time, left to right."
    assert counts == Counter(accepted=1) and stats["select/fallback_" + reason] == 1


def test_parse_ranking_reads_robust_forms():
    assert parse_ranking('```json\n{"ranking": [" 3", 1, 2],}\n```', 3) == 2
    assert parse_ranking('{"best": 2}', 2) == 1 and parse_ranking('{"ranking": [1, 9]}', 2) == 0
    assert parse_ranking("", 2).reason == "rank_invalid_json"


def test_first_select_and_single_valid_send_no_rank_prompt():
    library, _, stats, ranked = _extract([LEAK, SHORT, LONG], "unused", select="first")
    assert next(iter(library)).strategy == "Add in order." and not ranked and stats["select/first"] == 1
    library, _, stats, ranked = _extract([LEAK, SHORT, "Sorry."], "unused")
    assert next(iter(library)).provenance["selected"] == "only_valid" and not ranked


def test_no_valid_candidate_counts_the_commonest_reason_once_per_problem():
    examples = {}
    library, counts, stats, _ = _extract(["Sorry.", LEAK, LEAK], "unused", examples=examples)
    assert not len(library) and counts == Counter(answer_leak=1) and "p: states the answer" in examples["answer_leak"]
    assert stats == Counter({"candidate/answer_leak": 2, "candidate/invalid_json": 1})
    _, counts, stats, _ = _extract(["Sorry.", LEAK], "unused")
    assert counts == Counter(invalid_json=1)  # a tie goes to the earliest candidate


def test_missing_candidates_and_refused_requests_are_counted():
    stats = Counter()
    _, counts = extract_strategies([PROBLEM], None, sample=lambda ms, n: [[SHORT]], n_candidates=3, stats=stats)
    assert counts == Counter(accepted=1) and stats["candidate/missing_candidate"] == 2
    _, counts = extract_strategies([PROBLEM], None, sample=lambda ms, n: [["Sorry."]], n_candidates=3)
    assert counts == Counter(invalid_json=1)  # not the two missing ones
    _, counts = extract_strategies([PROBLEM], None, sample=lambda ms, n: [[]], n_candidates=3)
    assert counts == Counter(missing_candidate=1)
    refused = RequestFailed("http_400", "too long")
    _, counts = extract_strategies([PROBLEM], None, sample=lambda ms, n: [refused], n_candidates=3, stats=stats)
    assert counts == Counter(http_400=1) and stats["candidate/http_400"] == 3
    with pytest.raises(ValueError, match="sample function"):
        extract_strategies([PROBLEM], lambda ms: [], n_candidates=2)
    with pytest.raises(ValueError, match="select in"):
        extract_strategies([PROBLEM], lambda ms: [], select="best")


def test_openai_extractor_samples_n_candidates_then_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path))
    problems = [Problem(id=f"s/{i}", problem=f"Problem {i}: add {i + 10} and {i + 20}.", answer=str(2 * i + 30),
                        source="s", split="train", strong_response=f"So \\boxed{{{2 * i + 30}}}.") for i in range(6)]
    monkeypatch.setattr(assets, "problems", lambda cfg: {"train": problems, "test": []})

    def content(body):
        if "ranking" in body["messages"][-1]["content"]:
            return '{"ranking": [2, 1, 3]}'
        return [LONG, "Sorry.", SHORT, _raw("Add by column.")][: body["n"]]

    with FakeOpenAIServer(content=content, delay_s=0.05) as server:
        cfg = RunConfig(strategy=StrategyConfig(extractor="openai", base_url=server.url, extractor_model="m",
                                                api_key_env=None, n_candidates=4, concurrency=2, json_schema=True))
        library, report = assets.strategy_library(cfg)
        selection = assets.strategy_selection(cfg)
    assert report == Counter(accepted=6) and {s.strategy for s in library} == {"Add in order."}
    assert selection == Counter({"candidate/valid": 18, "candidate/invalid_json": 6, "select/ranked_other": 6})
    extract_bodies = [b for _, _, b in server.bodies if b["response_format"]["json_schema"]["name"] == "strategy"]
    rank_bodies = [b for _, _, b in server.bodies if b["response_format"]["json_schema"]["name"] == "ranking"]
    assert len(extract_bodies) == len(rank_bodies) == 6 and server.hits == 12
    assert {(b["n"], b["temperature"]) for b in extract_bodies} == {(4, 0.7)}
    assert all("n" not in b and b["temperature"] == 0.0 for b in rank_bodies)
    assert 1 <= server.max_in_flight <= 2  # strategy.concurrency bounds the requests in flight


def test_toy_candidates_and_ranking_are_deterministic():
    from sgpo_lib.toy.world import generate_world

    world = generate_world(load_config("params/toy-smoke.yaml").world, 0)
    chats = [extraction_messages(p) for p in world["train"][:8]]
    toy = OfflineExtractor(seed=0, fault_rate=0.0)
    sampled = toy.sample(chats, 4)
    assert [c[0] for c in sampled] == toy.complete(chats) and sampled == OfflineExtractor(0, 0.0).sample(chats, 4)
    assert any(len(set(c)) > 1 for c in sampled)  # candidates differ in wording
    short, digits = Strategy("a", "t", "Go.", ("A.", "B.", "C.")), Strategy("b", "t", "Go.", ("A.", "B.", "C 7."))
    longer = Strategy("c", "t", "Go on.", ("A.", "B.", "C."))
    ranking = rank_answer(rank_messages(world["train"][0], [digits, longer, short])[1]["content"])
    assert json.loads(ranking) == {"ranking": [3, 2, 1]}  # fewest digits, then shortest
    assert toy.complete([rank_messages(world["train"][0], [short, short])]) == ['{"ranking": [1, 2]}']


V1_RUNNING_TOTAL = ("Strategy: Running total\nKey insight: One term at a time keeps sums small.\nSteps:\n"
                    "1. Start at the first number.\n2. Apply the next term.\n3. Repeat to the end.\n"
                    "Pitfalls: Skip no term.\n\nProblem: Evaluate 12-2+3.")
V1_LIBRARY_PROMPT = ("Strategy: Keep a total\nKey insight: One term at a time keeps sums small.\nSteps:\n"
                     "1. Start at the first number.\n2. Apply the next term.\n3. Repeat to the end.\n"
                     "Pitfalls: Keep each sign.\n\nProblem: Evaluate 12-2+3.")
V1_PARAPHRASE = ("Strategy: Carry leftward\nKey insight: Small digit products plus carries.\nSteps:\n"
                 "1. Begin at the ones digit.\n2. Multiply and add the carry.\n3. Carry the tens left.\n"
                 "Pitfalls: Drop no carry.\n\nProblem: Evaluate 12-2+3.")
# sha256 of main's (98b4374) smoke guided prompts of all training problems, of its first 300
# pretraining examples (messages, target) and of its tokenizer corpus
V1_SMOKE_PROMPTS_SHA = "103a021e71f671e58a30e426ac65d54dcac9143bdccce4fd2316d55fa19cedd7"
V1_PRETRAIN_SHA = "9eeca61430914fd69e73be9e1d578cbf98bad6d3d5b6a813c23140fa47f3d979"
V1_CORPUS_SHA = "c3a902651de3ae86eccd94a704109fb96dd7bb2b7c54c14a78c0389044e3e04e"


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def test_toy_guided_prompts_and_single_shot_library_are_v1_byte_for_byte():
    from sgpo_lib.toy.world import generate_world
    from sgpo_lib.workflow.extractor import extractor, limits_of, selection_of

    # v1's strong responses were the compressed summaries: strong_skip_rate 1 writes them again
    cfg = load_config("params/toy-smoke.yaml", {"strategy.n_candidates": 1, "strategy.select": "first",
                                                "world.strong_skip_rate": 1.0})
    train = generate_world(cfg.world, cfg.world_seed)["train"]
    first = train[0]
    assert guided_messages(first, make_strategy("sum", "running_total"), "")[0]["content"] == V1_RUNNING_TOTAL
    assert guided_messages(first, make_strategy("mul", "column_carry", random.Random(7)), "")[0]["content"] == V1_PARAPHRASE
    with extractor(cfg) as ex:
        library, counts = extract_strategies(train, ex.complete, sample=ex.sample, rank=ex.rank, **selection_of(cfg),
                                             **limits_of(cfg))
    assert counts == Counter(accepted=127, answer_leak=1)
    prompts = {p.id: guided_messages(p, library.for_problem(p), cfg.instruction)[0]["content"] for p in train}
    assert prompts[first.id] == V1_LIBRARY_PROMPT and _sha(prompts) == V1_SMOKE_PROMPTS_SHA


def test_toy_pretraining_texts_are_v1_byte_for_byte():
    from sgpo_lib.toy.pretrain import MixtureSampler
    from sgpo_lib.toy.tokenizer import tokenizer_corpus

    cfg = load_config("params/toy-smoke.yaml", {"world.strong_skip_rate": 1.0})  # v1's compressed strong responses
    sampler = MixtureSampler(cfg.world, cfg.pretrain, None, cfg.world_seed)
    examples = [sampler.text_example() for _ in range(300)]
    assert hashlib.sha256(json.dumps(examples).encode()).hexdigest() == V1_PRETRAIN_SHA
    assert hashlib.sha256(json.dumps(tokenizer_corpus()).encode()).hexdigest() == V1_CORPUS_SHA


def test_a_v1_library_row_loads_with_the_same_rendering(tmp_path, caplog):
    v1 = {"id": "toy-sum-train-00000#ab", "name": "Running total", "problem_type": "sum",
          "key_insight": "One term at a time keeps sums small.",
          "steps": ["Start at the first number.", "Apply the next term.", "Repeat to the end."],
          "pitfalls": ["Skip no term."], "source_problem_id": "toy-sum-train-00000", "provenance": {}}
    path = tmp_path / "v1.jsonl"
    path.write_text(json.dumps(v1) + "\n")
    with caplog.at_level(logging.WARNING, logger="sgpo_lib.strategies.library"):
        [strategy] = StrategyLibrary.load(path)
    assert f"{path}: 1 v1 strategy rows (first: row 1)" in caplog.text
    assert strategy.render() + "\n\nProblem: Evaluate 12-2+3." == V1_RUNNING_TOTAL
    assert strategy.problem_type == "sum" and len(strategy.steps) == 3
    assert Strategy.from_dict(strategy.to_dict()) == strategy  # saved again in the v2 shape
