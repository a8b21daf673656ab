"""Which problems a training step and an evaluation see: stateless, derived from `(seed, step)`.

Batches are epoch-wise permutations of the training problems, each drawn from a generator seeded
by `(seed, epoch)` (conventions.md point 13), so a resumed run redraws exactly the batches an
uninterrupted run would have; evaluation takes the first problems of each (split, source).
"""

from __future__ import annotations

import numpy as np

from ..core.records import Problem
from ..core.seeding import derive_seed


def batch_for_step(problems: list[Problem], seed: int, step: int, size: int) -> list[Problem]:
    """The step's problems: epoch-wise permutations derived from `(seed, epoch)`, no state.

    Example:
        >>> ps = [Problem(str(i), "q", "a", "s", "train") for i in range(5)]
        >>> [p.id for p in batch_for_step(ps, 0, 1, 2)] == [p.id for p in batch_for_step(ps, 0, 1, 2)]
        True
    """
    out = []
    for i in range((step - 1) * size, step * size):
        epoch, pos = divmod(i, len(problems))
        order = np.random.default_rng(derive_seed(seed, "epoch", epoch)).permutation(len(problems))
        out.append(problems[order[pos]])
    return out


def eval_subset(problems: list[Problem], splits: tuple[str, ...], per_benchmark: int | None) -> list[Problem]:
    """The first `per_benchmark` problems of each (split, source) among `splits` (all if None)."""
    taken: dict[tuple[str, str], int] = {}
    out = []
    for p in problems:
        key = (p.split, p.source)
        if p.split in splits and (per_benchmark is None or taken.get(key, 0) < per_benchmark):
            taken[key] = taken.get(key, 0) + 1
            out.append(p)
    return out
