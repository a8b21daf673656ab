"""Sampling completions from the student: the `Generator` protocol and its transformers backend.

Implements the sampling half of sgpo-method.md section 2 (`y ~ pi_old(.|prompt)`): every
completion comes back with its token ids and the log-probs the trainer needs for the PPO
ratio of section 3 and the top-k teacher distribution of section 4 (`distill.estimator=topk`).
The vLLM backend (GPU, LoRA hot-loading) lives in `sgpo_lib.model.vllm_engine` with the same API.

Which log-probs (both backends, one convention):
    `Completion.logprobs[t] = log softmax(z_t)[y_t]` where `z_t` are the model's *raw* logits
    at position t, i.e. the distribution at temperature 1 *before* temperature scaling and
    top-p truncation (vLLM's `logprobs_mode="raw_logprobs"`). This is `log pi_old(y_t | x, y_<t)`
    of the raw model, the same quantity the trainer's forward pass gives for `pi_theta`, so the
    ratio `pi_theta / pi_old` is 1 before the first update, up to float rounding (KV cache,
    batch shapes and the merged LoRA adapter of `lora_merge` give ~1e-7 in float32; engine
    checks measure it). `topk_ids`/`topk_logprobs`
    are the top-K of that same raw distribution. When `temperature != 1` or `top_p < 1` the
    tokens were drawn from the tempered/truncated distribution, so they are not samples of
    this one; that is the standard choice of verl/TRL and is the caller's to make.

Seeds: sample k of prompt i is drawn with seed `derive_seed(seeds[i], k)`. In the transformers
backend every row owns a `torch.Generator` and consumes one uniform number per generated
token, so a sample depends only on its seed and prompt, never on the batch it shares.

Token ids: the completion tokens as sampled, up to and including the EOS token or the token
that completed a stop string; `text` is decoded without special tokens and cut before the
first stop string (vLLM's default `include_stop_str_in_output=False`).
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import torch

from ..core.seeding import derive_seed
from .lora_merge import merged_lora

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length", "eos"]


@dataclass(frozen=True)
class SamplingSpec:
    """How to sample: `temperature == 0` is greedy; `topk_logprobs == 0` returns no top-k."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    n: int = 1
    topk_logprobs: int = 0

    @classmethod
    def from_rollout(cls, rollout_cfg, topk_logprobs: int = 0) -> "SamplingSpec":
        """The training rollouts' sampling, from a `RolloutConfig` (read duck-typed)."""
        r = rollout_cfg
        return cls(temperature=r.temperature, top_p=r.top_p, max_new_tokens=r.max_new_tokens, topk_logprobs=topk_logprobs)

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(self.stop))
        checks = {
            "temperature must be >= 0": self.temperature >= 0,
            "top_p must be in (0, 1]": 0 < self.top_p <= 1,
            "max_new_tokens must be >= 1": self.max_new_tokens >= 1,
            "n must be >= 1": self.n >= 1,
            "topk_logprobs must be >= 0": self.topk_logprobs >= 0,
            "stop strings must be non-empty": all(isinstance(s, str) and s for s in self.stop),
        }
        bad = [msg for msg, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"SamplingSpec: {'; '.join(bad)} (got {self})")


@dataclass
class Completion:
    """One sampled completion; see the module docstring for what `logprobs` means.

    Shapes: `token_ids`, `logprobs`: T; `topk_ids`, `topk_logprobs`: T x K (None when K = 0).
    """

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: FinishReason
    topk_ids: list[list[int]] | None = None
    topk_logprobs: list[list[float]] | None = None


@runtime_checkable
class Generator(Protocol):
    """A sampler of completions for rendered prompt strings."""

    def generate(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
                 counts: list[int] | None = None) -> list[list[Completion]]:
        """`spec.n` completions per prompt (`counts[i]` for prompt i when given); sample k of
        prompt i uses `derive_seed(seeds[i], k)`."""
        ...

    def update_weights(self, model_or_adapter_dir) -> None:
        """Make the next `generate` use the weights after an optimizer step."""
        ...

    def close(self) -> None:
        """Release the engine / model references."""
        ...


