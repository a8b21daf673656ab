"""CPU facts in env.json, the bf16 warning on CPUs without native bfloat16, and `make bench-env`."""

import logging

import pytest

from bench import bench_env
from sgpo_lib.config.toy_presets import toy_preset
from sgpo_lib.core import machine
from sgpo_lib.toy import pretrain as toy_pretrain
from sgpo_lib.toy.config import PretrainConfig, StudentConfig, ToyWorldConfig
from sgpo_lib.toy.tokenizer import build_tokenizer


def test_cpu_facts_name_the_kernels_that_decide_speed():
    facts = machine.cpu_facts()
    assert facts["cores"] >= 1 and facts["torch_threads"] >= 1
    assert set(facts["isa"]) <= set(machine.ISA_FLAGS)
    assert isinstance(facts["native_bf16"], bool)
    assert facts["torch_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "NO AVX", "ZVECTOR", "SVE256", "VSX")


def test_pretraining_defaults_to_float32():
    assert PretrainConfig().bf16_autocast is False
    assert all(p.bf16_autocast is False for _, _, p in (toy_preset("smoke"), toy_preset("demo")))


@pytest.mark.parametrize("native", [False, True])
def test_bf16_without_native_support_warns(monkeypatch, caplog, native):
    monkeypatch.setattr(toy_pretrain, "native_bf16", lambda: native)
    tok = build_tokenizer()
    model = toy_pretrain.build_model(StudentConfig(size="tiny"), tok, 0)
    cfg = PretrainConfig(steps=1, batch_size=2, warmup_steps=0, bf16_autocast=True)
    with caplog.at_level(logging.WARNING, logger=toy_pretrain.logger.name):
        toy_pretrain.pretrain(model, tok, ToyWorldConfig(n_train=8, n_test=4, n_ood=4), cfg, seed=0)
    warned = any("no native bfloat16" in r.message for r in caplog.records)
    assert warned is (not native)


def test_bench_env_times_every_variant_side_by_side():
    out = bench_env.measure(steps=1, preset_name="smoke")
    for name in ("pretrain_fp32", "pretrain_bf16", "lora_train_fp32"):
        assert out[name]["step_s"] > 0 and out[name]["tokens_per_s"] > 0
    assert isinstance(out["native_bf16"], bool)

