"""The policy: loading a student (toy or Hugging Face), LoRA through `peft`, and the forward
passes the trainer needs (per-token log-probs of completions, final hidden states).

Sequences are packed right-padded as `prompt ++ completion`, so position ids are natural.
Position `t` of `targets_B_T` holds the token predicted from positions `<= t`, i.e. the
input shifted left; `completion_mask_B_T` is 1 where that target is a completion token.
Hidden states come from the decoder alone (`get_decoder()`), so the `[B, T, V]` logits of
a batch are only formed where a loss needs them, chunk by chunk (see `losses`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)

# Default chunk: about this many logits (N_c * V) per chunk. On CPU 2**23 (32 MiB in fp32) keeps
# the time within 1.2x of the unchunked loss; on a GPU small chunks are launch-bound, and 2**25
# (128 MiB) gives 1.08x the time at 1/26 of the memory for 16k tokens x 152k vocab on an H200.
CHUNK_LOGITS_BUDGET = {"cpu": 2**23, "cuda": 2**25}


def default_chunk_size(vocab_size: int, device: torch.device | str = "cpu") -> int:
    """Tokens per chunk so that a chunk holds about `CHUNK_LOGITS_BUDGET[device type]` logits."""
    budget = CHUNK_LOGITS_BUDGET["cuda" if torch.device(device).type == "cuda" else "cpu"]
    return max(1, budget // vocab_size)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class SeqBatch:
    """Right-padded `prompt ++ completion` sequences. Shapes: all `(B, T)`."""

    input_ids_B_T: torch.Tensor
    attention_mask_B_T: torch.Tensor
    targets_B_T: torch.Tensor
    completion_mask_B_T: torch.Tensor

    def to(self, device) -> "SeqBatch":
        return SeqBatch(*(t.to(device) for t in (self.input_ids_B_T, self.attention_mask_B_T,
                                                  self.targets_B_T, self.completion_mask_B_T)))


def pack(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> SeqBatch:
    """Pack token lists into a right-padded `SeqBatch` (targets shifted left by one).

    Example:
        >>> b = pack([[1, 2]], [[3, 4]], pad_id=0)
        >>> b.targets_B_T.tolist(), b.completion_mask_B_T.int().tolist()
        ([[2, 3, 4, 0]], [[0, 1, 1, 0]])
    """
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
    T = max(lengths)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), T), dtype=torch.long)
    comp = torch.zeros((len(prompts), T), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, : lengths[i]] = torch.tensor(p + c, dtype=torch.long)
        attn[i, : lengths[i]] = 1
        comp[i, len(p) - 1 : lengths[i] - 1] = 1.0  # position t predicts token t+1
    targets = torch.full_like(ids, pad_id)
    targets[:, :-1] = ids[:, 1:]
    return SeqBatch(ids, attn, targets, comp)


def causal_lm(model):
    """The underlying `*ForCausalLM` of a plain or peft-wrapped model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def hidden_states(model, batch: SeqBatch) -> torch.Tensor:
    """Final hidden states of the decoder (before the lm_head). Shape `(B, T, H)`."""
    decoder = causal_lm(model).get_decoder()
    return decoder(input_ids=batch.input_ids_B_T, attention_mask=batch.attention_mask_B_T).last_hidden_state


def lm_head_weight(model) -> torch.Tensor:
    """The output projection weight `(V, H)` (shared by teacher and student)."""
    head = causal_lm(model).get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise NotImplementedError("lm_head with a bias is not supported by the chunked losses")
    return head.weight


def _chunk_logprobs(hidden_N_H: torch.Tensor, weight_V_H: torch.Tensor, targets_N: torch.Tensor) -> torch.Tensor:
    logits_N_V = (hidden_N_H @ weight_V_H.T).float()
    return logits_N_V.gather(-1, targets_N[:, None]).squeeze(-1) - torch.logsumexp(logits_N_V, dim=-1)


