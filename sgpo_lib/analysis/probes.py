"""Probe cells of notebooks 02-04: a stage's core function on a tiny hand-made input.

Each function turns plain literals (the notebook shows them) into the records the library works on
and runs the real function on them, so a reader can change a number and see what happens:
`paired` (§2, `rollouts.paired_stats` on hand-made reward groups), `kl_vs_sft` (§4, the
per-token KL(q‖p) of the distillation term beside SFT's per-token gradient norm, `kl_signal.py`),
`runs_frame` (a results frame of hand-made accuracies, for `results.ablation_table`).
"""

from __future__ import annotations

import pandas as pd
import torch

from ..core.records import Problem, Rollout
from ..method.rollouts import paired_stats
from . import kl_signal


def paired(groups: dict[str, tuple[list[float], list[float]]], source: str = "toy/probe") -> pd.DataFrame:
    """`paired_stats` of hand-made groups `{problem id: (autonomous rewards, guided rewards)}`.

    Example:
        >>> paired({"x": ([0, 0, 1, 0], [1, 1, 0, 1])})[["p_auto", "p_guided"]].values.tolist()
        [[0.25, 0.75]]
    """
    problems = [Problem(pid, "hand-made", "0", source, "train", "exact") for pid in groups]
    rollouts = [Rollout(pid, guided, [], [], "", reward=float(r))
                for pid, (auto, guided_rewards) in groups.items()
                for guided, rewards in ((False, auto), (True, guided_rewards)) for r in rewards]
    return paired_stats(problems, rollouts)


def kl_vs_sft(teacher: list[list[float]], student: list[list[float]], targets: list[int]) -> pd.DataFrame:
    """Per token of a hand-made completion: the guided (teacher) and unguided (student) next-token
    probabilities, KL(q‖p) and the SFT gradient norm ‖p − onehot(y)‖ (float64).

    Example:
        >>> kl_vs_sft([[0.5, 0.5]], [[0.5, 0.5]], [0])[["KL(q||p)", "SFT grad norm"]].round(3).values.tolist()
        [[0.0, 0.707]]
    """
    q, p = torch.tensor(teacher, dtype=torch.float64), torch.tensor(student, dtype=torch.float64)
    return pd.DataFrame({"q (guided)": teacher, "p (unguided)": student, "target": targets,
                         "KL(q||p)": kl_signal.token_kl(q.log(), p.log()).tolist(),
                         "SFT grad norm": kl_signal.sft_grad_norm(p.log(), torch.tensor(targets)).tolist()})


def runs_frame(accuracies: dict[str, list[float]], method: str = "sgpo") -> pd.DataFrame:
    """A `results.collect`-shaped frame of finished runs: `{label: [test macro accuracy per seed]}`
    (seed = position), final phase, `train.method` = `method`.

    Example:
        >>> runs_frame({"a": [0.5, 0.6]})[["label", "seed", "avg@k"]].values.tolist()
        [['a', 0, 0.5], ['a', 1, 0.6]]
    """
    return pd.DataFrame([{"run": f"{label}_seed={s}", "label": label, "status": "done", "train.method": method, "seed": s,
                          "phase": "final", "split": "test", "source": "macro", "avg@k": acc, "greedy": acc}
                         for label, accs in accuracies.items() for s, acc in enumerate(accs)])
