"""Training-step benchmark: our GRPO and SGPO `Trainer.train_step` vs TRL's `GRPOTrainer`.

Issue 7, item 4 (sgpo-method.md sections 2-6: one step = paired rollouts, grading, teacher
states, loss, optimizer step). The three variants run on identical settings, each in its own
spawned process with `torch.set_num_threads(threads)`: the same model folder (default: the
tiny random Qwen2 of `sgpo_lib.model.tiny`), P prompts per step, G rollouts per prompt,
the same maximum completion length, LoRA (same r, alpha, target modules) or full fine-tuning,
float32 on CPU, one optimizer step per generation, no KL reference (beta 0), clip range
[0.2, 0.28], unscaled group advantages, token-mean loss, and the same verifier
(`sgpo_lib.grading.grader.Grader` on exact-match problems) as the reward. Each variant runs one
warm-up step, then `repeats` timed steps; this is done `rounds` times, each round in a fresh
process where all variants alternate step by step (TRL's step, then one step of each of ours,
run from TRL's step-end callback outside its timed span), and the medians over the pooled
timed steps are reported, so that a shared, noisy machine's load drift falls on every
variant alike. The load averages before and after are recorded.

What each step time includes:
- ours (`grpo`, `sgpo`): `method.step` from batch selection to the optimizer step, as its
  own `step_s`, split into `generate_s` (our KV-cached sampling loop, which also records the
  raw log-probs of every token), `grade_s`, `teacher_s` (SGPO: the no-grad forward under the
  guided prompt), `train_s` (forward, backward, optimizer step) and `other_s` (the rest:
  prompt rendering, advantages). SGPO also samples S guided rollouts per prompt and trains
  the distillation term on them, at the v2 defaults (`distill.target: select_one`: one
  correct guided rollout per problem, chosen by a no-grad scoring pass under the unguided
  prompt; KL clip; pass-gap weights). `sgpo` takes its teacher from a no-grad forward under
  the guided prompt (`distill.teacher: hidden`), `sgpo_engine` from the sampler's top-k
  (`teacher: engine, estimator: topk`). SGPO thus handles P (G + S) rollouts to GRPO's P G;
  `grpo_g_plus_s` (our GRPO with G + S autonomous rollouts) is the same-rollout-budget
  reference, reported without a target.
- TRL: `on_step_begin` to `on_step_end` of the trainer loop, split by wrapping its
  `_generate` (`model.generate` plus prompt tokenisation and decoding) and
  `_calculate_rewards`; `train_s` is the rest (padding, advantages, forward with entropy,
  backward, optimizer step). bf16 and gradient checkpointing (TRL's defaults) are switched
  off to match ours; with beta 0 and one generation per optimizer step, TRL computes no old
  or reference log-probs, and neither do we.

Departure: the models are random, so the verifier alone would give nearly every reward 0, and
SGPO would distil nothing (no correct guided rollout). Every side therefore gets the same
`HalfGrader`: the verifier's reward, or 1 for a completion whose sha1 is even (about half), so
that nearly every problem has a correct guided rollout to distil. GRPO's compute does not
depend on the rewards; the generated token counts are reported so that the sides can be
compared per token.

    python -m bench.bench_train_step [--model-dir DIR] [--repeats 3] [--threads 1]
Writes outputs/bench/train_step.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import publish

PHASES = ("generate_s", "grade_s", "teacher_s", "train_s")
TARGET_SGPO_OVER_GRPO = 1.5  # SGPO step / our GRPO step, at most
TARGET_GRPO_OVER_TRL = 1.0  # our GRPO step / TRL's GRPO step, at most
N_PROBLEMS = 64  # size of the problem pool the steps draw from
PARAMS = """
model: {{source: hf, name_or_path: "{model}", lora: {{enabled: {lora_on}, r: {lora_r}, alpha: {alpha}}}}}
rollout: {{n_autonomous: {group}, n_guided: {guided}, max_new_tokens: {max_new_tokens}, batch_size: 256}}
train: {{steps: 1000, batch_problems: {problems}, lr: {lr}, micro_batch_size: {micro_batch}, eps_low: 0.2, eps_high: 0.28}}
"""


@dataclass(frozen=True)
class StepSettings:
    """What both sides share: P prompts, G (and S guided) rollouts, lengths, LoRA, threads."""

    problems: int = 4
    group: int = 4
    guided: int = 4
    max_new_tokens: int = 32
    micro_batch: int = 16
    lora: bool = True
    lora_r: int = 8
    lr: float = 1e-4
    threads: int = 1
    repeats: int = 3
    rounds: int = 2


class HalfGrader:
    """The verifier's grades, with reward 1 also for a completion whose sha1 is even (see Departure)."""

    def __init__(self, grader):
        self.grader = grader

    def grade_many(self, texts, problems):
        import hashlib

        grades = self.grader.grade_many(texts, problems)
        return [dataclasses.replace(g, reward=1.0, reason="correct") if hashlib.sha1(t.encode()).digest()[0] % 2 == 0
                else g for g, t in zip(grades, texts)]


