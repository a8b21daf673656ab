"""What a run is made of, derived from its config and cached by content hash.

`problems(cfg)` (toy world or real benchmarks), `student_dir(cfg, size)` (a prepared toy
student, or the configured model), `strategy_library(cfg)` (extracted once from the strong
responses, validated, stored with its rejection report); `train_data(cfg)` puts them together
for the trainer, starting from the SFT warm-up when the method does (`build_warmup` builds it and says what it holds).
Each is keyed by the config fields it depends on and by `world_seed`, which is fixed across training seeds so that every method and seed starts from the same
student, data and strategies. A second call is a cache hit: sweeps and notebooks share them.
The strategy library's files are sealed (`cache_files`): one cut or changed is extracted again.
What builds models (students, warm-ups) is imported where it is used, not by the notebooks that only read.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from ..config.run import RunConfig, load_config
from ..core import cache_files, fileio
from ..core.cache import cache_dir, cache_root
from ..core.paths import resolve
from ..core.records import Problem, TrainData
from ..data.benchmarks import load_benchmark
from ..grading.grader import grader_for
from ..strategies.library import StrategyLibrary
from ..strategies.select import extract_strategies
from ..strategies.yield_check import check_yield
from ..toy.world import generate_world
from .extractor import extractor, extractor_name, limits_of, selection_of

log = logging.getLogger(__name__)


def problems(cfg: RunConfig) -> dict[str, list[Problem]]:
    """Problems by split: `train`, and the evaluation splits (`test`, `ood` for the toy world)."""
    if cfg.data.source == "toy":
        return generate_world(cfg.world, cfg.world_seed)

    files = dict(e.split("=", 1) for e in cfg.data.local_files)  # name -> file under local_dir

    def local(name: str) -> str | None:
        return str(resolve(cfg.data.local_dir) / files.get(name, f"{name}.jsonl")) if cfg.data.source == "jsonl" else None

    train = [p for name in cfg.data.train_sets for p in load_benchmark(name, split="train", limit=cfg.data.train_limit,
                                                                        local_path=local(name))]
    test = [p for name in cfg.data.eval_sets for p in load_benchmark(name, split="test", limit=cfg.data.eval_limit,
                                                                      local_path=local(name))]
    return {"train": train, "test": test}


def student_dir(cfg: RunConfig, size: str | None = None) -> Path:
    """The base student's model folder: a cached toy student of `size`, the project-built tiny
    Qwen2 (`model.source: tiny`), or `model.name_or_path`."""
    if cfg.model.source == "tiny":
        return tiny_model_dir(cfg)
    if cfg.model.source == "hf":
        path = resolve(cfg.model.name_or_path)
        return path if path.exists() else Path(cfg.model.name_or_path)
    from ..toy.students import prepare_student

    student = dataclasses.replace(cfg.student, size=size) if size else cfg.student
    return prepare_student(cfg.world, student, cfg.pretrain, cfg.world_seed, cache_root(cfg))


TINY_MODEL = {"hidden_size": 128, "num_layers": 2, "seed": 0, "max_position_embeddings": 8192}


def tiny_model_dir(cfg: RunConfig) -> Path:
    """The small random Qwen2 with a chat template (`sgpo_lib.model.tiny`), built once into the cache."""
    folder = cache_dir(cfg, "models", {"tiny_qwen2": TINY_MODEL})
    if not (folder / "config.json").exists():
        from ..model.tiny import build_tiny_model_dir

        tmp = folder.with_name(folder.name + ".tmp")
        build_tiny_model_dir(tmp, **TINY_MODEL)
        tmp.replace(folder)  # complete or absent, never half written
    return folder


STRATEGY_FILES = ("library.jsonl", "report.json", "selection.json")  # one cache entry, each file sealed


def strategy_library(cfg: RunConfig):
    """Extract (or load from cache) the strategy library; returns `(library, rejection Counter)`.
    The candidate and selection counts go to `selection.json` beside it (`strategy_selection`)."""
    folder = _strategy_folder(cfg)
    files = [folder / name for name in STRATEGY_FILES]
    if files[0].exists() and all(cache_files.intact(f) for f in files):  # cut, garbled or changed: extract again
        library = StrategyLibrary.load(files[0])
        if len(library):
            return library, Counter(fileio.read_json(folder / "report.json"))
        log.warning("cached strategy library %s is empty: extracting again", folder)

    train, examples, selection = problems(cfg)["train"], {}, Counter()
    with grader_for(cfg) as grader, extractor(cfg, lambda: student_dir(cfg)) as ex:
        # a strategy is extracted only from a strong response graded correct
        library, report = extract_strategies(train, ex.complete, sample=ex.sample, rank=ex.rank,
                                             extractor=cfg.strategy.extractor, grader=grader, examples=examples,
                                             stats=selection, **selection_of(cfg), **limits_of(cfg))
    check_yield(report, cfg.strategy.min_accepted_fraction, extractor_name(cfg), examples)
    fileio.write_json(folder / "selection.json", dict(selection))
    library.save(folder / "library.jsonl")
    fileio.write_json(folder / "report.json", dict(report))
    for path in files:
        cache_files.seal(path)
    return library, report


def strategy_selection(cfg: RunConfig) -> Counter:
    """The candidate and selection counts of the (cached) strategy library (`strategies.select`)."""
    strategy_library(cfg)
    return Counter(fileio.read_json(_strategy_folder(cfg) / "selection.json"))


def _strategy_folder(cfg: RunConfig) -> Path:
    key = {"world": cfg.world, "data": cfg.data, "strategy": cfg.strategy, "world_seed": cfg.world_seed}
    return cache_dir(cfg, "strategies", key)


def prepare_warmups(params_file: str, variants: list[dict]) -> list[Path]:
    """Build (or find) the warm-up of every variant (overrides of `params_file`) that starts from
    one, in this process, before a sweep launches its runs; each distinct warm-up once."""
    if not variants:  # nothing left to train: a sweep that only reads its runs loads no peft or transformers
        return []
    from ..train import warmup

    built: list[Path] = []
    for variant in variants:
        cfg = load_config(params_file, variant)
        if warmup.uses_warmup(cfg):
            path = warmup.start_dir(cfg, student_dir(cfg), problems(cfg))
            built += [path] if path not in built else []
    return built


def build_warmup(cfg: RunConfig, size: str | None = None) -> pd.Series:
    """Build (or find in the cache) the warm-up of `cfg`'s SGPO runs; returns what it holds:
    problems, steps, cache hit, seconds, and held-out accuracy (test macro greedy / avg@k) of the
    base student and of the warm-up model."""
    from ..train import warmup

    by_split = problems(cfg)
    warm, rest = warmup.split(by_split["train"], cfg.train.warmup_sft_fraction, cfg.world_seed)
    if not warm:
        return pd.Series({"warm-up": "off (train.warmup_sft_fraction: 0)", "RL problems": len(rest)}, name="SFT warm-up")
    base = student_dir(cfg, size)
    hit = (warmup.folder(cfg, base, warm) / warmup.META_FILE).exists()
    out = warmup.prepare(cfg, base, warm, [p for s, ps in by_split.items() if s != "train" for p in ps])
    meta, evals = fileio.read_json(out / warmup.META_FILE), fileio.read_jsonl(out / "run" / "evals.jsonl")
    row = {"warm-up problems": len(warm), "RL problems": len(rest), "epochs": cfg.train.warmup_sft_epochs,
           "steps": meta["steps"], "cache": "hit" if hit else "built now", "build seconds": meta["seconds"]}
    for r in evals:
        if r["source"] == "macro" and r["split"] == "test":
            phase = "base" if r["step"] == 0 else "warm-up"
            row.update({f"test greedy ({phase})": r["greedy"], f"test avg@k ({phase})": r["avg@k"]})
    return pd.Series(row, name="SFT warm-up", dtype=object)


def train_data(cfg: RunConfig, size: str | None = None):
    """Everything the trainer needs besides the config: with `train.warmup_sft_fraction` > 0, `sft`
    trains on the warm-up problems, the other methods on the rest, and `sft_grpo` / `sgpo` start
    from the warm-up model (`start_dir`)."""
    from ..train import warmup

    by_split = problems(cfg)
    library, _ = strategy_library(cfg)
    retrieve = cfg.strategy.retrieve_by_type
    warm, rest = warmup.split(by_split["train"], cfg.train.warmup_sft_fraction, cfg.world_seed)
    return TrainData(model_dir=warmup.start_dir(cfg, student_dir(cfg, size), by_split),
                     train=warm if cfg.train.method == "sft" and warm else rest,
                     eval=[p for name, ps in by_split.items() if name != "train" for p in ps],
                     strategy_for=lambda p: library.for_problem(p, retrieve=retrieve))
