"""The stages of a run: one function per numbered notebook, also behind `python -m sgpo_lib`.

Each stage function `(cfg, run_dir)` computes all that its notebook shows, writes its artefacts
into `run_dir` and returns what the notebook displays; the notebook calls it once and otherwise
only readers (`sgpo_lib.analysis`), and the command line calls the same function (`STAGES`,
command -> function). The notebooks hold no algorithm (architecture.md, "The flow of one run").

    00 prepare        problems by split, base student(s), the premise table (toy world)
    01 extract        the strategy library and its rejection report
    02 rollouts       paired rollouts of the starting student (p_auto vs p_guided per problem) and
                      where the distillation signal lands on a few guided ones (`signal.json`)
    03 train_main     the SFT warm-up, SGPO and the baselines (experiment.methods x experiment.seeds):
                      main table; the guidance weight before and after SGPO (`guidance_shift.csv`);
                      on the toy world the regime table (`regime.json`, `workflow.regime`)
    04 ablate         SGPO ablations (experiment.ablations x experiment.ablation_seeds): ablation table
    05 scaling        methods over student sizes (experiment.scaling_sizes)
    06 study          the paper's unknown choices (experiment.unknowns x experiment.ablation_seeds):
                      one table and one "Read:" line per unknown (`analysis.unknowns`)
    07 report         reads only (`analysis.report`); the pipeline's `render_report` writes report.html

What samples or trains (transformers, peft, accelerate) is imported inside the functions that do it, so a
notebook that only reads its runs (04-07 on finished runs) starts without those libraries.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
from pathlib import Path

import pandas as pd
import torch

from ..analysis import kl_signal, results, unknowns
from ..config import limits
from ..config.run import RunConfig, ablation_runs, experiment_variants, load_config
from ..core import cache_files, fileio
from ..core.cache import cache_dir
from ..core.run_folder import read_status
from ..data import prompts
from ..data.batches import eval_subset
from ..grading.grader import grader_for
from ..method import losses
from ..toy.wording import family_strategies
from . import assets, twins
from .runs import check_folder, seed_everything
from .sweep import run_name, run_sweep, unfinished

log = logging.getLogger(__name__)


_GRADERS: dict = {}  # grading settings -> the Grader every run of this process shares


def _grader(cfg: RunConfig):
    """A context yielding this process's warm `Grader` for `cfg.grading`: its worker processes
    (math-verify imported and warmed, seconds each) start once, not once per sweep run; they are
    closed when the process exits."""
    if cfg.grading not in _GRADERS:
        _GRADERS[cfg.grading] = grader_for(cfg)
        atexit.register(_GRADERS[cfg.grading].close)
    return contextlib.nullcontext(_GRADERS[cfg.grading])


def prepare(cfg: RunConfig, run_dir: Path) -> dict:
    """Problems by split (saved as JSONL), base student folder(s), and for the toy world the
    premise table: held-out greedy accuracy unguided vs guided, per family and student size."""
    by_split = assets.problems(cfg)
    for split, ps in by_split.items():
        fileio.write_jsonl(run_dir / "data" / f"{split}.jsonl", [p.to_dict() for p in ps])
    sizes = list(dict.fromkeys([cfg.student.size, *cfg.experiment.scaling_sizes])) if cfg.model.source == "toy" else [None]
    students = {size: str(assets.student_dir(cfg, size)) for size in sizes}
    out = {"counts": {s: len(ps) for s, ps in by_split.items()}, "students": students, "example": by_split["train"][0]}
    if cfg.data.source == "toy":
        held_out = by_split["test"] + by_split["ood"]
        tables = []
        for size, d in students.items():
            cached = cache_dir(cfg, "premise", {"student": d, "world": cfg.world, "seed": cfg.world_seed}) / "premise.csv"
            if not cache_files.intact(cached):
                from ..toy.premise import premise_table

                table = premise_table(Path(d), held_out, family_strategies(cfg.world.families), cfg.instruction)
                fileio.write_text(cached, table.to_csv(index=False))
                cache_files.seal(cached)
            tables.append(pd.read_csv(cached).assign(size=size))
        premise = pd.concat(tables, ignore_index=True)
        premise.to_csv(run_dir / "premise.csv", index=False)
        out["premise"] = premise
    fileio.write_json(run_dir / "prepare.json", {k: out[k] for k in ("counts", "students")})
    return out


def extract(cfg: RunConfig, run_dir: Path) -> dict:
    """The strategy library (copied into the run folder), the outcome per problem by reason, and
    the candidate / selection counts (`strategies.select`)."""
    library, report = assets.strategy_library(cfg)
    selection = assets.strategy_selection(cfg)
    library.save(run_dir / "strategies.jsonl")
    fileio.write_json(run_dir / "strategy_report.json", dict(report))
    fileio.write_json(run_dir / "strategy_selection.json", dict(selection))
    table = pd.DataFrame([{"id": s.id, "problem_type": s.problem_type, "strategy": s.strategy, "steps": len(s.steps),
                           "candidate": s.provenance.get("candidate"), "selected": s.provenance.get("selected")}
                          for s in library])
    return {"library": library, "table": table,
            "report": pd.Series(dict(report), name="count", dtype=int).sort_values(ascending=False),
            "selection": pd.Series(dict(selection), name="count", dtype=int).sort_index()}


def _paired_batch(cfg: RunConfig, data, generator, tok, per_source: int):
    """Paired rollouts of one policy (`generator`, see `backends.PolicySampler`) on the first
    `per_source` training problems of each family / benchmark, with step-0 seeds."""
    from ..method.rollouts import sample_paired
    from ..model.generation import SamplingSpec

    spec = SamplingSpec.from_rollout(cfg.rollout)
    with _grader(cfg) as grader:
        return sample_paired(generator, tok, eval_subset(data.train, ("train",), per_source), data.strategy_for,
                             cfg.rollout.n_autonomous, max(cfg.rollout.n_guided, 1), spec, cfg.seed, 0, grader, cfg.instruction)


def paired_rollouts(cfg: RunConfig, run_dir: Path, per_source: int = 16) -> pd.DataFrame:
    """One round of paired rollouts of the base student on training problems (section 2):
    the first `per_source` problems of each family / benchmark.

    Returns per-problem stats (p_auto, p_guided); saves them and the rollouts.
    """
    from ..method.rollouts import save_rollouts
    from ..train.backends import PolicySampler, record

    data = assets.train_data(cfg)
    with PolicySampler(cfg, data.model_dir) as sampler:
        generator, tok = sampler.policy(None)
        record(run_dir, "02_paired_rollouts", generator)
        batch = _paired_batch(cfg, data, generator, tok, per_source)
    save_rollouts(run_dir / "paired_rollouts.jsonl", batch.rollouts)
    batch.stats.to_csv(run_dir / "paired_stats.csv", index=False)
    return batch.stats


def guidance_shift(cfg: RunConfig, run_dir: Path, per_source: int = 16) -> pd.DataFrame:
    """The guidance weight on fixed problems, before and after SGPO (section 5: w should fall).

    The per-step `w_mean` of training is measured on a new batch every step, so it is noisy;
    here notebook 02's problems are sampled again, with the same seeds, by the base student and
    by each SGPO run of the main table (its final adapter), with the configured backend and
    device (`backends.PolicySampler`). One row per policy: mean p_auto, p_guided and w
    (`distill.weighting`) over the problems that have a strategy. Saved as `guidance_shift.csv`.
    """
    from ..train.backends import PolicySampler, record

    policies = {"base student": None}
    policies.update({d.name: d / "final" for d in sorted((run_dir / "main").glob("train.method=sgpo_*"))
                     if read_status(d) == "done"})
    data = assets.train_data(cfg)
    with PolicySampler(cfg, data.model_dir) as sampler:
        rows = []
        for name, final in policies.items():
            generator, tok = sampler.policy(final)
            record(run_dir, f"03_guidance_shift/{name}", generator)
            rows.append(_shift_row(cfg, name, _paired_batch(cfg, data, generator, tok, per_source).stats))
    table = pd.DataFrame(rows).set_index("policy")
    table.to_csv(run_dir / "guidance_shift.csv")
    return table


def _shift_row(cfg: RunConfig, name: str, stats: pd.DataFrame) -> dict:
    """Mean p_auto, p_guided and guidance weight w of one policy over problems with a strategy."""

    stats = stats.dropna(subset=["p_guided"])
    w = losses.guidance_weights(torch.tensor(stats["p_auto"].values), torch.tensor(stats["p_guided"].values),
                                cfg.distill.weighting, cfg.distill.gamma)
    return {"policy": name, "problems": len(stats), "p_auto": stats["p_auto"].mean(),
            "p_guided": stats["p_guided"].mean(), "w": float(w.mean())}


def measure_signal(cfg, run_dir: Path, per_source: int = 2, final_dir: Path | None = None) -> list[dict]:
    """Where the signal lands on `per_source` guided rollouts per family of notebook 02 (its
    `paired_rollouts.jsonl`), under the base student or a trained run's `final_dir`; saved as `signal.json`."""
    from ..method.rollouts import load_rollouts
    from ..train.backends import load_student

    data = assets.train_data(cfg)
    problems = {p.id: p for p in data.train}
    model, tok = load_student(cfg, data.model_dir, final_dir)
    out = []
    for r in kl_signal.pick_rollouts(load_rollouts(Path(run_dir) / "paired_rollouts.jsonl"), problems, per_source):
        p = problems[r.problem_id]
        guided = prompts.render(tok, prompts.guided_messages(p, data.strategy_for(p), cfg.instruction))
        unguided = prompts.render(tok, prompts.unguided_messages(p, cfg.instruction))
        out.append({"problem_id": p.id, "source": p.source, "reward": r.reward,
                    **kl_signal.rollout_signal(model, tok, guided, unguided, r.token_ids)})
    fileio.write_json(Path(run_dir) / kl_signal.SIGNAL_FILE, {"policy": str(final_dir or "base student"), "rollouts": out})
    log.info("signal: %d guided rollouts measured, %s", len(out), Path(run_dir) / kl_signal.SIGNAL_FILE)
    return out


