"""Teacher-cost benchmark: where SGPO's teacher distribution comes from, and what it costs.

Issue 7, item 2 (sgpo-method.md section 4, `distill.estimator = topk`). The teacher `q_t` of
a guided rollout is `pi_old(. | prompt(x, s), y_<t)`. Two ways to get its top-K, compared on
the same SGPO step (settings and measurement of `bench.bench_train_step`: same model, P, G,
S, lengths, LoRA, threads; one warm-up then `repeats` timed steps, alternating between the
two variants in one process, `rounds` times; medians over the pooled steps):

- `forward`: `distill.teacher=forward, distill.topk=K`: a separate no-grad forward pass over
  prompt(x, s) + rollout (`teacher_s`), whose hidden states give the top-K in the loss;
- `engine`: `distill.teacher=engine, rollout.topk_logprobs=K`: the top-K log-probs the
  sampler already computed while drawing the guided rollouts (they were sampled from the
  teacher), so `teacher_s` is ~0 and the cost moves into `generate_s` (the top-K of each
  sampled token is copied out of the sampling step).

    python -m bench.bench_teacher [--topk 16] [--repeats 3] [--threads 1]
Writes outputs/bench/teacher.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.bench_train_step import (
    PHASES,
    StepSettings,
    bench_config,
    measure_pooled,
    phase_medians,
)
from bench.common import publish

DEFAULT_TOPK = 16


def teacher_overrides(topk: int) -> dict[str, dict]:
    """The config overrides of the two teacher sources."""
    base = {"distill.estimator": "topk", "distill.topk": topk}
    return {"forward": {**base, "distill.teacher": "forward"},
            "engine": {**base, "distill.teacher": "engine", "rollout.topk_logprobs": topk}}


def run(model_dir: str | Path | None = None, settings: StepSettings = StepSettings(), topk: int = DEFAULT_TOPK,
        isolate: bool = True) -> dict:
    """SGPO step with the teacher from a forward pass vs from the engine; medians and ratios."""
    from sgpo_lib.model.tiny import build_tiny_model_dir

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        model = str(model_dir or build_tiny_model_dir(Path(tmp) / "tiny"))
        variants = {name: ("sgpo", overrides) for name, overrides in teacher_overrides(topk).items()}
        pooled = measure_pooled(model, variants, settings, trl=False, isolate=isolate)
    results = {name: phase_medians(rows) for name, rows in pooled.items()}
    fwd, eng = results["forward"], results["engine"]
    return {"config": bench_config(model_dir, settings, load_before, topk=topk), "results": results,
            "ratios": {"step_engine_over_forward": eng["step_s"] / fwd["step_s"],
                       "teacher_s_saved": fwd["teacher_s"] - eng["teacher_s"],
                       "generate_engine_over_forward": eng["generate_s"] / fwd["generate_s"]}}


def table(out: dict) -> str:
    cols = ("step_s",) + PHASES + ("other_s",)
    lines = [f"{'teacher':<10}" + "".join(f"{c:>12}" for c in cols)]
    lines += [f"{name:<10}" + "".join(f"{r[c]:>12.3f}" for c in cols) for name, r in out["results"].items()]
    lines += [f"{k}: {v:.3f}" for k, v in out["ratios"].items()]
    return "\n".join(lines)


def main(argv=None) -> dict:

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", default=None, help="model folder (default: a tiny random Qwen2)")
    p.add_argument("--topk", type=int, default=DEFAULT_TOPK)
    p.add_argument("--repeats", type=int, default=StepSettings.repeats)
    p.add_argument("--threads", type=int, default=StepSettings.threads)
    p.add_argument("--rounds", type=int, default=StepSettings.rounds)
    p.add_argument("--max-new-tokens", type=int, default=StepSettings.max_new_tokens)
    p.add_argument("--out", default=None, help="JSON path (default outputs/bench/teacher.json)")
    a = p.parse_args(argv)
    settings = StepSettings(repeats=a.repeats, threads=a.threads, max_new_tokens=a.max_new_tokens, rounds=a.rounds)
    out = run(a.model_dir, settings, a.topk)
    publish(out, "teacher", table(out), a.out)
    return out


if __name__ == "__main__":
    main()
