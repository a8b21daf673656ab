"""Typed, frozen configuration of the toy world and its base students.

`ToyWorldConfig`, `StudentConfig` and `PretrainConfig` are meant to be embedded as sections
of the run config (conventions.md, point 3). The seed is not a field: the run config has a
single `seed`, passed explicitly to `generate_world` / `prepare_student`.

The presets `smoke` and `demo` are the sections of `params/toy-smoke.yaml` and
`params/toy-demo.yaml` (`sgpo_lib.config.toy_presets.toy_preset`): written once, in the params.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from ..core.checks import check
from .families import FAMILIES

SizeName = Literal["tiny", "small", "base"]
# Qwen2 shapes per size: head dim is always 64 so the vLLM CPU backend accepts the model.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 256},
    "small": {"hidden_size": 128, "num_hidden_layers": 3, "intermediate_size": 512},
    "base": {"hidden_size": 128, "num_hidden_layers": 4, "intermediate_size": 512},
}
HEAD_DIM = 64
# Sizes grown from a smaller pretrained one (same width, more layers) instead of pretrained from
# scratch: `pretrain.deepen`, then `pretrain.grow_steps` more steps. Keeps the demo preparation
# of all sizes within its budget, and the deeper student starts where its parent ended.
GROWN_FROM: dict[str, str] = {"base": "small"}
GROW_FIELDS = ("grow_steps", "grow_lr")


def _check_fraction(section: str, name: str, value: float) -> None:
    check(0.0 <= value <= 1.0, section, f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class ToyWorldConfig:
    """The problems: which families, how many per split, the strong solver's style, the prompt
    instruction, the extractor.

    `strong_skip_rate` is the probability that the strong solver skips a line of its
    step-by-step execution (`families.Family.strong`): 1 writes only the one-sentence summary
    that jumps straight to the answer (the compressed style of worlds before `toy-students-v5`),
    0 spells every step out; 0.1 spells most steps out and jumps over about one in ten, like
    the long reasoning traces (DeepSeek-R1's) that the paper's warm-up imitates. It changes what
    the SFT warm-up and the `sft` baseline imitate, and the unguided part of the students'
    pretraining (which shows the same strong responses), so it is part of a student's cache
    key. The default stays 1 (the world the README's demo measures): measured against the
    regime targets of issue 25 (toy/README.md) at 20 RL steps, before the calibration of the
    students' pretraining and the RL length, 0.1 put the SFT warm-up within 10% of the base
    student on two world seeds of three, but SFT+GRPO gained on none and the premise's gap
    shrank to 7-20 points. With the calibration, rate 1 meets the premise and SFT+GRPO targets
    on three world seeds and the SFT band on one; 0.1 was not measured there.

    `instruction` is appended to every toy prompt (unguided and guided); it is short or empty
    because the toy tokenizer is character-level. `extractor_fault_rate` is the probability
    that the offline extractor returns a realistic faulty output (leaked numbers, truncated or
    incomplete JSON), so that the validation path is exercised.
    """

    families: tuple[str, ...] = ("sum", "remainder", "mul", "linear")
    n_train: int = 256
    n_test: int = 64
    n_ood: int = 32
    strong_skip_rate: float = 1.0
    instruction: str = ""
    extractor_fault_rate: float = 0.02

    def __post_init__(self):
        s = "toy_world"
        object.__setattr__(self, "families", tuple(self.families))
        check(len(self.families) > 0, s, "families must not be empty")
        unknown = sorted(set(self.families) - set(FAMILIES))
        check(not unknown, s, f"unknown families {unknown}; known: {sorted(FAMILIES)}")
        check(len(set(self.families)) == len(self.families), s, f"families repeated in {self.families}")
        for name in ("n_train", "n_test", "n_ood"):
            check(getattr(self, name) >= 1, s, f"{name} must be >= 1, got {getattr(self, name)}")
        _check_fraction(s, "extractor_fault_rate", self.extractor_fault_rate)
        _check_fraction(s, "strong_skip_rate", self.strong_skip_rate)

    def student_spec(self) -> dict:
        """The fields that change a pretrained student (the extractor's do not)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extractor_fault_rate"}


@dataclass(frozen=True)
class StudentConfig:
    """The base student: a Qwen2 of size `size` (see `SIZES`), head dim 64."""

    size: SizeName = "small"
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True

    def __post_init__(self):
        check(self.size in SIZES, "student", f"size must be one of {sorted(SIZES)}, got {self.size!r}")
        check(self.max_position_embeddings >= 128, "student", "max_position_embeddings must be >= 128")

    def qwen2_kwargs(self) -> dict:
        shape = SIZES[self.size]
        heads = shape["hidden_size"] // HEAD_DIM
        return {**shape, "num_attention_heads": heads, "num_key_value_heads": heads,
                "max_position_embeddings": self.max_position_embeddings,
                "tie_word_embeddings": self.tie_word_embeddings}


@dataclass(frozen=True)
class PretrainConfig:
    """Brief CPU pretraining of the base student on the toy mixture.

    An example is a background arithmetic drill with probability `drill_fraction` (one
    operation the strategies are made of, e.g. `Compute 58-7.` -> `58-7=51`). Otherwise it is
    guided with probability `guided_fraction` (a paraphrased strategy in the prompt, target =
    its step-by-step execution), else unguided: its target is a step-by-step execution with
    probability `unguided_stepwise_fraction`, else the strong solver's compressed response,
    whose style the student imitates without computing its large intermediate results.
    `bf16_autocast` runs forward passes in bfloat16 on CPU (weights stay float32). Off by
    default: with AMX it is no faster than float32 at these shapes, and on a CPU without
    native bf16 (AVX2-only) it is about 10x slower (`sgpo_lib.core.machine`). A grown size (`GROWN_FROM`) trains
    `grow_steps` more steps at peak rate `grow_lr` after deepening its parent.
    """

    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_seq_len: int = 512
    guided_fraction: float = 0.8
    unguided_stepwise_fraction: float = 0.15
    drill_fraction: float = 0.1
    bf16_autocast: bool = False
    grow_steps: int = 300
    grow_lr: float = 1e-3

    def __post_init__(self):
        s = "pretrain"
        check(self.grow_lr > 0, s, f"grow_lr must be > 0, got {self.grow_lr}")
        for name in ("steps", "batch_size", "max_seq_len", "grow_steps"):
            check(getattr(self, name) >= 1, s, f"{name} must be >= 1, got {getattr(self, name)}")
        check(0 <= self.warmup_steps < self.steps, s, f"warmup_steps must be in [0, steps), got {self.warmup_steps}")
        check(self.lr > 0, s, f"lr must be > 0, got {self.lr}")
        check(self.grad_clip > 0, s, f"grad_clip must be > 0, got {self.grad_clip}")
        for name in ("min_lr_ratio", "guided_fraction", "unguided_stepwise_fraction", "drill_fraction"):
            _check_fraction(s, name, getattr(self, name))

    def grow_config(self) -> "PretrainConfig":
        """The schedule of a grown size's extra training (same mixture and batch)."""
        return replace(self, steps=self.grow_steps, lr=self.grow_lr,
                       warmup_steps=min(self.warmup_steps, self.grow_steps // 10))
