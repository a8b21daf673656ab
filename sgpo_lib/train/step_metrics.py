"""The logged metrics of one training step that come from its sequences and its clock (pure).

`Trainer.train_step` adds them to the rollout and loss metrics: the engine-vs-trainer gap of the
autonomous rollouts (`mismatch/auto/*`), the distilled sequences, the learning rate, and the
phases' seconds and throughputs.
"""

from __future__ import annotations

from .engine_checks import gap_metrics


def step_metrics(metrics: dict, seqs: list, clock: list[float], train_cfg, lr: float) -> dict:
    """`metrics` updated in place and returned; `clock` is (start, sampled, scored, done) in seconds."""
    t0, t1, t2, t3 = clock
    distill = [s for s in seqs if s.kind == "distill"]
    metrics.update(gap_metrics([s.meta["logprob_gap"] for s in seqs if "logprob_gap" in s.meta],
                               train_cfg.mismatch_threshold, "mismatch/auto"))
    n_train = sum(len(s.completion_ids) for s in seqs) * train_cfg.ppo_epochs
    metrics.update(teacher_s=t2 - t1, train_s=t3 - t2, step_s=t3 - t0, lr=lr, n_distill_seqs=len(distill),
                   distill_tokens=sum(len(s.completion_ids) for s in distill),
                   train_tokens_per_s=n_train / max(t3 - t2, 1e-9))
    if "gen_tokens" in metrics:
        metrics["gen_tokens_per_s"] = metrics["gen_tokens"] / max(metrics["generate_s"], 1e-9)
    return metrics
