"""Tests of sgpo_lib.method.rollouts: paired sampling, seeds, grading, stats and JSONL storage."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from sgpo_lib.core.records import Problem, Rollout, Strategy
from sgpo_lib.core.seeding import derive_seed
from sgpo_lib.method.rollouts import STATS_COLUMNS, load_rollouts, prompt_seed, sample_paired, save_rollouts
from sgpo_lib.model.generation import Completion, SamplingSpec, TransformersGenerator, sample_seeds

PROBLEMS = [Problem(f"toy/p{i}", f"What is {i} + 40?", str(i + 40), "toy/add", "train") for i in range(3)]
STRATEGY = Strategy("s1", "addition", "Add tens first: split into tens and units.", ("Add tens.", "Add units."))


class FakeGenerator:
    """Scripted completions: autonomous sample 0 and guided samples != 2 give the answer."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, spec, seeds, counts=None):
        self.calls.append((prompts, spec, seeds, counts))
        out = []
        for prompt, row_seeds in zip(prompts, sample_seeds(seeds, spec.n if counts is None else counts)):
            guided = "Strategy:" in prompt
            answer = next(p.answer for p in PROBLEMS if p.problem in prompt)
            texts = [answer if (k != 2 if guided else k == 0) else "no idea" for k in range(len(row_seeds))]
            out.append([Completion([k, s % 1000], [-0.5, -1.5], t, "eos")
                        for k, (s, t) in enumerate(zip(row_seeds, texts))])
        return out


class FakeGrader:
    def grade_many(self, texts, problems):
        return [SimpleNamespace(reward=float(p.answer in t), reason="correct" if p.answer in t else "wrong",
                                pred=t[:8]) for t, p in zip(texts, problems)]


def strategy_for(problem):
    return None if problem.id == "toy/p2" else STRATEGY


@pytest.fixture
def run(tiny_tokenizer):
    def _run(generator=None, **kw):
        args = dict(generator=generator or FakeGenerator(), tokenizer=tiny_tokenizer, problems=PROBLEMS,
                    strategy_for=strategy_for, n_auto=2, n_guided=3, spec=SamplingSpec(n=7, max_new_tokens=4),
                    seed=11, step=5, grader=FakeGrader())
        return sample_paired(**{**args, **kw})
    return _run


def test_rollout_counts_order_and_records(run):
    batch = run()
    assert len(batch.rollouts) == 3 * 2 + 2 * 3
    assert [(r.problem_id, r.guided) for r in batch.rollouts[:5]] == [("toy/p0", False)] * 2 + [("toy/p0", True)] * 3
    assert [r.token_ids[0] for r in batch.group("toy/p1", True)] == [0, 1, 2]
    assert batch.group("toy/p2", True) == []
    assert {r.strategy_id for r in batch.rollouts if r.guided} == {"s1"}
    assert {r.strategy_id for r in batch.rollouts if not r.guided} == {""}
    first = batch.rollouts[0]
    assert (first.reward, first.grade_reason, first.pred, first.finish_reason) == (1.0, "correct", "40", "eos")
    assert batch.generate_s >= 0 and batch.grade_s >= 0


def test_prompts_are_rendered_with_and_without_strategy(run, tiny_tokenizer):
    batch = run()
    assert batch.prompts_guided[2] is None
    for p, unguided, guided in zip(PROBLEMS[:2], batch.prompts_unguided, batch.prompts_guided):
        assert unguided.startswith("<|im_start|>user\n") and unguided.endswith("<|im_start|>assistant\n")
        assert p.problem in unguided and "Strategy:" not in unguided
        assert STRATEGY.render() in guided and p.problem in guided


def test_spec_n_is_replaced_and_seeds_follow_run_position(run):
    """One generator call holds both kinds (2 autonomous, 3 guided per prompt: per-prompt counts)."""
    gen = FakeGenerator()
    run(gen)
    [(prompts, spec, seeds, counts)] = gen.calls
    assert counts == [2, 2, 2, 3, 3] and spec.max_new_tokens == 4 and len(prompts) == 5
    assert seeds == [derive_seed(11, 5, p.id, False) for p in PROBLEMS] + [prompt_seed(11, 5, p.id, True) for p in PROBLEMS[:2]]


def test_equal_counts_make_one_call_with_spec_n(run):
    gen = FakeGenerator()
    run(gen, n_auto=3)
    [(prompts, spec, seeds, counts)] = gen.calls
    assert (len(prompts), spec.n, counts) == (5, 3, None)


def test_reproducible_and_step_dependent(run):
    a, b, c = run(), run(), run(step=6)
    tokens = lambda batch: [r.token_ids for r in batch.rollouts]  # noqa: E731
    assert tokens(a) == tokens(b)
    assert tokens(a) != tokens(c)
    assert len({tuple(t) for t in tokens(a)}) == len(a.rollouts)  # (problem, guided, k) all distinct


def test_stats_p_auto_p_guided(run):
    stats = run().stats
    assert list(stats.columns) == STATS_COLUMNS
    assert stats["p_auto"].tolist() == [0.5, 0.5, 0.5]
    assert stats["p_guided"].tolist()[:2] == [pytest.approx(2 / 3)] * 2 and math.isnan(stats["p_guided"][2])
    assert stats["n_auto_graded"].tolist() == [2, 2, 2] and stats["n_guided_graded"].tolist() == [3, 3, 0]
    assert stats["source"].tolist() == ["toy/add"] * 3


def test_no_guided_rollouts_when_n_guided_is_zero(run):
    gen = FakeGenerator()
    batch = run(gen, n_guided=0, strategy_for=lambda p: pytest.fail("strategy_for must not be called"))
    assert len(gen.calls) == 1 and not any(r.guided for r in batch.rollouts)
    assert batch.prompts_guided == [None] * 3


def test_bad_batches_raise(run):
    with pytest.raises(ValueError, match="duplicate problem ids.*toy/p0"):
        run(problems=[PROBLEMS[0], PROBLEMS[0]])
    short = SimpleNamespace(grade_many=lambda texts, problems: [])
    with pytest.raises(ValueError, match="grader returned 0 grades for 12 texts"):
        run(grader=short)


def test_save_load_round_trip_and_bad_rows(run, tmp_path):
    rollouts = run().rollouts
    save_rollouts(tmp_path / "r.jsonl", rollouts)
    assert load_rollouts(tmp_path / "r.jsonl") == rollouts
    (tmp_path / "bad.jsonl").write_text('{"problem_id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: row 1: Rollout: missing keys"):
        load_rollouts(tmp_path / "bad.jsonl")


def test_with_the_transformers_backend(run, tiny_model, tiny_tokenizer):
    gen = TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=8)
    spec = SamplingSpec(max_new_tokens=4, topk_logprobs=3)
    a, b = run(gen, spec=spec), run(gen, spec=spec)
    assert all(isinstance(r, Rollout) and len(r.token_ids) == len(r.logprobs) == len(r.topk_ids) for r in a.rollouts)
    assert [r.token_ids for r in a.rollouts] == [r.token_ids for r in b.rollouts]
    assert [r.token_ids for r in run(gen, spec=spec, seed=12).rollouts] != [r.token_ids for r in a.rollouts]
