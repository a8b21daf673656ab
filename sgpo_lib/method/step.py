"""One optimizer step's losses, from rollout records to gradients (sgpo-method.md sections 3-6).

The trainer turns a step's data into `Seq`s of four kinds and this module turns them into
gradients, micro-batch by micro-batch, with *global* normalisers so that the result does not
depend on the micro-batch size:

- `rl`:      an autonomous rollout, clipped surrogate (section 3), normalised by the tokens
             of all `rl` + `off` sequences of the step;
- `off`:     a strong response inside a LUFFY-style mixed group (`luffy` baseline): the shaped
             term `-A pi/(pi+gamma)`, same normaliser as `rl`;
- `sft`:     a strong response for the SFT baseline (and HPT's SFT problems): cross-entropy,
             normalised by the tokens of all `sft` sequences of the step;
- `distill`: a guided rollout for the distillation term (section 4): the student is the
             *unguided* prompt + the guided continuation; the teacher (`pi_old` under the guided
             prompt, no grad) is precomputed once per step (`teacher_states`) as final hidden
             states, or comes from the rollout engine's top-k log-probs (`distill.teacher_source`).
             Its coefficient is `alpha(x) / sum |y~|` over the distilled rollouts, and the loss is
             computed by `chunked_distill`, so `[tokens, vocab]` logits never exist for the whole
             micro-batch.

The step's assembly is pure (no model): `method.plan` builds the sequences (advantages; which
autonomous groups are GRPO, LUFFY-mixed or HPT-SFT); here `select_targets` (which guided rollouts
are distilled, section 4), `token_counts` (the normalisers), `loss_groups` (which sequences go to
which loss, with what coefficient) and `distill_token_coefs`; the losses themselves are
`sgpo_lib.method.losses` and `distill`.

Old log-probs: with one optimizer epoch per rollout batch the policy has not moved, so
`pi_old = pi_theta.detach()` exactly (ratio 1, delta 0); with `ppo_epochs > 1` they are
recomputed once before the first epoch (`old_logprobs`), not taken from the engine, whose
numerics differ. The engine's log-probs are the behaviour policy of `train.rollout_is`: the
`rl` terms (the KL penalty included, when `train.beta > 0`) are multiplied by the truncated
weights `losses.rollout_is_weights(pi_old, engine)`; `none` leaves the loss exactly as it was.
Both are raw log-probs (temperature 1, `sgpo_lib.model.generation`), so the weights correct the
engine's numerics and staleness, not the temperature or top-p the tokens were drawn with.
The distillation term is not reweighted: its per-token KL to the teacher is taken at the
states of the guided rollout, which the engine sampled under the *guided* prompt, so a
correction would need `pi_old(.|guided)/mu(.|guided)`; that gap is measured instead
(`mismatch/guided`, `engine_checks`) and is about 0 when the engine agrees. Each `rl`
sequence keeps its per-token gap `pi_old - engine` in `meta["logprob_gap"]`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..model.policy import SeqBatch, hidden_states, lm_head_weight, pack, token_logprobs
from . import losses
from .distill import DistillSpec, chunked_distill, distill_metrics


@dataclass
class Seq:
    """One training sequence; which fields matter depends on `kind` (see module docstring)."""

    kind: str
    prompt_ids: list[int]
    completion_ids: list[int]
    advantage: float = 0.0
    weight: float = 0.0
    teacher_prompt_ids: list[int] | None = None
    engine_logprobs: list[float] | None = None
    topk_ids: list[list[int]] | None = None
    topk_logprobs: list[list[float]] | None = None
    old_logprobs: torch.Tensor | None = None
    teacher_hidden: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)


class MetricSums:
    """Token-weighted means of per-micro-batch metrics."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}

    def add(self, metrics: dict[str, float], weight: float) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def _pack(seqs: list[Seq], pad_id: int, device, teacher: bool = False) -> SeqBatch:
    prompts = [s.teacher_prompt_ids if teacher else s.prompt_ids for s in seqs]
    return pack(prompts, [s.completion_ids for s in seqs], pad_id).to(device)


