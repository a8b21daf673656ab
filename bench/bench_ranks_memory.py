"""Issue 24's two CPU benchmarks, side by side in one run.

1. Ranks: the same global batch (`--problems` problems a step, sgpo, the tiny random Qwen2 of
   `sgpo_lib.model.tiny`) trained by one process and by `--ranks` gloo ranks under
   `accelerate launch`; the median `step_s` over the steps after the first (each rank's own step
   time, averaged over the ranks by the trainer). On a machine with fewer cores than ranks x
   threads the ratio is ~1 at best: the point is that nothing serialises.
2. Memory: the bytes autograd saves for the backward (`saved_tensors_hooks`, each storage once)
   in one forward of the toy base student's shape (`toy.config.SIZES["base"]`, random weights:
   memory does not depend on them) with LoRA, over `--seqs` x `--tokens` tokens, with and
   without `model.gradient_checkpointing`. These are the activations checkpointing removes; the
   weights and the optimizer state are the same in both.

    python -m bench.bench_ranks_memory [--ranks 2 --problems 4 --steps 4 --seqs 8 --tokens 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .common import publish

TESTS = str(Path(__file__).resolve().parent.parent / "tests")


def _train_script(tmp: Path, model: Path, out: Path, problems: int, steps: int) -> str:
    sys.path.insert(0, TESTS)
    from trainer_fixtures import SCRIPT, params_file

    params = params_file(tmp, model, steps)
    params.write_text(params.read_text().replace("batch_problems: 2", f"batch_problems: {problems}"))
    path = tmp / f"train_{out.name}.py"
    path.write_text(SCRIPT.format(tests=TESTS, params=str(params), model=str(model), out=str(out)))
    return str(path)


def _median_step_s(out: Path) -> float:
    from sgpo_lib.core import fileio

    rows = [r for r in fileio.read_jsonl(out / "metrics.jsonl") if r["step"] >= 2]
    return statistics.median(r["step_s"] for r in rows)


def rank_times(ranks: int, problems: int, steps: int) -> dict:
    from sgpo_lib.model.tiny import build_tiny_model_dir
    from sgpo_lib.workflow.sweep import accelerate_launch

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model_dir(tmp / "model")
        one, many = tmp / "one", tmp / "many"
        subprocess.run([sys.executable, _train_script(tmp, model, one, problems, steps)], env=env, check=True,
                       capture_output=True)
        launch = accelerate_launch(ranks, 29531, tmp / "launch") + [_train_script(tmp, model, many, problems, steps)]
        subprocess.run(launch, env=env, check=True, capture_output=True)
        t1, tn = _median_step_s(one), _median_step_s(many)
    return {"one_rank_step_s": t1, f"{ranks}_rank_step_s": tn, "ratio": tn / t1}


def saved_bytes(checkpointing: bool, seqs: int, tokens: int) -> int:
    """Bytes autograd keeps for the backward in one LoRA forward of the toy base shape."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sgpo_lib.model.policy import enable_gradient_checkpointing
    from sgpo_lib.toy.config import HEAD_DIM, SIZES

    torch.manual_seed(0)
    shape = SIZES["base"]
    heads = shape["hidden_size"] // HEAD_DIM
    model = Qwen2ForCausalLM(Qwen2Config(**shape, num_attention_heads=heads, num_key_value_heads=heads, vocab_size=512))
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj", "up_proj"]))
    model.train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(0, 512, (seqs, tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        hidden = model.base_model.model.model(input_ids=ids).last_hidden_state
    hidden.sum().backward()
    return sum(seen.values())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=256)
    args = ap.parse_args(argv)
    times = rank_times(args.ranks, args.problems, args.steps)
    full, ckpt = saved_bytes(False, args.seqs, args.tokens), saved_bytes(True, args.seqs, args.tokens)
    memory = {"saved_bytes_full": full, "saved_bytes_checkpointing": ckpt, "ratio": ckpt / full}
    table = (f"step time, same global batch ({args.problems} problems): 1 rank {times['one_rank_step_s']:.2f} s | "
             f"{args.ranks} ranks {times[f'{args.ranks}_rank_step_s']:.2f} s | ratio {times['ratio']:.2f}\n"
             f"activations saved for the backward, toy base, {args.seqs} x {args.tokens} tokens: "
             f"full {full / 2**20:.1f} MiB | checkpointing {ckpt / 2**20:.1f} MiB | ratio {memory['ratio']:.3f}")
    publish({"config": vars(args), "ranks": times, "memory": memory}, "ranks_memory", table)


if __name__ == "__main__":
    main()
