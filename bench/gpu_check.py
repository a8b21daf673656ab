"""`make gpu-check`: the real-path stages on one CUDA GPU in a few minutes; prints step time,
tokens/s and peak memory.

For a lent GPU machine that cannot reach the hub: nothing is downloaded and nothing large is
carried. The model is built on the machine with `sgpo_lib.model.tiny` at Qwen2.5-1.5B's shapes
(hidden 1536, 28 layers, MLP 8960, vocabulary 151,936 rows of which the builder's small
byte-level BPE samples only the first few hundred; random weights), the data are the shipped JSONL files (`../shared/data/benchmarks`), and the
strategy extractor is the same model behind the run's own vLLM OpenAI server
(`strategy.serve: local`, JSON schema). The params are `params/real-cpu.yaml` with GPU
overrides (`overrides()`): bf16, vLLM with CUDA graphs and LoRA hot-loading, longer
completions, more problems. Stages run in this process (not under papermill), so torch's
peak memory covers the trainer; the device's used memory after each stage includes vLLM's.

Departures from a real run: random weights (rewards are ~0, so the distillation term is mostly
empty and step time is a lower bound), untied embeddings (Qwen2.5-1.5B ties them: +0.23B).
The report adds the memory plan's trainer share (`sgpo_lib.model.memory_plan`: weights, LoRA +
AdamW, activations, logits chunk) against torch's peak allocated memory (goal: within 15%), and
the engine-vs-trainer log-prob gaps of the training steps (`mismatch/*`, `sync/*`: bf16).

    python -m bench.gpu_check [--hidden 1536 --layers 28 --intermediate 8960 --vocab 151936 --steps 3
                               --max-new-tokens 4096]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

log = logging.getLogger("gpu_check")
GIB = 1 << 30
PARAMS = "params/real-cpu.yaml"


def overrides(model_dir: Path, args) -> dict:
    """real-cpu.yaml turned into a short GPU run of the built model."""
    schema = json.dumps({"backend": "xgrammar", "disable_any_whitespace": True})
    return {
        "model.source": "hf", "model.name_or_path": str(model_dir), "model.dtype": "bfloat16",
        "model.lora.r": 64, "model.lora.alpha": 128,
        "data.train_limit": args.problems * 2, "data.eval_limit": 4, "eval.max_problems": 4,
        "eval.max_new_tokens": args.max_new_tokens,
        "strategy.serve_args": ["--dtype", "bfloat16", "--max-model-len", "8192", "--gpu-memory-utilization", "0.25",
                                "--structured-outputs-config", schema],
        "strategy.concurrency": 16,
        "rollout.enforce_eager": False, "rollout.kv_cache_gib": None, "rollout.gpu_memory_utilization": 0.3,
        "rollout.max_model_len": 8192, "rollout.max_new_tokens": args.max_new_tokens,
        "rollout.n_autonomous": 8, "rollout.n_guided": 8,
        "train.steps": args.steps, "train.batch_problems": args.problems, "train.micro_batch_size": 8,
        "train.mixed_precision": "bf16", "eval.every": args.steps,
    }


def _used_gib() -> float:
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / GIB


def _metrics(run_dir: Path) -> dict:
    """Median step time and throughputs over the training steps of the SGPO run."""
    from sgpo_lib.core.fileio import read_jsonl

    [path] = sorted((run_dir / "main").glob("*/metrics.jsonl"))
    steps = [r for r in read_jsonl(path) if r["step"] > 0 and "step_s" in r]
    med = lambda key: statistics.median(r[key] for r in steps)  # noqa: E731
    checks = sorted({k for r in steps for k in r if k.startswith(("mismatch/", "sync/"))})
    return {"steps": len(steps), "step_s": med("step_s"), "generate_s": med("generate_s"), "train_s": med("train_s"),
            "gen_tokens_per_s": med("gen_tokens_per_s"), "train_tokens_per_s": med("train_tokens_per_s"),
            **{k: statistics.median(r[k] for r in steps if k in r) for k in checks}}


def _planned_trainer_gib(cfg, model_dir: Path) -> float:
    """The plan's trainer share: everything but the vLLM share and the fixed overhead."""
    import torch

    from sgpo_lib.model import memory_plan

    lines, _ = memory_plan.plan_for_run(cfg, model_dir, torch.cuda.get_device_properties(0).total_memory)
    return (lines["total"] - lines["vllm share"] - lines["overhead"]) / GIB


def run(args) -> dict:
    import torch

    from sgpo_lib.workflow import stages
    from sgpo_lib.model.tiny import build_tiny_model_dir
    from sgpo_lib.workflow.runs import start_run

    out = Path(args.out)
    os.environ.update({"SGPO_OUTPUTS": str(out / "outputs"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    t0 = time.perf_counter()
    model_dir = build_tiny_model_dir(out / "model", hidden_size=args.hidden, num_layers=args.layers,
                                     initializer_range=0.02, max_position_embeddings=8192,
                                     intermediate_size=args.intermediate, vocab_size=args.vocab)
    report = {"device": torch.cuda.get_device_name(),
              "model": f"hidden {args.hidden} x {args.layers} layers, MLP {args.intermediate}, vocabulary {args.vocab}",
              "build_s": round(time.perf_counter() - t0, 1), "stages": {}}
    cfg, run_dir = start_run(PARAMS, overrides(model_dir, args), run_id="gpu-check")
    for name in ("prepare", "extract", "rollouts", "main"):
        t0 = time.perf_counter()
        stages.STAGES[name](cfg, run_dir)
        report["stages"][name] = {"s": round(time.perf_counter() - t0, 1), "device_used_gib": round(_used_gib(), 1)}
        log.info("%s: %s", name, report["stages"][name])
    report["train"] = _metrics(run_dir)
    report["torch_peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
    report["plan_trainer_gib"] = round(_planned_trainer_gib(cfg, model_dir), 2)
    report["peak_over_plan"] = round(report["torch_peak_allocated_gib"] / report["plan_trainer_gib"], 2)
    report["backends"] = (run_dir / "backends.jsonl").read_text().splitlines()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--intermediate", type=int, default=8960)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--problems", type=int, default=8, help="problems per training step")
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument("--out", default="/tmp/sgpo-gpu-check")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    if not torch.cuda.is_available():
        log.error("gpu-check needs a CUDA device (torch %s sees none)", torch.__version__)
        return 2
    report = run(args)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
