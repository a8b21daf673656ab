"""Tests of sgpo_lib.model.generation: the sampling spec, the sampler and the transformers backend."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from sgpo_lib.core.seeding import derive_seed
from sgpo_lib.model.generation import (
    Completion,
    Generator,
    SamplingSpec,
    TransformersGenerator,
    cut_at_stop,
    sample_next,
    sample_seeds,
)

QUESTIONS = ["What is 2+2?", "hi", "Compute 12 times 7 modulo 5, step by step please."]


def render(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)


@pytest.fixture
def prompts(tiny_tokenizer):
    return [render(tiny_tokenizer, q) for q in QUESTIONS]


@pytest.fixture
def gen(tiny_model, tiny_tokenizer):
    torch.set_num_threads(1)
    return TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=8)


def teacher_forced_logprobs(model, tokenizer, prompt: str, token_ids: list[int]) -> torch.Tensor:
    """Raw log-softmax over the vocabulary at each completion position (T, V)."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float()
    return torch.log_softmax(logits, dim=-1)


# --- SamplingSpec and helpers ---------------------------------------------------------------

def test_spec_validates_and_freezes_stop():
    spec = SamplingSpec(stop=["\n\n"], n=2)
    assert spec.stop == ("\n\n",)
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"max_new_tokens": 0}, {"n": 0},
                {"topk_logprobs": -1}, {"stop": [""]}):
        with pytest.raises(ValueError, match="SamplingSpec"):
            SamplingSpec(**bad)


def test_cut_at_stop_takes_earliest():
    assert cut_at_stop("a STOP b END", ("END", "STOP")) == ("a ", True)
    assert cut_at_stop("abc", ()) == ("abc", False)


def test_sample_seeds_are_derived_per_prompt_and_sample():
    seeds = sample_seeds([5, 6], 3)
    assert seeds[1][2] == derive_seed(6, 2)
    assert len({s for row in seeds for s in row}) == 6


def test_generate_rejects_mismatched_seeds(gen, prompts):
    with pytest.raises(ValueError, match="one seed per prompt"):
        gen.generate(prompts, SamplingSpec(max_new_tokens=2), seeds=[1])


# --- sample_next ----------------------------------------------------------------------------

def test_sample_next_matches_tempered_distribution():
    logits_V = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n, temperature = 4000, 0.7
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    next_B, logprobs_B_V = sample_next(logits_V.expand(n, -1), gens, SamplingSpec(temperature=temperature))
    freq_V = torch.bincount(next_B, minlength=4).float() / n
    torch.testing.assert_close(freq_V, torch.softmax(logits_V / temperature, -1), atol=0.03, rtol=0)
    torch.testing.assert_close(logprobs_B_V[0], torch.log_softmax(logits_V, -1))  # raw, not tempered


def test_sample_next_top_p_never_leaves_the_nucleus():
    logits_V = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    gens = [torch.Generator().manual_seed(i) for i in range(2000)]
    next_B, _ = sample_next(logits_V.expand(2000, -1), gens, SamplingSpec(top_p=0.7))
    assert set(next_B.tolist()) == {0, 1}  # 0.5 < 0.7 needs the second token, not the third


def test_sample_next_greedy_is_argmax():
    logits_B_V = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    next_B, _ = sample_next(logits_B_V, [None] * 5, SamplingSpec(temperature=0))
    assert next_B.tolist() == logits_B_V.argmax(-1).tolist()


# --- TransformersGenerator on the tiny Qwen2 -----------------------------------------------

def test_is_a_generator(gen):
    assert isinstance(gen, Generator)


def test_greedy_matches_hf_generate(gen, tiny_model, tiny_tokenizer, prompts):
    out = gen.generate(prompts, SamplingSpec(temperature=0, max_new_tokens=12, n=2), seeds=[0, 1, 2])
    for prompt, comps in zip(prompts, out):
        ids = tiny_tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        ref = tiny_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=12)
        assert comps[0].token_ids == ref[0, ids.shape[1]:].tolist()
        assert comps[0].token_ids == comps[1].token_ids
        assert comps[0].finish_reason == "length"


