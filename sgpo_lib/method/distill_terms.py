"""The section-4 distillation terms and the KL clip forms, as pure tensor functions (sgpo-method.md section 4).

Terms, in words: `KL(q || p)` with q = the guided teacher (stop-grad) and p = the unguided student
("forward"); `direction="reverse"` is `KL(p || q)`. Estimators: `full` (exact over V), `topk`
(teacher top-k + one tail bucket), `sampled` (`-log p(y_t)`, SFT on the guided rollout). Each
returns the *entries* of its sum `(N, E)` (one per vocabulary item or bucket; `sampled` one), so
that a clip can act on them; the per-token term is `l_t = sum_e entries_t,e`.

KL clip forms (`distill.kl_clip_mode`, threshold delta = `distill.kl_clip`; the paper's form is
unknown, sgpo-method.md marks it [ours]; the default `token_min` follows the method notes):
- `token_min`: `l'_t = min(l_t, delta)`; a token past delta has zero gradient (verl's
  `loss_max_clamp` caps the summed per-token loss the same way).
- `token_mask`: tokens with `l_t > delta` leave the sum *and* the normaliser: the kept tokens'
  loss is rescaled by `n / n_kept` over the tokens of the call (`mask_normaliser_scale`), so one
  call over a step's distilled tokens gives `sum_kept alpha l_t / n_kept`.
- `token_scale`: `l'_t = l_t * min(1, delta / sg(l_t))`: the value of `token_min`, but the
  gradient keeps its direction with its size capped at `delta / l_t` of the unclipped one (the
  CISPO-style form).
- `entry_clamp`: each entry (`q_v (log q_v - log p_v)` forward, `p_v (log p_v - log q_v)` reverse;
  top-k: each bucket) is clamped at delta before the sum (OPSD's form). Entries can be negative,
  so a clamped token's `l'_t` can be negative although `l_t >= 0` (`distill/kl_negative_frac`).
A token counts as clipped (`kl_clip_frac`) when `l_t > delta` (token forms) or when one of its
entries is above delta (`entry_clamp`).

Departures from the textbook, all deliberate and visible:
- `sampled` returns `-log p(y_t)`; as a KL estimate it lacks the teacher's `log q(y_t)`, which
  has no gradient, so gradients are those of the one-sample forward-KL estimate. It is never
  KL-clipped (`distill.DistillSpec`), so it stays SFT.
- `topk` computes the student tail bucket as a log-sum-exp over the non-top-k log-probs (the
  same quantity as `log(1 - sum_k p_k)`, without cancellation). The teacher's tail mass is
  `1 - sum_k q_k` clamped at 0; the reverse direction floors it at `TAIL_MASS_FLOOR`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

TAIL_MASS_FLOOR = 1e-12  # reverse top-k: floor on the teacher tail mass inside the log


# ----------------------------------------------------------------------------- teacher and per-entry terms
@dataclass(frozen=True)
class TeacherDist:
    """The teacher `q_t` of one batch of tokens: full log-probs, or top-k ids + log-probs.

    Top-k ids must be distinct within a row (no padding): they define the K buckets.

    Shapes:
        logprobs_N_V: (N, V); topk_ids_N_K: (N, K) int64; topk_logprobs_N_K: (N, K).
    """

    logprobs_N_V: Optional[torch.Tensor] = None
    topk_ids_N_K: Optional[torch.Tensor] = None
    topk_logprobs_N_K: Optional[torch.Tensor] = None

    @staticmethod
    def from_logits(teacher_logits_N_V, topk: Optional[int] = None) -> "TeacherDist":
        """Teacher from logits (no grad); with `topk`, keep only the top-k log-probs."""
        logprobs_N_V = torch.log_softmax(teacher_logits_N_V.detach(), dim=-1)
        if topk is None:
            return TeacherDist(logprobs_N_V=logprobs_N_V)
        values_N_K, ids_N_K = logprobs_N_V.topk(topk, dim=-1)
        return TeacherDist(topk_ids_N_K=ids_N_K, topk_logprobs_N_K=values_N_K)

    def need_full(self):
        if self.logprobs_N_V is None:
            raise ValueError("distill.estimator='full' needs the teacher's full log-probs (teacher logits/hidden)")
        return self.logprobs_N_V.detach()

    def need_topk(self):
        if self.topk_ids_N_K is None or self.topk_logprobs_N_K is None:
            raise ValueError("distill.estimator='topk' needs teacher top-k ids and log-probs (or distill.topk)")
        return self.topk_ids_N_K, self.topk_logprobs_N_K.detach()


def forward_kl_full(student_logprobs_N_V, teacher: TeacherDist, target_ids_N=None):
    """Entries of `KL(q || p) = sum_v q(v) (log q(v) - log p(v))`, exact over the vocabulary.

    The gradient of their sum wrt the student logits is `p - q`: zero wherever the strategy did
    not change the distribution. Shapes: student_logprobs_N_V (N, V); returns entries (N, V).
    """
    teacher_lp_N_V = teacher.need_full()
    return teacher_lp_N_V.exp() * (teacher_lp_N_V - student_logprobs_N_V)


def reverse_kl_full(student_logprobs_N_V, teacher: TeacherDist, target_ids_N=None):
    """Entries of `KL(p || q) = sum_v p(v) (log p(v) - log q(v))`, exact (reverse-KL ablation).

    Shapes: student_logprobs_N_V (N, V); returns entries (N, V).
    """
    teacher_lp_N_V = teacher.need_full()
    return student_logprobs_N_V.exp() * (student_logprobs_N_V - teacher_lp_N_V)


def _topk_buckets(student_logprobs_N_V, teacher: TeacherDist):
    """Log-probs of the K+1 buckets (teacher top-k ids + tail) for teacher and student.

    Returns (teacher_lp_N_K, teacher_tail_N, student_lp_N_K, student_tail_lp_N or None when K = V).
    The student tail is a log-sum-exp over the non-top-k entries; the teacher tail is a mass.
    """
    ids_N_K, teacher_lp_N_K = teacher.need_topk()
    student_lp_N_K = student_logprobs_N_V.gather(-1, ids_N_K)
    teacher_tail_N = (1.0 - teacher_lp_N_K.exp().sum(-1)).clamp_min(0.0)
    if ids_N_K.shape[-1] == student_logprobs_N_V.shape[-1]:
        return teacher_lp_N_K, teacher_tail_N, student_lp_N_K, None
    in_topk_N_V = torch.zeros_like(student_logprobs_N_V, dtype=torch.bool).scatter_(-1, ids_N_K, True)
    rest_N_V = student_logprobs_N_V.masked_fill(in_topk_N_V, torch.finfo(student_logprobs_N_V.dtype).min)
    return teacher_lp_N_K, teacher_tail_N, student_lp_N_K, torch.logsumexp(rest_N_V, dim=-1)


def _with_tail(head_N_K, tail_N):
    """The K head entries, then the tail bucket's entry: (N, K+1)."""
    return torch.cat([head_N_K, tail_N[:, None]], dim=-1)


