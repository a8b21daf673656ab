"""What one training step does, decided once per run (`MethodSpec`) and planned per step (`plan_step`).

`MethodSpec.from_config` is the only place that branches on `train.method` (sgpo-method.md
sections 2-6 and the baselines): whether the step samples rollouts, how many guided ones,
whether strong responses join a group (LUFFY's off-policy members, HPT's SFT fallback),
whether the step distils and how its targets are chosen. `plan_step` is pure (no model): from
a step's problems, its paired rollouts and the weights `alpha(x)` it builds the `Seq`s of the
step (`group_seqs`, `distill_seqs`) and says which no-grad passes the trainer still owes them
(target scoring for `select_one`, teacher states, old log-probs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

from ..core.records import Problem
from . import losses
from .step import Seq, is_distill_candidate


@dataclass(frozen=True)
class MethodSpec:
    """The step's shape for one `train.method`, from the config (`from_config`).

    `uses_rollouts`: False for `sft` (it imitates the strong responses); `n_autonomous` / `n_guided`:
    rollouts per problem (guided only for `sgpo`); `topk_logprobs`: top-k the engine returns for
    the teacher (`distill.teacher: engine`); `strong_in_group`: a strong response is tokenised per
    problem (`luffy`, `hpt`); `n_offpolicy`: strong responses inside each GRPO group (`luffy`);
    `hpt_threshold`: HPT's switch, GRPO where `p_auto` exceeds it, else SFT (None: no switch);
    `scale_rewards`: `train.scale_rewards`; `distill_target`: `distill.target`; `distils`: guided
    rollouts and `distill.coef > 0`; `select_one`: one target per problem, scored under the
    unguided prompt; `teacher_hidden`: the teacher is a no-grad forward under the guided prompt;
    `recompute_old`: old log-probs before the first of several updates (`ppo_epochs` x `mini_batches`);
    `mismatch_sample`: guided rollouts checked against the engine (`train.mismatch_sample`).
    """

    method: str = "grpo"
    uses_rollouts: bool = True
    n_autonomous: int = 4
    n_guided: int = 0
    topk_logprobs: int = 0
    strong_in_group: bool = False
    n_offpolicy: int = 0
    hpt_threshold: Optional[float] = None
    scale_rewards: bool = False
    distill_target: str = "select_one"
    distils: bool = False
    select_one: bool = False
    teacher_hidden: bool = False
    recompute_old: bool = False
    mismatch_sample: int = 0

    @classmethod
    def from_config(cls, cfg) -> "MethodSpec":
        """From a `RunConfig` (read duck-typed: `train`, `rollout`, `distill`)."""
        method, r, d, t = cfg.train.method, cfg.rollout, cfg.distill, cfg.train
        n_guided = r.n_guided if method == "sgpo" else 0
        distils = n_guided > 0 and d.coef > 0
        return cls(method=method, uses_rollouts=method != "sft", n_autonomous=r.n_autonomous, n_guided=n_guided,
                   topk_logprobs=r.topk_logprobs if n_guided and d.teacher_source == "engine" else 0,
                   strong_in_group=method in ("luffy", "hpt"), n_offpolicy=t.n_offpolicy if method == "luffy" else 0,
                   hpt_threshold=t.hpt_threshold if method == "hpt" else None, scale_rewards=t.scale_rewards,
                   distill_target=d.target, distils=distils, select_one=distils and d.target == "select_one",
                   teacher_hidden=distils and d.teacher_source == "hidden", recompute_old=t.ppo_epochs * t.mini_batches > 1,
                   mismatch_sample=t.mismatch_sample if n_guided else 0)


class Encoding(NamedTuple):
    """How the step turns text into token ids: `text` (no special tokens), a problem's `unguided`
    prompt ids, and the `eos_id` that ends a strong response."""

    text: Callable[[str], list[int]]
    unguided: Callable[[Problem], list[int]]
    eos_id: int


@dataclass
class StepPlan:
    """One step's sequences and the no-grad passes they still need (in this order):
    `select_targets` (score the `distill` candidates under the unguided prompt, keep one per
    problem), `teacher_states` (hidden states under the guided prompt), `old_logprobs`."""

    seqs: list[Seq]
    select_targets: bool
    teacher_states: bool
    old_logprobs: bool


def strong_seq(p: Problem, prompt_ids: list[int], enc: Encoding, method: str) -> Seq:
    """The `sft` sequence of a problem's strong response (ended by EOS)."""
    if not p.strong_response:
        raise ValueError(f"problem {p.id}: train.method '{method}' needs a strong response")
    return Seq("sft", prompt_ids, enc.text(p.strong_response) + [enc.eos_id])