def make_problems(n: int = N_PROBLEMS):
    """Exact-match toy problems (answer_kind "exact") with a strong response each."""
    from sgpo_lib.core.records import Problem

    return [Problem(f"p{i}", f"What is {i} plus {i}?", str(2 * i), "bench/add", "train", "exact",
                    strong_response=f"{i} + {i} = {2 * i}. \\boxed{{{2 * i}}}") for i in range(n)]


def _train_data(model_dir: Path):
    from sgpo_lib.core.records import Strategy
    from sgpo_lib.core.records import TrainData

    strategy = Strategy("s1", "double", "add", "Adding a number to itself doubles it.",
                        ("Read the number.", "Double it.", "Write the answer in a box."))
    return TrainData(Path(model_dir), make_problems(), [], lambda p: strategy)


def _config(model_dir: Path, s: StepSettings, method: str, overrides: dict, tmp: Path):
    from sgpo_lib.config.run import load_config

    path = tmp / "params.yaml"
    path.write_text(PARAMS.format(model=model_dir, lora_on=str(s.lora).lower(), alpha=2 * s.lora_r,
                                  **dataclasses.asdict(s)))
    return load_config(path, {"train.method": method, **overrides})


def phase_medians(rows: list[dict]) -> dict:
    """Medians over the timed steps of `step_s`, the phases, `other_s` and `gen_tokens`."""
    out = {"step_s": statistics.median(r["step_s"] for r in rows)}
    for key in PHASES + ("gen_tokens",):
        out[key] = statistics.median(r.get(key, 0.0) for r in rows)
    out["other_s"] = statistics.median(r["step_s"] - sum(r.get(k, 0.0) for k in PHASES) for r in rows)
    out["steps_s"] = [r["step_s"] for r in rows]
    return out


def _timing(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("step_s",) + PHASES + ("gen_tokens",) if k in metrics}


def _our_trainers(model_dir: str, variants: dict[str, tuple[str, dict]], s: StepSettings, tmp: Path, grader) -> dict:
    """One `Trainer` per variant `name: (method, overrides)`."""
    from sgpo_lib.train.trainer import Trainer

    trainers = {}
    for name, (method, overrides) in variants.items():
        (tmp / name).mkdir()
        cfg = _config(Path(model_dir), s, method, overrides, tmp / name)
        trainers[name] = Trainer(cfg, _train_data(Path(model_dir)), tmp / name / "run", grader)
    return trainers


def measure_round(model_dir: str, variants: dict[str, tuple[str, dict]], s: StepSettings,
                  trl: bool) -> dict[str, list[dict]]:
    """All variants in this process, their steps alternating (TRL's step, then one step of
    each of ours, run from TRL's step-end callback), so that load drift hits all alike: one
    warm-up step each, then `s.repeats` timed steps. Returns the timed steps per variant."""
    import torch

    from sgpo_lib.grading.grader import Grader

    torch.set_num_threads(s.threads)
    with tempfile.TemporaryDirectory() as tmp, Grader() as verifier:
        grader = HalfGrader(verifier)
        trainers = _our_trainers(model_dir, variants, s, Path(tmp), grader)
        rows: dict[str, list[dict]] = {name: [] for name in variants}

        def step_ours(step: int) -> None:
            for name, trainer in trainers.items():
                rows[name].append(_timing(trainer.train_step(step)))
        try:
            if trl:
                rows["trl_grpo"] = run_trl(model_dir, s, Path(tmp) / "trl", grader, after_step=step_ours)
            else:
                for step in range(1, s.repeats + 2):
                    step_ours(step)
        finally:
            for trainer in trainers.values():
                trainer.close()
    return {name: r[1:] for name, r in rows.items()}  # the first step of each is the warm-up


class _PhaseTimer:
    """Wraps a bound method of `obj` and adds its wall time to `self.total[name]`."""

    def __init__(self, obj, names: tuple[str, ...]):
        self.total = dict.fromkeys(names, 0.0)
        for name in names:
            setattr(obj, name, self._wrap(name, getattr(obj, name)))

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] += time.perf_counter() - start
        return timed


