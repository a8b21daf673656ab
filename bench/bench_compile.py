"""Would `torch.compile` bring the toy demo within its time budget? Eager against compiled, side by side.

Issue 25's budgets (`make demo` warm <= 12 min on 2 cores) need the RL step about 5x faster than
today's (README: *Times*). The step is half sampling, half the LoRA forward and backward
(`bench_toy_step`), and the toy student is small enough (hidden 128, 3 layers) that Python and
dispatch overhead is a large share of both, which is what a compiler removes. This times, on the
demo's student (`params/toy-demo.yaml`, built if not cached) in one process, one thread:
- `decode`: one sampling step of the rollout batch (8 problems x 4 samples) on the in-place KV
  cache the sampler uses (`kv_cache.growing_cache`), eager and `torch.compile(dynamic=True)`;
- `train`: forward and backward of the completion log-probs (`policy.token_logprobs`) of such a
  batch under the demo's LoRA adapter, lengths changing every step as in training, eager and with
  the decoder compiled (`dynamic=True`, so new lengths do not recompile).
Reports the medians after the warm-up calls, the speed-ups, and the seconds the first compiled calls
took (each training run is its own process, so it pays them once per run).

    OMP_NUM_THREADS=1 python -m bench.bench_compile [--params params/toy-demo.yaml] [--steps 30]
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable

import torch

from bench.common import demo_params_main

ROWS, PROMPT, COMPLETION = 32, 60, 25  # the demo's rollout batch; typical prompt and completion lengths


def _median_ms(fn, calls: int, warmup: int) -> tuple[float, float]:
    """(median ms of the calls after `warmup`, seconds of the first `warmup` calls)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    first_s = time.perf_counter() - start
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times), first_s


def decode_step(model, steps: int) -> Callable[[], None]:
    """One sampling step of the rollout batch after a 60-token prompt, on a fresh growing cache every `steps` calls."""
    from sgpo_lib.model.kv_cache import growing_cache

    state = {}

    def reset():
        ids = torch.randint(5, 20, (ROWS, PROMPT))
        with torch.no_grad():
            state["cache"] = growing_cache(model(ids, use_cache=True).past_key_values, steps + 1)
        state["token"], state["left"] = ids[:, -1:], steps

    def step():
        if not state or state["left"] == 0:
            reset()
        with torch.no_grad():
            model(state["token"], past_key_values=state["cache"], use_cache=True)
        state["left"] -= 1

    return step


def train_step(model) -> Callable[[], None]:
    """Forward and backward of the completion log-probs of a rollout batch, a new completion length every call."""
    from sgpo_lib.model.policy import pack, token_logprobs

    lengths = itertools.count()

    def step():
        extra = next(lengths) % 8  # the lengths change from step to step, as rollouts do
        prompts = [list(range(5, 5 + PROMPT))] * ROWS
        completions = [[7] * (COMPLETION + extra)] * ROWS
        token_logprobs(model, pack(prompts, completions, pad_id=0)).sum().backward()

    return step


def run(params: str = "params/toy-demo.yaml", steps: int = 30) -> dict:
    from sgpo_lib.config.run import load_config
    from sgpo_lib.model.policy import causal_lm, load_policy
    from sgpo_lib.workflow import assets

    torch.set_num_threads(1)
    cfg = load_config(params)
    model_dir = assets.student_dir(cfg)
    results = {}
    for mode in ("eager", "compiled"):
        # the sampler runs plain weights (the trainer's merges the adapter in: `lora_merge`)
        sampler, _ = load_policy(model_dir, dataclasses.replace(cfg.model.lora, enabled=False),
                                 attn_implementation=cfg.model.attn_implementation)
        sampler.eval()
        policy, _ = load_policy(model_dir, cfg.model.lora, attn_implementation=cfg.model.attn_implementation)
        if mode == "compiled":
            sampler.compile(dynamic=True)  # in place: the module's calls go through the compiled graph
            causal_lm(policy).get_decoder().compile(dynamic=True)
        decode_ms, decode_first_s = _median_ms(decode_step(sampler, steps), steps, warmup=3)
        train_ms, train_first_s = _median_ms(train_step(policy), steps, warmup=3)
        results[mode] = {"decode_ms": round(decode_ms, 3), "train_ms": round(train_ms, 2),
                         "decode_first_3_s": round(decode_first_s, 2), "train_first_3_s": round(train_first_s, 2)}
    speedup = {k: round(results["eager"][k] / results["compiled"][k], 2) for k in ("decode_ms", "train_ms")}
    config = {"params": params, "student": str(model_dir), "rows": ROWS, "prompt": PROMPT, "completion": COMPLETION,
              "timed_calls": steps, "threads": 1, "torch": torch.__version__}
    return {"config": config, "results": results, "speedup": speedup}


def table(out: dict) -> str:
    rows = [f"{'mode':<10}{'decode ms':>12}{'train ms':>12}{'first 3 decode s':>18}{'first 3 train s':>17}"]
    for mode, r in out["results"].items():
        rows.append(f"{mode:<10}{r['decode_ms']:>12.2f}{r['train_ms']:>12.1f}{r['decode_first_3_s']:>18.2f}"
                    f"{r['train_first_3_s']:>17.2f}")
    rows.append(f"speed-up (eager / compiled): decode {out['speedup']['decode_ms']}x, train {out['speedup']['train_ms']}x")
    return "\n".join(rows)


def main(argv=None) -> dict:
    return demo_params_main(__doc__, "compile", run, table, 30, "timed calls per mode and phase", argv)


if __name__ == "__main__":
    main()
