"""SGPO loss terms as pure tensor functions (sgpo-method.md sections 3-6 and the baselines).

Every function takes tensors (log-probs, logits, masks, advantages, weights), never a model,
and returns *per-token* terms; `aggregate` does the reduction (verl's `agg_loss`).
Signs, in words:

- GRPO (section 3): per-token `-min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)` (+ beta * k3 KL
  to a frozen reference), so minimising the loss raises the probability of positive-advantage
  tokens.
- Instance weights (section 5): the stateless `guidance_weights` (`pass_gap_stateless` among
  them) and the per-problem pass-gap state `PassGapAlpha` (the checkpoint holds it).
- Baselines: SFT cross-entropy and the LUFFY-style off-policy shaped term `-A * pi/(pi+gamma)`.
- Rollout importance sampling (`rollout_is_weights`): truncated weights `pi_old / mu` for the
  gap between the rollout engine `mu` and the trainer's `pi_old`, multiplied into the GRPO term.

Departures from the textbook, all deliberate and visible:
- `group_advantages` divides by the *population* std (correction 0, as Dr. GRPO/verl's
  `torch.std(unbiased=False)` would), so a group of one gives 0, not NaN.
- No hidden clamps on log-ratios (verl clamps them to +-20 silently); every clip reports a
  fraction in the metrics.
The distillation terms (section 4: forward/reverse KL, its estimators and the KL clip forms) are
in `distill_terms.py`; the proximal constraint and the assembled distillation loss, dense and
memory-bounded chunked, in `distill.py`.
"""

from __future__ import annotations

from typing import Callable

import torch

ADV_STD_EPS = 1e-6  # added to the group std before dividing (train.scale_rewards)
MIN_NORMALISER = 1.0  # token/sequence counts are clamped to at least this (empty batches give 0)
CORRECT_REWARD_THRESHOLD = 0.5  # rewards are in {0, 1}; a reward above this counts as correct


# ----------------------------------------------------------------------------- reduction
def aggregate(per_token_B_T, mask_B_T, mode: str = "token_mean", num_tokens=None, num_sequences=None):
    """Reduce per-token terms to a scalar.

    `token_mean`: `sum(per_token * mask) / num_tokens`, `num_tokens` defaulting to `mask.sum()`.
    Pass the *global* token count of the optimizer batch as `num_tokens` when micro-batching:
    the sum over micro-batches then equals the full-batch token mean exactly (values and grads).
    `seq_mean_token_mean`: mean over sequences (those with at least one token) of each
    sequence's token mean; `num_sequences` plays the role of `num_tokens`.

    Shapes:
        per_token_B_T: (B, T); mask_B_T: (B, T) bool or {0, 1}; returns a 0-dim tensor.
    """
    mask_B_T = mask_B_T.to(per_token_B_T.dtype)
    masked_B_T = per_token_B_T * mask_B_T
    if mode == "token_mean":
        if num_sequences is not None:
            raise ValueError("aggregate: num_sequences is for mode='seq_mean_token_mean'; use num_tokens")
        denom = mask_B_T.sum().clamp_min(MIN_NORMALISER) if num_tokens is None else num_tokens
        return masked_B_T.sum() / denom
    if mode == "seq_mean_token_mean":
        if num_tokens is not None:
            raise ValueError("aggregate: num_tokens is for mode='token_mean'; use num_sequences")
        lengths_B = mask_B_T.sum(-1)
        seq_means_B = masked_B_T.sum(-1) / lengths_B.clamp_min(MIN_NORMALISER)
        denom = (lengths_B > 0).sum().clamp_min(MIN_NORMALISER) if num_sequences is None else num_sequences
        return seq_means_B.sum() / denom
    raise ValueError(f"aggregate: unknown mode {mode!r}; expected 'token_mean' or 'seq_mean_token_mean'")


def _masked_mean(values, mask) -> float:
    """Float mean of `values` over `mask` (0.0 when the mask is empty), for metrics."""
    return float(aggregate(values.detach().double(), mask))


