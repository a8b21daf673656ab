"""The metrics a training step logs about its rollouts (`Trainer._rollout_seqs`)."""

from __future__ import annotations

from ..grading.grader import reason_counts


def rollout_metrics(paired, w_P) -> dict:
    """A step's rollout metrics: rewards (overall and per source), alpha, timings, generated tokens, grade reasons."""
    st = paired.stats
    m = {"reward_auto": float(st["p_auto"].mean()), "w_mean": float(w_P.mean()),
         "generate_s": paired.generate_s, "grade_s": paired.grade_s,
         "gen_tokens": sum(len(r.token_ids) for r in paired.rollouts),
         **reason_counts(r.grade_reason for r in paired.rollouts)}
    if st["n_guided"].sum() > 0:
        m["alpha_mean"] = float(w_P.mean())
        m["reward_guided"] = float(st.loc[st["n_guided"] > 0, "p_guided"].mean())
    for source, g in st.groupby("source"):
        m[f"p_auto/{source}"] = float(g["p_auto"].mean())
        if g["n_guided"].sum() > 0:
            m[f"p_guided/{source}"] = float(g.loc[g["n_guided"] > 0, "p_guided"].mean())
    return m