def test_sample_does_not_depend_on_batch_composition(tiny_model, tiny_tokenizer, prompts):
    spec = SamplingSpec(max_new_tokens=16, n=2)
    alone = TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=1).generate(prompts[1:2], spec, [7])
    batched = TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=6).generate(prompts, spec, [3, 7, 9])
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in batched[1]]
    torch.testing.assert_close(torch.tensor(alone[0][1].logprobs), torch.tensor(batched[1][1].logprobs),
                               atol=1e-4, rtol=0)


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(tiny_model, tiny_tokenizer, prompts):
    """Stop strings end the rows at different steps, so the batch is compacted several times;
    every completion equals the one sampled alone (batch size 1, never compacted)."""
    spec = SamplingSpec(max_new_tokens=24, n=4, stop=("e", "a"))
    batched = TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=12).generate(prompts, spec, [3, 7, 9])
    lengths = {len(c.token_ids) for row in batched for c in row}
    assert len(lengths) >= 3 and {c.finish_reason for row in batched for c in row} >= {"stop"}, lengths
    alone = TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=1).generate(prompts, spec, [3, 7, 9])
    for row_b, row_a in zip(batched, alone):
        for b, a in zip(row_b, row_a):
            assert (b.token_ids, b.finish_reason, b.text) == (a.token_ids, a.finish_reason, a.text)
            torch.testing.assert_close(torch.tensor(b.logprobs), torch.tensor(a.logprobs), atol=1e-4, rtol=0)


