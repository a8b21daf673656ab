"""The SFT warm-up (sgpo-method.md §0 step 1, §6): the starting checkpoint of SFT+GRPO and SGPO.

`split` fixes, by `world_seed`, which training problems the warm-up sees: a fraction
`train.warmup_sft_fraction` of each source's problems (stratified per family / benchmark [ours]);
RL of every method uses the rest, and the `sft` baseline trains on the warm-up subset's strong
responses (same split for every method and seed). `start_dir` is where a run starts: the base
student, or for `sft_grpo` and `sgpo` (when the fraction is > 0) the warm-up model folder,
trained by the project's own SFT (`trainer.train` with `train.method: sft`, the run's optimiser
settings, seed `world_seed`) for `train.warmup_sft_epochs` epochs over the subset and, with
LoRA, merged into a full model folder (so LoRA training and vLLM load it as a base). Fraction 0
switches it off: every run starts from the base student and trains on every problem, as before.

Cache: `<outputs root>/cache/warmup/<hash>/` keyed by what changes the weights (the base model
folder, the subset's problems and strong responses, epochs, model and optimiser settings,
`CODE_VERSION`), holding `run/` (the SFT run: metrics.jsonl, evals.jsonl at the first and last
step), `model/` (the merged model) and `warmup.json` (written last, then sealed by
`cache_files`: the folder is complete; a cut or changed one is built again).
One process builds it under the folder's lock; another waits for it. A killed build resumes from
its last checkpoint (the SFT run's own resume); the checkpoints are deleted once the folder is
complete. A damaged cached model fails naming its file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..config.experiment import WARMUP_METHODS
from ..config.run import RunConfig
from ..core import cache_files, fileio
from ..core.cache import cache_dir
from ..core.locks import RunLockedError, run_lock
from ..core.records import Problem, TrainData
from ..core.seeding import derive_seed
from ..grading.grader import grader_for
from ..model.checkpoint import check_model_files
from ..model.policy import DTYPES
from .trainer import train

log = logging.getLogger(__name__)

CODE_VERSION = "warmup-v1"
META_FILE = "warmup.json"
LOCK_POLL_S = 5.0


def split(problems: list[Problem], fraction: float, world_seed: int) -> tuple[list[Problem], list[Problem]]:
    """(warm-up subset, the rest): `round(fraction * n)` problems of each source, drawn by a
    generator seeded by `(world_seed, source)` over the sorted ids; both lists keep the input order.

    Example:
        >>> ps = [Problem(str(i), "q", "a", "toy/sum", "train") for i in range(6)]
        >>> warm, rest = split(ps, 1 / 3, 0)
        >>> len(warm), len(rest), sorted(p.id for p in warm + rest) == sorted(p.id for p in ps)
        (2, 4, True)
    """
    if fraction == 0:
        return [], list(problems)
    chosen: set[str] = set()
    for source in sorted({p.source for p in problems}):
        ids = sorted(p.id for p in problems if p.source == source)  # independent of the input order
        order = np.random.default_rng(derive_seed(world_seed, "warmup_sft", source)).permutation(len(ids))
        chosen.update(ids[i] for i in order[: math.floor(fraction * len(ids) + 0.5)])
    warm, rest = [p for p in problems if p.id in chosen], [p for p in problems if p.id not in chosen]
    if not warm or not rest:
        raise ValueError(f"train.warmup_sft_fraction {fraction} of {len(problems)} training problems leaves "
                         f"{len(warm)} for the warm-up and {len(rest)} for RL; choose a fraction that leaves both "
                         "non-empty, or 0 to switch the warm-up off")
    return warm, rest


def uses_warmup(cfg: RunConfig) -> bool:
    """Whether a run of `cfg` starts from the warm-up checkpoint."""
    return cfg.train.warmup_sft_fraction > 0 and cfg.train.method in WARMUP_METHODS


def steps(cfg: RunConfig, n_problems: int) -> int:
    """Optimizer steps of `train.warmup_sft_epochs` epochs over `n_problems` in batches of
    `train.batch_problems` (epoch-wise permutations, `batches.batch_for_step`)."""
    return math.ceil(cfg.train.warmup_sft_epochs * n_problems / cfg.train.batch_problems)


def warmup_config(cfg: RunConfig, n_problems: int) -> RunConfig:
    """The SFT run of the warm-up: `cfg` with method sft, its step count, seed `world_seed`
    (the same warm-up for every training seed), evaluation at the first and last step only, on
    the first split of `eval.splits` (a diagnostic: the runs evaluate the warm-up model again)."""
    n = steps(cfg, n_problems)
    return dataclasses.replace(cfg, seed=cfg.world_seed,
                               train=dataclasses.replace(cfg.train, method="sft", steps=n),
                               eval=dataclasses.replace(cfg.eval, every=n, splits=cfg.eval.splits[:1]),
                               output=dataclasses.replace(cfg.output, report_to="none"))


def cache_key(cfg: RunConfig, base_dir: Path, warm: list[Problem]) -> dict:
    """Everything that changes the warm-up's weights (the hash names its cache folder)."""
    t = cfg.train
    subset = hashlib.sha1(json.dumps([(p.id, p.problem, p.strong_response) for p in warm]).encode()).hexdigest()
    return {"code_version": CODE_VERSION, "base": str(base_dir), "subset": subset, "world_seed": cfg.world_seed,
            "epochs": t.warmup_sft_epochs, "instruction": cfg.instruction, "model": dataclasses.asdict(cfg.model),
            "train": {k: getattr(t, k) for k in ("batch_problems", "lr", "weight_decay", "schedule", "warmup_steps",
                                                 "micro_batch_size", "max_grad_norm", "mixed_precision")}}