def _completion_rows(values_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> list[torch.Tensor]:
    """Per sequence, the values at its completion positions (in order). Each `(n_i, ...)`."""
    return [values_B_T[b][mask_B_T[b].bool()] for b in range(values_B_T.shape[0])]


def micro_batches(seqs: list[Seq], size: int, max_tokens: int | None = None) -> list[list[Seq]]:
    """Consecutive groups of `size` sequences or, with `max_tokens` (`train.micro_batch_tokens`), of
    as many as fit that budget once padded (rows x the longest prompt + completion; a longer
    sequence goes alone)."""
    if max_tokens is None:
        return [seqs[i : i + size] for i in range(0, len(seqs), size)]
    out, longest = [], 0
    for s in seqs:
        n = len(s.prompt_ids) + len(s.completion_ids)
        if out and out[-1] and (len(out[-1]) + 1) * max(longest, n) <= max_tokens:
            out[-1].append(s)
            longest = max(longest, n)
        else:
            out.append([s])
            longest = n
    return out


# ----------------------------------------------------------------------------- pure step assembly
def instance_weights(stats, distill_cfg, alpha: losses.PassGapAlpha, step: int) -> tuple[torch.Tensor, list[dict]]:
    """alpha(x) per problem of `stats` (indexed by problem_id: p_auto, p_guided (NaN: no strategy),
    n_guided_graded), section 5. `pass_gap` updates the state `alpha` on the problems with guided rollouts
    (the others keep theirs and are never distilled); the other weightings are stateless.
    Returns (w_P float64 (P,), the step's `alpha.jsonl` rows `{step, problem_id, alpha, p_auto, p_guided}`).
    """
    d, has_P = distill_cfg, torch.tensor((stats["n_guided_graded"] > 0).values)
    p_auto_P = torch.tensor(stats["p_auto"].values)
    p_guided_P = torch.tensor(stats["p_guided"].fillna(0.0).values)  # NaN = no strategy: never distilled
    if d.weighting != "pass_gap":
        w_P = losses.guidance_weights(p_auto_P, p_guided_P, d.weighting, d.gamma, d.alpha0, d.alpha_max)
    else:
        alpha.update([i for i, h in zip(stats.index, has_P.tolist()) if h], p_auto_P[has_P], p_guided_P[has_P])
        w_P = torch.tensor([alpha.alpha.get(i, d.alpha0) for i in stats.index], dtype=torch.float64)
    rows = [{"step": step, "problem_id": i, "alpha": w, "p_auto": pa, "p_guided": pg if h else None}
            for i, w, pa, pg, h in zip(stats.index, w_P.tolist(), p_auto_P.tolist(), p_guided_P.tolist(), has_P.tolist())]
    return w_P, rows


def is_distill_candidate(reward: float, target: str) -> bool:
    """Whether a guided rollout may be distilled: any with `distill.target: all`, else correct ones."""
    return target == "all" or reward > losses.CORRECT_REWARD_THRESHOLD


def target_score(unguided_logprobs_n: torch.Tensor, mode: str) -> float:
    """`distill.target_score` of a guided completion from its log-probs under the *unguided* prompt
    (pi_old): `mean_logprob` (length-normalised) or `sum_logprob`. Shape: (n,)."""
    total = float(unguided_logprobs_n.double().sum())
    return total / max(unguided_logprobs_n.numel(), 1) if mode == "mean_logprob" else total


def select_targets(problem_ids: list[str], rewards: list[float], scores: Optional[list], target: str) -> list[bool]:
    """Which guided rollouts are distilled (`distill.target`, section 4), over a flat list.

    `all`: every one; `all_correct`: the correct ones; `select_one`: per problem the correct one with
    the highest `scores` (likelihood under the unguided pi_old; the first on ties), none when a
    problem has no correct one. `scores` is only read for `select_one` (None entries are skipped).
    """
    keep = [is_distill_candidate(r, target) for r in rewards]
    if target != "select_one":
        return keep
    best: dict[str, int] = {}
    for i, (pid, ok) in enumerate(zip(problem_ids, keep)):
        if ok and scores[i] is not None and (pid not in best or scores[i] > scores[best[pid]]):
            best[pid] = i
    chosen = set(best.values())
    return [i in chosen for i in range(len(rewards))]


def targets_to_score(seqs: list[Seq]) -> list[Seq]:
    """The `distill` candidates that `select_one` must score: those of problems with more than one
    (a problem with a single candidate has no choice to make)."""
    cand = [s for s in seqs if s.kind == "distill"]
    per_problem = Counter(s.meta["problem_id"] for s in cand)
    return [s for s in cand if per_problem[s.meta["problem_id"]] > 1]


def keep_one_target(seqs: list[Seq], score_of: dict[int, float]) -> list[Seq]:
    """`seqs` with one `distill` sequence per problem (`select_targets` with `select_one`), by
    `score_of[id(seq)]` (unscored candidates: 0, alone in their problem); the others keep their order."""
    cand = [s for s in seqs if s.kind == "distill"]
    keep = select_targets([s.meta["problem_id"] for s in cand], [s.meta["reward"] for s in cand],
                          [score_of.get(id(s), 0.0) for s in cand], "select_one")
    return [s for s in seqs if s.kind != "distill"] + [s for s, k in zip(cand, keep) if k]


def loss_groups(seqs: list[Seq], distill_coef: float, rl_coef: float) -> list[tuple[str, float, list[Seq]]]:
    """`(kind, coefficient, seqs)` per loss: `rl` (with `off`) x `train.rl_coef`, `sft` x 1, `distill` x
    `distill.coef`; a loss with coefficient 0 or no sequences is left out (coef 0 is GRPO exactly,
    rl_coef 0 is distillation only)."""
    groups = [("rl", rl_coef, [s for s in seqs if s.kind in ("rl", "off")]),
              ("sft", 1.0, [s for s in seqs if s.kind == "sft"]),
              ("distill", distill_coef, [s for s in seqs if s.kind == "distill"])]
    return [(kind, coef, group) for kind, coef, group in groups if coef > 0 and group]


def token_counts(seqs: list[Seq]) -> list[float]:
    """This rank's completion tokens per normaliser group `[rl + off, sft, distill]` (summed over ranks
    by the trainer): each loss is a token mean over its group's tokens of the whole step."""
    return [float(sum(len(s.completion_ids) for s in seqs if s.kind in kinds))
            for kinds in (("rl", "off"), ("sft",), ("distill",))]


def distill_token_coefs(weights: list[float], lengths: list[int], num_tokens: float, device=None) -> torch.Tensor:
    """Per-token coefficient `alpha(x) / num_tokens` of each distilled rollout, flattened `(N,)`.

    `num_tokens` counts the tokens of every distilled rollout of the step, whatever its weight (the
    proximal and KL clips are applied later and do not change it).
    """
    return torch.cat([torch.full((n,), w / num_tokens, device=device) for w, n in zip(weights, lengths)])


@torch.no_grad()
def teacher_states(model, seqs: list[Seq], pad_id: int, device, micro: int) -> None:
    """Set `teacher_hidden` `(n_i, H)`: final hidden states under the guided prompt (pi_old)."""
    for mb in micro_batches(seqs, micro):
        batch = _pack(mb, pad_id, device, teacher=True)
        rows = _completion_rows(hidden_states(model, batch), batch.completion_mask_B_T)
        for s, h in zip(mb, rows):
            s.teacher_hidden = h.detach()


@torch.no_grad()
def unguided_logprobs(model, seqs: list[Seq], pad_id: int, device, micro: int) -> list[torch.Tensor]:
    """Per sequence, `(n_i,)` log-probs of its completion under its own (unguided) prompt, no grad."""
    out = []
    for mb in micro_batches(seqs, micro):
        batch = _pack(mb, pad_id, device)
        out += [lp.detach() for lp in _completion_rows(token_logprobs(model, batch), batch.completion_mask_B_T)]
    return out


def select_one_target(model, seqs: list[Seq], pad_id: int, device, micro: int, score_mode: str,
                      keep_old: bool) -> list[Seq]:
    """`distill.target: select_one`: score the candidates under the unguided prompt (pi_old, one
    no-grad pass; kept as their old log-probs when `keep_old`, i.e. the batch takes several
    updates) and keep one per problem (`keep_one_target`)."""
    scored = targets_to_score(seqs)
    lps = unguided_logprobs(model, scored, pad_id, device, micro)
    for s, lp in zip(scored, lps):
        s.old_logprobs = lp if keep_old else None
    return keep_one_target(seqs, {id(s): target_score(lp, score_mode) for s, lp in zip(scored, lps)})


def old_logprobs(model, seqs: list[Seq], pad_id: int, device, micro: int) -> None:
    """Set `old_logprobs` `(n_i,)` of each sequence under its own (unguided) prompt."""
    for s, lp in zip(seqs, unguided_logprobs(model, seqs, pad_id, device, micro)):
        s.old_logprobs = lp


def _laid_out(rows: list, default_B_T: torch.Tensor, mask_B_T: torch.Tensor) -> torch.Tensor:
    """Per-sequence completion values (`old_logprobs`, `engine_logprobs`) laid out like
    `default_B_T`, whose detached values stay where a row is None."""
    out_B_T = default_B_T.detach().clone()
    for b, row in enumerate(rows):
        if row is not None:
            out_B_T[b][mask_B_T[b].bool()] = torch.as_tensor(row, dtype=out_B_T.dtype, device=out_B_T.device)
    return out_B_T


def policy_loss(model, seqs: list[Seq], num_tokens: float, train_cfg, pad_id: int, device, ref_fn=None):
    """RL (`rl`, clipped) and LUFFY off-policy (`off`, shaped) terms of one micro-batch.

    `ref_fn(batch) -> logprobs_B_T` gives the frozen reference when `train.beta > 0`.
    Returns `(loss, metrics, n_tokens)`; the loss is already divided by `num_tokens`.
    """
    batch = _pack(seqs, pad_id, device)
    mask_B_T = batch.completion_mask_B_T
    logprobs_B_T, entropy_B_T = token_logprobs(model, batch, with_entropy=True)
    adv_B = torch.tensor([s.advantage for s in seqs], device=device, dtype=logprobs_B_T.dtype)
    ref_B_T = ref_fn(batch) if ref_fn is not None else None
    old_B_T = _laid_out([s.old_logprobs for s in seqs], logprobs_B_T, mask_B_T)
    rl_terms_B_T, metrics = losses.grpo_token_terms(logprobs_B_T, old_B_T, adv_B, mask_B_T, train_cfg.eps_low,
                                                    train_cfg.eps_high, train_cfg.beta, ref_B_T)
    engine_B_T = _laid_out([s.engine_logprobs for s in seqs], old_B_T, mask_B_T)  # `off`: no engine, weight 1
    is_B_T, is_metrics = losses.rollout_is_weights(old_B_T, engine_B_T, mask_B_T, train_cfg.rollout_is,
                                                   train_cfg.rollout_is_cap)
    if is_B_T is not None:
        rl_terms_B_T = rl_terms_B_T * is_B_T
        metrics.update(is_metrics)
    for s, gap in zip(seqs, _completion_rows(old_B_T - engine_B_T, mask_B_T)):
        if s.engine_logprobs is not None:
            s.meta["logprob_gap"] = gap  # pi_old - engine per token, for engine_checks.gap_metrics
    off_B = torch.tensor([s.kind == "off" for s in seqs], device=device)
    off_terms_B_T = losses.offpolicy_shaped_token_terms(logprobs_B_T, adv_B, train_cfg.luffy_gamma)
    per_token_B_T = torch.where(off_B[:, None], off_terms_B_T, rl_terms_B_T)
    loss = losses.aggregate(per_token_B_T, mask_B_T, num_tokens=num_tokens)
    metrics["entropy_mc"] = float(-(logprobs_B_T.detach() * mask_B_T).sum() / mask_B_T.sum().clamp_min(1))
    rl_mask_B_T = mask_B_T * torch.tensor([s.kind == "rl" for s in seqs], device=device)[:, None]
    if rl_mask_B_T.any():  # mean token entropy of the policy on the autonomous rollouts (section 4's collapse watch)
        metrics["entropy"] = float((entropy_B_T * rl_mask_B_T).sum() / rl_mask_B_T.sum())
    return loss, metrics, float(mask_B_T.sum())


def sft_loss(model, seqs: list[Seq], num_tokens: float, pad_id: int, device):
    """Cross-entropy on strong responses (SFT baseline). Returns `(loss, metrics, n_tokens)`."""
    batch = _pack(seqs, pad_id, device)
    logprobs_B_T = token_logprobs(model, batch)
    loss = losses.aggregate(losses.sft_token_terms(logprobs_B_T), batch.completion_mask_B_T, num_tokens=num_tokens)
    return loss, {"sft/nll": float(loss.detach()) * num_tokens / float(batch.completion_mask_B_T.sum())}, \
        float(batch.completion_mask_B_T.sum())


def distill_loss(model, seqs: list[Seq], num_tokens: float, spec: DistillSpec, chunk_size: int | None,
                 pad_id: int, device, teacher: str = "hidden"):
    """Section-4 term of one micro-batch of guided rollouts, via `chunked_distill`; `teacher` is
    `distill.teacher_source` (hidden | engine | none).

    Returns `(loss, metrics, n_tokens)`; the loss is `sum_t alpha(x) m_t l'_t / num_tokens`.
    """
    batch = _pack(seqs, pad_id, device)
    mask_B_T = batch.completion_mask_B_T.bool()
    student_N_H = hidden_states(model, batch)[mask_B_T]  # (N, H), rows in sequence order
    targets_N = batch.targets_B_T[mask_B_T]
    coef_N = distill_token_coefs([s.weight for s in seqs], [len(s.completion_ids) for s in seqs], num_tokens, device)
    kwargs = {}
    if teacher == "engine":
        kwargs["teacher_topk_ids_N_K"] = torch.cat([torch.tensor(s.topk_ids, device=device) for s in seqs])
        kwargs["teacher_topk_logprobs_N_K"] = torch.cat([torch.tensor(s.topk_logprobs, device=device) for s in seqs])
    elif teacher == "hidden":
        kwargs["teacher_hidden_N_H"] = torch.cat([s.teacher_hidden for s in seqs]).to(student_N_H.dtype)
    if all(s.old_logprobs is not None for s in seqs):
        kwargs["old_logprobs_N"] = torch.cat([s.old_logprobs for s in seqs])
    out = chunked_distill(student_N_H, lm_head_weight(model), targets_N, coef_N, spec=spec,
                          chunk_size=chunk_size, **kwargs)
    metrics = distill_metrics(out, torch.ones_like(coef_N))
    return out.loss, metrics, float(targets_N.numel())
