"""Tests of the transformers sampler's two speed-ups: the in-place KV cache (`kv_cache`) and the
LoRA adapter merged for the duration of a call (`lora_merge`). Both must leave the samples as
they were and, for the merge, the trained weights bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache

from sgpo_lib.model.generation import SamplingSpec, TransformersGenerator
from sgpo_lib.model.kv_cache import GrowingLayer, growing_cache
from sgpo_lib.model.lora_merge import merged_lora

QUESTIONS = ["What is 2+2?", "hi", "Compute 12 times 7 modulo 5, step by step please."]


@pytest.fixture
def prompts(tiny_tokenizer):
    return [tiny_tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                               add_generation_prompt=True) for q in QUESTIONS]


def lora_model(tiny_model, seed: int = 0):
    """The tiny model with a LoRA adapter on every linear layer, its B matrices random (not zero)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                    "o_proj", "up_proj", "down_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
    return model


def decode_logits(model, cache_fn, steps: int = 6, drop_at: int = 3) -> list[torch.Tensor]:
    """Greedy decoding of 3 rows with `cache_fn(prefilled cache)`; row 1 leaves the batch at step
    `drop_at` (batch_select_indices). Returns each step's logits."""
    torch.manual_seed(0)
    ids_B_T = torch.randint(3, 100, (3, 5))
    out = model(input_ids=ids_B_T, use_cache=True)
    cache, logits = cache_fn(out.past_key_values), [out.logits[:, -1]]
    position = 5
    for step in range(steps):
        nxt_B = logits[-1].argmax(-1)
        if step == drop_at:
            keep = torch.tensor([0, 2])
            cache.batch_select_indices(keep)
            nxt_B = nxt_B[keep]
        pos_B_1 = torch.full((len(nxt_B), 1), position)
        out = model(input_ids=nxt_B[:, None], position_ids=pos_B_1, past_key_values=cache, use_cache=True)
        cache, position = out.past_key_values, position + 1
        logits.append(out.logits[:, -1])
    return logits


@torch.no_grad()
def test_growing_cache_gives_the_logits_of_the_dynamic_cache(tiny_model):
    """Same logits, bit for bit, at every step, also after rows leave the batch."""
    tiny_model.eval()
    dynamic = decode_logits(tiny_model, lambda c: c)
    growing = decode_logits(tiny_model, lambda c: growing_cache(c, 6))
    assert len(dynamic) == len(growing) == 7
    for d, g in zip(dynamic, growing):
        assert torch.equal(d, g)


@torch.no_grad()
def test_growing_layer_keeps_its_shape_and_refuses_overflow():
    keys = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)
    layer = GrowingLayer(keys, -keys, capacity=4)
    k, v = layer.update(torch.ones(2, 1, 1, 2), torch.zeros(2, 1, 1, 2))
    assert k.shape == (2, 1, 4, 2) and layer.get_seq_length() == 4 and layer.get_max_length() == 4
    assert torch.equal(k[:, :, :3], keys) and torch.equal(v[:, :, :3], -keys) and torch.equal(k[:, :, 3], torch.ones(2, 1, 2))
    layer.batch_select_indices(torch.tensor([1]))
    assert torch.equal(layer.keys, k[1:]) and torch.equal(layer.values, v[1:])
    with pytest.raises(ValueError, match="capacity 4"):
        layer.update(torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2))
    with pytest.raises(ValueError, match="capacity 2"):
        GrowingLayer(keys, keys, capacity=2)


def test_a_cache_of_another_kind_is_left_alone():
    assert growing_cache(7, 3) == 7  # e.g. a test double's step counter
    empty = DynamicCache()
    assert growing_cache(empty, 3) is empty and not any(isinstance(layer, GrowingLayer) for layer in empty.layers)


def test_merged_lora_restores_the_weights_bit_for_bit(tiny_model):
    model = lora_model(tiny_model)
    before = {n: (p.data_ptr(), p.detach().clone()) for n, p in model.named_parameters()}
    x = torch.randint(3, 100, (2, 7))
    with torch.no_grad():
        unmerged = model(input_ids=x).logits
        with merged_lora(model):
            merged = model(input_ids=x).logits
            q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
            assert q_proj.merged and not torch.equal(q_proj.base_layer.weight, before[
                "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"][1])
        again = model(input_ids=x).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-4, rtol=0)  # float rounding only
    assert not torch.equal(merged, model.get_base_model()(input_ids=x).logits.detach())  # the adapter acts
    assert torch.equal(again, unmerged)
    for n, p in model.named_parameters():
        assert p.data_ptr() == before[n][0] and torch.equal(p.detach(), before[n][1]), n
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_merged_lora_restores_the_weights_after_an_error(tiny_model):
    model = lora_model(tiny_model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"):
        with merged_lora(model):
            raise RuntimeError("boom")
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
    assert not any(getattr(m, "merged", False) for m in model.modules())


def test_merged_lora_leaves_a_model_without_lora_and_a_disabled_adapter_alone(tiny_model):
    weights = [p.data_ptr() for p in tiny_model.parameters()]
    with merged_lora(tiny_model):
        assert [p.data_ptr() for p in tiny_model.parameters()] == weights
    model = lora_model(tiny_model)
    with model.disable_adapter(), merged_lora(model):
        assert not any(getattr(m, "merged", False) for m in model.modules())


def test_merged_lora_leaves_bfloat16_layers_unmerged(tiny_model):
    """W + sBA in bfloat16 would round a small adapter update away: those layers stay as they are."""
    model = lora_model(tiny_model.to(torch.bfloat16))
    weights = [p.data_ptr() for p in model.parameters()]
    with merged_lora(model):
        assert [p.data_ptr() for p in model.parameters()] == weights
        assert not any(getattr(m, "merged", False) for m in model.modules())


def test_merged_sampling_gives_the_unmerged_samples(tiny_model, tiny_tokenizer, prompts):
    """The merge changes the float rounding only: same tokens, log-probs within 1e-4."""
    model = lora_model(tiny_model)
    spec = SamplingSpec(max_new_tokens=16, n=3, topk_logprobs=2)
    merged = TransformersGenerator(model, tiny_tokenizer, batch_size=9).generate(prompts, spec, [1, 2, 3])
    plain = TransformersGenerator(model, tiny_tokenizer, batch_size=9, merge_lora=False).generate(prompts, spec, [1, 2, 3])
    assert [c.token_ids for row in merged for c in row] == [c.token_ids for row in plain for c in row]
    for row_m, row_p in zip(merged, plain):
        for m, p in zip(row_m, row_p):
            torch.testing.assert_close(torch.tensor(m.logprobs), torch.tensor(p.logprobs), atol=1e-4, rtol=0)
