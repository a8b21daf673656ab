"""A KV cache for the transformers sampler that does not copy itself at every step.

transformers' `DynamicLayer.update` concatenates the new key/value step onto the cache, a copy
of the whole cache per step and layer: a quarter of the toy's sampling time, and more for rows
with long prompts (SGPO's guided rollouts). `GrowingLayer` allocates each layer's buffer once,
for the prompt and every token the completion may add, writes each step in place and returns
views of the filled part: the same keys and values, so the same attention and the same samples.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """One layer's cache in buffers of shape (B, H, capacity, D); `keys`/`values` are views of
    their first `length` positions."""

    def __init__(self, keys_B_H_T_D: torch.Tensor, values_B_H_T_D: torch.Tensor, capacity: int):
        super().__init__()
        B, H, T, D = keys_B_H_T_D.shape
        if capacity < T:
            raise ValueError(f"GrowingLayer: capacity {capacity} < the {T} positions already cached")
        self.dtype, self.device, self.is_initialized = keys_B_H_T_D.dtype, keys_B_H_T_D.device, True
        self.k_buf = keys_B_H_T_D.new_empty(B, H, capacity, D)
        self.v_buf = values_B_H_T_D.new_empty(B, H, capacity, D)
        self.k_buf[:, :, :T], self.v_buf[:, :, :T] = keys_B_H_T_D, values_B_H_T_D
        self._set_length(T)

    def _set_length(self, length: int) -> None:
        self.length = length
        self.keys, self.values = self.k_buf[:, :, :length], self.v_buf[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        start, end = self.length, self.length + key_states.shape[-2]
        if end > self.k_buf.shape[-2]:
            raise ValueError(f"GrowingLayer: {end} positions exceed the capacity {self.k_buf.shape[-2]}")
        self.k_buf[:, :, start:end], self.v_buf[:, :, start:end] = key_states, value_states
        self._set_length(end)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.k_buf.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` (copying only the filled positions)."""
        self.k_buf, self.v_buf = (_select_rows(buf, indices, self.length) for buf in (self.k_buf, self.v_buf))
        self._set_length(self.length)


def _select_rows(buf_B_H_C_D: torch.Tensor, index_N: torch.Tensor, length: int) -> torch.Tensor:
    """A new buffer of the same capacity holding the rows `index_N` of the first `length` positions."""
    out_N_H_C_D = buf_B_H_C_D.new_empty(len(index_N), *buf_B_H_C_D.shape[1:])
    out_N_H_C_D[:, :, :length] = buf_B_H_C_D[:, :, :length].index_select(0, index_N)
    return out_N_H_C_D


def growing_cache(cache: DynamicCache, new_tokens: int) -> DynamicCache:
    """The prefilled `cache` with each layer moved into a `GrowingLayer` with room for
    `new_tokens` more positions (in place); a cache of another kind is returned as it is."""
    if not isinstance(cache, DynamicCache) or not all(type(layer) is DynamicLayer for layer in cache.layers):
        return cache
    cache.layers = [GrowingLayer(layer.keys, layer.values, layer.get_seq_length() + new_tokens) for layer in cache.layers]
    return cache
