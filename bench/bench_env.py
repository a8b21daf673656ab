"""Is this machine slow? Tokens/s of toy pretraining and LoRA training, with the CPU facts that decide them.

Issue 17: the README's times hold only on a machine whose kernels match the one they were
measured on. In about a minute this prints the CPU (model, ISA flags, native bfloat16), the
package versions, and the median step time and tokens/s of (a) a pretraining step of the
default toy student (`small`, the demo's batch of 32, float32 and, for comparison, bf16
autocast) and (b) a LoRA training step (forward + backward + AdamW over the completion tokens)
of the same shape loaded through `sgpo_lib.model.policy.load_policy`, as the trainer does. Compare
with the reference line printed at the end (the machine the README's times come from).

The weights are freshly initialised: step times do not depend on what the model knows.

    python -m bench.bench_env [--steps 8] [--threads N]      # or: make bench-env
Writes outputs/bench/env.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from bench.common import publish

# The README's machine (2 shared cores, Intel Xeon with AMX; torch 2.13.0+cpu, transformers 5.19.0),
# float32 pretraining of `small` at batch 32, quiet machine (see the toy README, "Speed").
REFERENCE = ("reference (README machine, quiet): pretrain_fp32 0.149 s/step (18.4k tokens/s), pretrain_bf16 0.137, "
             "lora_train_fp32 0.181; bf16 / fp32 0.92x")


def _time_interleaved(steps: dict, batches, warmup: int = 2) -> dict:
    """Median s/step and tokens/s of each variant; the variants alternate on each batch, so a
    shared machine's load drift falls on all of them alike."""
    times = {name: [] for name in steps}
    tokens = 0
    for i, batch in enumerate(batches):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(batch)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
        tokens += int(batch[1].sum()) if i >= warmup else 0
    return {name: {"step_s": statistics.median(t), "tokens_per_s": tokens / sum(t)} for name, t in times.items()}


def _pretrain_step(model, bf16: bool):
    import torch

    from sgpo_lib.toy.pretrain import completion_loss

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = completion_loss(model, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(steps: int, preset_name: str = "demo") -> dict:
    """Pretraining (float32, bf16) and LoRA training step times on identical batches, interleaved."""
    from sgpo_lib.config.run import LoraConfig
    from sgpo_lib.core.machine import native_bf16
    from sgpo_lib.model.policy import load_policy
    from sgpo_lib.config.toy_presets import toy_preset
    from sgpo_lib.toy.pretrain import MixtureSampler, build_model
    from sgpo_lib.toy.tokenizer import build_tokenizer

    world_cfg, student_cfg, pretrain_cfg = toy_preset(preset_name)
    tok = build_tokenizer()
    sampler = MixtureSampler(world_cfg, pretrain_cfg, tok, seed=0)
    stream = sampler.batches(pretrain_cfg.batch_size, tok.pad_token_id)
    batches = [next(stream) for _ in range(steps + 2)]
    with tempfile.TemporaryDirectory() as folder:
        build_model(student_cfg, tok, 0).save_pretrained(folder)
        tok.save_pretrained(folder)
        lora_model, _ = load_policy(folder, LoraConfig())
        out = _time_interleaved({
            "pretrain_fp32": _pretrain_step(build_model(student_cfg, tok, 0), bf16=False),
            "pretrain_bf16": _pretrain_step(build_model(student_cfg, tok, 0), bf16=True),
            "lora_train_fp32": _pretrain_step(lora_model.get_base_model(), bf16=False),  # LoRA layers injected in place
        }, batches)
    out["native_bf16"] = native_bf16()
    return out


def main(argv=None) -> None:
    import torch

    from sgpo_lib.core.environment import environment

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps per variant (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    env = environment()
    results = measure(args.steps)
    lines = [f"cpu: {env['cpu']['model']} ({env['cpu']['cores']} cores; {' '.join(env['cpu']['isa'])}; "
             f"torch kernels {env['cpu']['torch_cpu_capability']}; native bf16 {env['cpu']['native_bf16']}; "
             f"torch threads {env['cpu']['torch_threads']})",
             "packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)]
    for name in ("pretrain_fp32", "pretrain_bf16", "lora_train_fp32"):
        r = results[name]
        lines.append(f"{name:16s} {r['step_s']:.3f} s/step  {r['tokens_per_s']:8.0f} tokens/s")
    ratio = results["pretrain_bf16"]["step_s"] / results["pretrain_fp32"]["step_s"]
    lines += [f"bf16 / fp32 step time: {ratio:.2f}x", REFERENCE]
    publish({"config": {"steps": args.steps, "threads": torch.get_num_threads()}, "env": env, "results": results},
            "env", "\n".join(lines))


if __name__ == "__main__":
    main()
