"""Run configuration: `params/*.yaml` validated into frozen dataclasses.

One dataclass per concern (model, data, world, strategy, rollout, distill, train, eval,
output). Every [ours] choice of sgpo-method.md is a field here; each field is documented once, by
the comment above its key in `params/base.yaml` (which sets every field). Loading:

1. `extends: other.yaml` (relative to the file) is a deep merge done here, not by papermill;
2. dotted overrides (`{"distill.coef": 0.5}`) are applied on top (sweeps, notebooks);
3. the merged dict is checked against the schema: unknown keys (with "did you mean"),
   wrong types and impossible combinations raise `ConfigError` naming the file, the key
   and the fix, before any expensive work starts.

Lists in YAML become tuples so that every config object is frozen and hashable.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..core.checks import check
from ..core.paths import resolve, run_name
from ..data.benchmarks import BENCHMARKS
from ..toy.config import PretrainConfig, StudentConfig, ToyWorldConfig
from ..toy.families import FAMILIES
from . import limits
from .deprecated import DEPRECATED
from .experiment import ExperimentConfig, Method, ablation_runs
from .schema import ConfigError, apply_deprecated, apply_overrides, build, plain, read_yaml


@dataclass(frozen=True)
class LoraConfig:
    # False = full fine-tuning (allowed for toy students)
    enabled: bool = True
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self):
        check(self.r >= 1, "model.lora.r", "must be >= 1")
        check(0 <= self.dropout < 1, "model.lora.dropout", "must be in [0, 1)")
        check(len(self.target_modules) > 0, "model.lora.target_modules", "must name at least one module")


@dataclass(frozen=True)
class ModelConfig:
    source: Literal["toy", "hf", "tiny"] = "toy"
    name_or_path: str = ""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = None
    gradient_checkpointing: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        check(self.source != "hf" or self.name_or_path, "model.name_or_path",
               "is required when model.source is 'hf' (a hub name or a local model folder)")


@dataclass(frozen=True)
class DataConfig:
    source: Literal["toy", "hub", "jsonl"] = "toy"
    train_sets: tuple[str, ...] = ()
    eval_sets: tuple[str, ...] = ()
    train_limit: int | None = None
    eval_limit: int | None = None
    local_dir: str = ""
    local_files: tuple[str, ...] = ()
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}."

    def __post_init__(self):
        bad = [e for e in self.local_files if "=" not in e or e.split("=")[0] not in self.train_sets + self.eval_sets]
        check(not bad, "data.local_files", f"{bad}: write 'name=file.jsonl', name one of data.train_sets/eval_sets")
        if self.source != "toy":
            check(len(self.train_sets) > 0 and len(self.eval_sets) > 0, "data.train_sets",
                   "real data needs data.train_sets and data.eval_sets (benchmark names)")
        check(self.source != "jsonl" or self.local_dir, "data.local_dir",
               "is required when data.source is 'jsonl'")


@dataclass(frozen=True)
class StrategyConfig:
    extractor: Literal["offline", "openai"] = "offline"
    base_url: str = "http://127.0.0.1:8000/v1"
    extractor_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    min_steps: int = 3
    max_steps: int = 6
    max_chars: int = 1200
    max_copied_numbers: int = 1
    retrieve_by_type: bool = True
    min_accepted_fraction: float = 0.1
    max_tokens: int = 1024
    concurrency: int = 4
    json_schema: bool = False
    serve: Literal["none", "local"] = "none"
    serve_model: str = ""
    serve_args: tuple[str, ...] = ()
    serve_timeout_s: float = 900.0
    n_candidates: int = 5
    select: Literal["rank", "first"] = "rank"
    candidate_temperature: float = 0.7

    def __post_init__(self):
        check(1 <= self.min_steps <= self.max_steps, "strategy.min_steps", "must be >= 1 and <= strategy.max_steps")
        check(self.n_candidates >= 1, "strategy.n_candidates", "must be >= 1 (1 = single shot)")
        check(self.candidate_temperature >= 0, "strategy.candidate_temperature", "must be >= 0")
        check(0 <= self.min_accepted_fraction <= 1, "strategy.min_accepted_fraction", "must be in [0, 1]")
        check(self.max_tokens >= 1 and self.concurrency >= 1, "strategy.max_tokens", "and strategy.concurrency: >= 1")
        check(self.serve == "none" or (self.extractor == "openai" and self.serve_model), "strategy.serve",
               "'local' serves the openai extractor: set strategy.extractor: openai and strategy.serve_model")
        check(self.extractor != "openai" or self.extractor_model, "strategy.extractor_model",
               "is required when strategy.extractor is 'openai'")


@dataclass(frozen=True)
class RolloutConfig:
    backend: Literal["transformers", "vllm"] = "transformers"
    n_autonomous: int = 4
    n_guided: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    topk_logprobs: int = 0
    batch_size: int = 64
    merge_lora: bool = True
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 4096
    enforce_eager: bool = False
    kv_cache_gib: float | None = None

    def __post_init__(self):
        check(self.n_autonomous >= 0, "rollout.n_autonomous", "must be >= 0")
        check(self.n_guided >= 0, "rollout.n_guided", "must be >= 0")
        check(self.temperature >= 0, "rollout.temperature", "must be >= 0")
        check(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
        check(self.max_new_tokens >= 1, "rollout.max_new_tokens", "must be >= 1")


@dataclass(frozen=True)
class DistillConfig:
    coef: float = 1.0
    estimator: Literal["full", "topk", "sampled"] = "full"
    direction: Literal["forward", "reverse"] = "forward"
    topk: int = 64
    teacher: Literal["hidden", "engine", "none"] = "hidden"
    target: Literal["select_one", "all_correct", "all"] = "select_one"
    target_score: Literal["mean_logprob", "sum_logprob"] = "mean_logprob"
    kl_clip: float | None = 1.0
    kl_clip_mode: Literal["token_min", "token_mask", "token_scale", "entry_clamp"] = "token_min"
    proximal: Literal["ratio_clip", "is_clip", "none"] = "none"
    eps_kl: float = 0.2
    is_clip_cap: float = 2.0
    weighting: Literal["pass_gap", "pass_gap_stateless", "failure", "gap", "constant"] = "pass_gap"
    alpha0: float = 0.5
    gamma: float = 0.1
    alpha_max: float = 0.8
    chunk_size: int | None = None

    def __post_init__(self):
        check(self.coef >= 0, "distill.coef", "must be >= 0 (0 gives GRPO)")
        check(self.topk >= 1, "distill.topk", "must be >= 1")
        check(self.eps_kl > 0 and self.is_clip_cap > 0, "distill.eps_kl", "eps_kl and is_clip_cap must be > 0")
        check(self.kl_clip is None or self.kl_clip > 0, "distill.kl_clip", "must be > 0, or null for no KL clipping")
        check(0 <= self.alpha0 <= self.alpha_max, "distill.alpha0", "need 0 <= distill.alpha0 <= distill.alpha_max")
        check(self.gamma >= 0, "distill.gamma", "must be >= 0")
        check(self.chunk_size is None or self.chunk_size >= 1, "distill.chunk_size", "must be >= 1 or null")
        check(not (self.estimator == "sampled" and self.direction == "reverse"), "distill.direction",
               "reverse KL has no one-sample SFT form: use estimator full or topk with direction reverse")
        check(self.teacher != "engine" or self.estimator == "topk", "distill.teacher",
               "teacher 'engine' (rollout top-k log-probs) needs distill.estimator: topk")
        check(self.teacher != "none" or self.estimator == "sampled", "distill.teacher",
               "'none' (no teacher distribution) needs distill.estimator: sampled")

    @property
    def teacher_source(self) -> str:
        """Where the teacher distribution comes from, decided here once: `hidden` (a no-grad forward
        under the guided prompt, final hidden states), `engine` (the rollout engine's top-k) or
        `none` (estimator `sampled`: no teacher distribution)."""
        return "none" if self.estimator == "sampled" else self.teacher


@dataclass(frozen=True)
class TrainConfig:
    method: Method = "sgpo"
    hpt_threshold: float = 0.0
    rl_coef: float = 1.0
    steps: int = 20
    batch_problems: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    micro_batch_size: int = 16
    micro_batch_tokens: int | None = None
    ppo_epochs: int = 1
    mini_batches: int = 1
    eps_low: float = 0.2
    eps_high: float = 0.28
    scale_rewards: bool = False
    beta: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    checkpoint_every: int = 10
    max_nonfinite_in_row: int = 3
    dist_timeout_s: float = 1800.0
    keep_adapters: int = 2
    n_offpolicy: int = 1
    luffy_gamma: float = 0.1
    warmup_sft_fraction: float = 1 / 3
    warmup_sft_epochs: int = 10
    rollout_is: Literal["none", "token_truncate", "sequence_mask"] | None = None  # None: resolved from the backend
    rollout_is_cap: float = 2.0
    mismatch_threshold: float = 0.1
    mismatch_sample: int = 8
    sync_check_tol: float = 0.05

    def __post_init__(self):
        check(self.rl_coef >= 0, "train.rl_coef", "must be >= 0 (0 = distillation only, no autonomous GRPO)")
        check(0 <= self.hpt_threshold <= 1, "train.hpt_threshold", "must be in [0, 1] (an autonomous success rate)")
        check(self.rollout_is_cap >= 1, "train.rollout_is_cap", "must be >= 1 (verl uses 2, TRL 3)")
        check(self.mismatch_threshold > 0 and self.sync_check_tol > 0, "train.mismatch_threshold",
               "mismatch_threshold and sync_check_tol must be > 0 (log-prob units)")
        check(self.mismatch_sample >= 0, "train.mismatch_sample", "must be >= 0 (0 = no guided/teacher check)")
        check(self.steps >= 1 and self.batch_problems >= 1, "train.steps", "steps and batch_problems must be >= 1")
        check(self.lr > 0, "train.lr", "must be > 0")
        check(0 < self.eps_low < 1 and self.eps_high > 0, "train.eps_low", "need 0 < eps_low < 1 and eps_high > 0")
        check(self.micro_batch_size >= 1 and self.ppo_epochs >= 1, "train.micro_batch_size", "must be >= 1")
        check(self.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
        check(self.micro_batch_tokens is None or self.micro_batch_tokens >= 1, "train.micro_batch_tokens", ">= 1 or null")
        check(self.mini_batches >= 1, "train.mini_batches", "must be >= 1 (optimizer steps per rollout batch)")
        check(self.dist_timeout_s >= 1 and self.keep_adapters >= 1, "train.dist_timeout_s", "and keep_adapters: >= 1")
        check(0 <= self.warmup_sft_fraction < 1, "train.warmup_sft_fraction",
               "must be in [0, 1): the share of training problems for the SFT warm-up (0 = no warm-up)")
        check(self.warmup_sft_epochs >= 1, "train.warmup_sft_epochs", "must be >= 1")


@dataclass(frozen=True)
class EvalConfig:
    every: int = 10
    splits: tuple[str, ...] = ("test", "ood")
    k: int = 4
    k_by_benchmark: tuple[str, ...] = ()  # "name=k" entries (sgpo-method.md §8)
    temperature: float = 0.6
    top_p: float = 0.95
    max_problems: int | None = None
    max_new_tokens: int | None = None

    def __post_init__(self):
        check(self.k >= 1, "eval.k", "must be >= 1")
        check(self.temperature >= 0, "eval.temperature", "must be >= 0")
        check(0 < self.top_p <= 1, "eval.top_p", "must be in (0, 1]")
        _parse_k_by_benchmark(self.k_by_benchmark)
        check(self.every >= 1, "eval.every", "must be >= 1")
        check(self.max_problems is None or self.max_problems >= 1, "eval.max_problems",
               "must be >= 1, or null for every problem (0 would evaluate nothing)")

    @property
    def k_map(self) -> dict[str, int]:
        """`eval.k_by_benchmark` as {benchmark: k}."""
        return _parse_k_by_benchmark(self.k_by_benchmark)


def _parse_k_by_benchmark(entries: tuple[str, ...]) -> dict[str, int]:
    """Entries `name=k` as {name: k}; a bad entry raises naming `eval.k_by_benchmark` and the fix."""
    known, out = sorted(BENCHMARKS) + sorted(FAMILIES), {}
    for entry in entries:
        name, _, k = entry.partition("=")
        hint = difflib.get_close_matches(name, known, n=1)
        check(name in known, "eval.k_by_benchmark", f"unknown benchmark {name!r} in {entry!r}"
               + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; known: {known}")
        check(k.isdigit() and int(k) >= 1 and name not in out, "eval.k_by_benchmark",
               f"{entry!r}: write 'name=k' with k >= 1, each benchmark once")
        out[name] = int(k)
    return out


@dataclass(frozen=True)
class GradingConfig:
    budget_s: float = 2.0
    tail_kb: int = 8
    workers: int = 2
    batch_size: int = 16
    numeric_policy: Literal["rel_tol", "reference_precision"] = "reference_precision"

    def __post_init__(self):
        check(self.budget_s > 0.5, "grading.budget_s", "must be > 0.5 s (0.25 s of it is kept for replacing a stuck worker)")
        check(self.tail_kb >= 1, "grading.tail_kb", "must be >= 1 (KB of the completion's end that are read)")
        check(self.workers >= 1 and self.batch_size >= 1, "grading.workers", "grading.workers and grading.batch_size must be >= 1")


@dataclass(frozen=True)
class OutputConfig:
    root: str = "outputs"
    keep_checkpoints: int = 2
    report_to: Literal["none", "tensorboard", "trackio", "wandb"] = "tensorboard"
    reuse: Literal["code", "config"] = "code"  # how a folder may be reused, not what it holds: not in the run id


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    world_seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world: ToyWorldConfig = field(default_factory=ToyWorldConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    grading: GradingConfig = field(default_factory=GradingConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self):
        m, r = self.train.method, self.rollout
        check(m != "sgpo" or r.n_guided >= 1, "rollout.n_guided", "train.method 'sgpo' needs guided rollouts (>= 1)")
        check(m == "sft" or r.n_autonomous >= 2, "rollout.n_autonomous",
               f"train.method '{m}' needs >= 2 autonomous rollouts per problem for group advantages")
        check(self.data.source == "toy" or self.model.source != "toy", "model.source",
               "real data (data.source hub/jsonl) needs a real model: set model.source: hf (or tiny for CPU checks)")
        check(r.backend != "vllm" or self.model.lora.enabled, "rollout.backend",
               "vllm hot-loads LoRA adapters only: set model.lora.enabled: true or rollout.backend: transformers")
        check(self.train.beta == 0 or self.model.lora.enabled, "train.beta",
               "the KL reference is the base model with the adapter disabled: train.beta > 0 needs model.lora.enabled")
        check(m == "sft" or r.temperature == 1.0, "rollout.temperature",
               "must be 1.0 for training: the trainer scores rollouts (pi_old, pi_theta, teacher, GRPO ratios, "
               "engine log-probs) at temperature 1, so sampling at another temperature would bias every ratio; "
               "set rollout.temperature: 1.0 (eval.temperature is separate and free)")
        check(self.distill.teacher != "engine" or r.topk_logprobs >= self.distill.topk, "rollout.topk_logprobs",
               "distill.teacher 'engine' needs rollout.topk_logprobs >= distill.topk")
        if self.train.rollout_is is None:  # frozen: set the resolved default once, before anyone reads it
            object.__setattr__(self, "train", dataclasses.replace(self.train, rollout_is=default_rollout_is(r.backend)))
        limits.check(self)  # every number finite and bounded, sizes within the model's context and the machine

    @property
    def instruction(self) -> str:
        """The answer-format instruction of the prompts: the toy world's, or `data.instruction`."""
        return self.world.instruction if self.data.source == "toy" else self.data.instruction

    def to_dict(self) -> dict[str, Any]:
        return plain(dataclasses.asdict(self))

    def identity(self) -> dict[str, Any]:
        """`to_dict()` without `output.reuse`, which says how a folder may be reused, not what it holds."""
        out = self.to_dict()
        out["output"].pop("reuse")
        return out

    def digest(self) -> str:
        """sha1 of the resolved config (sorted JSON, `identity()`): the content part of the run id."""
        return hashlib.sha1(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()


def default_rollout_is(backend: str) -> str:
    """`train.rollout_is: null` resolves to `token_truncate` for vLLM (as verl and TRL do) and
    to `none` for transformers, whose sampler is the trainer's own model (no mismatch to correct)."""
    return "token_truncate" if backend == "vllm" else "none"


def load_config(params_file: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load, layer, override and validate a params file into a `RunConfig`."""
    path = resolve(params_file)
    data = read_yaml(path, sections=[f.name for f in dataclasses.fields(RunConfig)])
    where = str(path)
    if overrides:
        data = apply_overrides(data, overrides)
        where += f" with overrides {overrides}"
    try:
        return build(RunConfig, apply_deprecated(DEPRECATED, data))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def experiment_variants(cfg: RunConfig) -> dict[str, list[dict[str, Any]]]:
    """The override dicts of every training run notebooks 03-06 make (main, ablate, scaling, unknowns)."""
    e = cfg.experiment
    return {"main": [{"train.method": m, "seed": s} for m in e.methods for s in e.seeds],
            "ablate": [overrides for _, overrides in ablation_runs(cfg)],
            "unknowns": [overrides for _, overrides in ablation_runs(cfg, "unknowns")],
            "scaling": [{"student.size": z, "train.method": m, "seed": s}
                        for z in e.scaling_sizes for m in e.scaling_methods for s in e.scaling_seeds]}


def check_variants(cfg: RunConfig, where: str = "params") -> RunConfig:
    """Check `cfg` against this machine (`limits.check_machine`), then build the config and the folder
    name (`paths.run_name`) of every run its experiment will make (a run's own params, not a sweep
    point's), so a bad one fails now, not hours later."""
    limits.check_machine(cfg)
    base = cfg.to_dict()
    for section, variants in experiment_variants(cfg).items():
        for variant in variants:
            try:
                run_name(variant)
                build(RunConfig, apply_deprecated(DEPRECATED, apply_overrides(base, variant)))
            except ValueError as e:
                raise ConfigError(f"{where}: experiment.{section} run {variant}: {e}") from None
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
