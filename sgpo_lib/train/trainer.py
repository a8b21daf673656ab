"""The training loop: SGPO and the baselines (SFT, GRPO, SFT+GRPO, HPT, LUFFY) under one config.

`Trainer.train_step` is the step of sgpo-method.md sections 2-6 as a loop: a batch of problems ->
paired rollouts and grades, with the weights `alpha(x)` (the pass-gap state lives in `self.alpha`
and in every checkpoint) -> `method.plan.plan_step` (pure: the sequences, from the run's
`MethodSpec`, the one place that branches on `train.method`) -> the no-grad passes it owes (target
selection, section 4; teacher states under the guided prompt; old log-probs) -> losses over
micro-batches -> optimizer steps (`train.ppo_epochs` x `train.mini_batches`, `updates`) -> the rollout engine's sync. Every score is
taken at temperature 1, so the config refuses `rollout.temperature != 1`.

Choices, each a config field: LoRA through `peft` or full fine-tuning (`model.lora.enabled`);
devices and mixed precision through `accelerate`. Under `accelerate launch` every rank takes its
share of the step's problems and the gradients are summed across ranks after the backward passes
(normalisers count the tokens of all ranks): DDP's result without wrapping the model, since the
losses call the decoder and the lm_head separately. Ranks skip a non-finite step together; logged
step metrics are means over the ranks. Batches and seeds derive from `(seed, step, ...)`, so a
resumed run redraws the same samples and reaches the same weights as an uninterrupted one; a
SIGTERM checkpoints the last completed step first when its state is whole (`last_step`).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from ..config.run import RunConfig, config_to_yaml
from ..core import fileio
from ..core.environment import record_code
from ..core.locks import rank_zero_lock
from ..core.records import Problem, TrainData
from ..core.run_folder import ConsoleSink, MetricsLogger, Progress, rewind_logs, write_completions, write_status
from ..core.seeding import derive_seed
from ..core.tracking import make_sink
from ..data import prompts
from ..data.batches import batch_for_step, eval_subset
from ..method import losses
from ..method.distill import DistillSpec
from ..method.evaluate import (cached_rows, eval_metrics, gathered_rows, log_step, run_eval_kwargs, run_results,
                               shard_rows, start_eval_cache)
from ..method.plan import Encoding, MethodSpec, StepPlan, plan_step
from ..method.rollouts import PairedBatch, rollout_metrics, sample_paired
from ..method.step import (MetricSums, Seq, distill_loss, instance_weights, loss_groups, micro_batches, old_logprobs,
                           policy_loss, select_one_target, sft_loss, teacher_states, token_counts)
from ..model import checkpoint, memory_plan
from ..model.generation import SamplingSpec
from ..model.policy import enable_gradient_checkpointing, load_policy, reference_logprobs_fn
from . import adapters, backends, distributed, engine_checks, last_step, updates
from .step_metrics import step_metrics

log = logging.getLogger(__name__)

CONSOLE_KEYS = ("step", "loss", "reward_auto", "reward_guided", "w_mean", "grad_norm", "step_s")


def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class Trainer:
    """One training run in `out_dir` (metrics, checkpoints, evals, final weights, results)."""

    def __init__(self, cfg: RunConfig, data: TrainData, out_dir: Path, grader):
        self.cfg, self.data, self.out_dir, self.grader = cfg, data, Path(out_dir), grader
        self.acc = Accelerator(mixed_precision=cfg.train.mixed_precision, cpu=not torch.cuda.is_available(),
                               kwargs_handlers=distributed.process_group_kwargs(cfg.train.dist_timeout_s))
        torch.manual_seed(derive_seed(cfg.seed, "init"))  # the LoRA init depends on the seed alone
        checkpoint.check_model_files(data.model_dir)  # a damaged cached student fails naming its file
        memory_plan.check_run(cfg, data.model_dir, self.acc.device, self.acc.is_main_process)  # before the weights
        self.model, self.tok = load_policy(data.model_dir, cfg.model.lora, cfg.model.dtype, self.acc.device,
                                           cfg.model.attn_implementation)
        if cfg.model.gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        self.pad_id = self.tok.pad_token_id
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.sched = get_scheduler(cfg.train.schedule, self.opt, cfg.train.warmup_steps, cfg.train.steps)
        tracker = make_sink(cfg.output.report_to, self.out_dir, cfg.to_dict()) if self.acc.is_main_process else None
        self.metrics = MetricsLogger(self.out_dir / "metrics.jsonl", (ConsoleSink(CONSOLE_KEYS),) + ((tracker,) if tracker else ()))
        self.method, self.spec = MethodSpec.from_config(cfg), DistillSpec.from_config(cfg.distill)
        self.encoding = Encoding(lambda text: _tokens(self.tok, text), self._unguided_ids, self.tok.eos_token_id)
        self.alpha = losses.PassGapAlpha(cfg.distill.alpha0, cfg.distill.gamma, cfg.distill.alpha_max)
        self.generator = backends.rollout_generator(cfg, data.model_dir, self.model, self.tok, self.acc)
        self.sync_check = engine_checks.SyncCheck.for_problem(self.tok, data.train[0], cfg.instruction,
                                                              cfg.train.sync_check_tol) if data.train else None
        self.nonfinite_in_row = 0
        self.step = 0  # the step in progress (named by a SIGTERM or a collective timeout)
        self.last = last_step.LastCompletedStep(self._save_checkpoint)  # what a SIGTERM can checkpoint

    # ------------------------------------------------------------ setup
    def _sync_generator(self, step: int, when: str = "sync") -> dict:
        """After an optimizer step: the rollout engine loads the new adapter (`backends.load_adapter`),
        then the sync check (`engine_checks.SyncCheck`) returns its metrics or stops the run; the
        transformers backend shares the model."""
        if self.cfg.rollout.backend != "vllm":
            return {}
        backends.load_adapter(self.generator, self.model, self.out_dir, step, self.acc, self.cfg.train.keep_adapters)
        with self.acc.autocast():
            return self.sync_check(self.generator, self.model, self.tok, self.pad_id, self.acc.device, step, when)

    # ------------------------------------------------------------ data of one step
    def _batch(self, step: int) -> list[Problem]:
        """This rank's share of the step's problems (an epoch boundary can repeat one: kept once)."""
        batch = list({p.id: p for p in batch_for_step(self.data.train, self.cfg.seed, step, self.cfg.train.batch_problems)}.values())
        return batch[self.acc.process_index :: self.acc.num_processes]

    def _unguided_ids(self, p: Problem) -> list[int]:
        return _tokens(self.tok, prompts.render(self.tok, prompts.unguided_messages(p, self.cfg.instruction)))

    def _sample(self, batch: list[Problem], step: int) -> tuple[PairedBatch | None, torch.Tensor | None]:
        """Paired rollouts of the batch (written to the step's completions file) and alpha(x) per
        problem, shape (P,) float64 in `paired.stats` order; (None, None) for a method without rollouts."""
        cfg, m = self.cfg, self.method
        if not m.uses_rollouts:
            return None, None
        paired = sample_paired(self.generator, self.tok, batch, self.data.strategy_for, m.n_autonomous, m.n_guided,
                               SamplingSpec.from_rollout(cfg.rollout, m.topk_logprobs), cfg.seed, step, self.grader,
                               cfg.instruction)
        rank = f".rank{self.acc.process_index}" if self.acc.num_processes > 1 else ""
        write_completions(self.out_dir, step, paired, self.data.strategy_for, rank)
        stats = paired.stats.set_index("problem_id")
        return paired, self._weights(stats, step) if m.n_guided else torch.zeros(len(stats), dtype=torch.float64)

    def _weights(self, stats, step: int) -> torch.Tensor:
        """alpha(x) per problem (`method.step.instance_weights`), the pass-gap state shared by every rank,
        and one `alpha.jsonl` row per problem. Shape (P,) float64."""
        w_P, rows = instance_weights(stats, self.cfg.distill, self.alpha, step)
        if self.acc.num_processes > 1:  # every rank holds the whole state (the main one checkpoints it)
            rows = distributed.gather_rows(rows)
            if self.cfg.distill.weighting == "pass_gap":
                self.alpha.alpha.update({r["problem_id"]: r["alpha"] for r in rows if r["p_guided"] is not None})
        if self.acc.is_main_process:
            for r in rows:
                fileio.append_jsonl(self.out_dir / "alpha.jsonl", r)
        return w_P

    def _no_grad_passes(self, plan: StepPlan) -> list[Seq]:
        """The passes the plan owes its sequences: target selection, teacher states, old log-probs."""
        mb, seqs = self.cfg.train.micro_batch_size, plan.seqs
        if plan.select_targets:
            seqs = select_one_target(self.model, seqs, self.pad_id, self.acc.device, mb, self.cfg.distill.target_score,
                                     self.method.recompute_old)
        if plan.teacher_states:
            teacher_states(self.model, [s for s in seqs if s.kind == "distill"], self.pad_id, self.acc.device, mb)
        if plan.old_logprobs:
            old_logprobs(self.model, [s for s in seqs if s.old_logprobs is None], self.pad_id, self.acc.device, mb)
        return seqs

    def _rollout_metrics(self, paired, w_P, seqs: list[Seq]) -> dict:
        """Rewards, weights, timings and grades of the step's rollouts, the group statistics of its
        planned `seqs` and the guided-rollout engine check; {} without rollouts."""
        if paired is None:
            return {}
        m = rollout_metrics(paired, w_P)
        m.update(engine_checks.group_stats(paired, seqs, self.method.distils))
        if self.method.mismatch_sample:
            with self.acc.autocast():
                m.update(engine_checks.guided_gap_metrics(self.model, self.tok, paired, self.method.mismatch_sample,
                                                          self.cfg.train.mismatch_threshold, self.pad_id, self.acc.device))
        return m

    # ------------------------------------------------------------ the step
    def _backward(self, seqs: list[Seq]) -> tuple[float, dict]:
        """All micro-batches of one epoch: losses (`method.step.loss_groups`), backward; returns (loss, metrics)."""
        cfg, sums, total = self.cfg, MetricSums(), 0.0
        counts = dict(zip(("rl", "sft", "distill"), distributed.summed(self.acc, token_counts(seqs), losses.MIN_NORMALISER)))
        mb, dev = cfg.train.micro_batch_size, self.acc.device
        for kind, coef, group in loss_groups(seqs, cfg.distill.coef, cfg.train.rl_coef):
            for chunk in micro_batches(group, mb, cfg.train.micro_batch_tokens):
                with self.acc.autocast():
                    if kind == "rl":
                        loss, m, n = policy_loss(self.model, chunk, counts["rl"], cfg.train, self.pad_id, dev,
                                                    reference_logprobs_fn(self.model) if cfg.train.beta else None)
                    elif kind == "sft":
                        loss, m, n = sft_loss(self.model, chunk, counts["sft"], self.pad_id, dev)
                    else:
                        loss, m, n = distill_loss(self.model, chunk, counts["distill"], self.spec, cfg.distill.chunk_size,
                                                  self.pad_id, dev, cfg.distill.teacher_source)
                    loss = coef * loss if kind == "distill" or coef != 1.0 else loss
                if not torch.isfinite(loss):
                    return float("nan"), {}
                loss.backward()
                total += float(loss.detach())
                sums.add(m, n)
        return total, sums.means()

    def _optimizer_step(self) -> float:
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.acc.num_processes > 1:  # every parameter, every step, on every rank: no rank skips the collective
            distributed.sum_grads(params, lambda t: self.acc.reduce(t, "sum"))
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.train.max_grad_norm))
        self.last.moving()
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return norm

    def train_step(self, step: int) -> dict:
        """batch -> sample -> plan -> score targets, teacher states -> backward over micro-batches ->
        optimizer steps (`updates.ppo_updates`) -> sync the rollout engine; returns the step's metrics."""
        clock = [time.perf_counter()]
        batch = self._batch(step)
        paired, w_P = self._sample(batch, step)
        plan = plan_step(self.method, batch, paired, w_P, self.encoding)
        metrics = self._rollout_metrics(paired, w_P, plan.seqs)
        clock.append(time.perf_counter())
        seqs = self._no_grad_passes(plan)
        clock.append(time.perf_counter())
        for part in updates.ppo_updates(seqs, self.cfg.train.ppo_epochs, self.cfg.train.mini_batches):
            loss, train_metrics = self._backward(part)
            if not distributed.all_finite(self.acc, loss):
                return self._skip_nonfinite(step, metrics)
            metrics.update(train_metrics, loss=loss, grad_norm=self._optimizer_step())
        self.nonfinite_in_row = 0
        metrics.update(self._sync_generator(step))
        return distributed.mean_over_ranks(self.acc, step_metrics(metrics, seqs, clock + [time.perf_counter()],
                                                                  self.cfg.train, self.sched.get_last_lr()[0]))

    def _skip_nonfinite(self, step: int, metrics: dict) -> dict:
        self.opt.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        log.warning("step %d: non-finite loss, step skipped (%d in a row)", step, self.nonfinite_in_row)
        if self.nonfinite_in_row >= self.cfg.train.max_nonfinite_in_row:
            raise FloatingPointError(f"{self.nonfinite_in_row} non-finite losses in a row (train.max_nonfinite_in_row); "
                                     "lower train.lr or check the data")
        return distributed.mean_over_ranks(self.acc, {**metrics, "skipped_nonfinite": 1, "nonfinite_in_row": self.nonfinite_in_row})

    # ------------------------------------------------------------ eval, checkpoints, the loop
    def evaluate(self, step: int) -> list[dict]:
        """Unguided evaluation, sharded: every rank samples its share of the problems (`shard_rows`),
        the per-problem rows are gathered, and every rank gets the table; the main process writes the
        table and the per-problem rows (`method.evaluate.log_step`)."""
        main, acc = self.acc.is_main_process, self.acc
        problems = eval_subset(self.data.eval, self.cfg.eval.splits, self.cfg.eval.max_problems)
        cache = start_eval_cache(self.cfg, self.data.model_dir, problems) if step == 0 else None
        per_problem = cached_rows(cache, lambda: gathered_rows(distributed.gather_rows(shard_rows(
            self.generator, self.tok, problems, self.grader, acc.process_index, acc.num_processes,
            **run_eval_kwargs(self.cfg)))), write=main)
        return log_step(self.out_dir, step, per_problem, write=main)

    def _resume(self) -> int:
        state = checkpoint.load_latest(self.out_dir / "checkpoints")
        if state is None:
            if self.acc.is_main_process:  # killed before the first checkpoint: start over, step 0 included
                rewind_logs(self.out_dir, -1)
            return 0
        step = checkpoint.restore(state, self.model, self.opt, self.sched)
        self.nonfinite_in_row = state["extra"].get("nonfinite_in_row", 0)
        self.alpha.load_state_dict(state["extra"].get("alpha", {}))
        self.last.resumed(step)
        if self.acc.is_main_process:  # logs are re-written past the checkpoint
            rewind_logs(self.out_dir, step)
        self._sync_generator(step, "resume")
        log.info("resumed from step %d", step)
        return step

    def run(self) -> dict:
        """Train to `train.steps` (resuming if a checkpoint exists); returns `results.json`'s content.
        A collective that timed out ends it with an error naming the step and the ranks."""
        try:
            return self._run()
        except RuntimeError as e:
            if self.acc.num_processes > 1 and distributed.is_timeout(e):
                raise distributed.collective_timeout(e, self.step, self.acc.process_index, self.acc.num_processes,
                                                     self.cfg.train.dist_timeout_s) from e
            raise

    def _run(self) -> dict:
        cfg, main = self.cfg, self.acc.is_main_process
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            fileio.write_text(self.out_dir / "config.yaml", config_to_yaml(cfg))
            record_code(self.out_dir)  # env.json and code.diff of this execution
            write_status(self.out_dir, "running", f"train.method: {cfg.train.method}")
            backends.record(self.out_dir, "train", self.generator)
        if self.acc.num_processes > 1:  # several machines: the run folder must be shared
            distributed.check_shared_folder(self.out_dir, self.acc)
        start = self._resume()
        if start == 0:
            evals = eval_metrics(self.evaluate(0))
            if main:
                self.metrics.log(0, ranks=self.acc.num_processes, **evals)
        progress = Progress(f"train {cfg.train.method} {self.out_dir.name}", cfg.train.steps, start)
        for step in range(start + 1, cfg.train.steps + 1):
            self.step = step
            metrics = self.train_step(step)
            if main:
                progress.update(step)
            if step % cfg.eval.every == 0 or step == cfg.train.steps:
                metrics.update(eval_metrics(self.evaluate(step)))
            if not main:
                continue  # ranks hold identical weights: the main process logs and checkpoints
            self.metrics.log(step, **metrics)
            save = step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps
            self.last.completed(step, {"nonfinite_in_row": self.nonfinite_in_row, "alpha": self.alpha.state_dict()}, save)
            if save:
                adapters.prune(self.out_dir, cfg.train.keep_adapters)  # those of pruned checkpoints too
        self.acc.wait_for_everyone()
        return self._finish() if main else {}

    def _save_checkpoint(self, step: int, extra: dict, rng: dict | None) -> None:
        checkpoint.save(self.out_dir / "checkpoints", step, self.model, self.opt, self.sched, extra,
                        keep=self.cfg.output.keep_checkpoints, rng=rng)

    def _finish(self) -> dict:
        """The final weights, `results.json` and STATUS done."""
        results = run_results(self.cfg.train.method, fileio.read_jsonl(self.out_dir / "evals.jsonl"))
        self.model.save_pretrained(self.out_dir / "final")
        self.tok.save_pretrained(self.out_dir / "final")  # the folder loads on its own after full fine-tuning
        fileio.write_json(self.out_dir / "results.json", results)
        write_status(self.out_dir, "done")
        return results

    def close(self) -> None:
        self.generator.close()


def train(cfg: RunConfig, data: TrainData, out_dir: Path, grader) -> dict:
    """Run (or resume) one training run into `out_dir` (holding its lock); returns its results."""
    trainer = None
    with rank_zero_lock(out_dir), distributed.StopOnSigterm(out_dir, int(os.environ.get("RANK", 0)), write_status) as stop:
        try:
            trainer = Trainer(cfg, data, out_dir, grader)
            stop.step_of = lambda: trainer.step
            if trainer.acc.is_main_process:  # the main process checkpoints the last completed step
                stop.before_exit = trainer.last.save_for_stop
            return trainer.run()
        except BaseException:
            stop.hold_if_stopping()  # a SIGTERM stop in progress writes STATUS and exits
            write_status(out_dir, "failed", traceback.format_exc())
            raise
        finally:
            if trainer is not None:
                trainer.close()
            distributed.close_process_group()
