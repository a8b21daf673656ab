"""Sampling a LoRA policy with the adapter merged into its weights, undone exactly afterwards.

A LoRA `Linear` computes `W x + s B (A x)`: three matmuls and peft's Python per layer and step.
Sampling spends a quarter of its time there on the toy students. `merged_lora(model)` gives
each plain LoRA `Linear` a merged copy `W + s B A` of its weight (peft's own `merge`, on a
clone) for the duration of a block, then puts the original weight tensors back: nothing is
subtracted, so the trained model's weights are bit-for-bit what they were.

Float32 weights only: the merged forward rounds differently from the unmerged one by ~1e-7 in
a log-prob there, the same kind of gap as between vLLM and the trainer. In bfloat16/float16 the
sum `W + s B A` would round much of a small adapter update away (8 or 11 mantissa bits), so those
layers keep the unmerged forward. The cost is one copy of the adapted weights while the block
runs (`rollout.merge_lora: false` keeps the unmerged forward everywhere).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


def _mergeable(module) -> bool:
    """A peft LoRA `Linear` over a plain float32 `torch.nn.Linear`, active and not already merged."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    if type(module) is not LoraLinear or module.merged or module.disable_adapters:
        return False
    base = module.get_base_layer()
    return isinstance(base, torch.nn.Linear) and base.weight.dtype == torch.float32


@contextmanager
def merged_lora(model):
    """Within the block, every mergeable (float32) LoRA layer of `model` runs as one `Linear` with its
    active adapters merged into a copy of its weight (and bias); the original tensors are
    restored on exit, also after an error. A model without LoRA layers is left as it is."""
    saved = []  # (lora layer, base layer, original weight data, original bias data)
    try:
        with torch.no_grad():
            for module in model.modules():
                if not _mergeable(module):
                    continue
                base = module.get_base_layer()
                bias = base.bias.data if base.bias is not None else None
                saved.append((module, base, base.weight.data, bias))
                base.weight.data = base.weight.data.clone()
                if bias is not None:
                    base.bias.data = bias.clone()
                module.merge()
        yield model
    finally:
        for module, base, weight, bias in saved:
            base.weight.data = weight
            if bias is not None:
                base.bias.data = bias
            module.merged_adapters.clear()
