"""The memory plan from config.json alone (no weights): the public architecture configs of
Qwen2.5-1.5B, Qwen2.5-7B and Llama-3.1-8B (numbers from their model cards' config.json) written
as local files, the 7B lines against a hand calculation, and the refusal naming the keys."""

import json

import pytest

from sgpo_lib.config.run import load_config
from sgpo_lib.model import memory_plan as mp

CONFIGS = {
    "Qwen2.5-1.5B": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=1536, num_hidden_layers=28,
                         intermediate_size=8960, vocab_size=151936, num_attention_heads=12, num_key_value_heads=2,
                         tie_word_embeddings=True, max_position_embeddings=131072, rms_norm_eps=1e-6,
                         rope_theta=1000000.0, hidden_act="silu", torch_dtype="bfloat16"),
    "Qwen2.5-7B": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=3584, num_hidden_layers=28,
                       intermediate_size=18944, vocab_size=152064, num_attention_heads=28, num_key_value_heads=4,
                       tie_word_embeddings=False, max_position_embeddings=131072, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, hidden_act="silu", torch_dtype="bfloat16"),
    "Llama-3.1-8B": dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096, num_hidden_layers=32,
                         intermediate_size=14336, vocab_size=128256, num_attention_heads=32, num_key_value_heads=8,
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="silu", torch_dtype="bfloat16"),
}
PARAMETERS = {"Qwen2.5-1.5B": 1_543_714_304, "Qwen2.5-7B": 7_615_616_512, "Llama-3.1-8B": 8_030_261_248}  # model cards


@pytest.fixture
def model_dir(tmp_path):
    def write(name):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(CONFIGS[name]))
        return folder
    return write


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameter_counts_are_the_model_cards(model_dir, name):
    assert mp.count_parameters(mp.read_config(model_dir(name))) == PARAMETERS[name]


def test_the_7b_plan_matches_a_hand_calculation():
    """bf16, LoRA r 64 on the 7 linears, one 8K-token micro-batch, 1024-token logits chunk, vLLM 0.4 of 80 GiB."""
    h, layers, inter, vocab, kv, tokens = 3584, 28, 18944, 152064, 4 * 128, 8192
    weights = 2 * (2 * vocab * h + layers * (2 * h * h + 2 * h * kv + h + 2 * kv + 3 * h * inter + 2 * h) + h)
    lora = 16 * layers * 64 * (2 * (h + h) + 2 * (h + kv) + 2 * (h + inter) + (inter + h))
    per_token_layer = 6 * h + 2 * kv + 4 * inter
    kw = dict(dtype="bfloat16", lora_r=64, lora_targets=mp.LINEARS, tokens=tokens, chunk_tokens=1024,
              vllm_share=0.4, device_bytes=80 * mp.GIB)
    full = mp.plan(CONFIGS["Qwen2.5-7B"], checkpointing=False, **kw)
    ckpt = mp.plan(CONFIGS["Qwen2.5-7B"], checkpointing=True, **kw)
    assert full["weights"] == weights == 2 * 7_615_616_512
    assert full["lora + optimizer"] == lora == 2_583_691_264
    assert full["activations"] == 2 * tokens * layers * per_token_layer  # 42.0 GiB
    assert ckpt["activations"] == 2 * tokens * (layers * h + per_token_layer)  # 3.0 GiB
    assert full["logits chunk"] == 12 * 1024 * vocab and full["vllm share"] == int(0.4 * 80 * mp.GIB)
    assert full["total"] == sum(v for k, v in full.items() if k not in ("total", "device"))
    with pytest.raises(mp.MemoryPlanError, match="model.gradient_checkpointing.*train.micro_batch_tokens"):
        mp.check(full)  # 94.3 GiB on 80: an 8K sequence of a 7B model does not fit beside vLLM
    mp.check(ckpt)  # 55.3 GiB: fits
    assert "activations" in mp.table(ckpt, full["activations"]) and "42.00 GiB" in mp.table(ckpt, full["activations"])


def test_a_run_plan_reads_the_config_keys(model_dir):
    cfg = load_config("params/real-base.yaml", {"model.name_or_path": str(model_dir("Qwen2.5-1.5B")),
                                                 "train.micro_batch_tokens": 4096, "model.gradient_checkpointing": True})
    lines, other = mp.plan_for_run(cfg, cfg.model.name_or_path, 80 * mp.GIB)
    assert lines["activations"] < other  # the other setting (no checkpointing) stores more
    assert lines["weights"] == PARAMETERS["Qwen2.5-1.5B"] * mp.DTYPE_BYTES[cfg.model.dtype]
    frame = mp.plan_frame(cfg, cfg.model.name_or_path, 80 * mp.GIB)  # notebook 03's table
    assert frame.loc["total", "fits"] and frame.loc["activations, checkpointing off", "GiB"] == round(other / mp.GIB, 2)
