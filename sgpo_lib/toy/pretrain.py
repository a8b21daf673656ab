"""Brief CPU pretraining of a toy base student on the guided/unguided mixture (toy-world.md, point 4).

The mixture (`PretrainConfig`): a guided example puts a paraphrased strategy in the prompt
and shows its full step-by-step execution; an unguided example mostly shows the strong
solver's compressed response (and sometimes a step-by-step one); a drill is one background
arithmetic fact (`Compute 58-7.` -> `58-7=51`), the analog of what a real base model knows
before it meets any strategy (departure: real SGPO starts from a pretrained LLM; here that
pretraining is part of the world and must be brief, so the drills speed it up). Prompts are built with
`sgpo_lib.data.prompts` and rendered with the student's own chat template, exactly as the trainer
and the evaluator build them. Problems come from the train distribution, never from the test
or OOD splits. The loss is the token-mean cross-entropy over completion tokens (eos included).

Plain PyTorch: AdamW, linear warmup then cosine decay to `min_lr_ratio * lr`, gradient
clipping. `deepen` grows a pretrained student by layers that start as the identity (the
`base` size is `small` deepened, then trained on: `config.GROWN_FROM`). Every random draw
comes from generators seeded by `(seed, ...)`, so a given seed and thread count give
bit-identical weights on CPU.
"""

from __future__ import annotations

import logging
import math
import random
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from ..core.machine import native_bf16
from ..core.records import Problem
from ..data.prompts import guided_messages, render, unguided_messages
from .config import PretrainConfig, StudentConfig, ToyWorldConfig
from .families import drill, get_family
from .wording import make_strategy
from .world import held_out_texts, make_problem, stable_seed

logger = logging.getLogger(__name__)
IGNORE_INDEX = -100
LOG_EVERY_S = 5.0  # a progress line at least this often (seconds of work)
MAX_RESAMPLES = 1000
LENGTH_GROUP = 8


class MixtureSampler:
    """Draws tokenized pretraining examples (prompt ids, completion ids) from the mixture."""

    def __init__(self, world_cfg: ToyWorldConfig, cfg: PretrainConfig, tokenizer, seed: int, stream: str = "pretrain-mixture"):
        self.world_cfg, self.cfg, self.tok = world_cfg, cfg, tokenizer
        self.rng = random.Random(stable_seed(seed, stream))
        self.held_out = held_out_texts(world_cfg, seed)
        self.skipped_too_long = 0

    def _instance(self, family):
        for _ in range(MAX_RESAMPLES):
            inst = family.sample(self.rng, ood=False)
            if family.text(inst) not in self.held_out:
                return inst
        raise RuntimeError(f"toy family {family.name!r}: no pretraining problem outside the held-out splits")

    def text_example(self) -> tuple[list[dict], str]:
        """One (chat messages, target text) pair of the mixture."""
        rng, cfg = self.rng, self.cfg
        if rng.random() < cfg.drill_fraction:
            text, target = drill(rng)
            fact = Problem(id="drill", problem=text, answer="", source="toy/drill", split="pretrain")
            return unguided_messages(fact, self.world_cfg.instruction), target
        family = get_family(rng.choice(self.world_cfg.families))
        inst = self._instance(family)
        key = rng.choice(family.strategy_keys)
        problem = make_problem(family, inst, "pretrain", 0, key, self.world_cfg.strong_skip_rate)
        if rng.random() < cfg.guided_fraction:
            strategy = make_strategy(family.name, key, rng)
            return guided_messages(problem, strategy, self.world_cfg.instruction), family.execute(inst, key)
        messages = unguided_messages(problem, self.world_cfg.instruction)
        if rng.random() < cfg.unguided_stepwise_fraction:
            return messages, family.execute(inst, key)
        return messages, problem.strong_response

    def example(self) -> tuple[list[int], list[int]]:
        """One tokenized example no longer than `max_seq_len` (longer ones are redrawn)."""
        for _ in range(MAX_RESAMPLES):
            messages, target = self.text_example()
            prompt_ids = self.tok(render(self.tok, messages), add_special_tokens=False)["input_ids"]
            target_ids = self.tok(target, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]
            if len(prompt_ids) + len(target_ids) <= self.cfg.max_seq_len:
                return prompt_ids, target_ids
            self.skipped_too_long += 1
        raise RuntimeError(f"pretrain.max_seq_len={self.cfg.max_seq_len} is shorter than every toy example")

    def batches(self, batch_size: int, pad_id: int):
        """Endless right-padded batches; examples of similar length share a batch.

        Draws `LENGTH_GROUP` batches' worth of examples, sorts them by length and shuffles
        the resulting batches, which cuts the padding of mixing short unguided and long
        guided examples. Yields `input_ids_B_T`, `attention_mask_B_T`, `labels_B_T`
        (prompt and padding positions = -100).
        """
        while True:
            pairs = sorted((self.example() for _ in range(LENGTH_GROUP * batch_size)), key=lambda e: len(e[0]) + len(e[1]))
            chunks = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
            self.rng.shuffle(chunks)
            yield from (collate(chunk, pad_id) for chunk in chunks)