def folder(cfg: RunConfig, base_dir: Path, warm: list[Problem]) -> Path:
    """The warm-up's cache folder (complete when `META_FILE` exists)."""
    return cache_dir(cfg, "warmup", cache_key(cfg, base_dir, warm))


def start_dir(cfg: RunConfig, base_dir: Path, by_split: dict[str, list[Problem]]) -> Path:
    """The model folder a run of `cfg` starts from: the warm-up model (built once) or `base_dir`."""
    if not uses_warmup(cfg):
        return Path(base_dir)
    warm, _ = split(by_split["train"], cfg.train.warmup_sft_fraction, cfg.world_seed)
    evals = [p for s, ps in by_split.items() if s != "train" for p in ps]
    return prepare(cfg, Path(base_dir), warm, evals) / "model"


def prepare(cfg: RunConfig, base_dir: Path, warm: list[Problem], evals: list[Problem]) -> Path:
    """The complete warm-up cache folder: checked and returned, or built under its lock."""
    out = folder(cfg, base_dir, warm)
    if not cache_files.intact(out / META_FILE):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RuntimeError(f"the SFT warm-up {out} is not built; build it in one process first "
                               "(notebook 03, or any single-process run of these params), then launch")
        with _waiting_lock(out):
            if not cache_files.intact(out / META_FILE, warn=False):
                _build(cfg, base_dir, warm, evals, out)
    _check_complete(out)
    return out


def _waiting_lock(path: Path) -> ExitStack:
    """`path`'s run lock, waiting (and logging once) while another process holds it."""
    stack, told = ExitStack(), False
    while True:
        try:
            stack.enter_context(run_lock(path))
            return stack
        except RunLockedError as e:
            if not told:
                log.info("SFT warm-up: waiting for another process to build it (%s)", e)
                told = True
            time.sleep(LOCK_POLL_S)


def _build(cfg: RunConfig, base_dir: Path, warm: list[Problem], evals: list[Problem], out: Path) -> None:
    """Train the warm-up into `out/run`, merge it into `out/model`, then write `META_FILE`."""
    wcfg, t0 = warmup_config(cfg, len(warm)), time.perf_counter()
    log.info("SFT warm-up: %d problems x %d epochs = %d steps from %s into %s", len(warm),
             cfg.train.warmup_sft_epochs, wcfg.train.steps, base_dir, out)
    with grader_for(cfg) as grader:
        train(wcfg, TrainData(base_dir, warm, evals, lambda p: None), out / "run", grader)
    _merge(wcfg, base_dir, out / "run" / "final", out / "model")
    fileio.write_json(out / META_FILE, {**cache_key(cfg, base_dir, warm), "problems": len(warm),
                                    "steps": wcfg.train.steps, "seconds": round(time.perf_counter() - t0, 1)})
    cache_files.seal(out / META_FILE)
    shutil.rmtree(out / "run" / "checkpoints", ignore_errors=True)  # optimizer states: not needed any more


def _merge(cfg: RunConfig, base_dir: Path, final: Path, model_dir: Path) -> None:
    """A full model folder at `model_dir`: the LoRA adapter `final` merged into the base weights
    (or, after full fine-tuning, `final` itself), written beside it and renamed into place."""

    tmp = model_dir.with_name(model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.model.lora.enabled:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=DTYPES[cfg.model.dtype])
        PeftModel.from_pretrained(base, final).merge_and_unload().save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(final).save_pretrained(tmp)
    else:
        shutil.copytree(final, tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    tmp.replace(model_dir)


def _check_complete(out: Path) -> None:
    """A cached warm-up whose model folder is missing or damaged fails naming the file."""
    model = out / "model"
    if not (model / "config.json").exists():
        raise RuntimeError(f"{model / 'config.json'}: missing from the cached SFT warm-up; delete {out} to rebuild it")
    check_model_files(model, rebuilt_from=out)  # the whole entry: model/ alone is not rebuilt while META_FILE stands