# ----------------------------------------------------------------------------- section 3: GRPO
def group_advantages(rewards_P_G, scale_rewards: bool, eps: float = ADV_STD_EPS):
    """Group-relative advantages `A_j = r_j - mean_j(r)`, optionally `/ (std_j(r) + eps)`.

    The std is the population std (see module docstring).

    Shapes:
        rewards_P_G: (P, G); returns advantages_P_G: (P, G).

    Example:
        >>> import torch
        >>> group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), scale_rewards=False)
        tensor([[ 0.5000, -0.5000, -0.5000,  0.5000]])
    """
    centred_P_G = rewards_P_G - rewards_P_G.mean(dim=-1, keepdim=True)
    if not scale_rewards:
        return centred_P_G
    return centred_P_G / (rewards_P_G.std(dim=-1, correction=0, keepdim=True) + eps)


def grpo_token_terms(
    logprobs_B_T,
    old_logprobs_B_T,
    advantages_B,
    mask_B_T,
    eps_low: float,
    eps_high: float,
    beta: float = 0.0,
    ref_logprobs_B_T=None,
):
    """Per-token clipped surrogate with asymmetric clip, plus `beta * k3` KL to a reference.

    `rho = exp(logp - logp_old)`; term `= -min(rho*A, clip(rho, 1-eps_low, 1+eps_high)*A)
    + beta * (exp(ref - logp) - (ref - logp) - 1)` (k3, an unbiased estimate of KL(pi || ref)).
    Metrics (masked token means): `rl/clip_frac_low` (rho < 1-eps_low with A < 0: the clip is
    active), `rl/clip_frac_high` (rho > 1+eps_high with A > 0), `rl/ratio_mean`, `rl/kl` (when
    a reference is given).

    Shapes:
        logprobs_B_T, old_logprobs_B_T, ref_logprobs_B_T, mask_B_T: (B, T); advantages_B: (B,).
        Returns (per_token_B_T, metrics: dict[str, float]).
    """
    if beta != 0.0 and ref_logprobs_B_T is None:
        raise ValueError("grpo_token_terms: train.beta != 0 needs ref_logprobs_B_T")
    adv_B_1 = advantages_B.to(logprobs_B_T.dtype)[:, None]
    ratio_B_T = torch.exp(logprobs_B_T - old_logprobs_B_T)
    clipped_B_T = ratio_B_T.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token_B_T = -torch.minimum(ratio_B_T * adv_B_1, clipped_B_T * adv_B_1)
    metrics = {
        "rl/clip_frac_low": _masked_mean(((ratio_B_T < 1.0 - eps_low) & (adv_B_1 < 0)).double(), mask_B_T),
        "rl/clip_frac_high": _masked_mean(((ratio_B_T > 1.0 + eps_high) & (adv_B_1 > 0)).double(), mask_B_T),
        "rl/ratio_mean": _masked_mean(ratio_B_T, mask_B_T),
    }
    if ref_logprobs_B_T is not None:
        log_ref_ratio_B_T = ref_logprobs_B_T - logprobs_B_T
        k3_B_T = torch.exp(log_ref_ratio_B_T) - log_ref_ratio_B_T - 1.0
        metrics["rl/kl"] = _masked_mean(k3_B_T, mask_B_T)
        if beta != 0.0:
            per_token_B_T = per_token_B_T + beta * k3_B_T
    return per_token_B_T, metrics


ROLLOUT_IS_MODES = ("none", "token_truncate", "sequence_mask")


