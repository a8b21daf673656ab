"""A memory plan of one GPU rank, from the model's `config.json` alone, before any weight is loaded.

The parameter count is exact: the model is built on the meta device (`accelerate.init_empty_weights`,
no memory), so biases, tied embeddings and head layouts are the architecture's own. The rest are
estimates, each a line of the table:

- weights: parameters x bytes of `model.dtype`;
- LoRA: r x (in + out) per adapted linear (`model.lora.target_modules`) in float32, with its
  gradient and AdamW's two moments: 16 bytes a parameter (full fine-tuning: 4 bytes of gradient in
  `model.dtype` and two float32 moments for every weight: dtype bytes + 8 a parameter);
- activations of the largest micro-batch (`tokens`: `train.micro_batch_tokens`, or
  `train.micro_batch_size` x (`rollout.max_model_len`)), stored for the backward in `model.dtype`:
  per token and layer the two norm inputs and outputs (4H), q, k, v (H + 2 kv), the attention
  output (H), and the MLP's gate, up, act(gate) and product (4I); with `model.gradient_checkpointing`
  only each layer's input (H a layer) plus one layer recomputed;
- the logits chunk: `distill.chunk_size` tokens (else `policy.default_chunk_size` on CUDA) x vocabulary
  x float32, three times (logits, log-softmax, its gradient): only completion positions are
  projected, a chunk at a time under checkpointing (`policy.token_logprobs`, `distill.chunked_distill`);
- the vLLM share: `rollout.gpu_memory_utilization` x the device (colocated engine; 0 for transformers);
- a fixed 2 GiB for the CUDA context, the allocator's fragmentation and the kernels' workspaces.

`check` raises `MemoryPlanError` naming the keys to change when the total exceeds the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .policy import default_chunk_size

GIB = 1024 ** 3
OVERHEAD_BYTES = 2 * GIB
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class MemoryPlanError(RuntimeError):
    """The planned memory exceeds the device: the message names the keys to change."""


@dataclass(frozen=True)
class Shapes:
    """What the plan reads from `config.json`."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv_dim: int

    @classmethod
    def of(cls, config: dict) -> "Shapes":
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        return cls(config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"],
                   config["vocab_size"], config.get("num_key_value_heads", heads) * head_dim)

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each adapted linear of one decoder layer."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def read_config(model_dir: str | Path) -> dict:
    """`config.json` of a local model folder, or of a hub name (the config file alone)."""
    path = Path(model_dir) / "config.json"
    if path.exists():
        return json.loads(path.read_text())
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(model_dir)).to_dict()


