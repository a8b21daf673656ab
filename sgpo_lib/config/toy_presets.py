"""The toy presets of `python -m sgpo_lib.toy` and the toy tests: the world, student and pretrain
sections of `params/toy-<name>.yaml`, so each preset is written once, in its params file."""

from __future__ import annotations

from ..core.paths import PARAMS_DIR
from ..toy.config import PretrainConfig, StudentConfig, ToyWorldConfig
from .run import load_config


def toy_preset(name: str) -> tuple[ToyWorldConfig, StudentConfig, PretrainConfig]:
    """The (world, student, pretrain) sections of `params/toy-<name>.yaml`: `smoke` (CI: the default
    student in well under a minute on two cores; the premise need not hold strongly) or `demo` (all
    three sizes in a few minutes; the premise holds for the default student)."""
    known = sorted(p.stem.removeprefix("toy-") for p in PARAMS_DIR.glob("toy-*.yaml"))
    if name not in known:
        raise KeyError(f"unknown toy preset {name!r}; known: {known}")
    cfg = load_config(PARAMS_DIR / f"toy-{name}.yaml")
    return cfg.world, cfg.student, cfg.pretrain
