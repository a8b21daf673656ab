"""The `experiment:` section: which runs notebooks 03-05 make (sgpo-method.md §6, §7, §9).

`methods` x `seeds` is the main table; `ablations` are the paper's ablations by name, each a set of
dotted overrides of SGPO (§7; e.g. "w/o proximal constraints" sets two keys), run with
`ablation_seeds` (default: the main table's seeds, so each ablation compares with the same SGPO
runs); `unknowns` are the rows of the study of the choices the paper leaves open (notebook 06,
`analysis.unknowns`), in the same shape and with the same seeds; `scaling_*` the study over toy
student sizes. In a params file `ablations` is a list (so a
child file replaces its parent's, where a mapping would be deep-merged into it) of one-entry
mappings `- <name>: {dotted.key: value}`, or of legacy `dotted.key=value` strings (each its own
name); both are normalised to the first shape, held in read-only hashable mappings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..core.checks import ConfigError, check
from ..toy.config import SIZES
from .yaml12 import parse_assignment

# train.method values (sgpo-method.md sections 3-6): `sft_grpo` trains like `grpo` (it differs
# only in its starting checkpoint, the SFT warm-up). `TrainConfig.method` is this Literal.
Method = Literal["sgpo", "grpo", "sft", "sft_grpo", "hpt", "luffy"]
METHODS: tuple[str, ...] = get_args(Method)
WARMUP_METHODS = ("sft_grpo", "sgpo")  # the methods that start from the SFT warm-up checkpoint (§6)
ABLATIONS_HELP = ("write each entry as '- <name>: {dotted.key: value, ...}' (e.g. '- w/o KL clipping: "
                  "{distill.kl_clip: null}') or as one 'dotted.key=value' string (its own name)")


class FrozenDict(dict):
    """A read-only dict that hashes, so a config holding one stays frozen and hashable; it prints,
    dumps (YAML, JSON) and pickles as a plain dict."""

    def __hash__(self):
        return hash(tuple(self.items()))

    def __reduce__(self):
        return type(self), (dict(self),)

    def _read_only(self, *args, **kwargs):
        raise TypeError("a config mapping is read-only; use dotted overrides to change it")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = _read_only


def ablation_entry(entry: Any, where: str) -> dict[str, dict[str, Any]]:
    """One `experiment.ablations` entry as `{name: {dotted.key: value}}`: a mapping of one name to
    its overrides (sgpo-method.md §7; an ablation may need several), or a legacy `key=value` string,
    which is its own name. Raises ConfigError naming `where` and the accepted shapes.

    Example:
        >>> ablation_entry("distill.coef=0", "x"), ablation_entry({"reverse KL": {"distill.direction": "reverse"}}, "x")
        ({'distill.coef=0': {'distill.coef': 0}}, {'reverse KL': {'distill.direction': 'reverse'}})
    """
    if isinstance(entry, str) and "=" in entry:
        key, value = parse_assignment(entry)
        return FrozenDict({entry: FrozenDict({key: value})})
    if isinstance(entry, dict) and len(entry) == 1:
        (name, overrides), = entry.items()
        ok = (isinstance(name, str) and name.strip() and isinstance(overrides, dict) and overrides
              and all(isinstance(k, str) and k.strip() for k in overrides))
        if ok:
            return FrozenDict({name: FrozenDict({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})})
    raise ConfigError(f"key '{where}': {entry!r} is not an ablation; {ABLATIONS_HELP}")


@dataclass(frozen=True)
class ExperimentConfig:
    methods: tuple[str, ...] = ("sft", "grpo", "luffy", "sgpo")
    seeds: tuple[int, ...] = (0,)
    # entries `{name: {dotted.key: value}}` (or legacy 'key=value' strings), see `ablation_entry`
    ablations: tuple[Any, ...] = ("distill.estimator=sampled", "distill.direction=reverse",
                                  "distill.weighting=constant", "distill.proximal=none", "distill.coef=0")
    ablation_seeds: tuple[int, ...] | None = None  # None: the main table's seeds
    # the study of the paper's unknowns (notebook 06): entries shaped as `ablations`, run with `ablation_seeds`
    unknowns: tuple[Any, ...] = ()
    scaling_sizes: tuple[str, ...] = ()
    scaling_methods: tuple[str, ...] = ("grpo", "sgpo")
    scaling_seeds: tuple[int, ...] = (0,)
    parallel: int = 1
    gpus_per_run: int = 1
    reuse_finished_runs: bool = True  # copy a finished twin from another run folder (`workflow.twins`)

    def __post_init__(self):
        bad = [m for m in self.methods + self.scaling_methods if m not in METHODS]
        check(not bad, "experiment.methods", f"unknown methods {bad}; choose from {', '.join(METHODS)}")
        check(len(self.methods) > 0, "experiment.methods", f"must name at least one method ({', '.join(METHODS)})")
        unknown = [z for z in self.scaling_sizes if z not in SIZES]
        check(not unknown, "experiment.scaling_sizes", f"unknown sizes {unknown}; choose from {sorted(SIZES)}")
        for key in ("ablations", "unknowns"):
            entries = tuple(ablation_entry(a, f"experiment.{key}[{i}]") for i, a in enumerate(getattr(self, key)))
            names = [n for e in entries for n in e]
            twice = sorted({n for n in names if names.count(n) > 1})
            check(not twice, f"experiment.{key}", f"names {twice} appear twice; give each row its own name")
            object.__setattr__(self, key, entries)  # frozen: the one normalised shape, set before anyone reads it
        ablations = {n: o for e in self.ablations for n, o in e.items()}
        clash = sorted(n for e in self.unknowns for n, o in e.items() if n in ablations and ablations[n] != o)
        check(not clash, "experiment.unknowns", f"rows {clash} are also ablations with other overrides; rename them")
        check(len(self.seeds) > 0 and self.parallel >= 1, "experiment.seeds", "need >= 1 seed and parallel >= 1")
        check(self.gpus_per_run >= 1, "experiment.gpus_per_run", "must be >= 1 (1 = one run per GPU)")
        check(self.ablation_seeds is None or len(self.ablation_seeds) > 0, "experiment.ablation_seeds",
               "must name >= 1 seed, or be null for the main table's seeds")


def ablation_seeds(e: ExperimentConfig) -> tuple[int, ...]:
    """The ablation runs' seeds: `experiment.ablation_seeds`, by default the main table's."""
    return e.seeds if e.ablation_seeds is None else e.ablation_seeds


def ablation_runs(cfg, key: str = "ablations") -> list[tuple[str, dict[str, Any]]]:
    """(row name, override dict of one run) for every row x ablation seed of a run config's
    `experiment.<key>` (`ablations`, or `unknowns`: SGPO + the row's overrides)."""
    return [(name, {"train.method": "sgpo", **overrides, "seed": s})
            for entry in getattr(cfg.experiment, key) for name, overrides in entry.items()
            for s in ablation_seeds(cfg.experiment)]
