"""Rollout throughput: the transformers and vLLM backends of `sgpo_lib.model.generation` side by side.

Same model, prompts, `n`, lengths and seeds for both; each backend gets one warm-up call, then
`repeats` timed calls, and the median is reported as generated tokens per second. vLLM's
engine start is timed separately and not counted. Writes `outputs/bench/rollouts.json`.

    python -m bench.bench_rollouts                  # tiny random Qwen2 built on the fly
    python -m bench.bench_rollouts --model-dir PATH # e.g. a toy student
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from sgpo_lib.model.generation import SamplingSpec
from sgpo_lib.core.fileio import write_json
from sgpo_lib.core.paths import outputs_dir

logger = logging.getLogger(__name__)

QUESTIONS = [
    "What is 12 times 7 modulo 5?",
    "Compute 3 + 4 * 2.",
    "Reduce 84 modulo 9, then add 3.",
    "What is the remainder of 2^10 divided by 7?",
    "hi",
    "Please reason step by step: 15 - 6 + 2.",
    "Which is larger, 7/8 or 5/6?",
    "Multiply 23 by 11 and reduce modulo 13.",
]


def _time_backend(generator, prompts: list[str], spec: SamplingSpec, repeats: int) -> dict:
    """Warm up once, then time `repeats` calls; tokens/s of the median call."""
    seeds = list(range(len(prompts)))
    generator.generate(prompts, spec, seeds)
    runs = []
    for r in range(repeats):
        start = time.perf_counter()
        out = generator.generate(prompts, spec, [s + 1000 * (r + 1) for s in seeds])
        runs.append((time.perf_counter() - start, sum(len(c.token_ids) for row in out for c in row)))
    return {"tokens_per_s": statistics.median(t / s for s, t in runs),
            "median_s": statistics.median(s for s, _ in runs),
            "runs": [{"seconds": s, "tokens": t} for s, t in runs]}


def _bench_transformers(model_dir: Path, prompts: list[str], spec: SamplingSpec, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sgpo_lib.model.generation import TransformersGenerator

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    generator = TransformersGenerator(model, tokenizer, device=device, batch_size=len(prompts) * spec.n)
    result = _time_backend(generator, prompts, spec, repeats)
    result["n_params"] = sum(p.numel() for p in model.parameters())
    return result


def _bench_vllm(model_dir: Path, prompts: list[str], spec: SamplingSpec, repeats: int) -> dict:
    import torch

    try:
        from sgpo_lib.model.vllm_engine import VLLMGenerator
        import vllm  # noqa: F401
    except ImportError as e:
        return {"skipped": f"vllm not importable: {e}"}
    on_cpu = not torch.cuda.is_available()
    start = time.perf_counter()
    generator = VLLMGenerator(model_dir, dtype="float32" if on_cpu else "auto", max_model_len=1024,
                              kv_cache_gib=1 if on_cpu else None, enforce_eager=on_cpu)
    engine_start_s = time.perf_counter() - start
    try:
        return {"engine_start_s": engine_start_s, **_time_backend(generator, prompts, spec, repeats)}
    finally:
        generator.close()


def run(model_dir: str | Path | None = None, n: int = 4, max_new_tokens: int = 64, repeats: int = 3,
        threads: int | None = None) -> dict:
    """Benchmark both backends on `model_dir` (None: a tiny random Qwen2); returns the results.

    `threads` sets `torch.set_num_threads` for the transformers backend (None: torch's default).
    """
    import torch
    from transformers import AutoTokenizer

    from sgpo_lib.model.tiny import build_tiny_model_dir

    if threads is not None:
        torch.set_num_threads(threads)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(model_dir) if model_dir else build_tiny_model_dir(Path(tmp) / "tiny")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                 add_generation_prompt=True) for q in QUESTIONS]
        spec = SamplingSpec(temperature=1.0, max_new_tokens=max_new_tokens, n=n)
        result = {
            "model_dir": str(model_dir), "prompts": len(prompts), "n": n, "max_new_tokens": max_new_tokens,
            "repeats": repeats, "device": "cuda" if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(),
            "transformers": _bench_transformers(model_dir, prompts, spec, repeats),
            "vllm": _bench_vllm(model_dir, prompts, spec, repeats),
        }
    write_json(outputs_dir() / "bench" / "rollouts.json", result)
    logger.info("rollout bench written to %s", outputs_dir() / "bench" / "rollouts.json")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None, help="model folder (default: a tiny random Qwen2)")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (transformers backend)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    result = run(args.model_dir, args.n, args.max_new_tokens, args.repeats, args.threads)
    print(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":  # the vLLM engine spawns processes: keep this guard
    main()
