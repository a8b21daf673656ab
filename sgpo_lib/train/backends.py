"""The configured rollout backend on the configured device, for every stage that samples.

architecture.md, `rollout`: one generator per policy. The trainer builds its generator with
`rollout_generator` (vLLM, which `load_adapter` gives each new adapter, or the live transformers
model); notebooks 02 and 03 (`guidance_shift`) sample base students and trained policies
through `PolicySampler`, which uses the same backend and device: one vLLM engine for the base
model whose adapters are swapped in (no `transformers` copy of the model is loaded), or the
model on `device()`. The device is the trainer's: CUDA when available, else CPU.

Every stage records what it actually used (`record`: the generator's class and the device its
weights are on) in `backends.jsonl` of its folder, so a run can be checked for a stage that
fell back to another backend or to the CPU.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from ..core import fileio
from ..model.generation import TransformersGenerator
from ..model.policy import load_policy
from ..model.vllm_engine import VLLMGenerator
from . import adapters

log = logging.getLogger(__name__)


def device() -> str:
    """The device of a single-process stage: "cuda" when available (as the trainer's accelerator), else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def vllm_generator(cfg, model_dir: Path, **launch_kwargs):
    """A vLLM engine for `model_dir` set up as `cfg.rollout` says, ready for LoRA hot-loading."""
    r = cfg.rollout
    return VLLMGenerator(str(model_dir), tensor_parallel_size=r.tensor_parallel_size, enable_lora=True,
                         max_lora_rank=cfg.model.lora.r, gpu_memory_utilization=r.gpu_memory_utilization,
                         max_model_len=r.max_model_len, dtype=cfg.model.dtype, seed=cfg.seed,
                         max_logprobs=max(20, r.topk_logprobs), enforce_eager=r.enforce_eager,
                         kv_cache_gib=r.kv_cache_gib, **launch_kwargs)


def rollout_generator(cfg, model_dir: Path, model, tokenizer, acc):
    """The trainer's rollout engine: vLLM (under `accelerate launch` each rank's engine joins the
    launcher's process group, as in TRL's colocate mode, instead of starting a runtime of its own)
    or the transformers sampler over the trainer's own model."""
    r = cfg.rollout
    if r.backend == "vllm":
        launch = {"distributed_executor_backend": "external_launcher"} if acc.num_processes > 1 else {}
        return vllm_generator(cfg, model_dir, **launch)
    return TransformersGenerator(model, tokenizer, acc.device, batch_size=r.batch_size, merge_lora=r.merge_lora)


def load_adapter(generator, model, out_dir: Path, step: int, acc, keep_adapters: int) -> None:
    """Every rank's vLLM engine loads the adapter of `step` (saved once, by the main process);
    then adapters beyond `train.keep_adapters` go (`adapters.prune`)."""
    adapter_dir = adapters.adapter_dir(out_dir, step)
    if acc.is_main_process:
        model.save_pretrained(adapter_dir)
    acc.wait_for_everyone()
    generator.update_weights(adapter_dir)
    if acc.is_main_process:  # the new adapter is in place
        adapters.prune(out_dir, keep_adapters)


def generator_device(generator) -> str:
    """Where a generator's weights are: the vLLM platform's device type, or the model's device."""
    if hasattr(generator, "llm"):
        from vllm.platforms import current_platform

        return str(current_platform.device_type)
    return next(generator.model.parameters()).device.type


def record(folder: Path, stage: str, generator) -> dict:
    """Append {stage, generator class, device} to `folder/backends.jsonl`; returns the row."""
    row = {"stage": stage, "generator": type(generator).__name__, "device": generator_device(generator)}
    fileio.append_jsonl(Path(folder) / "backends.jsonl", row)
    log.info("%s samples with %s on %s", stage, row["generator"], row["device"])
    return row


class PolicySampler:
    """Generators for a base model and for policies trained from it (LoRA adapter or whole-model
    folders), with the configured backend on `device()`. Use as a context manager."""

    def __init__(self, cfg, model_dir: Path):
        self.cfg, self.model_dir = cfg, Path(model_dir)
        self._engine = None

    def policy(self, final_dir: Path | None = None):
        """(generator, tokenizer) of the base model (None) or of a trained run's `final` folder."""
        if self.cfg.rollout.backend == "vllm":
            return self._vllm_policy(final_dir)
        return self._transformers_policy(final_dir)

    def _vllm_policy(self, final_dir: Path | None):
        if final_dir is not None and not (Path(final_dir) / "adapter_config.json").exists():
            raise ValueError(f"{final_dir}: the vllm backend serves LoRA adapters only (no adapter_config.json)")
        if self._engine is None:
            self._engine = vllm_generator(self.cfg, self.model_dir)
        self._engine.update_weights(final_dir)
        return self._engine, self._engine.tokenizer

    def _transformers_policy(self, final_dir: Path | None):
        model, tok = load_student(self.cfg, self.model_dir, final_dir)
        return TransformersGenerator(model, tok, batch_size=self.cfg.rollout.batch_size,
                                     merge_lora=self.cfg.rollout.merge_lora), tok

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> "PolicySampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_student(cfg, model_dir: Path, final_dir: Path | None = None):
    """(model in eval mode, tokenizer) of the base student (`final_dir` None) or of a trained run's
    `final` folder (a LoRA adapter, or the whole model after full fine-tuning), on `device()`."""
    adapter_dir = final_dir
    if adapter_dir is not None and not (Path(adapter_dir) / "adapter_config.json").exists():
        model_dir, adapter_dir = Path(adapter_dir), None  # full fine-tuning: the whole model was saved
    model, tok = load_policy(model_dir, dataclasses.replace(cfg.model.lora, enabled=False), cfg.model.dtype,
                             device=device(), attn_implementation=cfg.model.attn_implementation)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).to(device())
    return model.eval(), tok
