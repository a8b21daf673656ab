"""Notebook 02 (`paired_rollouts`) and notebook 03's `guidance_shift` sample with the configured
backend on the configured device: the transformers path loads the policy on `backends.device()`
(a sentinel here, so that a call that forgets the device fails), the vLLM path never loads a
transformers copy and swaps each SGPO run's adapter into one engine; both record what they used."""

from __future__ import annotations

import pytest

from sgpo_lib.config.run import RolloutConfig, RunConfig
from sgpo_lib.core import fileio
from sgpo_lib.core.records import Problem, Strategy, TrainData
from sgpo_lib.core.run_folder import write_status
from sgpo_lib.model import policy
from sgpo_lib.model.generation import Completion
from sgpo_lib.train import backends
from sgpo_lib.workflow import assets, stages

PROBLEMS = [Problem(id=f"t/{i}", problem=f"What is {i} + {i}?", answer=str(2 * i), source="t", split="train",
                    answer_kind="exact") for i in range(2)]
STRATEGY = Strategy(id="s#1", problem_type="sum", strategy="Add it to itself.",
                    steps=("Read it.", "Add.", "Check."), source_problem_id="t/0")
SENTINEL = "cpu:0"  # a device string torch accepts, but not the default "cpu"


@pytest.fixture
def train_data(tiny_model_dir, monkeypatch):
    data = TrainData(model_dir=tiny_model_dir, train=PROBLEMS, eval=[], strategy_for=lambda p: STRATEGY)
    monkeypatch.setattr(assets, "train_data", lambda cfg, size=None: data)
    return data


def _cfg(backend: str) -> RunConfig:
    rollout = RolloutConfig(backend=backend, n_autonomous=2, n_guided=1, max_new_tokens=4)
    return RunConfig(rollout=rollout)


def test_transformers_stages_load_the_policy_on_the_configured_device(tmp_path, train_data, monkeypatch):
    devices, real_load = [], policy.load_policy

    def spy(model_dir, lora, dtype="float32", device="cpu", attn_implementation=None):
        devices.append(str(device))
        return real_load(model_dir, lora, dtype, device, attn_implementation)

    monkeypatch.setattr(backends, "load_policy", spy)
    monkeypatch.setattr(backends, "device", lambda: SENTINEL)
    stats = stages.paired_rollouts(_cfg("transformers"), tmp_path, per_source=2)
    assert len(stats) == 2 and devices == [SENTINEL]
    assert fileio.read_jsonl(tmp_path / "backends.jsonl") == [
        {"stage": "02_paired_rollouts", "generator": "TransformersGenerator", "device": "cpu"}]


class _FakeEngine:
    """Stands in for `VLLMGenerator` (records adapters; answers "\\boxed{0}")."""

    def __init__(self, model_dir):
        self.model_dir, self.adapters, self.llm, self.closed = model_dir, [], object(), False
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def generate(self, prompts, spec, seeds, counts=None):
        return [[Completion([1], [-0.1], "\\boxed{0}", "eos") for _ in range(c)] for c in counts or [spec.n] * len(prompts)]

    def update_weights(self, adapter_dir):
        self.adapters.append(adapter_dir)

    def close(self):
        self.closed = True


def test_vllm_stages_use_one_engine_and_swap_adapters(tmp_path, train_data, monkeypatch):
    engines = []
    monkeypatch.setattr(backends, "vllm_generator", lambda cfg, model_dir: engines.append(_FakeEngine(model_dir))
                        or engines[-1])
    monkeypatch.setattr(backends, "load_policy", lambda *a, **k: pytest.fail("vllm stage loaded a transformers model"))
    cfg = _cfg("vllm")
    stages.paired_rollouts(cfg, tmp_path, per_source=2)
    run = tmp_path / "main" / "train.method=sgpo_seed=0"
    fileio.write_json(run / "final" / "adapter_config.json", {"r": 4})
    write_status(run, "done")
    table = stages.guidance_shift(cfg, tmp_path, per_source=2)
    assert list(table.index) == ["base student", run.name] and (table["p_auto"] == 0.5).all()
    assert len(engines) == 2 and all(e.closed for e in engines)  # one per stage
    assert engines[1].model_dir == train_data.model_dir and engines[1].adapters == [None, run / "final"]
    rows = fileio.read_jsonl(tmp_path / "backends.jsonl")
    assert [r["stage"] for r in rows] == ["02_paired_rollouts", "03_guidance_shift/base student",
                                         f"03_guidance_shift/{run.name}"]
    assert {(r["generator"], r["device"]) for r in rows} == {("_FakeEngine", "cpu")}
    with pytest.raises(ValueError, match="LoRA adapters only"):
        backends.PolicySampler(cfg, train_data.model_dir).policy(tmp_path)


def test_trainer_builds_its_vllm_engine_through_the_shared_builder(monkeypatch):
    calls = []
    monkeypatch.setattr(backends, "vllm_generator", lambda cfg, model_dir, **kw: calls.append((model_dir, kw)) or "e")
    one, two = (type("Acc", (), {"num_processes": n})() for n in (1, 2))
    assert backends.rollout_generator(_cfg("vllm"), "m", None, None, one) == "e" and calls == [("m", {})]
    assert backends.rollout_generator(_cfg("vllm"), "m", None, None, two) == "e"
    assert calls[-1] == ("m", {"distributed_executor_backend": "external_launcher"})