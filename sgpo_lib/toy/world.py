"""Generate the toy world's splits (train / held-out test / OOD) from a seed (toy-world.md, point 1).

Every split of every family has its own random stream, derived from `(seed, family, split)`
by a stable hash, so adding a family or changing one split's size leaves the others as they
were. Test and OOD problems are drawn first; train (and the student's pretraining stream,
`sample_instances`) skip any problem text already in test or OOD, so the splits are disjoint.
Each problem's strong response is written in the style of one of its family's strategies,
drawn per problem; `meta` records the family, that strategy and the instance parameters.
"""

from __future__ import annotations

import hashlib
import random

from ..core.records import Problem
from .config import ToyWorldConfig
from .families import Family, get_family
from .wording import strategy_id

SPLITS = ("train", "test", "ood")
MAX_TRIES_PER_PROBLEM = 1000


def stable_seed(*parts) -> int:
    """A 64-bit seed from `parts` that does not change between Python processes."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def make_problem(family: Family, inst: dict, split: str, index: int, key: str, skip_rate: float) -> Problem:
    """The `Problem` record of one instance; its strong response uses strategy `key` and skips
    each line with probability `skip_rate` (`ToyWorldConfig.strong_skip_rate`)."""
    text = family.text(inst)
    return Problem(
        id=f"toy-{family.name}-{split}-{index:05d}",
        problem=text,
        answer=family.answer(inst),
        source=f"toy/{family.name}",
        split=split,
        answer_kind="exact",
        strong_response=family.strong(inst, key, skip_rate),
        meta={"problem_type": family.name, "family": family.name, "analog": family.analog,
              "strategy": key, "strategy_id": strategy_id(family.name, key), "params": inst},
    )


def sample_instances(family: Family, rng: random.Random, n: int, ood: bool, exclude: set[str]):
    """`n` distinct instances whose texts are not in `exclude` (which grows with them)."""
    out = []
    for _ in range(n * MAX_TRIES_PER_PROBLEM):
        if len(out) == n:
            return out
        inst = family.sample(rng, ood)
        text = family.text(inst)
        if text not in exclude:
            exclude.add(text)
            out.append(inst)
    if len(out) < n:
        raise ValueError(f"toy family {family.name!r}: only {len(out)} distinct problems for {n} requested")
    return out


def _split_problems(family: Family, split: str, n: int, seed: int, exclude: set[str], skip_rate: float) -> list[Problem]:
    rng = random.Random(stable_seed(seed, family.name, split))
    insts = sample_instances(family, rng, n, split == "ood", exclude)
    return [make_problem(family, inst, split, i, rng.choice(family.strategy_keys), skip_rate)
            for i, inst in enumerate(insts)]


def held_out_texts(cfg: ToyWorldConfig, seed: int) -> set[str]:
    """Problem texts of the test and OOD splits (what pretraining must never show)."""
    world = generate_world(cfg, seed)
    return {p.problem for split in ("test", "ood") for p in world[split]}


def generate_world(cfg: ToyWorldConfig, seed: int) -> dict[str, list[Problem]]:
    """The toy world: `{"train": [...], "test": [...], "ood": [...]}` of `Problem`s.

    Problems are grouped by family in `cfg.families` order inside each split.
    """
    sizes = {"train": cfg.n_train, "test": cfg.n_test, "ood": cfg.n_ood}
    world: dict[str, list[Problem]] = {s: [] for s in SPLITS}
    for name in cfg.families:
        family, seen = get_family(name), set()
        for split in ("test", "ood", "train"):  # held-out splits first: train skips their texts
            world[split].extend(_split_problems(family, split, sizes[split], seed, seen, cfg.strong_skip_rate))
    return world