def rollouts(cfg: RunConfig, run_dir: Path, per_source: int = 16, signal_per_source: int = 2) -> dict:
    """Notebook 02: the paired rollouts of the starting student on `per_source` problems per family
    (`paired_rollouts`: `stats`) and the signal on `signal_per_source` guided ones per family
    (`measure_signal`: `signal`, the rows of `signal.json`)."""
    return {"stats": paired_rollouts(cfg, run_dir, per_source), "signal": measure_signal(cfg, run_dir, signal_per_source)}


def train_variant(params_file: str, overrides: dict, out_dir: Path) -> dict:
    """Train one config (params + overrides) into `out_dir`; the unit of every sweep. A folder that
    holds a run of another config or other code is refused (`runs.check_folder`)."""
    from ..train.distributed import rank_zero_first
    from ..train.trainer import train

    cfg = load_config(params_file, overrides)
    limits.check_machine(cfg)
    check_folder(Path(out_dir), cfg)
    seed_everything(cfg.seed)
    size = cfg.student.size if cfg.model.source == "toy" else None
    with _grader(cfg) as grader:
        with rank_zero_first(cfg.train.dist_timeout_s):  # under a launch: rank 0 extracts and caches, then the rest read
            data = assets.train_data(cfg, size)
        return train(cfg, data, Path(out_dir), grader)