def forward_kl_topk(student_logprobs_N_V, teacher: TeacherDist, target_ids_N=None):
    """Entries of `KL(q || p)` over K+1 buckets: the teacher's top-k ids and one tail bucket.

    `q_tail = 1 - sum_k q_k`, `p_tail = 1 - sum_k p(id_k)`. With K = V it equals `full`.
    Shapes: student_logprobs_N_V (N, V); teacher top-k (N, K); returns entries (N, K+1) ((N, K) when K = V).
    """
    teacher_lp_N_K, q_tail_N, student_lp_N_K, p_tail_lp_N = _topk_buckets(student_logprobs_N_V, teacher)
    head_N_K = teacher_lp_N_K.exp() * (teacher_lp_N_K - student_lp_N_K)
    if p_tail_lp_N is None:
        return head_N_K
    return _with_tail(head_N_K, torch.xlogy(q_tail_N, q_tail_N) - q_tail_N * p_tail_lp_N)


def reverse_kl_topk(student_logprobs_N_V, teacher: TeacherDist, target_ids_N=None):
    """Entries of `KL(p || q)` over the same K+1 buckets as `forward_kl_topk`.

    The teacher tail mass is floored at `TAIL_MASS_FLOOR` inside the log.
    Shapes: student_logprobs_N_V (N, V); teacher top-k (N, K); returns entries (N, K+1) ((N, K) when K = V).
    """
    teacher_lp_N_K, q_tail_N, student_lp_N_K, p_tail_lp_N = _topk_buckets(student_logprobs_N_V, teacher)
    head_N_K = student_lp_N_K.exp() * (student_lp_N_K - teacher_lp_N_K)
    if p_tail_lp_N is None:
        return head_N_K
    return _with_tail(head_N_K, p_tail_lp_N.exp() * (p_tail_lp_N - q_tail_N.clamp_min(TAIL_MASS_FLOOR).log()))


