"""Command line: prepare the toy world and its students, print the premise table.

    python -m sgpo_lib.toy --preset demo --sizes tiny,small,base [--seed 0] [--threads 2]

Students come from (or go into) the content-hashed cache, so a second call is fast. The
table is greedy accuracy on the held-out test and OOD splits, unguided vs guided, per
family and size (toy-world.md: guided well above unguided, unguided above zero).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import pandas as pd
import torch

from ..config.toy_presets import toy_preset
from .config import SIZES
from .premise import premise_table
from .students import prepare_student
from .wording import family_strategies
from .world import generate_world


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sgpo_lib.toy", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="smoke", choices=("smoke", "demo"))
    p.add_argument("--sizes", default=None, help="comma-separated sizes (default: smoke = the default student, demo = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--cache-dir", default=None, help="default: outputs/cache")
    return p.parse_args(argv)


def main(argv=None) -> None:

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    world_cfg, student_cfg, pretrain_cfg = toy_preset(args.preset)
    default_sizes = (student_cfg.size,) if args.preset == "smoke" else tuple(SIZES)
    sizes = tuple(args.sizes.split(",")) if args.sizes else default_sizes
    t0 = time.perf_counter()
    world = generate_world(world_cfg, args.seed)
    strategies = family_strategies(world_cfg.families)
    tables = []
    for size in sizes:
        t_size = time.perf_counter()
        folder = prepare_student(world_cfg, dataclasses.replace(student_cfg, size=size), pretrain_cfg, args.seed, args.cache_dir)
        t_ready = time.perf_counter()
        table = premise_table(folder, world["test"] + world["ood"], strategies, instruction=world_cfg.instruction)
        tables.append(table.assign(size=size))
        print(f"[{size}] {folder}  prepare {t_ready - t_size:.1f}s  premise table {time.perf_counter() - t_ready:.1f}s")
    table = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(table.pivot_table(index=["split", "family"], columns="size", values=["unguided", "guided"], sort=False))
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