def _sweep(cfg: RunConfig, run_dir: Path, name: str, variants: list[dict]) -> pd.DataFrame:
    """Run `variants` of the run's resolved config into `run_dir/name/<variant>`, after copying in the
    finished twins other run folders hold (`twins.copy_finished`) and building the SFT warm-ups the
    unfinished ones start from here, once each (`assets.prepare_warmups`).
    The runs that still did not finish go to `name/unfinished.json` (`results.missing_runs`)."""
    twins.copy_finished(cfg, str(run_dir / "config.yaml"), variants, run_dir / name)
    todo = unfinished(run_dir / name, variants)
    assets.prepare_warmups(str(run_dir / "config.yaml"), [v for v in variants if run_name(v) in todo])
    table = run_sweep(str(run_dir / "config.yaml"), variants, run_dir / name, parallel=cfg.experiment.parallel,
                      train_fn=train_variant, gpus_per_run=cfg.experiment.gpus_per_run)
    fileio.write_json(run_dir / name / results.UNFINISHED_FILE, unfinished(run_dir / name, variants))
    return table


def train_main(cfg: RunConfig, run_dir: Path) -> dict:
    """Notebook 03: the SFT warm-up SGPO starts from (`assets.build_warmup`: `warmup`), every method
    of `experiment.methods` x `experiment.seeds` trained under `main/` (`results.main_table`: `main`),
    the guidance weight before and after SGPO (`guidance_shift`), and the memory plan of a run
    (`memory_plan.plan_frame`: `memory_plan`), and where `regime.ready` the regime table (`regime`:
    base, SFT warm-up and SFT+GRPO against the paper's regime, no SGPO row read; else None)."""
    from ..model import memory_plan
    from . import regime

    warmup = assets.build_warmup(cfg)
    table = results.main_table(_sweep(cfg, run_dir, "main", experiment_variants(cfg)["main"]))
    return {"warmup": warmup, "main": table, "guidance_shift": guidance_shift(cfg, run_dir),
            "memory_plan": memory_plan.plan_frame(cfg, assets.student_dir(cfg)),
            "regime": regime.regime(cfg, run_dir) if regime.ready(cfg, run_dir) else None}