def count_parameters(config: dict) -> int:
    """Exact parameter count of the architecture, built on the meta device (no weights, no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_config = AutoConfig.for_model(**config)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(hf_config)
    model.tie_weights()  # tied embeddings count once (transformers ties them at load time only)
    return sum(p.numel() for p in model.parameters())


def plan_for_run(cfg, model_dir: str | Path, device_bytes: int) -> tuple[dict[str, int], int]:
    """`plan` of a run's config for its model folder, and the activations with the other
    `model.gradient_checkpointing` setting (for the table)."""
    config, m, t = read_config(model_dir), cfg.model, cfg.train
    tokens = t.micro_batch_tokens or t.micro_batch_size * cfg.rollout.max_model_len
    lines = plan(config, dtype=m.dtype, lora_r=m.lora.r if m.lora.enabled else None,
                 lora_targets=tuple(m.lora.target_modules), tokens=tokens, checkpointing=m.gradient_checkpointing,
                 chunk_tokens=cfg.distill.chunk_size or default_chunk_size(config["vocab_size"], "cuda"),
                 vllm_share=cfg.rollout.gpu_memory_utilization if cfg.rollout.backend == "vllm" else 0.0,
                 device_bytes=device_bytes)
    other = activation_bytes(Shapes.of(config), tokens, DTYPE_BYTES[m.dtype], not m.gradient_checkpointing)
    return lines, other


def lora_parameters(shapes: Shapes, r: int, targets: tuple[str, ...]) -> int:
    return shapes.layers * sum(r * (i + o) for name, (i, o) in shapes.linear_shapes().items() if name in targets)


def activation_bytes(shapes: Shapes, tokens: int, dtype_bytes: int, checkpointing: bool) -> int:
    """Stored activations of one micro-batch of `tokens` tokens (module docstring)."""
    per_layer = 6 * shapes.hidden + 2 * shapes.kv_dim + 4 * shapes.intermediate  # elements a token
    if checkpointing:
        return tokens * dtype_bytes * (shapes.layers * shapes.hidden + per_layer)
    return tokens * dtype_bytes * shapes.layers * per_layer


def plan(config: dict, *, dtype: str, lora_r: int | None, lora_targets: tuple[str, ...], tokens: int,
         checkpointing: bool, chunk_tokens: int, vllm_share: float, device_bytes: int) -> dict[str, int]:
    """Bytes of each line of the plan (module docstring), with `total` and `device`."""
    shapes, b = Shapes.of(config), DTYPE_BYTES[dtype]
    n = count_parameters(config)
    state = 16 * lora_parameters(shapes, lora_r, lora_targets) if lora_r else (b + 8) * n
    lines = {"weights": n * b, "lora + optimizer" if lora_r else "grads + optimizer": state,
             "activations": activation_bytes(shapes, tokens, b, checkpointing),
             "logits chunk": 3 * 4 * chunk_tokens * shapes.vocab, "vllm share": int(vllm_share * device_bytes),
             "overhead": OVERHEAD_BYTES}
    return {**lines, "total": sum(lines.values()), "device": device_bytes}


def table(lines: dict[str, int], activations_other: int | None = None) -> str:
    """The plan as a small text table in GiB (with the activations of the other checkpointing setting)."""
    rows = [f"{name:<20}{value / GIB:>9.2f} GiB" for name, value in lines.items()]
    if activations_other is not None:
        rows.insert(3, f"{'  (other ckpt)':<20}{activations_other / GIB:>9.2f} GiB")
    return "\n".join(["memory plan (one rank)"] + rows)


def check(lines: dict[str, int]) -> None:
    """Raise `MemoryPlanError` naming the keys to change when the plan does not fit the device."""
    if lines["total"] <= lines["device"]:
        return
    raise MemoryPlanError(
        f"the memory plan needs {lines['total'] / GIB:.1f} GiB on a {lines['device'] / GIB:.1f} GiB device "
        f"(activations {lines['activations'] / GIB:.1f}, logits chunk {lines['logits chunk'] / GIB:.1f}, vLLM "
        f"{lines['vllm share'] / GIB:.1f} GiB): turn on model.gradient_checkpointing, lower train.micro_batch_tokens "
        f"(or train.micro_batch_size), distill.chunk_size or rollout.gpu_memory_utilization, or use a larger device")


def check_run(cfg, model_dir: str | Path, device, echo: bool) -> dict[str, int] | None:
    """On CUDA: the run's plan, printed as a table (when `echo`), then `check`ed; None elsewhere."""
    import torch

    if torch.device(device).type != "cuda":
        return None
    lines, other = plan_for_run(cfg, model_dir, torch.cuda.get_device_properties(device).total_memory)
    if echo:
        print(table(lines, other), flush=True)
    check(lines)
    return lines


def plan_frame(cfg, model_dir: str | Path, device_bytes: int | None = None):
    """The run's plan as a table in GiB (notebook 03), on this CUDA device or, without one, a nominal
    80 GiB GPU; the last column says whether it fits."""
    import pandas as pd
    import torch

    if device_bytes is None:
        device_bytes = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 80 * GIB
    lines, other = plan_for_run(cfg, model_dir, device_bytes)
    rows = {**lines, f"activations, checkpointing {'off' if cfg.model.gradient_checkpointing else 'on'}": other}
    return pd.DataFrame({"GiB": {k: round(v / GIB, 2) for k, v in rows.items()},
                         "fits": {"total": lines["total"] <= lines["device"]}}).fillna("")
