"""A finite range, with its reason, for every numeric config key; sizes against the model and the machine.

The dataclasses of `config` check what a value means (a fraction, a positive rate, a pair in
order); this module bounds how large it may be, so that `train.steps: 1e12`, `rollout.max_new_tokens:
1e9` (16 TB of KV cache) or `grading.workers: 100000` fail when the params are loaded, naming the
key, the range and why, instead of hanging or dying hours later. `.inf` and `.nan` are refused
for every key. The bounds are generous (a 70B model on many GPUs fits in them): they exist to
catch typos and overflows, not to tune. `check(cfg)` runs from `RunConfig.__post_init__`, so every
run an experiment will make (`config.check_variants`) is bounded too; `check_machine(cfg)` runs
where work starts (`config.check_variants`, `stages.train_variant`), so that reading the config of
a run made on a larger machine does not fail. `tests/test_limits.py` checks that every numeric
field of the schema has a range.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterator

from ..core.checks import check as check_value

SEED = (0, 2**32 - 1, "numpy and torch take 32-bit seeds")
PROB = (0.0, 1.0, "a probability or fraction")
STEPS = (1, 1_000_000, "optimizer steps; a million already takes weeks on a GPU")
WARMUP = (0, 1_000_000, "learning-rate warm-up steps, within the steps' range")
TOKENS = (1, 131_072, "tokens of one completion; the longest-context models stop near 128K")
LR = (1e-9, 1.0, "a learning rate above 1 diverges at once")
COEF = (0.0, 100.0, "a loss weight relative to the others (1 is the paper's scale)")
LOGPROB = (1e-9, 100.0, "in log-prob units")
CLIP = (1e-6, 1e6, "a clip threshold")
ROLLOUTS = (0, 256, "rollouts per problem; the paper uses 8 autonomous + 4 guided")
PROBLEMS = (1, 10_000_000, "problems held in memory")
TOY_PROBLEMS = (1, 100_000, "toy problems generated in memory")
BATCH = (1, 65_536, "sequences in one forward pass")
CORES_FACTOR = 4  # grading workers per CPU core: more only queue behind each other

RANGES: dict[str, tuple[float, float, str]] = {
    "seed": SEED, "world_seed": SEED,
    "model.lora.r": (1, 1024, "a LoRA rank above 1024 is no longer low-rank"),
    "model.lora.alpha": (1, 4096, "LoRA's scale numerator (alpha / r scales the update)"),
    "model.lora.dropout": (0.0, 0.9, "a dropout probability below 1"),
    "data.train_limit": PROBLEMS, "data.eval_limit": PROBLEMS,
    "world.n_train": TOY_PROBLEMS, "world.n_test": TOY_PROBLEMS, "world.n_ood": TOY_PROBLEMS,
    "world.extractor_fault_rate": PROB, "world.strong_skip_rate": PROB,
    "student.max_position_embeddings": (128, 32_768, "a toy student's context; more only costs memory"),
    "pretrain.steps": STEPS, "pretrain.batch_size": (1, 4096, "sequences per pretraining step"),
    "pretrain.lr": LR, "pretrain.min_lr_ratio": PROB, "pretrain.warmup_steps": WARMUP,
    "pretrain.weight_decay": (0.0, 1.0, "a decay above 1 per step erases the weights"),
    "pretrain.grad_clip": CLIP, "pretrain.max_seq_len": (16, 32_768, "tokens of a pretraining example"),
    "pretrain.guided_fraction": PROB, "pretrain.unguided_stepwise_fraction": PROB, "pretrain.drill_fraction": PROB,
    "pretrain.grow_steps": STEPS, "pretrain.grow_lr": LR,
    "strategy.min_steps": (1, 64, "procedural steps of a strategy"),
    "strategy.max_steps": (1, 64, "procedural steps of a strategy"),
    "strategy.max_chars": (1, 100_000, "characters of a strategy in a prompt"),
    "strategy.max_copied_numbers": (0, 1000, "numbers a strategy may copy from its problem"),
    "strategy.min_accepted_fraction": PROB, "strategy.max_tokens": TOKENS,
    "strategy.concurrency": (1, 256, "requests in flight to the extractor's server"),
    "strategy.serve_timeout_s": (1.0, 86_400.0, "seconds to wait for a local server to start (a day at most)"),
    "strategy.n_candidates": (1, 64, "candidate strategies per problem (the paper: 5)"),
    "strategy.candidate_temperature": (0.0, 2.0, "sampling temperatures above 2 give noise"),
    "rollout.n_autonomous": ROLLOUTS, "rollout.n_guided": ROLLOUTS,
    "rollout.temperature": (0.0, 2.0, "sampling temperatures above 2 give noise"), "rollout.top_p": PROB,
    "rollout.max_new_tokens": TOKENS, "rollout.topk_logprobs": (0, 4096, "log-probs kept per sampled token"),
    "rollout.batch_size": BATCH, "rollout.tensor_parallel_size": (1, 64, "GPUs of one vLLM engine"),
    "rollout.gpu_memory_utilization": (0.01, 1.0, "a share of the GPU's memory"),
    "rollout.max_model_len": (16, 1_048_576, "tokens of vLLM's context"),
    "rollout.kv_cache_gib": (0.01, 4096.0, "GiB of CPU memory for vLLM's KV cache"),
    "distill.coef": COEF, "distill.topk": (1, 262_144, "at most a vocabulary"), "distill.kl_clip": CLIP,
    "distill.eps_kl": (1e-6, 10.0, "a ratio clip range"), "distill.is_clip_cap": CLIP,
    "distill.alpha0": (0.0, 10.0, "a per-problem distillation weight"),
    "distill.gamma": (0.0, 10.0, "the weight's step or exponent"),
    "distill.alpha_max": (0.0, 10.0, "a per-problem distillation weight"),
    "distill.chunk_size": (1, 1_048_576, "tokens per chunk of the KL over the vocabulary"),
    "train.hpt_threshold": PROB, "train.rl_coef": COEF, "train.steps": STEPS,
    "train.batch_problems": (1, 4096, "problems per step; each one is sampled several times"),
    "train.lr": LR, "train.weight_decay": (0.0, 1.0, "a decay above 1 per step erases the weights"),
    "train.warmup_steps": WARMUP, "train.micro_batch_size": BATCH,
    "train.ppo_epochs": (1, 100, "passes over one step's rollouts"),
    "train.eps_low": PROB, "train.eps_high": (1e-6, 10.0, "a ratio clip range"), "train.beta": COEF,
    "train.max_grad_norm": CLIP, "train.checkpoint_every": STEPS,
    "train.mini_batches": (1, 1024, "optimizer steps per rollout batch"),
    "train.dist_timeout_s": (1, 604_800, "seconds a collective may wait; a week is past any step"),
    "train.keep_adapters": (1, 1_000_000, "adapter folders kept on disk"),
    "train.micro_batch_tokens": (1, 16_777_216, "padded tokens per micro-batch"),
    "train.max_nonfinite_in_row": (1, 1000, "non-finite steps skipped in a row before the run stops"),
    "train.n_offpolicy": ROLLOUTS, "train.luffy_gamma": (1e-6, 100.0, "LUFFY's shaping constant"),
    "train.warmup_sft_fraction": PROB, "train.warmup_sft_epochs": (1, 1000, "epochs of the SFT warm-up"),
    "train.rollout_is_cap": CLIP, "train.mismatch_threshold": LOGPROB,
    "train.mismatch_sample": (0, 65_536, "sequences checked per step"),
    "train.sync_check_tol": (1e-9, 1e9, "log-prob units; a value above any gap turns the check into a report"),
    "eval.every": STEPS, "eval.k": (1, 1024, "samples per problem (the paper's largest is 32)"),
    "eval.temperature": (0.0, 2.0, "sampling temperatures above 2 give noise"), "eval.top_p": PROB,
    "eval.max_problems": PROBLEMS, "eval.max_new_tokens": TOKENS,
    "grading.budget_s": (0.5, 3600.0, "seconds to grade one answer"),
    "grading.tail_kb": (1, 1024, "KB of a completion's end that are read"),
    "grading.workers": (1, 4096, "grading processes"), "grading.batch_size": BATCH,
    "experiment.seeds": SEED, "experiment.ablation_seeds": SEED, "experiment.scaling_seeds": SEED,
    "experiment.parallel": (1, 256, "training runs at once"),
    "experiment.gpus_per_run": (1, 1024, "GPUs of one training run"),
    "output.keep_checkpoints": (1, 1000, "the newest checkpoint is what a killed run resumes from"),
}


def numbers(data: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every number of a nested config mapping, list elements included
    (under their list's key); the mappings inside lists (ablation overrides) are runs of their own.

    Example:
        >>> list(numbers({"seed": 1, "train": {"lr": 0.1, "on": True}, "e": {"seeds": [0, 2]}}))
        [('seed', 1), ('train.lr', 0.1), ('e.seeds', 0), ('e.seeds', 2)]
    """
    for key, value in data.items():
        values = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            yield from numbers(value, f"{prefix}{key}.")
        for v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                yield f"{prefix}{key}", v