def collate(pairs: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad (prompt ids, completion ids) pairs; the loss sees completion tokens only.

    Shapes: returns `input_ids_B_T`, `attention_mask_B_T`, `labels_B_T`, all (B, T) long.
    """
    B, T = len(pairs), max(len(p) + len(t) for p, t in pairs)
    input_ids_B_T = torch.full((B, T), pad_id, dtype=torch.long)
    labels_B_T = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    mask_B_T = torch.zeros((B, T), dtype=torch.long)
    for b, (p, t) in enumerate(pairs):
        n = len(p) + len(t)
        input_ids_B_T[b, :n] = torch.tensor(p + t)
        labels_B_T[b, len(p) : n] = torch.tensor(t)
        mask_B_T[b, :n] = 1
    return input_ids_B_T, mask_B_T, labels_B_T


def build_model(student_cfg: StudentConfig, tokenizer, seed: int):
    """A freshly initialised Qwen2ForCausalLM for the toy vocabulary (float32)."""
    config = Qwen2Config(
        vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None, rope_theta=10000.0, **student_cfg.qwen2_kwargs(),
    )
    config._attn_implementation = "eager"  # at these shapes 1.2-1.5x faster on CPU than SDPA (toy/README.md)
    torch.manual_seed(stable_seed(seed, "student-init") % 2**63)
    return Qwen2ForCausalLM(config).float()


def deepen(parent, student_cfg: StudentConfig, tokenizer, seed: int):
    """A deeper copy of the pretrained `parent` that computes exactly the same function.

    Depth up-scaling: the first layers, embeddings and final norm are the parent's; each new
    layer (appended on top) copies the parent's last layer with its attention output and MLP
    down projections zeroed, so it adds nothing to the residual stream until trained.
    """
    model = build_model(student_cfg, tokenizer, seed)
    n_parent = parent.config.num_hidden_layers
    missing, unexpected = model.load_state_dict(parent.state_dict(), strict=False)
    new_layers = {f"model.layers.{i}." for i in range(n_parent, model.config.num_hidden_layers)}
    if unexpected or any(not any(k.startswith(p) for p in new_layers) for k in missing):
        raise ValueError(f"toy student {student_cfg.size}: cannot grow from a {n_parent}-layer parent "
                         f"(missing {missing}, unexpected {unexpected})")
    with torch.no_grad():
        for layer in model.model.layers[n_parent:]:
            layer.load_state_dict(model.model.layers[n_parent - 1].state_dict())
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def completion_loss(model, input_ids_B_T, mask_B_T, labels_B_T):
    """Token-mean next-token cross-entropy over the labelled (completion) positions.

    The same loss as `model(..., labels=...)`, with the lm_head applied to the labelled
    positions only (prompt positions, over half the tokens, need no logits).
    """
    hidden_B_T_H = model.model(input_ids=input_ids_B_T, attention_mask=mask_B_T).last_hidden_state
    targets_B_T = labels_B_T[:, 1:]
    keep_B_T = targets_B_T != IGNORE_INDEX
    logits_N_V = model.lm_head(hidden_B_T_H[:, :-1][keep_B_T])
    return torch.nn.functional.cross_entropy(logits_N_V.float(), targets_B_T[keep_B_T])


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr_ratio * lr` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model, tokenizer, world_cfg: ToyWorldConfig, cfg: PretrainConfig, seed: int,
             stream: str = "pretrain-mixture") -> list[float]:
    """Train `model` in place on the mixture (example stream `stream`); returns each step's loss."""
    sampler = MixtureSampler(world_cfg, cfg, tokenizer, seed, stream)
    if cfg.bf16_autocast and not native_bf16():
        logger.warning("pretrain.bf16_autocast is on but this CPU has no native bfloat16 (no AVX512-BF16/AMX): "
                       "expect about 10x slower steps than float32; set pretrain.bf16_autocast: false")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    model.train()
    losses, t0, n_tokens, logged_at = [], time.perf_counter(), 0, 0.0
    batches = sampler.batches(cfg.batch_size, tokenizer.pad_token_id)
    for step in range(cfg.steps):
        input_ids_B_T, mask_B_T, labels_B_T = next(batches)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16_autocast):
            loss = completion_loss(model, input_ids_B_T, mask_B_T, labels_B_T)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        n_tokens += int(mask_B_T.sum())
        elapsed = time.perf_counter() - t0
        if elapsed - logged_at >= LOG_EVERY_S or step + 1 == cfg.steps:
            logged_at = elapsed
            eta = elapsed / (step + 1) * (cfg.steps - step - 1)
            logger.info("pretrain step %d/%d loss %.4f (%.0f tokens/s, ETA %.0fs)", step + 1, cfg.steps, loss.item(),
                        n_tokens / elapsed, eta)
    if sampler.skipped_too_long:
        logger.warning("pretrain: %d examples longer than max_seq_len=%d were redrawn", sampler.skipped_too_long, cfg.max_seq_len)
    model.eval()
    return losses
