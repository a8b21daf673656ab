"""What a run is made of, derived from its config and cached by content hash.

`problems(cfg)` (toy world or real benchmarks), `student_dir(cfg, size)` (a prepared toy
student, or the configured model), `strategy_library(cfg)` (extracted once from the strong
responses, validated, stored with its rejection report); `warmup.train_data(cfg)` puts them
together for the trainer. Each is keyed by the config fields it depends on and by `world_seed`,
which is fixed across training seeds so that every method and seed starts from the same
student, data and strategies. A second call is a cache hit: sweeps and notebooks share them.
The strategy library's files are sealed (`cache_files`): one cut or changed is extracted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from . import cache_files, io
from .config import RunConfig
from .paths import output_root, resolve
from .records import Problem

log = logging.getLogger(__name__)


def cache_root(cfg: RunConfig) -> Path:
    """`<outputs root>/cache`: under the run's configured root (`output.root`, `SGPO_OUTPUTS`), so
    nothing a run makes lands outside it; runs that share the root share the cache."""
    return output_root(cfg.output.root) / "cache"


def cache_dir(cfg: RunConfig, kind: str, key: dict) -> Path:
    """`<outputs root>/cache/<kind>/<sha1(key)[:12]>`."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_root(cfg) / kind / digest


def problems(cfg: RunConfig) -> dict[str, list[Problem]]:
    """Problems by split: `train`, and the evaluation splits (`test`, `ood` for the toy world)."""
    if cfg.data.source == "toy":
        from .toy.world import generate_world

        return generate_world(cfg.world, cfg.world_seed)
    from .data import load_benchmark

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
    import dataclasses

    from .toy.students import prepare_student

    student = dataclasses.replace(cfg.student, size=size) if size else cfg.student
    return prepare_student(cfg.world, student, cfg.pretrain, cfg.world_seed, cache_root(cfg))


TINY_MODEL = {"hidden_size": 128, "num_layers": 2, "seed": 0, "max_position_embeddings": 8192}


def tiny_model_dir(cfg: RunConfig) -> Path:
    """The small random Qwen2 with a chat template (`sgpo_lib.testing`), built once into the cache."""
    from .testing import build_tiny_model_dir

    folder = cache_dir(cfg, "models", {"tiny_qwen2": TINY_MODEL})
    if not (folder / "config.json").exists():
        tmp = folder.with_name(folder.name + ".tmp")
        build_tiny_model_dir(tmp, **TINY_MODEL)
        tmp.replace(folder)  # complete or absent, never half written
    return folder


STRATEGY_FILES = ("library.jsonl", "report.json", "selection.json")  # one cache entry, each file sealed


def strategy_library(cfg: RunConfig):
    """Extract (or load from cache) the strategy library; returns `(library, rejection Counter)`.
    The candidate and selection counts go to `selection.json` beside it (`strategy_selection`)."""
    from .strategies import StrategyLibrary
    from .strategy_select import extract_strategies

    folder = _strategy_folder(cfg)
    files = [folder / name for name in STRATEGY_FILES]
    if files[0].exists() and all(cache_files.intact(f) for f in files):  # cut, garbled or changed: extract again
        library = StrategyLibrary.load(files[0])
        if len(library):
            return library, Counter(io.read_json(folder / "report.json"))
        log.warning("cached strategy library %s is empty: extracting again", folder)
    from .grading import grader_for
    from .strategy_extractor import extractor, extractor_name, limits_of, selection_of
    from .strategy_yield import check_yield

    train, examples, selection = problems(cfg)["train"], {}, Counter()
    with grader_for(cfg) as grader, extractor(cfg, lambda: student_dir(cfg)) as ex:
        # a strategy is extracted only from a strong response graded correct
        library, report = extract_strategies(train, ex.complete, sample=ex.sample, rank=ex.rank,
                                             extractor=cfg.strategy.extractor, grader=grader, examples=examples,
                                             stats=selection, **selection_of(cfg), **limits_of(cfg))
    check_yield(report, cfg.strategy.min_accepted_fraction, extractor_name(cfg), examples)
    io.write_json(folder / "selection.json", dict(selection))
    library.save(folder / "library.jsonl")
    io.write_json(folder / "report.json", dict(report))
    for path in files:
        cache_files.seal(path)
    return library, report


def strategy_selection(cfg: RunConfig) -> Counter:
    """The candidate and selection counts of the (cached) strategy library (`strategy_select`)."""
    strategy_library(cfg)
    return Counter(io.read_json(_strategy_folder(cfg) / "selection.json"))


def _strategy_folder(cfg: RunConfig) -> Path:
    key = {"world": cfg.world, "data": cfg.data, "strategy": cfg.strategy, "world_seed": cfg.world_seed}
    return cache_dir(cfg, "strategies", key)