def _trl_callback(rows: list[dict], after_step):
    """A TrainerCallback that appends one row per optimizer step (wall time and phases), then
    calls `after_step(global_step)` outside the timed span."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        trainer, phases, start = None, None, 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.phases.total.update(dict.fromkeys(self.phases.total, 0.0))
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_s, t = time.perf_counter() - self.start, self.phases.total
            lengths = self.trainer._metrics["train"].get("completions/mean_length", [0.0])
            n = self.trainer.args.generation_batch_size
            rows.append({"step_s": step_s, "generate_s": t["_generate"], "grade_s": t["_calculate_rewards"],
                         "train_s": step_s - t["_generate"] - t["_calculate_rewards"], "gen_tokens": lengths[-1] * n})
            after_step(state.global_step)
    return StepTimer()


def _trl_args(s: StepSettings, out_dir: str):
    from trl import GRPOConfig

    n = s.problems * s.group
    if n % s.micro_batch and s.micro_batch < n:
        raise ValueError(f"P*G = {n} must be a multiple of micro_batch {s.micro_batch} for TRL's accumulation")
    mb = min(s.micro_batch, n)
    return GRPOConfig(output_dir=out_dir, per_device_train_batch_size=mb, gradient_accumulation_steps=n // mb,
                      num_generations=s.group, max_completion_length=s.max_new_tokens, temperature=1.0, top_p=1.0,
                      top_k=0, learning_rate=s.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                      max_grad_norm=1.0, beta=0.0, epsilon=0.2, epsilon_high=0.28, scale_rewards="none",
                      loss_type="dapo", num_iterations=1, max_steps=s.repeats + 1, bf16=False,
                      gradient_checkpointing=False, use_cpu=True, logging_steps=10**6, save_strategy="no",
                      report_to="none", disable_tqdm=True, seed=0, dataloader_num_workers=0)


def run_trl(model_dir: str, s: StepSettings, out_dir: Path, grader, after_step=lambda step: None) -> list[dict]:
    """TRL's `GRPOTrainer` on the same settings and verifier for `s.repeats + 1` steps; one
    timing dict per step (the first is the warm-up); `after_step(step)` runs after each."""
    import torch
    import trl
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sgpo_lib.config.run import LoraConfig as OurLora
    from sgpo_lib.data.prompts import unguided_messages

    out_dir.mkdir(parents=True)
    instruction = _config(Path(model_dir), s, "grpo", {}, out_dir).instruction
    problems = {p.id: p for p in make_problems()}
    data = Dataset.from_list([{"prompt": unguided_messages(p, instruction), "problem_id": p.id}
                              for p in problems.values()])

    def exact_reward(prompts, completions, problem_id, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [g.reward for g in grader.grade_many(texts, [problems[i] for i in problem_id])]

    peft = LoraConfig(r=s.lora_r, lora_alpha=2 * s.lora_r, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=list(OurLora().target_modules)) if s.lora else None
    rows: list[dict] = []
    callback = _trl_callback(rows, after_step)
    trainer = trl.GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                              reward_funcs=exact_reward, args=_trl_args(s, str(out_dir)), train_dataset=data,
                              processing_class=AutoTokenizer.from_pretrained(model_dir), peft_config=peft,
                              callbacks=[callback])
    callback.trainer, callback.phases = trainer, _PhaseTimer(trainer, ("_generate", "_calculate_rewards"))
    trainer.train()
    return rows


def in_child(fn, *args):
    """`fn(*args)` in a fresh spawned process (own threads, memory and accelerate state)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def trl_missing() -> str | None:
    """Why TRL cannot be compared (None when `trl` imports): an optional bench dependency."""
    try:
        import trl  # noqa: F401
    except ImportError as e:
        return f"trl not importable ({e}); pip install '.[bench]'"
    return None


def measure_pooled(model_dir: str, variants: dict[str, tuple[str, dict]], s: StepSettings, trl: bool,
                   isolate: bool = True) -> dict[str, list[dict]]:
    """`s.rounds` rounds of `measure_round`, each in a fresh process (`isolate=False`: in
    this one); the timed steps of all rounds, pooled per variant."""
    call = in_child if isolate else (lambda fn, *args: fn(*args))
    pooled: dict[str, list[dict]] = {}
    for _ in range(s.rounds):
        for name, rows in call(measure_round, model_dir, variants, s, trl).items():
            pooled.setdefault(name, []).extend(rows)
    return pooled