def group_seqs(spec: MethodSpec, prompt_ids: list[int], auto: list, strong: Optional[Seq]) -> list[Seq]:
    """The sequences of one problem's autonomous group (`auto`: rollouts with `token_ids`, `reward`, `logprobs`).

    One `rl` seq per rollout, advantage `r - mean(r)` (section 3). `spec.n_offpolicy` (LUFFY) copies
    of the strong response (`strong`, reward 1) join the group as `off` seqs. With `spec.hpt_threshold`
    (HPT): GRPO on the group when its success rate `p_auto > hpt_threshold`, else the `sft` seq
    `strong` (its tokens then share the `sft` token mean of the step, the GRPO problems' rollouts
    the `rl` token mean; the two means are added).
    """
    rewards = [r.reward for r in auto]
    if spec.hpt_threshold is not None and not (sum(rewards) / max(len(rewards), 1) > spec.hpt_threshold):
        return [strong]
    adv = losses.group_advantages(torch.tensor([rewards + [1.0] * spec.n_offpolicy], dtype=torch.float64),
                                  spec.scale_rewards)[0].tolist()
    out = [Seq("rl", prompt_ids, r.token_ids, advantage=a, engine_logprobs=r.logprobs) for r, a in zip(auto, adv)]
    return out + [Seq("off", strong.prompt_ids, strong.completion_ids, advantage=a) for a in adv[len(auto):]]


def distill_seqs(paired, tokens, weight_of: dict[str, float], target: str) -> list[Seq]:
    """The `distill` candidates of a step's paired rollouts: non-empty guided rollouts that
    `is_distill_candidate`; the student reads the unguided prompt, the teacher the guided one
    (`tokens`: text -> token ids). `select_one` narrows them later (`step.select_targets`)."""
    out = []
    for p, unguided, guided in zip(paired.problems, paired.prompts_unguided, paired.prompts_guided):
        student_ids, teacher_ids = tokens(unguided), (tokens(guided) if guided is not None else None)
        for r in paired.group(p.id, guided=True):
            if is_distill_candidate(r.reward, target) and r.token_ids:
                out.append(Seq("distill", student_ids, r.token_ids, weight=weight_of[p.id], teacher_prompt_ids=teacher_ids,
                               topk_ids=r.topk_ids, topk_logprobs=r.topk_logprobs,
                               meta={"problem_id": p.id, "reward": r.reward}))
    return out


def plan_step(spec: MethodSpec, batch: list[Problem], paired, w_P: Optional[torch.Tensor], enc: Encoding) -> StepPlan:
    """The step's `Seq`s and owed passes: `sft` seqs of the strong responses without rollouts,
    else each problem's autonomous group (`group_seqs`) then, with guided rollouts, the `distill`
    candidates weighted by alpha(x) (`w_P`, (P,) in `paired.stats` row order). `paired` and `w_P`
    are None without rollouts."""
    if not spec.uses_rollouts:
        seqs = [strong_seq(p, enc.unguided(p), enc, spec.method) for p in batch]
    else:
        seqs = []
        for p in batch:
            prompt_ids = enc.unguided(p)
            strong = strong_seq(p, prompt_ids, enc, spec.method) if spec.strong_in_group else None
            seqs += group_seqs(spec, prompt_ids, paired.group(p.id, guided=False), strong)
        if spec.n_guided:
            weight_of = dict(zip(paired.stats["problem_id"], w_P.tolist()))
            seqs += distill_seqs(paired, enc.text, weight_of, spec.distill_target)
    has_distill = any(s.kind == "distill" for s in seqs)
    return StepPlan(seqs, spec.select_one and has_distill, spec.teacher_hidden and has_distill, spec.recompute_old)