def sampled_nll(student_logprobs_N_V, teacher: TeacherDist, target_ids_N=None):
    """`-log p(y_t)` on the guided rollout's own tokens (the one-sample forward-KL estimate, SFT), one entry.

    Shapes: student_logprobs_N_V (N, V); target_ids_N (N,); returns entries (N, 1).
    """
    if target_ids_N is None:
        raise ValueError("distill.estimator='sampled' needs target_ids_N (the guided rollout's tokens)")
    return -student_logprobs_N_V.gather(-1, target_ids_N[..., None])


# each term: (student_logprobs_N_V, teacher: TeacherDist, target_ids_N) -> entries_N_E, whose sum over E is l_t
DistillTerm = Callable[..., torch.Tensor]
DISTILL_TERMS: dict[tuple[str, str], DistillTerm] = {
    ("full", "forward"): forward_kl_full,
    ("full", "reverse"): reverse_kl_full,
    ("topk", "forward"): forward_kl_topk,
    ("topk", "reverse"): reverse_kl_topk,
    ("sampled", "forward"): sampled_nll,
}


def distill_term(estimator: str, direction: str) -> DistillTerm:
    """The per-entry function for `distill.estimator` x `distill.direction`: its entries `(N, E)`
    sum to the per-token term `l_t` (`entry_clamp` clamps them before the sum, `distill.py`)."""
    try:
        return DISTILL_TERMS[(estimator, direction)]
    except KeyError:
        raise ValueError(
            f"distill.estimator={estimator!r} with distill.direction={direction!r} is not defined; "
            f"choose one of {sorted(DISTILL_TERMS)}"
        ) from None


# ----------------------------------------------------------------------------- KL clip forms
class KlClip(NamedTuple):
    """`term_N`: `l'_t` after the clip (differentiable); `clipped_N`: which tokens it clipped (bool, detached)."""

    term_N: torch.Tensor
    clipped_N: torch.Tensor


def clip_token_min(entries_N_E, per_token_N, delta: float) -> KlClip:
    """`min(l_t, delta)`: zero gradient past delta."""
    return KlClip(per_token_N.clamp_max(delta), per_token_N.detach() > delta)


def clip_token_mask(entries_N_E, per_token_N, delta: float) -> KlClip:
    """`l_t` where `l_t <= delta`, else 0 (the normaliser: `mask_normaliser_scale`)."""
    clipped_N = per_token_N.detach() > delta
    return KlClip(per_token_N.masked_fill(clipped_N, 0.0), clipped_N)


def clip_token_scale(entries_N_E, per_token_N, delta: float) -> KlClip:
    """`l_t * min(1, delta / sg(l_t))`: the value `min(l_t, delta)`, the gradient scaled, not zeroed."""
    clipped_N = per_token_N.detach() > delta
    return KlClip(per_token_N * torch.where(clipped_N, delta / per_token_N.detach(), 1.0), clipped_N)


def clip_entry_clamp(entries_N_E, per_token_N, delta: float) -> KlClip:
    """`sum_e min(entry_e, delta)` (OPSD): clipped when one entry is above delta."""
    return KlClip(entries_N_E.clamp_max(delta).sum(-1), (entries_N_E.detach() > delta).any(-1))


KL_CLIPS: dict[str, Callable[..., KlClip]] = {
    "token_min": clip_token_min,
    "token_mask": clip_token_mask,
    "token_scale": clip_token_scale,
    "entry_clamp": clip_entry_clamp,
}


def kl_clip(entries_N_E, per_token_N, mode: str, delta: Optional[float]) -> KlClip:
    """The KL clip `distill.kl_clip_mode` at threshold `delta` (None: no clip, `l'_t = l_t`).

    Shapes: entries_N_E (N, E) with `per_token_N = entries_N_E.sum(-1)` (N,); returns KlClip of (N,).
    """
    if mode not in KL_CLIPS:
        raise ValueError(f"distill.kl_clip_mode={mode!r} is not defined; choose one of {list(KL_CLIPS)}")
    if delta is None:
        return KlClip(per_token_N, torch.zeros_like(per_token_N, dtype=torch.bool))
    return KL_CLIPS[mode](entries_N_E, per_token_N, delta)


def mask_normaliser_scale(clipped_N, mode: str) -> float:
    """`n / n_kept` for `token_mask` (the masked tokens leave the normaliser), else 1. `n` counts the
    call's tokens: with the step's distilled tokens in one call, the loss is `sum_kept alpha l_t / n_kept`;
    over several micro-batches, each rescales by its own kept share.

    Shapes: clipped_N (N,) bool.
    """
    if mode != "token_mask":
        return 1.0
    return clipped_N.numel() / max(int((~clipped_N).sum()), 1)
