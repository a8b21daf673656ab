"""Where the signal lands (sgpo-method.md §4, "why selective"): per-token KL(q‖p) against SFT's push.

On a guided rollout ỹ of problem x with strategy s, the distillation term of token t is
`KL(q_t ‖ p_t)` with q_t = π(· | prompt(x, s), ỹ_<t) (the student under the guided prompt) and
p_t = π(· | prompt(x), ỹ_<t) (the same student, unguided prompt, same completion tokens). Its
gradient vanishes where the strategy did not change the distribution, so the KL should sit on a
few tokens. SFT on the same tokens (`−log p_t(ỹ_t)`, the paper's "direct SFT" ablation) pushes
every token, with a per-token gradient norm w.r.t. the logits of `‖softmax(logits_p) − onehot(ỹ_t)‖₂`.
`top_share` measures how concentrated each is: the share of the total carried by the top 10% of
tokens (0.1 for a flat signal, 1.0 when one token in ten carries everything).

The numeric functions are pure (any float dtype, float64 reference tests); `measure` runs a
student (base, or a trained run's `final` folder) over a few guided rollouts per family of
notebook 02's `paired_rollouts.jsonl` and writes `signal.json`, which the report reads.
"""

from __future__ import annotations

import logging
import math

import pandas as pd
import torch

log = logging.getLogger(__name__)

SIGNAL_FILE = "signal.json"
TOP_FRACTION = 0.1


def token_kl(teacher_logits_T_V: torch.Tensor, student_logits_T_V: torch.Tensor) -> torch.Tensor:
    """KL(q_t ‖ p_t) per token, q = softmax(teacher logits) (guided), p = softmax(student logits)
    (unguided), in nats. Shapes: logits `(T, V)` -> `(T,)`.

    Example:
        >>> token_kl(torch.zeros(2, 3), torch.zeros(2, 3)).tolist()
        [0.0, 0.0]
    """
    log_q, log_p = teacher_logits_T_V.log_softmax(-1), student_logits_T_V.log_softmax(-1)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


def sft_grad_norm(student_logits_T_V: torch.Tensor, targets_T: torch.Tensor) -> torch.Tensor:
    """‖∇_logits (−log p_t(y_t))‖₂ = ‖softmax(logits_t) − onehot(y_t)‖₂ per token. Shapes: logits
    `(T, V)`, targets `(T,)` -> `(T,)`."""
    grad_T_V = student_logits_T_V.softmax(-1)
    grad_T_V = grad_T_V - torch.nn.functional.one_hot(targets_T, grad_T_V.shape[-1]).to(grad_T_V.dtype)
    return grad_T_V.norm(dim=-1)


def top_share(values_T: torch.Tensor, fraction: float = TOP_FRACTION) -> float:
    """Share of `values_T.sum()` carried by its largest `ceil(fraction · T)` entries (values >= 0);
    NaN for an empty or all-zero input.

    Example:
        >>> top_share(torch.tensor([9.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        0.9
    """
    total = float(values_T.sum())
    if values_T.numel() == 0 or total <= 0:
        return math.nan
    k = math.ceil(fraction * values_T.numel())
    return float(values_T.topk(k).values.sum()) / total


def completion_logits(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """Logits that predict each completion token after `prompt_ids`, float32, no grad. Shape `(T, V)`."""
    from ..model.policy import hidden_states, lm_head_weight, pack

    batch = pack([prompt_ids], [completion_ids], pad_id=0).to(lm_head_weight(model).device)
    with torch.no_grad():
        hidden_T_H = hidden_states(model, batch)[0][batch.completion_mask_B_T[0].bool()]  # (T, H)
        return (hidden_T_H @ lm_head_weight(model).T).float()


def rollout_signal(model, tok, guided_prompt: str, unguided_prompt: str, completion_ids: list[int]) -> dict:
    """Per-token KL(q‖p) and SFT gradient norm of one guided rollout, its decoded tokens and the top-10% shares."""
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    q_T_V = completion_logits(model, ids(guided_prompt), completion_ids)
    p_T_V = completion_logits(model, ids(unguided_prompt), completion_ids)
    kl_T = token_kl(q_T_V, p_T_V).clamp_min(0.0)  # rounding can give -1e-9
    sft_T = sft_grad_norm(p_T_V, torch.tensor(completion_ids, device=p_T_V.device))
    return {"tokens": [tok.decode([t]) for t in completion_ids], "kl": kl_T.tolist(), "sft_grad": sft_T.tolist(),
            "kl_top_share": top_share(kl_T), "sft_top_share": top_share(sft_T)}


def pick_rollouts(rollouts, problems: dict, per_source: int) -> list:
    """Up to `per_source` guided rollouts per family / benchmark, one per problem, correct ones first."""
    chosen, count, seen = [], {}, set()
    for r in sorted((r for r in rollouts if r.guided and r.token_ids), key=lambda r: -r.reward):
        source = problems[r.problem_id].source
        if r.problem_id not in seen and count.get(source, 0) < per_source:
            chosen.append(r)
            seen.add(r.problem_id)
            count[source] = count.get(source, 0) + 1
    return sorted(chosen, key=lambda r: (problems[r.problem_id].source, r.problem_id))


def summary(rows: list[dict]) -> pd.DataFrame:
    """One row per rollout: family, problem, reward, tokens, share of the total KL on its top 10% of
    tokens vs the share of SFT's gradient norm on its own top 10%, and their mean over rollouts."""
    table = pd.DataFrame([{"source": r["source"], "problem_id": r["problem_id"], "reward": r["reward"],
                           "tokens": len(r["tokens"]), "KL top-10% share": r["kl_top_share"],
                           "SFT grad top-10% share": r["sft_top_share"]} for r in rows])
    if len(table):
        table.loc[len(table)] = {"source": "mean", **table[["KL top-10% share", "SFT grad top-10% share"]].mean()}
    return table
