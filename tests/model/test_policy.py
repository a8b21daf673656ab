"""Policy forward passes: chunked completion log-probs equal the full-logits computation."""

import torch

from sgpo_lib.model.policy import pack, token_logprobs


def test_chunked_token_logprobs_match_full_logits(tiny_model):
    batch = pack([[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14, 15, 16]], pad_id=0)
    mask = batch.completion_mask_B_T.bool()
    ref = torch.log_softmax(tiny_model(input_ids=batch.input_ids_B_T, attention_mask=batch.attention_mask_B_T).logits, -1)
    ref_B_T = ref.gather(-1, batch.targets_B_T[..., None]).squeeze(-1)
    grads = []
    for chunk in (2, 3, None):
        tiny_model.zero_grad()
        lp_B_T = token_logprobs(tiny_model, batch, chunk_size=chunk)
        torch.testing.assert_close(lp_B_T[mask], ref_B_T[mask], rtol=1e-5, atol=1e-5)
        assert torch.all(lp_B_T[~mask] == 0)
        lp_B_T.sum().backward()
        grads.append(tiny_model.lm_head.weight.grad.clone())
    tiny_model.zero_grad()
    (ref_B_T * mask).sum().backward()
    for g in grads:
        torch.testing.assert_close(g, tiny_model.lm_head.weight.grad, rtol=1e-4, atol=1e-5)


def test_flash_attention_without_its_package_fails_naming_the_key(monkeypatch):
    import importlib.util

    import pytest

    from sgpo_lib.model.policy import check_attn_implementation

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="model.attn_implementation: flash_attention_2 needs the flash-attn package"):
        check_attn_implementation("flash_attention_2")
    check_attn_implementation("sdpa")
