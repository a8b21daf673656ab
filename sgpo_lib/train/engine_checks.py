"""Does the rollout engine serve the policy the trainer optimises? Checks and step metrics.

The rollouts of sgpo-method.md section 2 come from an engine (vLLM, or the transformers
sampler) whose numerics differ from the trainer's forward pass; SGPO also takes the teacher's
top-k from the engine (`distill.teacher: engine`, section 4). This module measures that gap
and stops a run whose engine did not receive the trained adapter. All log-probs compared are
raw (temperature 1, before top-p) on both sides: the engines' convention (`sgpo_lib.model.generation`,
vLLM's `logprobs_mode="raw_logprobs"` and its prompt log-probs), so like is compared with like.

Step metrics (`metrics.jsonl`):
- `mismatch/auto/{mean,max,frac_above}`: `|log pi_old(y_t) - log mu(y_t)|` over the sampled
  tokens of the autonomous rollouts (trainer `pi_old` under the unguided prompt vs the engine
  `mu`), from the loss's own forward pass; `frac_above` counts gaps above `train.mismatch_threshold`;
- `mismatch/guided/*`: the same for the first `train.mismatch_sample` guided rollouts, re-scored
  by the trainer under the guided prompt (one extra no-grad forward of that sample);
- `mismatch/teacher_topk/{mean,max}`: with `distill.teacher: engine`, the engine's top-k
  log-probs against the trainer's at the same ids, on the same sample;
- `sync/probe_gap`, `sync/probe_shift`: after each adapter sync (and on resume) the engine's
  log-probs of a fixed probe completion against the trainer's; the run stops with
  `EngineSyncError` when the mean per-token gap exceeds `train.sync_check_tol`. `probe_shift`
  is how far the trainer's own probe log-probs moved since the previous check: a stale engine
  is caught when the step moved the probe by more than the tolerance;
- `frac_reward_zero_std` (autonomous groups with one reward value: no GRPO signal),
  `frac_all_wrong`, `guided_share` (problems whose guided branch is distilled with `w > 0`) and
  `guided_share_all_wrong` (the same among all-wrong groups, where it is the only signal).

The transformers backend samples with the trainer's live model: its mismatch is the KV-cache
path against the full forward (about 0), and its sync check is skipped (nothing is delivered).
Departure: over several ranks the step metrics are rank means, so `max` is a mean of maxima.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..data.prompts import render, unguided_messages
from ..method.losses import CORRECT_REWARD_THRESHOLD
from ..model.policy import hidden_states, lm_head_weight, pack, token_logprobs

log = logging.getLogger(__name__)

POSITION_CHUNK = 256  # completion positions projected to the vocabulary at once (teacher top-k check)
PROBE_MAX_TOKENS = 64  # the sync probe's completion: the first tokens of a strong response (and EOS)


class EngineSyncError(RuntimeError):
    """The rollout engine does not serve the trainer's current policy."""


def gap_metrics(gaps: list[torch.Tensor], threshold: float, prefix: str) -> dict[str, float]:
    """Mean, max and fraction above `threshold` of `|gap|` over all tokens; {} when there are none."""
    flat = torch.cat([g.detach().double().abs().flatten().cpu() for g in gaps]) if gaps else torch.zeros(0)
    if flat.numel() == 0:
        return {}
    return {f"{prefix}/mean": float(flat.mean()), f"{prefix}/max": float(flat.max()),
            f"{prefix}/frac_above": float((flat > threshold).double().mean())}


def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def guided_gap_metrics(model, tokenizer, paired, sample: int, threshold: float, pad_id: int, device) -> dict:
    """`mismatch/guided/*` and (for rollouts with top-k) `mismatch/teacher_topk/*` on the first
    `sample` non-empty guided rollouts of `paired` (a `rollouts.PairedBatch`)."""
    prompt_of = {p.id: g for p, g in zip(paired.problems, paired.prompts_guided)}
    picks = [r for r in paired.rollouts if r.guided and r.token_ids][:sample]
    gaps, topk_gaps = [], []
    weight_V_H = lm_head_weight(model)
    for r in picks:
        batch = pack([_tokens(tokenizer, prompt_of[r.problem_id])], [r.token_ids], pad_id).to(device)
        mask_T = batch.completion_mask_B_T[0].bool()
        hidden_T_H = hidden_states(model, batch)[0][mask_T]
        engine_T = torch.tensor(r.logprobs, dtype=torch.float64, device=hidden_T_H.device)
        for i in range(0, hidden_T_H.shape[0], POSITION_CHUNK):
            logprobs_C_V = torch.log_softmax((hidden_T_H[i : i + POSITION_CHUNK] @ weight_V_H.T).double(), dim=-1)
            targets_C = torch.tensor(r.token_ids[i : i + POSITION_CHUNK], device=logprobs_C_V.device)
            gaps.append(logprobs_C_V.gather(-1, targets_C[:, None])[:, 0] - engine_T[i : i + POSITION_CHUNK])
            if r.topk_ids:
                ids_C_K = torch.tensor(r.topk_ids[i : i + POSITION_CHUNK], device=logprobs_C_V.device)
                engine_C_K = torch.tensor(r.topk_logprobs[i : i + POSITION_CHUNK], dtype=torch.float64,
                                          device=logprobs_C_V.device)
                topk_gaps.append(logprobs_C_V.gather(-1, ids_C_K) - engine_C_K)
    metrics = gap_metrics(gaps, threshold, "mismatch/guided")
    topk = gap_metrics(topk_gaps, threshold, "mismatch/teacher_topk")
    return {**metrics, **{k: v for k, v in topk.items() if not k.endswith("frac_above")}}