def rollout_is_weights(old_logprobs_B_T, engine_logprobs_B_T, mask_B_T, mode: str, cap: float):
    """Truncated importance weights for the engine-vs-trainer mismatch (`train.rollout_is`).

    The rollouts were sampled by the engine (behaviour `mu`, its log-probs `engine_logprobs`),
    the loss assumes `pi_old` (the trainer's numerics, `old_logprobs`); `r_t = exp(old_t - engine_t)`.
    `token_truncate` (verl's token-level TIS): `w_t = min(r_t, cap)`. `sequence_mask` (TRL's):
    `r = exp(sum_t m_t (old_t - engine_t))` per sequence, `w_t = r` if `r <= cap` else 0 for the
    whole sequence. `none` returns None (the caller then leaves the loss untouched).
    Metrics: `rollout_is/weight_mean` (kept tokens' mean weight), `rollout_is/frac_capped`
    (tokens truncated or masked).

    Shapes: all (B, T); returns (weights_B_T detached or None, metrics: dict[str, float]).
    """
    if mode == "none":
        return None, {}
    if mode not in ROLLOUT_IS_MODES:
        raise ValueError(f"train.rollout_is={mode!r} is not defined; choose one of {list(ROLLOUT_IS_MODES)}")
    mask_B_T = mask_B_T.to(old_logprobs_B_T.dtype)
    log_ratio_B_T = (old_logprobs_B_T - engine_logprobs_B_T).detach() * mask_B_T
    if mode == "token_truncate":
        ratio_B_T = log_ratio_B_T.exp()
        capped_B_T = ratio_B_T > cap
        weights_B_T = ratio_B_T.clamp(max=cap)
    else:
        log_seq_B_1 = log_ratio_B_T.sum(-1, keepdim=True)
        capped_B_T = (log_seq_B_1 > torch.log(torch.tensor(cap, dtype=log_seq_B_1.dtype))).expand_as(mask_B_T)
        weights_B_T = torch.where(capped_B_T, torch.zeros_like(log_seq_B_1), log_seq_B_1.exp()).expand_as(mask_B_T)
    metrics = {"rollout_is/weight_mean": _masked_mean(weights_B_T, mask_B_T),
               "rollout_is/frac_capped": _masked_mean(capped_B_T.double(), mask_B_T)}
    return weights_B_T, metrics


# ----------------------------------------------------------------------------- baselines
def sft_token_terms(logprobs_B_T):
    """Cross-entropy per token, `-log p(y_t)` (SFT on the strong responses).

    Shapes:
        logprobs_B_T: (B, T) student log-probs of the target tokens; returns (B, T).
    """
    return -logprobs_B_T


def offpolicy_shaped_token_terms(logprobs_B_T, advantages_B, gamma: float):
    """LUFFY-style off-policy term `-A * pi / (pi + gamma)`, `pi = exp(logp)`, no clipping.

    The gradient flows through `pi`: d/dlogp of `pi/(pi+gamma)` is `gamma*pi/(pi+gamma)^2`,
    which damps tokens the policy already finds likely. Advantages come from the *mixed*
    group (autonomous + off-policy responses; `group_advantages` over the concatenation).

    Shapes:
        logprobs_B_T: (B, T); advantages_B: (B,); returns per_token_B_T: (B, T).
    """
    pi_B_T = torch.exp(logprobs_B_T)
    return -advantages_B.to(logprobs_B_T.dtype)[:, None] * pi_B_T / (pi_B_T + gamma)


# ----------------------------------------------------------------------------- section 5: instance weights
def _weights_failure(p_auto_P, p_guided_P, gamma: float, alpha0: float, alpha_max: float):
    return (1.0 - p_auto_P) ** gamma * (p_guided_P > 0).to(p_auto_P.dtype)


def _weights_gap(p_auto_P, p_guided_P, gamma: float, alpha0: float, alpha_max: float):
    return (p_guided_P - p_auto_P).clamp_min(0.0)


def _weights_constant(p_auto_P, p_guided_P, gamma: float, alpha0: float, alpha_max: float):
    return torch.full_like(p_auto_P, alpha0)