def _chunk_logprobs_entropy(hidden_N_H, weight_V_H, targets_N) -> tuple[torch.Tensor, torch.Tensor]:
    """`_chunk_logprobs` plus the detached entropy `-sum_v p(v) log p(v)` of each row, from the same logits."""
    logits_N_V = (hidden_N_H @ weight_V_H.T).float()
    lse_N = torch.logsumexp(logits_N_V, dim=-1)
    with torch.no_grad():
        lp_N_V = logits_N_V - lse_N[:, None]
        entropy_N = -(lp_N_V.exp() * lp_N_V).sum(-1)
    return logits_N_V.gather(-1, targets_N[:, None]).squeeze(-1) - lse_N, entropy_N


def token_logprobs(model, batch: SeqBatch, chunk_size: int | None = None, with_entropy: bool = False):
    """log pi(target_t | <= t) at completion positions (0 elsewhere). Shape `(B, T)`.

    Only completion positions are projected to the vocabulary, `chunk_size` tokens at a time
    under activation checkpointing, so at most one chunk's `[tokens, V]` logits exist at once
    (forward and backward). `chunk_size=None` picks about 8M logits a chunk. `with_entropy`
    also returns the policy's per-token entropy `(B, T)` (no grad) from the same logits.
    """
    hidden_B_T_H = hidden_states(model, batch)
    mask_B_T = batch.completion_mask_B_T.bool()
    hidden_N_H, targets_N = hidden_B_T_H[mask_B_T], batch.targets_B_T[mask_B_T]
    weight_V_H = lm_head_weight(model)
    chunk = chunk_size or default_chunk_size(weight_V_H.shape[0], weight_V_H.device)
    fn = _chunk_logprobs_entropy if with_entropy else _chunk_logprobs
    parts = [checkpoint(fn, hidden_N_H[i : i + chunk], weight_V_H, targets_N[i : i + chunk], use_reentrant=False)
             for i in range(0, hidden_N_H.shape[0], chunk)]
    columns = (list(zip(*parts)) or [(), ()]) if with_entropy else [parts]
    outs = []
    for column in columns:
        out_B_T = torch.zeros(mask_B_T.shape, dtype=torch.float32, device=hidden_B_T_H.device)
        if column:
            out_B_T = out_B_T.index_put((mask_B_T,), torch.cat(column))
        outs.append(out_B_T)
    return tuple(outs) if with_entropy else outs[0]


def reference_logprobs_fn(model):
    """`batch -> token log-probs` of the reference policy: the model with its LoRA adapter disabled, no grad."""

    def reference(batch):
        with torch.no_grad(), model.disable_adapter():
            return token_logprobs(model, batch)
    return reference


def check_attn_implementation(name: str | None) -> None:
    """`flash_attention_2` needs the flash-attn package (CUDA only); fail naming the key, not deep in transformers."""
    import importlib.util

    if name == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ValueError("model.attn_implementation: flash_attention_2 needs the flash-attn package "
                         "(pip install flash-attn on a CUDA machine); use sdpa where it is not installed")


def load_policy(model_dir: str | Path, lora, dtype: str = "float32", device: str | torch.device = "cpu",
                attn_implementation: str | None = None):
    """Load a causal LM and its tokenizer; wrap in LoRA (`lora.enabled`) or train all weights.

    `lora` is a `config.LoraConfig`; `attn_implementation` None is transformers' default.
    Returns `(model, tokenizer)` with the model in train mode.
    """
    check_attn_implementation(attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    attn = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[dtype], **attn).to(device)
    if lora.enabled:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        peft_cfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                  target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
        model = get_peft_model(model, peft_cfg)
    model.train()
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.debug("policy %s: %d / %d trainable parameters", model_dir, n_train, n_all)
    return model, tokenizer


def enable_gradient_checkpointing(model) -> None:
    """`model.gradient_checkpointing`: each decoder layer is recomputed in the backward instead of
    keeping its activations (non-reentrant, so LoRA's gradients flow without input grads)."""
    causal_lm(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The trainable parameters (LoRA adapter or all weights), detached copies on CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise KeyError(f"checkpoint has parameters the model lacks: {missing[:5]}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)
