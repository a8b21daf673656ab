"""The section-4 distillation loss: proximal constraint, dense and chunked (sgpo-method.md sections 4, 6).

The proximal constraint is a detached per-token factor on the distillation term, from
`delta_t = log p_theta(y_t) - log p_old(y_t)` (both unguided): `ratio_clip` drops the token (factor 0)
once `|delta_t| > log(1 + eps_kl)`, `is_clip` (SDPO) uses `min(exp(delta_t), c)`, `none` is 1.
KL clipping (the paper's proximal constraint, form ours): `l'_t` from `l_t` and its entries by
`distill.kl_clip_mode` at threshold `distill.kl_clip` (`token_min` `min(l_t, delta)`, the default;
`token_mask`, `token_scale`, `entry_clamp`: `distill_terms`' docstring) on the KL estimators
(`full`, `topk`); `sampled` (direct SFT on the guided rollout, an NLL rather than a KL) is never
KL-clipped, so it stays SFT.

`distill_dense` is the plain-autograd version on materialised logits: per-token entries
(`distill_terms.DISTILL_TERMS`), KL clip, proximal factor (`proximal_factor`) and the weighted sum
`s * sum_t coef_t * m_t * l'_t`, where `s` is 1 except for `token_mask` (`n / n_kept`: the masked
tokens leave the normaliser). `chunked_distill` computes the same loss and the same gradients
without ever holding `[N, V]` logits: a `torch.autograd.Function` in the style of Liger's fused
linear cross-entropy. Its forward, for each chunk of tokens, computes the student logits
`h_c @ W^T` (and the teacher's, from the teacher hidden states, without grad), runs
`distill_dense`'s rows (without `s`) on the chunk, and immediately takes the gradient wrt the chunk's logits with
`torch.autograd.grad`; it turns that into `grad_h_c = g_c @ W` and accumulates
`grad_W += g_c^T @ h_c`; `s` needs every chunk's clip, so it scales the sums at the end. Backward
only scales the stored gradients by `grad_output`.

Departures: the teacher shares `lm_head_weight` with the student (same model, guided prompt)
and is treated as constant, so no gradient reaches `teacher_hidden_N_H`; double backward is not
supported; loss arithmetic runs in at least float32 whatever the hidden dtype, and `grad_W` is
accumulated in at least float32 before being cast back to W's dtype. `token_mask`'s `n / n_kept`
counts the tokens of one call: the step's normaliser exactly when its distilled rollouts fit in one
micro-batch (the toy's `select_one`: at most `train.batch_problems` rollouts), else per micro-batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import torch

from ..model.policy import default_chunk_size
from .distill_terms import KL_CLIPS, KlClip, TeacherDist, distill_term, kl_clip, mask_normaliser_scale
from .losses import aggregate


class ProximalFactor(NamedTuple):
    """Detached per-token factor on the distillation term, and which tokens it clipped."""

    factor_N: torch.Tensor
    clipped_N: torch.Tensor


def proximal_none(delta_N, eps_kl: float, is_clip_cap: float) -> ProximalFactor:
    """`distill.proximal = none`: factor 1 everywhere."""
    return ProximalFactor(torch.ones_like(delta_N), torch.zeros_like(delta_N, dtype=torch.bool))


def proximal_ratio_clip(delta_N, eps_kl: float, is_clip_cap: float) -> ProximalFactor:
    """`distill.proximal = ratio_clip`: drop the token (factor 0) once `|delta| > log(1 + eps_kl)`."""
    clipped_N = delta_N.detach().abs() > math.log1p(eps_kl)
    return ProximalFactor((~clipped_N).to(delta_N.dtype), clipped_N)


def proximal_is_clip(delta_N, eps_kl: float, is_clip_cap: float) -> ProximalFactor:
    """`distill.proximal = is_clip` (SDPO): factor `min(exp(delta), is_clip_cap)`, detached."""
    weight_N = delta_N.detach().exp()
    return ProximalFactor(weight_N.clamp_max(is_clip_cap), weight_N > is_clip_cap)


PROXIMAL_FACTORS: dict[str, Callable[..., ProximalFactor]] = {
    "none": proximal_none,
    "ratio_clip": proximal_ratio_clip,
    "is_clip": proximal_is_clip,
}


def proximal_factor(delta_N, mode: str, eps_kl: float, is_clip_cap: float) -> ProximalFactor:
    """Per-token proximal factor, `delta = log p_theta(y_t) - log p_old(y_t)` (both unguided).

    Shapes: delta_N (N,) (any shape works); returns factor_N and clipped_N of the same shape.
    """
    if mode not in PROXIMAL_FACTORS:
        raise ValueError(f"distill.proximal={mode!r} is not defined; choose one of {sorted(PROXIMAL_FACTORS)}")
    return PROXIMAL_FACTORS[mode](delta_N, eps_kl, is_clip_cap)


@dataclass(frozen=True)
class DistillSpec:
    """The `distill.*` choices that shape the per-token term.

    `estimator`: full | topk | sampled; `direction`: forward (KL(q||p)) | reverse (KL(p||q));
    `proximal`: ratio_clip | is_clip | none, with `eps_kl` (ratio_clip threshold `log(1 + eps_kl)`)
    and `is_clip_cap` (the cap `c` of `is_clip`); `topk`: K when the teacher top-k is computed from
    teacher logits (not needed when the rollout engine's top-k is passed in); `kl_clip`: the KL
    clipping threshold delta (None = off); `kl_clip_mode`: its form (`distill_terms.KL_CLIPS`).
    """

    estimator: str = "full"
    direction: str = "forward"
    proximal: str = "none"
    eps_kl: float = 0.2
    is_clip_cap: float = 2.0
    topk: Optional[int] = None
    kl_clip: Optional[float] = None
    kl_clip_mode: str = "token_min"

    @classmethod
    def from_config(cls, d) -> "DistillSpec":
        """From a `DistillConfig` (`distill.*`, read duck-typed); `topk` only where the teacher's top-k
        is computed here (`teacher_source: hidden` with `estimator: topk`)."""
        return cls(d.estimator, d.direction, d.proximal, d.eps_kl, d.is_clip_cap,
                   d.topk if d.teacher_source == "hidden" and d.estimator == "topk" else None, d.kl_clip, d.kl_clip_mode)

    def __post_init__(self):
        distill_term(self.estimator, self.direction)
        if self.proximal not in PROXIMAL_FACTORS:
            raise ValueError(f"distill.proximal={self.proximal!r} is not defined; "
                             f"choose one of {sorted(PROXIMAL_FACTORS)}")
        if self.topk is not None and self.topk < 1:
            raise ValueError(f"distill.topk must be >= 1, got {self.topk}")
        if self.kl_clip is not None and self.kl_clip <= 0:
            raise ValueError(f"distill.kl_clip must be > 0 or None, got {self.kl_clip}")
        if self.kl_clip_mode not in KL_CLIPS:
            raise ValueError(f"distill.kl_clip_mode={self.kl_clip_mode!r} is not defined; choose one of {list(KL_CLIPS)}")

    def clip(self, entries_N_E, per_token_N) -> KlClip:
        """The KL clip of the KL estimators (`l'_t` and which tokens it clipped); `sampled` is never clipped.

        Shapes: entries_N_E (N, E), per_token_N (N,) their sum; returns KlClip of (N,).
        """
        return kl_clip(entries_N_E, per_token_N, self.kl_clip_mode, None if self.estimator == "sampled" else self.kl_clip)

    def normaliser_scale(self, kl_clipped_N) -> float:
        """The factor `s` on the loss: `n / n_kept` for `token_mask`, else 1 (`distill_terms.mask_normaliser_scale`)."""
        return mask_normaliser_scale(kl_clipped_N, self.kl_clip_mode)


class DistillOutput(NamedTuple):
    """`loss` = `s * sum_t token_coef_t * factor_t * l'_t` (differentiable); the rest detached, (N,).

    `per_token_N` is `l_t` before the KL clip and the proximal factor; `student_logprobs_N` is
    `log p_theta(y_t)`; `factor_N` the proximal factor; `clipped_N` which tokens it clipped;
    `kl_clipped_N` which tokens the KL clip clipped; `kl_term_N` is `l'_t`, the term after the KL
    clip (`token_mask`: 0 on the masked tokens, before the normaliser factor `s`).
    """

    loss: torch.Tensor
    per_token_N: torch.Tensor
    student_logprobs_N: torch.Tensor
    factor_N: torch.Tensor
    clipped_N: torch.Tensor
    kl_clipped_N: torch.Tensor
    kl_term_N: torch.Tensor


def distill_dense(student_logits_N_V, target_ids_N, token_coef_N, teacher: TeacherDist, spec: DistillSpec,
                  old_logprobs_N=None) -> DistillOutput:
    """Distillation loss on materialised student logits (plain autograd).

    `old_logprobs_N` is `log p_old(y_t)` under the unguided prompt; None means the policy has
    not moved since the rollout (delta = 0, the proximal factor is 1).

    Shapes:
        student_logits_N_V: (N, V); target_ids_N: (N,) int64; token_coef_N, old_logprobs_N: (N,);
        teacher: full (N, V) or top-k (N, K). Returns DistillOutput (loss 0-dim, the rest (N,)).
    """
    out = _distill_rows(student_logits_N_V, target_ids_N, token_coef_N, teacher, spec, old_logprobs_N)
    return out._replace(loss=out.loss * spec.normaliser_scale(out.kl_clipped_N))


def _distill_rows(student_logits_N_V, target_ids_N, token_coef_N, teacher, spec, old_logprobs_N) -> DistillOutput:
    """`distill_dense` before the normaliser factor `s` (which needs every row's clip): loss `sum_t coef_t m_t l'_t`."""
    compute_dtype = torch.promote_types(student_logits_N_V.dtype, torch.float32)
    student_lp_N_V = torch.log_softmax(student_logits_N_V.to(compute_dtype), dim=-1)
    token_lp_N = student_lp_N_V.gather(-1, target_ids_N[:, None]).squeeze(-1)
    entries_N_E = distill_term(spec.estimator, spec.direction)(student_lp_N_V, teacher, target_ids_N)
    per_token_N = entries_N_E.sum(-1)
    clip = spec.clip(entries_N_E, per_token_N)
    delta_N = token_lp_N.detach() - (token_lp_N.detach() if old_logprobs_N is None else old_logprobs_N)
    prox = proximal_factor(delta_N, spec.proximal, spec.eps_kl, spec.is_clip_cap)
    loss = (token_coef_N.to(compute_dtype) * prox.factor_N * clip.term_N).sum()
    return DistillOutput(loss, per_token_N.detach(), token_lp_N.detach(), prox.factor_N, prox.clipped_N,
                         clip.clipped_N, clip.term_N.detach())


def _linear(hidden_N_H, weight_V_H, bias_V):
    return torch.nn.functional.linear(hidden_N_H, weight_V_H, bias_V)


def _teacher_rows(spec, teacher_hidden_N_H, topk_ids_N_K, topk_logprobs_N_K, weight_V_H, bias_V, rows, dtype):
    """The teacher of one chunk: from the engine's top-k, from teacher hidden states, or none."""
    if spec.estimator == "sampled":
        return TeacherDist()
    if spec.estimator == "topk" and topk_ids_N_K is not None:
        return TeacherDist(topk_ids_N_K=topk_ids_N_K[rows], topk_logprobs_N_K=topk_logprobs_N_K[rows].to(dtype))
    logits_N_V = _linear(teacher_hidden_N_H[rows], weight_V_H, bias_V).to(dtype)
    return TeacherDist.from_logits(logits_N_V, topk=spec.topk if spec.estimator == "topk" else None)


class _ChunkedDistill(torch.autograd.Function):
    """Forward computes the loss and all gradients chunk by chunk; backward rescales them."""

    @staticmethod
    def forward(ctx, hidden_N_H, weight_V_H, bias_V, teacher_hidden_N_H, topk_ids_N_K, topk_logprobs_N_K,
                target_ids_N, token_coef_N, old_logprobs_N, spec, chunk_size, need_grad):
        n_tokens, compute_dtype = hidden_N_H.shape[0], torch.promote_types(hidden_N_H.dtype, torch.float32)
        acc_dtype = torch.promote_types(weight_V_H.dtype, torch.float32)
        zeros = lambda t, dtype: torch.zeros(t.shape, dtype=dtype, device=t.device)  # noqa: E731
        grads = [zeros(hidden_N_H, hidden_N_H.dtype) if need_grad else None,
                 zeros(weight_V_H, acc_dtype) if need_grad and weight_V_H.requires_grad else None,
                 zeros(bias_V, acc_dtype) if need_grad and bias_V is not None and bias_V.requires_grad else None]
        # outputs are preallocated: no small tensors interleaved with the chunk buffers (heap fragmentation)
        outputs = [zeros(target_ids_N, compute_dtype) for _ in range(6)]
        outputs[3], outputs[4] = outputs[3].bool(), outputs[4].bool()
        for start in range(0, n_tokens, chunk_size):
            rows = slice(start, min(start + chunk_size, n_tokens))
            logits_c_V = _linear(hidden_N_H[rows], weight_V_H, bias_V).to(compute_dtype).requires_grad_(need_grad)
            teacher = _teacher_rows(spec, teacher_hidden_N_H, topk_ids_N_K, topk_logprobs_N_K,
                                    weight_V_H, bias_V, rows, compute_dtype)
            old_c = None if old_logprobs_N is None else old_logprobs_N[rows]
            with torch.enable_grad():
                out = _distill_rows(logits_c_V, target_ids_N[rows], token_coef_N[rows], teacher, spec, old_c)
            if need_grad:
                (g_logits_c_V,) = torch.autograd.grad(out.loss, logits_c_V)
                _accumulate_chunk_grads(grads, g_logits_c_V, hidden_N_H, weight_V_H, rows)
            outputs[0][rows] = out.per_token_N  # l_t; the loss is s * sum_t coef_t * factor_t * l'_t
            for dst, src in zip(outputs[1:], out[2:]):
                dst[rows] = src
        scale = spec.normaliser_scale(outputs[4])
        for g in grads:
            if g is not None and scale != 1.0:
                g.mul_(scale)
        loss = (token_coef_N.to(compute_dtype) * outputs[2] * outputs[5]).sum() * scale
        params = (hidden_N_H, weight_V_H, bias_V)
        ctx.save_for_backward(*(None if g is None else g.to(p.dtype) for g, p in zip(grads, params)))
        ctx.mark_non_differentiable(*outputs)
        return (loss, *outputs)

    @staticmethod
    def backward(ctx, grad_loss, *unused_grads):
        if bool(grad_loss == 1.0):  # the usual case: no rescaled copy of grad_W (one host sync)
            return tuple(ctx.saved_tensors) + (None,) * 9
        scale = lambda g: None if g is None else g * grad_loss.to(g.dtype)  # noqa: E731
        return tuple(scale(g) for g in ctx.saved_tensors) + (None,) * 9


def _accumulate_chunk_grads(grads, g_logits_c_V, hidden_N_H, weight_V_H, rows):
    """From the chunk's logit gradient: grad_h[rows] = g @ W, grad_W += g^T @ h, grad_b += sum_rows g."""
    grad_hidden_N_H, grad_weight_V_H, grad_bias_V = grads
    g_c_V = g_logits_c_V.to(hidden_N_H.dtype)
    grad_hidden_N_H[rows] = g_c_V @ weight_V_H.to(hidden_N_H.dtype)
    if grad_weight_V_H is not None and grad_weight_V_H.dtype == g_c_V.dtype:
        grad_weight_V_H.addmm_(g_c_V.t(), hidden_N_H[rows])  # in place: no (V, H) temporary per chunk
    elif grad_weight_V_H is not None:  # low-precision W: the float32 accumulator needs a cast
        grad_weight_V_H += (g_c_V.t() @ hidden_N_H[rows]).to(grad_weight_V_H.dtype)
    if grad_bias_V is not None:
        grad_bias_V += g_logits_c_V.sum(0)


def _check_inputs(spec, hidden_N_H, target_ids_N, token_coef_N, teacher_hidden_N_H, topk_ids_N_K, topk_logprobs_N_K):
    if hidden_N_H.dim() != 2:
        raise ValueError(f"chunked_distill: student_hidden_N_H must be (N, H), got {tuple(hidden_N_H.shape)}; "
                         "flatten (B, T, H) and keep the positions that predict target_ids_N")
    n_tokens = hidden_N_H.shape[0]
    for name, t in (("target_ids_N", target_ids_N), ("token_coef_N", token_coef_N),
                    ("teacher_hidden_N_H", teacher_hidden_N_H), ("teacher_topk_ids_N_K", topk_ids_N_K)):
        if t is not None and t.shape[0] != n_tokens:
            raise ValueError(f"chunked_distill: {name} has {t.shape[0]} rows, student_hidden_N_H has {n_tokens}")
    if (topk_ids_N_K is None) != (topk_logprobs_N_K is None):
        raise ValueError("chunked_distill: pass both teacher_topk_ids_N_K and teacher_topk_logprobs_N_K, or neither")
    if spec.estimator == "full" and teacher_hidden_N_H is None:
        raise ValueError("distill.estimator='full' needs teacher_hidden_N_H")
    if spec.estimator == "topk" and topk_ids_N_K is None and (teacher_hidden_N_H is None or spec.topk is None):
        raise ValueError("distill.estimator='topk' needs the engine's teacher top-k, "
                         "or teacher_hidden_N_H with distill.topk")


def chunked_distill(student_hidden_N_H, lm_head_weight_V_H, target_ids_N, token_coef_N, *, spec: DistillSpec,
                    teacher_hidden_N_H=None, teacher_topk_ids_N_K=None, teacher_topk_logprobs_N_K=None,
                    old_logprobs_N=None, lm_head_bias_V=None, chunk_size: Optional[int] = None) -> DistillOutput:
    """Distillation loss `s * sum_t token_coef_t * m_t * l'_t` without materialising `[N, V]` logits.

    Equal (values and gradients wrt `student_hidden_N_H`, `lm_head_weight_V_H`, `lm_head_bias_V`)
    to `distill_dense` on `student_hidden_N_H @ W^T + b`. `token_coef_N` is the section-6
    coefficient (`method.step.distill_token_coefs`, flattened). No gradient reaches the teacher or W when
    W does not require grad (frozen lm_head under LoRA).

    Shapes:
        student_hidden_N_H, teacher_hidden_N_H: (N, H) hidden states before the lm_head, at the
        positions that predict target_ids_N (N,); lm_head_weight_V_H: (V, H); lm_head_bias_V: (V,);
        token_coef_N, old_logprobs_N: (N,); teacher_topk_ids_N_K / _logprobs_N_K: (N, K).
        Returns DistillOutput (loss 0-dim, the rest (N,)).
    """
    _check_inputs(spec, student_hidden_N_H, target_ids_N, token_coef_N, teacher_hidden_N_H,
                  teacher_topk_ids_N_K, teacher_topk_logprobs_N_K)
    chunk_size = chunk_size or default_chunk_size(lm_head_weight_V_H.shape[0], lm_head_weight_V_H.device)
    need_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (student_hidden_N_H, lm_head_weight_V_H, lm_head_bias_V))
    detach = lambda t: None if t is None else t.detach()  # noqa: E731
    outputs = _ChunkedDistill.apply(
        student_hidden_N_H, lm_head_weight_V_H, lm_head_bias_V, detach(teacher_hidden_N_H),
        teacher_topk_ids_N_K, detach(teacher_topk_logprobs_N_K), target_ids_N, detach(token_coef_N),
        detach(old_logprobs_N), spec, chunk_size, need_grad)
    return DistillOutput(*outputs)


def distill_metrics(out: DistillOutput, token_mask_N) -> dict[str, float]:
    """Metrics of one distillation call, as masked token means (e.g. mask = token_coef_N > 0).

    `distill/term` mean l_t (KL, or NLL for `sampled`); `distill/proximal_clip_frac` the fraction
    of tokens the proximal constraint clipped or dropped; `distill/proximal_factor` the mean factor;
    `distill/kl_clip_frac` the fraction of tokens the KL clip clipped (`distill.kl_clip_mode`);
    `distill/kl_negative_frac` the fraction it made negative (`l'_t < 0 <= l_t`: only `entry_clamp` can).
    """
    mask_N = token_mask_N.to(torch.float64)
    mean = lambda x: float(aggregate(x.double()[None], mask_N[None]))  # noqa: E731
    return {
        "distill/term": mean(out.per_token_N),
        "distill/proximal_clip_frac": mean(out.clipped_N),
        "distill/proximal_factor": mean(out.factor_N),
        "distill/kl_clip_frac": mean(out.kl_clipped_N),
        "distill/kl_negative_frac": mean((out.kl_term_N < 0) & (out.per_token_N >= 0)),
    }
