"""Evaluation protocol (sgpo-method.md §8-9): avg@k with a k per benchmark at the configured
temperature / top-p, greedy and unbiased pass@k as extras, the paper average, and the config
that sets it (unknown benchmark names fail naming the key)."""

from __future__ import annotations

from itertools import combinations
from types import SimpleNamespace

import pytest

from sgpo_lib.config.run import ConfigError, EvalConfig
from sgpo_lib.core.records import Problem
from sgpo_lib.method.evaluate import evaluate, paper_average, pass_at_k, summarize


def _pass_at_k_by_enumeration(samples: list[int], k: int) -> float:
    """Straight from the definition: the share of k-subsets of the samples with a correct one."""
    subsets = list(combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("samples, k", [([1, 0, 0, 0], 2), ([0, 1, 1, 0, 0], 3), ([0, 0, 0], 1), ([1, 1], 2)])
def test_pass_at_k_matches_enumeration(samples, k):
    assert pass_at_k(len(samples), sum(samples), k) == pytest.approx(_pass_at_k_by_enumeration(samples, k), abs=1e-12)


def _row(split, source, greedy, samples):
    return {"split": split, "source": source, "problem_id": f"{source}/{len(samples)}{greedy}", "greedy": greedy,
            "correct": sum(samples), "k": len(samples)}


def test_summarize_keeps_each_benchmarks_k():
    rows = [_row("test", "amc23", 1, [1, 0, 0, 0, 1, 0, 0, 0]), _row("test", "amc23", 0, [0] * 8),
            _row("test", "math500", 1, [1, 1]), _row("test", "math500", 0, [0, 1])]
    table = summarize(rows).set_index("source")
    assert list(summarize(rows).columns) == ["split", "source", "n", "greedy", "avg@k", "pass@k", "k"]
    assert table.loc["amc23", "k"] == 8 and table.loc["math500", "k"] == 2 and table.loc["macro", "k"] is None
    assert table.loc["amc23", "avg@k"] == pytest.approx((2 / 8 + 0) / 2)
    assert table.loc["amc23", "pass@k"] == pytest.approx(0.5)  # n = k: any correct sample
    assert table.loc["math500", "avg@k"] == pytest.approx(0.75) and table.loc["math500", "greedy"] == 0.5
    assert table.loc["macro", "avg@k"] == pytest.approx((0.125 + 0.75) / 2) and table.loc["macro", "n"] == 4
    one_k = summarize([_row("test", "toy/sum", 1, [1, 0]), _row("test", "toy/mul", 0, [0, 0])])
    assert one_k.set_index("source").loc["macro", "k"] == 2


def test_paper_average_is_the_mean_over_the_four_benchmarks():
    rows = [{"split": "test", "source": s, "avg@k": v} for s, v in
            (("math500", 0.8), ("amc23", 0.5), ("olympiadbench", 0.4), ("aime24", 0.1), ("minerva", 0.0), ("macro", 0.9))]
    import pandas as pd

    assert paper_average(pd.DataFrame(rows))["test"] == pytest.approx((0.8 + 0.5 + 0.4 + 0.1) / 4)
    toy = summarize([_row(sp, f"toy/{f}", 0, s) for sp in ("test", "ood")
                     for f, s in (("sum", [1, 1]), ("mul", [0, 1]), ("linear", [0, 0]))])
    macro = toy[toy["source"] == "macro"].set_index("split")["avg@k"]
    assert paper_average(toy).to_dict() == pytest.approx(macro.to_dict())  # toy: the mean over families
    assert paper_average(toy)["test"] == pytest.approx(0.5)


class RecordingGenerator:
    """Completions whose text says which prompt and sample they are; records every call."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, spec, seeds, counts=None):
        self.calls.append((len(prompts), spec, list(seeds), counts))
        counts = counts or [spec.n] * len(prompts)
        return [[SimpleNamespace(text=f"{p}|{j}") for j in range(c)] for p, c in zip(prompts, counts)]


class SampleIndexGrader:
    """Reward 1 for sample 0 of every prompt (and for greedy outputs): avg@k = 1/k exactly."""

    def grade_many(self, texts, problems):
        return [SimpleNamespace(reward=float(t.endswith("|0"))) for t in texts]


class PlainTokenizer:
    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        return messages[0]["content"]


def _problems():
    return [Problem(f"{s}/{i}", f"{s} q{i}", "1", s, "test") for s in ("amc23", "math500", "minerva") for i in range(2)]


def test_evaluate_samples_each_benchmark_with_its_k():
    gen = RecordingGenerator()
    table = evaluate(gen, PlainTokenizer(), _problems(), SampleIndexGrader(), k=2, temperature=0.6, top_p=0.95,
                     max_new_tokens=8, instruction="", seed=0, k_by_benchmark={"amc23": 8, "minerva": 3})
    greedy, sampled = gen.calls  # one sampled call: every benchmark's k in it
    assert greedy[1].temperature == 0.0 and greedy[0] == 6
    assert sampled[0] == 6 and sampled[3] == [8, 8, 2, 2, 3, 3] and sampled[2] == greedy[2]
    assert (sampled[1].temperature, sampled[1].top_p) == (0.6, 0.95)
    t = table.set_index("source")
    assert t.loc["amc23", "k"] == 8 and t.loc["amc23", "avg@k"] == pytest.approx(1 / 8)
    assert t.loc["minerva", "avg@k"] == pytest.approx(1 / 3) and t.loc["math500", "avg@k"] == pytest.approx(1 / 2)
    assert (t.loc[["amc23", "math500", "minerva"], "pass@k"] == 1.0).all()


def test_evaluate_rows_keep_each_problems_outcome():
    """One compact row per problem (what `eval_problems.jsonl` keeps): id, split, benchmark, greedy
    reward and the correct samples out of that benchmark's k."""
    from sgpo_lib.method.evaluate import evaluate_rows

    rows = evaluate_rows(RecordingGenerator(), PlainTokenizer(), _problems(), SampleIndexGrader(), k=2, temperature=0.6,
                         max_new_tokens=8, instruction="", seed=0, k_by_benchmark={"amc23": 8})
    assert rows[0] == {"split": "test", "source": "amc23", "problem_id": "amc23/0", "k": 8, "greedy": 1.0, "correct": 1}
    assert [r["problem_id"] for r in rows] == [p.id for p in _problems()] and all(r["correct"] == 1 for r in rows)


def test_one_k_makes_the_calls_of_a_single_k_evaluation():
    """Without k_by_benchmark: one greedy and one sampled call over every problem, same seeds (v1 path)."""
    gen = RecordingGenerator()
    evaluate(gen, PlainTokenizer(), _problems(), SampleIndexGrader(), k=4, temperature=1.0, max_new_tokens=8,
             instruction="", seed=3)
    (n0, greedy, seeds0, _), (n1, spec, seeds1, counts) = gen.calls
    assert (n0, n1, spec.n, spec.temperature, spec.top_p, counts) == (6, 6, 4, 1.0, 1.0, None) and seeds0 == seeds1


def test_eval_config_validates_k_by_benchmark():
    assert EvalConfig(k_by_benchmark=("amc23=32", "sum=2")).k_map == {"amc23": 32, "sum": 2}
    with pytest.raises(ConfigError, match=r"eval.k_by_benchmark.*unknown benchmark 'amc' in 'amc=32' \(did you mean 'amc23'"):
        EvalConfig(k_by_benchmark=("amc=32",))
    for bad in (("amc23=0",), ("amc23",), ("amc23=4", "amc23=8")):
        with pytest.raises(ConfigError, match=r"eval.k_by_benchmark.*write 'name=k'"):
            EvalConfig(k_by_benchmark=bad)
    with pytest.raises(ConfigError, match=r"eval.top_p"):
        EvalConfig(top_p=0.0)


@pytest.mark.parametrize("name", ["qwen2.5-1.5b-math", "qwen2.5-7b-math", "llama3.1-8b-math"])
def test_real_params_follow_the_paper(name):
    """The paper's setting (sgpo-method.md §0, §2, §3, §8) in every real-model params file."""
    from sgpo_lib.config.run import load_config

    cfg = load_config(f"params/{name}.yaml")
    assert (cfg.rollout.n_autonomous, cfg.rollout.n_guided, cfg.train.eps_low, cfg.train.eps_high) == (8, 4, 0.2, 0.28)
    assert (cfg.train.warmup_sft_fraction, cfg.train.warmup_sft_epochs) == pytest.approx((1 / 3, 10))
    assert (cfg.data.train_sets, cfg.data.train_limit) == (("openr1_46k",), 8500)
    assert cfg.eval.k_map == {"math500": 4, "amc23": 32, "olympiadbench": 4, "aime24": 32}
    assert (cfg.eval.temperature, cfg.eval.top_p) == (0.6, 0.95)
    assert cfg.eval.max_new_tokens <= cfg.rollout.max_model_len == 32768
    assert set(cfg.eval.k_map) <= set(cfg.data.eval_sets)


def test_step0_evaluation_is_cached_per_content_addressed_model_and_seed(tmp_path, monkeypatch):
    """The step-0 per-problem rows of a model under the cache root are computed once per (model, eval
    settings, seed, problems) and read back equal; a model folder outside the cache is never cached."""
    from sgpo_lib.config.run import RunConfig
    from sgpo_lib.core.cache import cache_root
    from sgpo_lib.method.evaluate import cached_rows, start_eval_cache

    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path / "out"))
    cfg = RunConfig()
    student = cache_root(cfg) / "toy-student-small-abc"
    problems = [Problem("p1", "q", "1", "sum", "test")]
    calls = []

    def compute():
        calls.append(1)
        return [{"split": "test", "source": "sum", "problem_id": "p1", "k": 2, "greedy": 0.0, "correct": 1}]

    path = start_eval_cache(cfg, student, problems)
    first, again = cached_rows(path, compute), cached_rows(path, compute)
    assert len(calls) == 1 and first == again
    other_seed = start_eval_cache(RunConfig(seed=1), student, problems)
    assert other_seed != path and start_eval_cache(cfg, student, problems[:0]) != path
    assert start_eval_cache(cfg, tmp_path / "my-model", problems) is None
    cached_rows(None, compute)
    assert len(calls) == 2