def check(cfg: Any) -> None:
    """Every number of `cfg` (a `RunConfig`) finite and within its range, then its sizes against
    the model's context; ConfigError naming the key, the bound and the reason. (The machine is
    checked where work starts, `check_machine`: a config made on a larger machine still loads.)"""
    for key, value in numbers(cfg.to_dict()):
        check_value(math.isfinite(value), key, f"{value!r} is not a finite number")
        low, high, why = RANGES[key]
        check_value(low <= value <= high, key, f"{value!r} is outside [{low:g}, {high:g}] ({why})")
    check_context(cfg)


def context(cfg: Any) -> tuple[int, str]:
    """The model's context in tokens and the key that sets it: the toy student's positions, or
    `rollout.max_model_len` for a real or tiny model (vLLM's limit, the one declared for it)."""
    if cfg.model.source == "toy":
        return cfg.student.max_position_embeddings, "student.max_position_embeddings"
    return cfg.rollout.max_model_len, "rollout.max_model_len"


def check_context(cfg: Any) -> None:
    """Completion lengths that leave room for a prompt in the model's context."""
    tokens, source = context(cfg)
    lengths = (("rollout.max_new_tokens", cfg.rollout.max_new_tokens), ("eval.max_new_tokens", cfg.eval.max_new_tokens))
    for key, value in lengths:
        check_value(value is None or value < tokens, key,
                    f"{value} new tokens leave no room for the prompt in the model's context of {tokens} "
                    f"({source}); give at most {tokens - 1}, less the prompt")
    check_value(cfg.model.source != "toy" or cfg.pretrain.max_seq_len <= tokens, "pretrain.max_seq_len",
                f"{cfg.pretrain.max_seq_len} exceeds the student's context of {tokens} ({source})")


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_machine(cfg: Any) -> None:
    """Process counts within what this machine can run: `grading.workers` <= cores x `CORES_FACTOR`."""
    most = cores() * CORES_FACTOR
    check_value(cfg.grading.workers <= most, "grading.workers",
                f"{cfg.grading.workers} grading processes on {cores()} cores; give at most "
                f"{most} ({CORES_FACTOR} per core: more only queue behind each other)")