def group_stats(paired, seqs, distilling: bool) -> dict[str, float]:
    """`frac_reward_zero_std`, `frac_all_wrong`, `guided_share`, `guided_share_all_wrong` of one step
    (see the module docstring); `seqs` are the step's `method.step.Seq`s (distill ones carry
    `meta["problem_id"]`), `distilling` is False when the distillation term is off (coef 0)."""
    guided = {s.meta.get("problem_id") for s in seqs if s.kind == "distill" and s.weight > 0} if distilling else set()
    zero_std, all_wrong = [], []
    for p in paired.problems:
        rewards = [r.reward for r in paired.group(p.id, guided=False)]
        zero_std.append(len(set(rewards)) <= 1)
        all_wrong.append(all(x <= CORRECT_REWARD_THRESHOLD for x in rewards))
    n = max(len(paired.problems), 1)
    m = {"frac_reward_zero_std": sum(zero_std) / n, "frac_all_wrong": sum(all_wrong) / n}
    if any(r.guided for r in paired.rollouts):
        m["guided_share"] = sum(p.id in guided for p in paired.problems) / n
        wrong = [p.id for p, w in zip(paired.problems, all_wrong) if w]
        if wrong:
            m["guided_share_all_wrong"] = sum(i in guided for i in wrong) / len(wrong)
    return m


@dataclass
class SyncCheck:
    """The adapter-sync probe: a fixed prompt and completion, scored by engine and trainer."""

    prompt: str
    completion_ids: list[int]
    tol: float
    previous: torch.Tensor | None = None

    @classmethod
    def for_problem(cls, tokenizer, problem, instruction: str, tol: float) -> "SyncCheck":
        """Probe = the unguided prompt of `problem` and its strong response (else its answer), cut
        to `PROBE_MAX_TOKENS` tokens with EOS last."""
        text = problem.strong_response or problem.answer
        completion = _tokens(tokenizer, text)[: PROBE_MAX_TOKENS - 1] + [tokenizer.eos_token_id]
        return cls(render(tokenizer, unguided_messages(problem, instruction)), completion, tol)

    @torch.no_grad()
    def __call__(self, generator, model, tokenizer, pad_id: int, device, step: int, when: str) -> dict[str, float]:
        """Compare engine and trainer on the probe; raise `EngineSyncError` past `tol`."""
        batch = pack([_tokens(tokenizer, self.prompt)], [self.completion_ids], pad_id).to(device)
        trainer_T = token_logprobs(model, batch)[0][batch.completion_mask_B_T[0].bool()].double().cpu()
        engine_T = torch.tensor(generator.score(self.prompt, self.completion_ids), dtype=torch.float64)
        gap = float((engine_T - trainer_T).abs().mean())
        shift = float((trainer_T - self.previous).abs().mean()) if self.previous is not None else float("nan")
        self.previous = trainer_T
        log.info("step %d: engine sync check after %s: probe gap %.2e (tol %.2e), trainer moved %.2e",
                 step, when, gap, self.tol, shift)
        if not gap <= self.tol:
            raise EngineSyncError(
                f"step {step}: after the adapter {when}, the rollout engine's log-probs of the probe completion differ "
                f"from the trainer's by {gap:.4f} per token (train.sync_check_tol = {self.tol}): the engine is not "
                "serving the trained policy (adapter not delivered, or a stale one). Stopped instead of training on a "
                "stale policy. If the gap is numeric noise (compare mismatch/auto/mean), raise train.sync_check_tol.")
        return {"sync/probe_gap": gap, **({"sync/probe_shift": shift} if shift == shift else {})}