def pass_gap_step(alpha_P, p_auto_P, p_guided_P, gamma: float, alpha_max: float):
    """One visit of the pass-gap rule (section 5, formula ours): `alpha + gamma` capped at `alpha_max`
    when `p_guided > p_auto` (the strategy helped), else `alpha - gamma` floored at 0.

    Shapes: all (P,); returns the new alpha_P.

    Example:
        >>> import torch
        >>> pass_gap_step(torch.tensor([0.5, 0.5, 0.75]), torch.tensor([0.0, 0.5, 0.0]),
        ...               torch.tensor([0.5, 0.5, 1.0]), 0.1, 0.8)
        tensor([0.6000, 0.4000, 0.8000])
    """
    up_P = p_guided_P > p_auto_P
    return torch.where(up_P, (alpha_P + gamma).clamp_max(alpha_max), (alpha_P - gamma).clamp_min(0.0))


def _weights_pass_gap(p_auto_P, p_guided_P, gamma: float, alpha0: float, alpha_max: float):
    return pass_gap_step(torch.full_like(p_auto_P, alpha0), p_auto_P, p_guided_P, gamma, alpha_max)


def _weights_pass_gap_stateless(p_auto_P, p_guided_P, gamma: float, alpha0: float, alpha_max: float):
    return (alpha0 + p_guided_P - p_auto_P).clamp(0.0, alpha_max)


GUIDANCE_WEIGHTS: dict[str, Callable] = {
    "pass_gap": _weights_pass_gap,
    "pass_gap_stateless": _weights_pass_gap_stateless,
    "failure": _weights_failure,
    "gap": _weights_gap,
    "constant": _weights_constant,
}


def guidance_weights(p_auto_P, p_guided_P, mode: str = "failure", gamma: float = 1.0, alpha0: float = 0.5,
                     alpha_max: float = 0.8):
    """Instance weight `w(x)` (`distill.weighting`) of a problem seen once (stateless).

    failure: `(1 - p_auto)^gamma * 1[p_guided > 0]`; gap: `max(0, p_guided - p_auto)`;
    constant: `alpha0`; pass_gap: one `pass_gap_step` from `alpha0` (a first visit; the trainer
    keeps the per-problem state in `PassGapAlpha`); pass_gap_stateless (ours): the same pass gap
    read afresh at every visit, no state, `clip(alpha0 + p_guided - p_auto, 0, alpha_max)` (it
    starts where pass_gap starts, shares its ceiling, and moves with the size of the gap).

    Shapes:
        p_auto_P, p_guided_P: (P,) success rates in [0, 1]; returns w_P: (P,), detached.

    Example:
        >>> import torch
        >>> guidance_weights(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.0, 1.0]), "failure", 2.0)
        tensor([1., 0., 0.])
    """
    if mode not in GUIDANCE_WEIGHTS:
        raise ValueError(f"distill.weighting={mode!r} is not defined; choose one of {sorted(GUIDANCE_WEIGHTS)}")
    p_auto_P = p_auto_P.detach().to(torch.promote_types(p_auto_P.dtype, torch.float32))
    return GUIDANCE_WEIGHTS[mode](p_auto_P, p_guided_P.detach().to(p_auto_P.dtype), gamma, alpha0, alpha_max)


class PassGapAlpha:
    """The per-problem pass-gap state `problem_id -> alpha` (section 5); every problem starts at `alpha0`.

    `update` applies one `pass_gap_step` per visited problem and returns the new alphas;
    `state_dict`/`load_state_dict` carry it through checkpoints (plain floats).
    """

    def __init__(self, alpha0: float, gamma: float, alpha_max: float):
        self.alpha0, self.gamma, self.alpha_max = alpha0, gamma, alpha_max
        self.alpha: dict[str, float] = {}

    def update(self, problem_ids: list[str], p_auto_P, p_guided_P) -> list[float]:
        """Shapes: p_auto_P, p_guided_P (P,) float64; returns the P new alphas."""
        old_P = torch.tensor([self.alpha.get(i, self.alpha0) for i in problem_ids], dtype=torch.float64)
        new = pass_gap_step(old_P, p_auto_P.double(), p_guided_P.double(), self.gamma, self.alpha_max).tolist()
        self.alpha.update(zip(problem_ids, new))
        return new

    def state_dict(self) -> dict[str, float]:
        return dict(self.alpha)

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.alpha = dict(state)
