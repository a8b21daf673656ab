"""Prepare the toy base students: build, pretrain, save as ordinary model folders, cache.

The base students of toy-world.md point 4 (the `π_θ` before any LoRA adapter, sgpo-method.md
Notation). Departure: a real run starts from a downloaded pretrained LLM; here the student is
pretrained on the spot, briefly, and that pretraining is part of the world's design.

A prepared student is a Hugging Face model folder (config.json, model.safetensors,
generation_config.json, tokenizer files with the chat template) plus `toy_student.json`
(its specification and pretraining summary). `AutoModelForCausalLM`, `AutoTokenizer`, PEFT
LoRA and vLLM load it like any other Qwen2 checkpoint.

Folders are cached under `cache_dir` (the run's `<outputs root>/cache`, `core.cache.cache_root`; default `outputs_dir()/"cache"`) by a content hash of the world spec, the
student spec, the pretraining spec, the seed and `CODE_VERSION` (bump it whenever a change
here, in the families or in the wordings changes what a student learns): a second
preparation with the same spec returns the cached folder at once. A folder is built in a
temporary directory beside its final place and renamed into place, so a crash never leaves
a half-written student in the cache; the hidden folders of killed builds are removed by the
next preparation (`clean_stale_builds`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from transformers import AutoModelForCausalLM

from ..core.fileio import write_json
from ..core.locks import identity, process_alive
from ..core.paths import outputs_dir
from ..model.checkpoint import check_model_files
from .config import GROW_FIELDS, GROWN_FROM, PretrainConfig, StudentConfig, ToyWorldConfig
from .pretrain import build_model, deepen, pretrain
from .tokenizer import build_tokenizer

logger = logging.getLogger(__name__)
CODE_VERSION = "toy-students-v5"
META_FILE = "toy_student.json"
BUILDER_FILE = "builder.json"  # in a folder being built: the building process (pid, start time)
LOSS_TAIL = 20


def student_spec(world_cfg: ToyWorldConfig, student_cfg: StudentConfig, pretrain_cfg: PretrainConfig, seed: int) -> dict:
    """Everything that determines a student's weights (the cache key is its hash)."""
    parent = GROWN_FROM.get(student_cfg.size)
    pretrain = {k: v for k, v in dataclasses.asdict(pretrain_cfg).items() if parent or k not in GROW_FIELDS}
    return {"code_version": CODE_VERSION, "seed": seed, "world": world_cfg.student_spec(),
            "student": {**dataclasses.asdict(student_cfg), "shape": student_cfg.qwen2_kwargs(), "grown_from": parent},
            "pretrain": pretrain}


def cache_key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_student(world_cfg: ToyWorldConfig, student_cfg: StudentConfig, pretrain_cfg: PretrainConfig,
                  seed: int, out_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict:
    """Build, pretrain and save one student into the empty folder `out_dir`; returns its metadata.

    A grown size (`GROWN_FROM`) deepens its parent (prepared through the cache in `cache_dir`)
    and trains `pretrain.grow_steps` more steps on a fresh stream of the mixture.
    """
    tok = build_tokenizer()
    parent = GROWN_FROM.get(student_cfg.size)
    if parent:
        parent_dir = prepare_student(world_cfg, dataclasses.replace(student_cfg, size=parent), pretrain_cfg, seed, cache_dir)
        model = deepen(AutoModelForCausalLM.from_pretrained(parent_dir), student_cfg, tok, seed)
        schedule, stream = pretrain_cfg.grow_config(), "grow-mixture"
    else:
        model = build_model(student_cfg, tok, seed)
        schedule, stream = pretrain_cfg, "pretrain-mixture"
    t0 = time.perf_counter()
    losses = pretrain(model, tok, world_cfg, schedule, seed, stream)
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    meta = {**student_spec(world_cfg, student_cfg, pretrain_cfg, seed),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "pretrain_seconds": round(time.perf_counter() - t0, 2),
            "first_loss": losses[0], "final_loss": sum(losses[-LOSS_TAIL:]) / len(losses[-LOSS_TAIL:])}
    write_json(Path(out_dir) / META_FILE, meta)
    return meta


def prepare_student(world_cfg: ToyWorldConfig, student_cfg: StudentConfig, pretrain_cfg: PretrainConfig,
                    seed: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the pretrained student for this spec: from the cache, or built and cached."""
    root = Path(cache_dir) if cache_dir is not None else outputs_dir() / "cache"
    final = root / f"toy-student-{student_cfg.size}-{cache_key(student_spec(world_cfg, student_cfg, pretrain_cfg, seed))}"
    if (final / META_FILE).exists():
        check_model_files(final)  # a damaged cached folder fails here, naming its file
        logger.debug("toy student %s: cached at %s", student_cfg.size, final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    clean_stale_builds(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    write_json(tmp / BUILDER_FILE, identity())
    try:
        meta = build_student(world_cfg, student_cfg, pretrain_cfg, seed, tmp, root)
        (tmp / BUILDER_FILE).unlink()
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / META_FILE).exists():  # not a lost race with another process: a real error
                raise
            logger.info("toy student %s: another process cached it first", student_cfg.size)
        else:
            logger.info("toy student %s: pretrained in %.1fs (loss %.3f -> %.3f), saved to %s", student_cfg.size,
                        meta["pretrain_seconds"], meta["first_loss"], meta["final_loss"], final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def clean_stale_builds(root: Path, orphan_age_s: float = 3600.0) -> list[Path]:
    """Remove the hidden half-built student folders of builds whose process is gone (killed);
    a folder without a builder record (older code) goes once it is `orphan_age_s` old."""
    removed = []
    for tmp in Path(root).glob(".toy-student-*"):
        builder = tmp / BUILDER_FILE
        try:
            who = json.loads(builder.read_text())
            stale = not process_alive(who["pid"], who.get("start"))
        except (OSError, ValueError, KeyError, TypeError):
            stale = not builder.exists() and time.time() - tmp.stat().st_mtime > orphan_age_s
        if stale and tmp.is_dir():
            logger.warning("removing %s: a half-built student left by a killed build", tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def prepare_all_sizes(world_cfg: ToyWorldConfig, student_cfg: StudentConfig, pretrain_cfg: PretrainConfig,
                      seed: int, sizes: tuple[str, ...] = ("tiny", "small", "base"),
                      cache_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """One prepared student per size (same world, pretraining and seed): `{size: folder}`."""
    return {size: prepare_student(world_cfg, dataclasses.replace(student_cfg, size=size), pretrain_cfg, seed, cache_dir)
            for size in sizes}