def our_variants(s: StepSettings) -> dict[str, tuple[str, dict]]:
    """`name: (method, overrides)`: GRPO, SGPO (teacher hidden, and engine) and GRPO with G + S rollouts."""
    engine = {"distill.teacher": "engine", "distill.estimator": "topk", "rollout.topk_logprobs": 64, "distill.topk": 64}
    return {"grpo": ("grpo", {}), "sgpo": ("sgpo", {}), "sgpo_engine": ("sgpo", engine),
            "grpo_g_plus_s": ("grpo", {"rollout.n_autonomous": s.group + s.guided})}


def ratio(num: dict, den: dict, target_max: float | None) -> dict:
    """`num.step_s / den.step_s` and whether it meets `target_max` (None where a side is missing)."""
    value = num["step_s"] / den["step_s"] if "step_s" in num and "step_s" in den else None
    met = None if value is None or target_max is None else value <= target_max
    return {"value": value, "target_max": target_max, "met": met}


def bench_config(model_dir, s: StepSettings, load_before: tuple, **extra) -> dict:
    """The settings, device, threads and the machine's load averages before and after."""
    return {**dataclasses.asdict(s), "model_dir": str(model_dir or "tiny random Qwen2 (testing)"),
            "device": "cpu", "dtype": "float32", "torch_threads": s.threads, "distill": "v2 defaults", "reward": "HalfGrader",
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), **extra}


def run(model_dir: str | Path | None = None, settings: StepSettings = StepSettings(), trl: bool = True,
        isolate: bool = True) -> dict:
    """Measure our GRPO, our SGPO and (if `trl` and installed) TRL's GRPO step; results and ratios."""
    from sgpo_lib.model.tiny import build_tiny_model_dir

    load_before, skip = os.getloadavg(), trl_missing() if trl else "trl=False"
    with tempfile.TemporaryDirectory() as tmp:
        model = str(model_dir or build_tiny_model_dir(Path(tmp) / "tiny"))
        pooled = measure_pooled(model, our_variants(settings), settings, trl=skip is None, isolate=isolate)
    results = {name: phase_medians(rows) for name, rows in pooled.items()}
    results.setdefault("trl_grpo", {"skipped": skip})
    ratios = {"sgpo_over_grpo": ratio(results["sgpo"], results["grpo"], TARGET_SGPO_OVER_GRPO),
              "sgpo_engine_over_grpo": ratio(results["sgpo_engine"], results["grpo"], TARGET_SGPO_OVER_GRPO),
              "sgpo_over_grpo_g_plus_s": ratio(results["sgpo"], results["grpo_g_plus_s"], None),
              "grpo_over_trl": ratio(results["grpo"], results["trl_grpo"], TARGET_GRPO_OVER_TRL)}
    trl_version = None if skip else importlib.metadata.version("trl")
    return {"config": bench_config(model_dir, settings, load_before, trl_version=trl_version),
            "results": results, "ratios": ratios}


def table(out: dict) -> str:
    """The results as a fixed-width text table."""
    cols = ("step_s",) + PHASES + ("other_s", "gen_tokens")
    lines = [f"{'variant':<14}" + "".join(f"{c:>12}" for c in cols)]
    for name, r in out["results"].items():
        cells = "".join(f"{r[c]:>12.3f}" for c in cols) if "step_s" in r else f"  {r.get('skipped')}"
        lines.append(f"{name:<14}{cells}")
    lines += [f"{k}: {v['value'] if v['value'] is None else round(v['value'], 3)}"
              + (f" (target <= {v['target_max']}, met: {v['met']})" if v["target_max"] else "")
              for k, v in out["ratios"].items()]
    return "\n".join(lines)


def main(argv=None) -> dict:

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", default=None, help="model folder (default: a tiny random Qwen2)")
    for f in dataclasses.fields(StepSettings):
        if f.type == "bool":
            p.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction, default=f.default)
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    p.add_argument("--no-trl", action="store_true", help="skip TRL's GRPOTrainer")
    p.add_argument("--out", default=None, help="JSON path (default outputs/bench/train_step.json)")
    a = vars(p.parse_args(argv))
    settings = StepSettings(**{f.name: a[f.name] for f in dataclasses.fields(StepSettings)})
    out = run(a["model_dir"], settings, trl=not a["no_trl"])
    publish(out, "train_step", table(out), a["out"])
    return out


if __name__ == "__main__":
    main()
