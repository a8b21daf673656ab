"""SGPO vs GRPO step time at the toy demo's own settings, side by side in one process.

Issue 11's benchmark (sgpo-method.md sections 2-6): `bench_train_step` times the step on a
random model and made-up problems (so that TRL can run the same thing); this one times the
trainer where the demo runs it: `params/toy-demo.yaml` (its student, its problems, its
strategies, the real verifier, 8 problems x (4 autonomous + 2 guided) rollouts of up to 160 tokens, the v2
defaults). Variants, each a `Trainer` from `assets.train_data` (so SFT+GRPO and SGPO start
from the same SFT warm-up, as in the demo):
- `grpo`: GRPO from the base student (the demo's extra row);
- `sft_grpo`: GRPO from the warm-up, SGPO's own baseline: the same start, problems and seeds;
- `sgpo`: SGPO, teacher from a no-grad forward under the guided prompt (`distill.teacher: hidden`);
- `sgpo_engine`: SGPO, teacher from the sampler's top-64 (`teacher: engine, estimator: topk`).
Steps alternate across the variants (step 1 of each is a warm-up and is dropped), so load drift
on a shared machine falls on all alike; medians over the timed steps are reported, with the
ratios SGPO / GRPO (goal <= 1.5x) and SGPO / SFT+GRPO (same start model), each
also with the engine teacher.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.bench_train_step import TARGET_SGPO_OVER_GRPO, _timing, phase_medians, ratio, table
from bench.common import demo_params_main

ENGINE = {"distill.teacher": "engine", "distill.estimator": "topk", "rollout.topk_logprobs": 64, "distill.topk": 64}
VARIANTS = {"grpo": {"train.method": "grpo"}, "sft_grpo": {"train.method": "sft_grpo"},
            "sgpo": {"train.method": "sgpo"}, "sgpo_engine": {"train.method": "sgpo", **ENGINE}}


def measure(params: str, steps: int, overrides: dict | None = None) -> dict[str, list[dict]]:
    """`steps` timed steps of every variant (after one warm-up step each), alternating; `overrides`
    apply to every variant."""
    from sgpo_lib.workflow import assets
    from sgpo_lib.config.run import load_config
    from sgpo_lib.grading.grader import grader_for
    from sgpo_lib.train.trainer import Trainer

    rows: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = {name: load_config(params, {**(overrides or {}), **o, "train.steps": steps + 1}) for name, o in VARIANTS.items()}
        with grader_for(cfgs["sgpo"]) as grader:
            trainers = {name: Trainer(cfg, assets.train_data(cfg), Path(tmp) / name, grader) for name, cfg in cfgs.items()}
            try:
                for step in range(1, steps + 2):
                    for name, trainer in trainers.items():
                        rows[name].append(_timing(trainer.train_step(step)))
            finally:
                for trainer in trainers.values():
                    trainer.close()
    return {name: r[1:] for name, r in rows.items()}


def run(params: str = "params/toy-demo.yaml", steps: int = 6, overrides: dict | None = None) -> dict:
    load_before = os.getloadavg()
    results = {name: phase_medians(rows) for name, rows in measure(params, steps, overrides).items()}
    ratios = {"sgpo_over_grpo": ratio(results["sgpo"], results["grpo"], TARGET_SGPO_OVER_GRPO),
              "sgpo_engine_over_grpo": ratio(results["sgpo_engine"], results["grpo"], TARGET_SGPO_OVER_GRPO),
              "sgpo_over_sft_grpo": ratio(results["sgpo"], results["sft_grpo"], TARGET_SGPO_OVER_GRPO),
              "sgpo_engine_over_sft_grpo": ratio(results["sgpo_engine"], results["sft_grpo"], TARGET_SGPO_OVER_GRPO)}
    config = {"params": params, "overrides": overrides or {}, "timed_steps": steps, "loadavg_before": load_before,
              "loadavg_after": os.getloadavg()}
    return {"config": config, "results": results, "ratios": ratios}


def main(argv=None) -> dict:
    return demo_params_main(__doc__, "toy_step", run, table, 6, "timed steps per variant", argv)


if __name__ == "__main__":
    main()