def test_the_samples_of_a_prompt_share_one_prefill(tiny_model, tiny_tokenizer, prompts):
    """3 prompts x 4 samples in one batch: the prompt forward has 3 rows, not 12; every completion
    equals the one sampled alone (`test_rows_that_finish_early...` compares those too)."""
    rows_per_forward = []
    hook = tiny_model.register_forward_pre_hook(lambda m, a, kw: rows_per_forward.append(kw["input_ids"].shape),
                                                with_kwargs=True)
    try:
        TransformersGenerator(tiny_model, tiny_tokenizer, batch_size=12).generate(
            prompts, SamplingSpec(max_new_tokens=3, n=4), [3, 7, 9])
    finally:
        hook.remove()
    width = max(len(tiny_tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    assert rows_per_forward == [(3, width), (12, 1), (12, 1)]


def test_counts_per_prompt_equal_one_call_per_count(gen, prompts):
    """`counts`: prompt i gets counts[i] samples in one call, each the sample that a call with
    `n = counts[i]` gives (sample k of prompt i is seeded by (seeds[i], k) either way)."""
    spec = SamplingSpec(max_new_tokens=8)
    mixed = gen.generate(prompts, spec, [3, 7, 9], counts=[2, 0, 3])
    assert [len(row) for row in mixed] == [2, 0, 3]
    for i, n in ((0, 2), (2, 3)):
        alone = gen.generate([prompts[i]], replace(spec, n=n), [[3, 7, 9][i]])[0]
        assert [c.token_ids for c in mixed[i]] == [c.token_ids for c in alone]
    with pytest.raises(ValueError, match="one sample count >= 0 per prompt"):
        gen.generate(prompts, spec, [3, 7, 9], counts=[1, 2])


def test_seeds_reproduce_and_differ(gen, prompts):
    spec = SamplingSpec(max_new_tokens=16, n=3)
    a, b = gen.generate(prompts, spec, [1, 2, 3]), gen.generate(prompts, spec, [1, 2, 3])
    c = gen.generate(prompts, spec, [4, 5, 6])
    ids = lambda out: [x.token_ids for row in out for x in row]  # noqa: E731
    assert ids(a) == ids(b)
    assert ids(a) != ids(c)
    assert len({tuple(t) for t in ids(a)}) == 9  # the n samples of a prompt differ too


def test_logprobs_and_topk_match_forward_pass(gen, tiny_model, tiny_tokenizer, prompts):
    k = 5
    out = gen.generate(prompts, SamplingSpec(temperature=0.8, top_p=0.9, max_new_tokens=10, topk_logprobs=k), [1, 2, 3])
    for prompt, (comp,) in zip(prompts, out):
        ref_T_V = teacher_forced_logprobs(tiny_model, tiny_tokenizer, prompt, comp.token_ids)
        chosen_T = ref_T_V.gather(-1, torch.tensor(comp.token_ids).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(torch.tensor(comp.logprobs), chosen_T, atol=1e-4, rtol=1e-4)
        top = ref_T_V.topk(k, dim=-1)
        assert torch.tensor(comp.topk_ids).shape == (len(comp.token_ids), k)
        assert comp.topk_ids == top.indices.tolist()
        torch.testing.assert_close(torch.tensor(comp.topk_logprobs), top.values, atol=1e-4, rtol=1e-4)


def test_no_topk_unless_asked(gen, prompts):
    (comp,), *_ = gen.generate(prompts, SamplingSpec(max_new_tokens=3), [1, 2, 3])
    assert comp.topk_ids is None and comp.topk_logprobs is None
    assert len(comp.token_ids) == len(comp.logprobs) == 3


def test_restores_training_mode(gen, tiny_model, prompts):
    tiny_model.train()
    gen.generate(prompts[:1], SamplingSpec(max_new_tokens=2), [0])
    assert tiny_model.training
    tiny_model.eval()
    gen.generate(prompts[:1], SamplingSpec(max_new_tokens=2), [0])
    assert not tiny_model.training


def test_live_peft_model_and_adapter_dir(tiny_model, tiny_tokenizer, prompts, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    gen = TransformersGenerator(model, tiny_tokenizer)
    spec = SamplingSpec(temperature=0, max_new_tokens=8, topk_logprobs=2)
    before = gen.generate(prompts, spec, [0, 0, 0])
    model.save_pretrained(tmp_path / "zero_b")  # peft initialises B = 0: the base model
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    changed = gen.generate(prompts, spec, [0, 0, 0])  # live weights, no update call needed
    assert [c[0].logprobs for c in changed] != [c[0].logprobs for c in before]
    gen.update_weights(tmp_path / "zero_b")
    restored = gen.generate(prompts, spec, [0, 0, 0])
    assert [c[0].token_ids for c in restored] == [c[0].token_ids for c in before]


# --- EOS, stop strings and length with a scripted mock model --------------------------------

class ScriptedModel(torch.nn.Module):
    """Emits `script` one token per step (logit 10 on the scripted token, 0 elsewhere).

    The 'KV cache' is the number of tokens generated so far (nanochat-style MockModel).
    """

    def __init__(self, script: list[int], vocab: int, eos_id: int):
        super().__init__()
        self.script, self.vocab = script, vocab
        self.generation_config = SimpleNamespace(eos_token_id=eos_id)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, past_key_values=None, **_):
        step = 0 if past_key_values is None else past_key_values
        token = self.script[min(step, len(self.script) - 1)]
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        logits[:, :, token] = 10.0
        return SimpleNamespace(logits=logits, past_key_values=step + 1)


@pytest.fixture
def scripted(tiny_tokenizer):
    words = tiny_tokenizer("The answer is 42. Next", add_special_tokens=False)["input_ids"]
    eos = tiny_tokenizer.eos_token_id
    model = ScriptedModel(words + [eos, words[0]], len(tiny_tokenizer), eos)
    return TransformersGenerator(model, tiny_tokenizer, batch_size=4), words, eos


def test_eos_ends_the_completion(scripted):
    gen, words, eos = scripted
    (comp,), = gen.generate(["x"], SamplingSpec(temperature=0, max_new_tokens=50), [0])
    assert comp == Completion(words + [eos], comp.logprobs, "The answer is 42. Next", "eos")
    assert len(comp.logprobs) == len(words) + 1


def test_stop_string_cuts_text_keeps_tokens(scripted):
    gen, words, _ = scripted
    (comp,), = gen.generate(["x"], SamplingSpec(max_new_tokens=50, stop=["42", "answer"]), [0])
    assert (comp.text, comp.finish_reason) == ("The ", "stop")
    assert "answer" in gen.tokenizer.decode(comp.token_ids)  # the completing token is kept


def test_length_limit(scripted):
    gen, words, _ = scripted
    (comp,), = gen.generate(["x"], SamplingSpec(max_new_tokens=2), [0])
    assert comp.finish_reason == "length" and comp.token_ids == words[:2]


@pytest.mark.gpu
def test_same_samples_on_cuda_and_cpu(tiny_model, tiny_tokenizer, prompts):
    spec = SamplingSpec(max_new_tokens=8, n=2, topk_logprobs=3)
    cpu = TransformersGenerator(tiny_model, tiny_tokenizer).generate(prompts, spec, [1, 2, 3])
    cuda = TransformersGenerator(tiny_model.to("cuda"), tiny_tokenizer).generate(prompts, spec, [1, 2, 3])
    assert [c.token_ids for row in cuda for c in row] == [c.token_ids for row in cpu for c in row]
    torch.testing.assert_close(torch.tensor(cuda[0][0].logprobs), torch.tensor(cpu[0][0].logprobs),
                               atol=1e-3, rtol=0)