def ablate(cfg: RunConfig, run_dir: Path) -> pd.DataFrame:
    """SGPO ablations (§7), named as in `experiment.ablations` (`ablate/labels.json`); the table is
    `results.ablation_results`, the report's too: the reference row is the main table's SGPO runs
    (same seeds), beside the paper's numbers. An ablation run that is also a main-table run (e.g.
    `w/o strategy distillation` = `{train.method: sft_grpo}`, the paper's "= SFT+GRPO") is not trained
    again: the table reads it from `main/`."""
    if not cfg.experiment.ablations:
        return pd.DataFrame()
    runs = ablation_runs(cfg)
    fileio.write_json(run_dir / "ablate" / results.LABELS_FILE, {run_name(v): name for name, v in runs})
    main = {run_name(v) for v in experiment_variants(cfg)["main"]}
    _sweep(cfg, run_dir, "ablate", [v for _, v in runs if run_name(v) not in main])  # the others: main's runs
    return results.ablation_results(cfg, run_dir)


def scaling(cfg: RunConfig, run_dir: Path) -> pd.DataFrame:
    """Methods over student sizes: gain of each method over the base student, per size. Runs
    of the default size that the main table already trained are reused."""
    if not cfg.experiment.scaling_sizes:
        return pd.DataFrame()
    reused = results.main_runs_at_default_size(cfg, run_dir)
    taken = set(zip(reused["train.method"], reused["seed"])) if len(reused) else set()
    variants = [v for v in experiment_variants(cfg)["scaling"]
                if not (v["student.size"] == cfg.student.size and (v["train.method"], v["seed"]) in taken)]
    _sweep(cfg, run_dir, "scaling", variants)
    return results.scaling_table(results.scaling_runs(cfg, run_dir))


def study(cfg: RunConfig, run_dir: Path) -> dict:
    """Notebook 06: the study of the paper's unknowns (`experiment.unknowns`, named in
    `unknowns/labels.json`, with the ablation seeds), each row full SGPO with one choice changed; a row
    that is also a main-table or ablation run is read from there, not trained again. Returns
    `unknowns.study`: a table per unknown and the "Read:" lines (the report shows the same)."""
    runs = ablation_runs(cfg, "unknowns")
    if runs:
        fileio.write_json(run_dir / "unknowns" / results.LABELS_FILE, {run_name(v): name for name, v in runs})
        variants = experiment_variants(cfg)
        elsewhere = {run_name(v) for v in variants["main"] + variants["ablate"]}
        _sweep(cfg, run_dir, "unknowns", [v for _, v in runs if run_name(v) not in elsewhere])
    return unknowns.study(cfg, run_dir)


STAGES = {"prepare": prepare, "extract": extract, "rollouts": rollouts, "main": train_main, "ablate": ablate,
          "scaling": scaling, "study": study}  # command of `python -m sgpo_lib` -> the stage function of its notebook