def test_sharded_evaluation_gathers_the_one_rank_table():
    """3 ranks (uneven shares of 6 problems): the gathered per-problem rows equal one rank's, and
    every problem is sampled with the seeds it gets in a one-rank evaluation."""
    from sgpo_lib.method.evaluate import evaluate_rows, gathered_rows, shard_rows

    kwargs = dict(k=2, temperature=0.6, top_p=0.95, max_new_tokens=8, instruction="", seed=0,
                  k_by_benchmark={"amc23": 8, "minerva": 3})
    problems = _problems()[:5]
    one = RecordingGenerator()
    rows_one = evaluate_rows(one, PlainTokenizer(), problems, SampleIndexGrader(), **kwargs)
    shards, rows = [RecordingGenerator() for _ in range(3)], []
    for rank, gen in enumerate(shards):
        rows += shard_rows(gen, PlainTokenizer(), problems, SampleIndexGrader(), rank, 3, **kwargs)
    assert gathered_rows(rows[::-1]) == rows_one  # gathered in any order
    seed_of = dict(zip([p.id for p in problems], one.calls[0][2]))
    for rank, gen in enumerate(shards):
        assert gen.calls[0][2] == [seed_of[p.id] for p in problems[rank::3]]
    assert shard_rows(RecordingGenerator(), PlainTokenizer(), problems[:1], SampleIndexGrader(), 1, 3, **kwargs) == []