def sample_seeds(seeds: list[int], n: int | list[int]) -> list[list[int]]:
    """The per-sample seeds `[[derive_seed(s, k) for k in range(n_i)] for s, n_i in zip(seeds, n)]`
    (`n`: one count for every prompt, or one per prompt)."""
    counts = [n] * len(seeds) if isinstance(n, int) else n
    return [[derive_seed(int(s), k) for k in range(c)] for s, c in zip(seeds, counts)]


def check_generate_args(prompts: list[str], spec: SamplingSpec, seeds: list[int], counts: list[int] | None = None) -> None:
    """Raise a clear error when `prompts`, `seeds` and `counts` do not pair up."""
    if len(prompts) != len(seeds):
        raise ValueError(f"generate: {len(prompts)} prompts but {len(seeds)} seeds (one seed per prompt)")
    if not isinstance(spec, SamplingSpec):
        raise TypeError(f"generate: spec must be a SamplingSpec, got {type(spec).__name__}")
    if counts is not None and (len(counts) != len(prompts) or any(c < 0 for c in counts)):
        raise ValueError(f"generate: counts must be one sample count >= 0 per prompt, got {counts} for {len(prompts)} prompts")


def generate_counts(generator: Generator, prompts: list[str], spec: SamplingSpec, seeds: list[int],
                    counts: list[int]) -> list[list[Completion]]:
    """`counts[i]` completions of prompt i in one `generate` call, so that one batch (one engine
    call) holds them all; `counts` goes to the generator only when the counts differ (else `spec.n`)."""
    if not prompts:
        return []
    if len(set(counts)) == 1:
        return generator.generate(prompts, dataclasses.replace(spec, n=counts[0]), seeds)
    return generator.generate(prompts, spec, seeds, counts)


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` cut before the earliest stop string, and whether one was found.

    >>> cut_at_stop("x = 4\\n\\nNext", ("\\n\\n",))
    ('x = 4', True)
    """
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def sample_next(logits_B_V: "torch.Tensor", generators: list, spec: SamplingSpec):
    """One sampling step for B rows, each with its own `torch.Generator`.

    Returns `(next_B, logprobs_B_V)` where `logprobs_B_V` is the raw log-softmax (temperature 1,
    no top-p) and `next_B` is argmax when `spec.temperature == 0`, else drawn by inverse CDF
    from the tempered, top-p-truncated distribution with one uniform per row from that
    row's CPU generator (so a row's draw does not depend on the other rows or the device).

    Shapes: logits_B_V (B, V) -> next_B (B,), logprobs_B_V (B, V).
    """
    logits_B_V = logits_B_V.float()
    logprobs_B_V = torch.log_softmax(logits_B_V, dim=-1)
    if spec.temperature == 0:
        return logits_B_V.argmax(dim=-1), logprobs_B_V
    probs_B_V = torch.softmax(logits_B_V / spec.temperature, dim=-1)
    u_B = torch.tensor([torch.rand(1, generator=g).item() for g in generators], device=logits_B_V.device)
    if spec.top_p >= 1.0:  # no truncation: inverse CDF in vocabulary order, no sort needed
        cdf_B_V = probs_B_V.cumsum(dim=-1)
        pick_B = torch.searchsorted(cdf_B_V, (u_B * cdf_B_V[:, -1]).unsqueeze(-1)).squeeze(-1)
        return pick_B.clamp(max=cdf_B_V.shape[-1] - 1), logprobs_B_V
    sorted_B_V, order_B_V = probs_B_V.sort(dim=-1, descending=True, stable=True)
    mass_before_B_V = sorted_B_V.cumsum(dim=-1) - sorted_B_V
    sorted_B_V = sorted_B_V * (mass_before_B_V < spec.top_p)  # top-p: the first token always stays
    cdf_B_V = sorted_B_V.cumsum(dim=-1)
    pick_B = torch.searchsorted(cdf_B_V, (u_B * cdf_B_V[:, -1]).unsqueeze(-1)).squeeze(-1)
    pick_B = pick_B.clamp(max=cdf_B_V.shape[-1] - 1)
    return order_B_V.gather(-1, pick_B.unsqueeze(-1)).squeeze(-1), logprobs_B_V


def eos_token_ids(model, tokenizer) -> set[int]:
    """The tokenizer's EOS plus the model's generation-config EOS id(s)."""
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos) if isinstance(gen_eos, (list, tuple)) else {gen_eos}
    return {int(i) for i in ids if i is not None}


class _Row:
    """Book-keeping for one sequence being sampled."""

    def __init__(self, topk: int):
        self.token_ids: list[int] = []
        self.logprobs: list[float] = []
        self.topk_ids: list[list[int]] | None = [] if topk else None
        self.topk_logprobs: list[list[float]] | None = [] if topk else None
        self.finish_reason: FinishReason | None = None


def _compact(cache, keep: list[int], *tensors_B):
    """Drop the finished rows from the KV cache (in place) and from each batch-first tensor.
    A row's numbers do not depend on the rows beside it, so samples stay the same."""
    index_B = torch.tensor(keep, device=tensors_B[0].device)
    cache.batch_select_indices(index_B)
    return tuple(t.index_select(0, index_B) for t in tensors_B)


class TransformersGenerator:
    """Batched sampling with a live `transformers` (or PEFT) model, KV cache and left padding.

    The model is used in place: a PEFT model being trained is sampled with its current
    weights. `batch_size` is the number of sequences per forward pass; `merge_lora` samples
    with the LoRA adapter merged into a copy of the weights for the call (`lora_merge`).
    """

    def __init__(self, model, tokenizer, device=None, batch_size: int = 16, merge_lora: bool = True):
        if batch_size < 1:
            raise ValueError(f"TransformersGenerator: batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size, self.merge_lora = model, tokenizer, batch_size, merge_lora
        self.device = device if device is not None else next(model.parameters()).device
        self.eos_ids = eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(self.eos_ids))

    def generate(self, prompts: list[str], spec: SamplingSpec, seeds: list[int],
                 counts: list[int] | None = None) -> list[list[Completion]]:
        """`spec.n` completions per prompt, or `counts[i]` for prompt i (see the module docstring
        for seeds and log-probs)."""

        check_generate_args(prompts, spec, seeds, counts)
        per_prompt_seeds = sample_seeds(seeds, spec.n if counts is None else counts)
        prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        rows = [(i, s) for i, row_seeds in enumerate(per_prompt_seeds) for s in row_seeds]
        rows.sort(key=lambda r: -len(prompt_ids[r[0]]))  # less padding; results do not depend on it
        logger.debug("transformers backend: %d prompts, %d samples, batch size %d", len(prompts), len(rows),
                     self.batch_size)
        done: dict[tuple[int, int], Completion] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), merged_lora(self.model) if self.merge_lora else nullcontext():
                for start in range(0, len(rows), self.batch_size):
                    chunk = rows[start : start + self.batch_size]
                    outs = self._generate_batch([prompt_ids[i] for i, _ in chunk], [s for _, s in chunk], spec)
                    done.update(zip(chunk, outs))
        finally:
            self.model.train(was_training)
        return [[done[(i, s)] for s in row_seeds] for i, row_seeds in enumerate(per_prompt_seeds)]

    def _generate_batch(self, prompt_ids: list[list[int]], seeds: list[int], spec: SamplingSpec) -> list[Completion]:
        """Sample one completion per prompt in one left-padded batch with a KV cache; rows that
        finished leave the batch (and the cache) once they are a quarter of it (`_compact`). The cache
        module (transformers) is imported here: the readers of saved rollouts do not load it."""
        from .kv_cache import growing_cache

        cache, logits_B_V, mask_B_T, positions_B_T = self._prefill(prompt_ids)
        cache = growing_cache(cache, spec.max_new_tokens)
        generators = [torch.Generator().manual_seed(s) for s in seeds]  # CPU: same draws on any device
        rows = [_Row(spec.topk_logprobs) for _ in prompt_ids]
        live = list(rows)  # the rows still in the batch, in batch order
        for _ in range(spec.max_new_tokens):
            next_B, logprobs_B_V = sample_next(logits_B_V, generators, spec)
            self._record(live, next_B, logprobs_B_V, spec)
            if all(r.finish_reason for r in live):
                break
            mask_B_T = torch.cat([mask_B_T, mask_B_T.new_ones(len(live), 1)], dim=-1)
            positions_B_T = positions_B_T[:, -1:] + 1  # (B, 1)
            keep = [b for b, r in enumerate(live) if not r.finish_reason]
            if len(live) - len(keep) >= max(1, len(live) // 4):
                live, generators = [live[b] for b in keep], [generators[b] for b in keep]
                next_B, mask_B_T, positions_B_T = _compact(cache, keep, next_B, mask_B_T, positions_B_T)
            out = self.model(input_ids=next_B.unsqueeze(-1), attention_mask=mask_B_T, position_ids=positions_B_T,
                             past_key_values=cache, use_cache=True)
            cache, logits_B_V = out.past_key_values, out.logits[:, -1]
        return [self._finish(r, spec) for r in rows]

    def _prefill(self, prompt_ids: list[list[int]]):
        """One forward over each distinct prompt of the batch (its `n` samples share it), then the
        KV cache, last logits, mask and positions copied out to one row per sample.

        Returns `(cache, logits_B_V, mask_B_T, positions_B_T)`; U distinct prompts, left-padded to
        the batch's longest, so every row has the layout it would have had if prefilled alone."""
        distinct: dict[tuple[int, ...], int] = {}
        row_to_prompt = [distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids]
        width = max(len(p) for p in distinct)
        input_U_T = torch.tensor([[self.pad_id] * (width - len(p)) + list(p) for p in distinct], device=self.device)
        mask_U_T = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in distinct], device=self.device)
        positions_U_T = (mask_U_T.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_U_T, attention_mask=mask_U_T, position_ids=positions_U_T,
                         use_cache=True, logits_to_keep=1)
        if len(distinct) == len(prompt_ids):  # no prompt shared: the rows are the distinct prompts already
            return out.past_key_values, out.logits[:, -1], mask_U_T, positions_U_T
        index_B = torch.tensor(row_to_prompt, device=self.device)
        out.past_key_values.batch_select_indices(index_B)
        return (out.past_key_values, out.logits[:, -1].index_select(0, index_B), mask_U_T.index_select(0, index_B),
                positions_U_T.index_select(0, index_B))

    def _record(self, rows: list[_Row], next_B, logprobs_B_V, spec: SamplingSpec) -> None:
        """Append each unfinished row's token, log-prob, top-k; mark rows that just finished."""
        chosen_B = logprobs_B_V.gather(-1, next_B.unsqueeze(-1)).squeeze(-1).tolist()
        if spec.topk_logprobs:
            top_B_K = logprobs_B_V.topk(min(spec.topk_logprobs, logprobs_B_V.shape[-1]), dim=-1)
            top_vals, top_ids = top_B_K.values.tolist(), top_B_K.indices.tolist()
        for b, (row, token) in enumerate(zip(rows, next_B.tolist())):
            if row.finish_reason:
                continue
            row.token_ids.append(token)
            row.logprobs.append(chosen_B[b])
            if spec.topk_logprobs:
                row.topk_ids.append(top_ids[b])
                row.topk_logprobs.append(top_vals[b])
            row.finish_reason = self._finish_reason(row, token, spec)

    def _finish_reason(self, row: _Row, token: int, spec: SamplingSpec) -> FinishReason | None:
        if token in self.eos_ids:
            return "eos"
        if spec.stop and cut_at_stop(self._decode(row.token_ids), spec.stop)[1]:
            return "stop"
        return "length" if len(row.token_ids) >= spec.max_new_tokens else None

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _finish(self, row: _Row, spec: SamplingSpec) -> Completion:
        text, _ = cut_at_stop(self._decode(row.token_ids), spec.stop)
        return Completion(row.token_ids, row.logprobs, text, row.finish_reason, row.topk_ids, row.topk_logprobs)

    def update_weights(self, model_or_adapter_dir=None) -> None:
        """Use new weights: a module replaces the model; an adapter folder is loaded into the
        live PEFT model (`set_peft_model_state_dict`); None does nothing, since the live model
        already carries the optimizer's update."""
        if model_or_adapter_dir is None:
            return
        if isinstance(model_or_adapter_dir, (str, Path)):
            from peft import load_peft_weights, set_peft_model_state_dict

            set_peft_model_state_dict(self.model, load_peft_weights(str(model_or_adapter_dir)))
            return
        self.model = model_or_adapter_dir
        self.eos_ids = eos_token_ids(self.model, self.tokenizer)

    def close(self) -> None:
        """Drop the model reference (the caller owns the model itself)."""
        self.model = None
