"""The regime table (issue 25, item 1): does the toy world sit in the paper's regime, by rules that
read no SGPO, no GRPO-from-base and no ablation row?

The targets, beside the paper's values (sgpo-method.md §9; thresholds [ours]):

- **premise**: the base student's greedy held-out test accuracy with its problem's strategy in the
  prompt is well above its unguided accuracy (at least `PREMISE_GAP` points), and the unguided
  accuracy is above zero (notebook 00's `premise.csv`);
- **SFT**: the SFT warm-up's test avg@k within ±`SFT_BAND` relative of the base student's
  (paper: 42.2 -> 42.7 on Qwen2.5-7B, +1%; 23.2 -> 22.2 on 1.5B, -4%);
- **SFT+GRPO**: at least `GRPO_GAIN` relative above the SFT warm-up (paper: +17% / +21%);
- **signal**: the distribution of the per-token KL(q‖p) (q = the starting student under the
  guided prompt, p = the same student unguided, same completion) on the *correct* guided rollouts
  of notebook 02: the share of tokens above δ and the share of the KL mass they carry, at each δ
  of `DELTAS` (measured, no target: the paper reports none; with `min(ℓ_t, δ)` these tokens get
  no gradient).

Where the numbers come from: the base student's test avg@k is the warm-up's own step-0
evaluation (`assets.build_warmup`, sampling seed `world_seed`); per training seed, the SFT row is
the step-0 evaluation of that seed's `sft_grpo` run under `main/` (the warm-up model it starts
from, sampled with the run's seed) and SFT+GRPO its last evaluation. A relative change is
`(after - before) / before`. The standard error of a row is the seeds' std / sqrt(seeds), the
binomial estimate `sqrt(m (1 - m) / (problems x seeds))`, and the one over seeds and problems
(crossed, problems nested in their family) from the runs' per-problem rows
(`paired.row_standard_error`, the main table's `SE avg`; NaN for the base row, one evaluation).
Per seed, beside them: RL's own training reward over the first and the last quarter of its steps
(`reward_trend`), which says whether GRPO climbs its objective on the world at all.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..analysis import kl_signal, paired, results
from ..config.run import RunConfig
from ..core import fileio
from ..data import prompts
from ..data.batches import eval_subset
from ..method.rollouts import load_rollouts
from ..train.backends import load_student
from . import assets

log = logging.getLogger(__name__)

DELTAS = (0.25, 1.0, 4.0)  # nats: issue 25's grid of δ (the method's default 1 in the middle)
PREMISE_GAP = 0.2  # guided minus unguided greedy accuracy, at least (fraction)
SFT_BAND = 0.10  # |SFT / base - 1| at most
GRPO_GAIN = 0.10  # SFT+GRPO / SFT - 1 at least
PAPER = {"SFT vs base": "+1% (7B) / -4% (1.5B)", "SFT+GRPO vs SFT": "+17% (7B) / +21% (1.5B)"}
REGIME_FILE = "regime.json"


def kl_shares(kl_per_rollout: Sequence[Sequence[float]], deltas: Sequence[float] = DELTAS) -> pd.DataFrame:
    """Per δ, over the tokens of all rollouts pooled: the share of tokens with KL > δ and the share
    of the total KL they carry (NaN without tokens or KL mass).

    Example:
        >>> kl_shares([[0.0, 2.0], [0.5, 5.5]], deltas=(1.0,)).values.tolist()
        [[1.0, 4.0, 0.5, 0.9375]]
    """
    values = [float(v) for kl in kl_per_rollout for v in kl]
    total = sum(values)
    rows = []
    for delta in deltas:
        above = [v for v in values if v > delta]
        rows.append({"delta": delta, "tokens": len(values),
                     "token share above": len(above) / len(values) if values else math.nan,
                     "KL mass share above": sum(above) / total if total > 0 else math.nan})
    return pd.DataFrame(rows)


def relative(before: float, after: float) -> float:
    """`(after - before) / before`; NaN when `before` is 0."""
    return (after - before) / before if before else math.nan


def premise_row(premise: pd.DataFrame, size: str) -> dict:
    """Test-split macro greedy accuracy unguided / guided of the student of `size`, and whether
    the premise holds (guided - unguided >= `PREMISE_GAP`, unguided > 0)."""
    rows = premise[(premise["split"] == "test") & (premise["family"] == "mean") & (premise["size"] == size)]
    if not len(rows):
        raise ValueError(f"premise.csv has no test 'mean' row for student size {size!r}")
    u, g = float(rows["unguided"].iloc[0]), float(rows["guided"].iloc[0])
    return {"unguided": u, "guided": g, "holds": bool(u > 0 and g - u >= PREMISE_GAP)}


def sft_grpo_runs(main_dir: Path) -> pd.DataFrame:
    """The `results.collect` rows of the finished `sft_grpo` runs under `main_dir`, read once for
    `seed_rows`, `crossed_errors` and `reward_trend`."""
    df = results.collect(main_dir, require_complete=False)
    if "phase" not in df:
        raise FileNotFoundError(f"{main_dir}: no finished run with results.json")
    df = df[df["train.method"] == "sft_grpo"]
    if not len(df):
        raise FileNotFoundError(f"{main_dir}: no finished sft_grpo run (experiment.methods must include sft_grpo)")
    return df


def seed_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """Per seed of the `sft_grpo` runs (`sft_grpo_runs`): test macro avg@k of the SFT warm-up (the
    run's step-0 evaluation) and of SFT+GRPO (its last), as fractions."""
    macro = runs[(runs["split"] == "test") & (runs["source"] == "macro")]
    wide = macro.pivot_table(index="seed", columns="phase", values=results.METRIC, aggfunc="first")
    return pd.DataFrame({"SFT": wide["base"], "SFT+GRPO": wide["final"]}).rename_axis("seed").reset_index()


def crossed_errors(runs: pd.DataFrame) -> dict[str, float]:
    """The standard errors (points) over seeds and problems of the SFT warm-up (the `sft_grpo` runs'
    step-0 evaluations) and of SFT+GRPO (their last), `paired.row_standard_error`."""
    return {name: paired.row_standard_error(runs, "train.method", "sft_grpo", results.METRIC, phase)[0]
            for name, phase in (("SFT", "base"), ("SFT+GRPO", "final"))}


def reward_trend(runs: pd.DataFrame, main_dir: Path) -> pd.DataFrame:
    """Per seed of the `sft_grpo` runs (`sft_grpo_runs`, folders under `main_dir`): the mean training
    reward of the autonomous rollouts (`reward_auto`, sampled at temperature 1: RL's own objective)
    over the first and the last quarter of the run's steps (at least one step each), as fractions.
    Whether RL climbs its objective at all tells a world where it cannot from one where its gains
    do not reach the test split.

    Example:
        >>> import tempfile
        >>> main = Path(tempfile.mkdtemp()); (main / "r3").mkdir()
        >>> fileio.write_jsonl(main / "r3" / "metrics.jsonl", [{"step": 0}] + [{"step": s, "reward_auto": s / 10} for s in range(1, 9)])
        >>> reward_trend(pd.DataFrame({"run": ["r3", "r3"], "seed": [3, 3]}), main).round(3).values.tolist()
        [[3.0, 0.15, 0.75]]
    """
    rows = []
    for run, seed in runs[["run", "seed"]].drop_duplicates().itertuples(index=False):
        rewards = [r["reward_auto"] for r in fileio.read_jsonl(Path(main_dir) / run / "metrics.jsonl", tolerate_torn_tail=True)
                   if "reward_auto" in r]
        if rewards:
            q = max(1, len(rewards) // 4)
            rows.append({"seed": seed, "reward first quarter": sum(rewards[:q]) / q, "reward last quarter": sum(rewards[-q:]) / q})
    return pd.DataFrame(rows, columns=["seed", "reward first quarter", "reward last quarter"])


def correct_guided_kl(cfg: RunConfig, run_dir: Path) -> list[list[float]]:
    """Per-token KL(q‖p) of every correct guided rollout in notebook 02's `paired_rollouts.jsonl`,
    under the starting student (`kl_signal.rollout_signal`)."""
    path = Path(run_dir) / "paired_rollouts.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run stage 'rollouts' (notebook 02) first")
    data = assets.train_data(cfg)
    problems = {p.id: p for p in data.train}
    model, tok = load_student(cfg, data.model_dir)
    out = []
    for r in load_rollouts(path):
        if r.guided and r.reward > 0 and r.token_ids:
            p = problems[r.problem_id]
            guided = prompts.render(tok, prompts.guided_messages(p, data.strategy_for(p), cfg.instruction))
            unguided = prompts.render(tok, prompts.unguided_messages(p, cfg.instruction))
            out.append(kl_signal.rollout_signal(model, tok, guided, unguided, r.token_ids)["kl"])
    return out


def accuracy_table(base: float, per_seed: pd.DataFrame, n_problems: int, crossed_se: dict | None = None) -> pd.DataFrame:
    """Rows base / SFT / SFT+GRPO in points: mean over seeds, seed std, the standard errors (over
    seeds, binomial, and `crossed_se[row]` over seeds and problems when given), the relative change
    against the row before it (the mean of the seeds' changes), the target, whether it holds on every
    seed (`holds`) and whether it holds on that mean (`holds on the mean`: the calibration's rule,
    toy/README.md *Measured regime*)."""
    seeds = len(per_seed)
    sft_rel = [relative(base, s) for s in per_seed["SFT"]]
    grpo_rel = [relative(s, g) for s, g in zip(per_seed["SFT"], per_seed["SFT+GRPO"])]
    rows = []
    def within_band(r):
        return abs(r) <= SFT_BAND

    def gains(r):
        return r >= GRPO_GAIN

    for name, values, rel, target, test in (
        ("base", pd.Series([base]), [], "", None),
        ("SFT", per_seed["SFT"], sft_rel, f"within ±{SFT_BAND:.0%} of base; paper {PAPER['SFT vs base']}", within_band),
        ("SFT+GRPO", per_seed["SFT+GRPO"], grpo_rel, f">= +{GRPO_GAIN:.0%} over SFT; paper {PAPER['SFT+GRPO vs SFT']}", gains),
    ):
        m, n = float(values.mean()), len(values)
        mean_rel = float(pd.Series(rel).mean()) if rel else math.nan
        rows.append({"row": name, "avg@k": 100 * m, "seed std": 100 * float(values.std()) if n > 1 else math.nan,
                     "SE seeds": 100 * float(values.std()) / math.sqrt(n) if n > 1 else math.nan,
                     "SE binomial": 100 * math.sqrt(m * (1 - m) / (n_problems * (seeds if name != "base" else 1))),
                     "SE seeds × problems": (crossed_se or {}).get(name, math.nan),
                     "relative change": mean_rel, "per seed": [round(100 * r, 1) for r in rel], "target": target,
                     "holds": all(map(test, rel)) if test else None,
                     "holds on the mean": bool(test(mean_rel)) if test else None})
    return pd.DataFrame(rows).set_index("row")


def ready(cfg: RunConfig, run_dir: Path) -> bool:
    """Whether the regime table can be made: the toy world, `sft_grpo` among the main methods, and
    notebooks 00 and 02's files in `run_dir` (which it logs when they are missing)."""
    if cfg.data.source != "toy" or "sft_grpo" not in cfg.experiment.methods:
        return False
    missing = [name for name in ("premise.csv", "paired_rollouts.jsonl") if not (Path(run_dir) / name).exists()]
    if missing:
        log.info("regime table skipped: %s missing from %s (run notebooks 00 and 02 first)", missing, run_dir)
    return not missing


def regime(cfg: RunConfig, run_dir: Path) -> dict:
    """The regime table of a run folder after notebooks 00, 02 and 03 (see the module docstring):
    `accuracy` (base / SFT / SFT+GRPO), `premise`, `per_seed` (with RL's training reward, first and
    last quarter), `kl` (shares at each δ); written to
    `regime.json` and `regime.csv`."""
    run_dir = Path(run_dir)
    premise = premise_row(pd.read_csv(run_dir / "premise.csv"), cfg.student.size)
    warm = assets.build_warmup(cfg)
    runs = sft_grpo_runs(run_dir / "main")
    per_seed = seed_rows(runs).merge(reward_trend(runs, run_dir / "main"), on="seed", how="left")
    n_problems = len(eval_subset(assets.problems(cfg)["test"], ("test",), cfg.eval.max_problems))
    accuracy = accuracy_table(float(warm["test avg@k (base)"]), per_seed, n_problems, crossed_errors(runs))
    kl = kl_shares(correct_guided_kl(cfg, run_dir))
    out = {"world_seed": cfg.world_seed, "strong_skip_rate": cfg.world.strong_skip_rate, "premise": premise,
           "accuracy": accuracy.reset_index().to_dict("records"), "per_seed": per_seed.to_dict("records"),
           "kl": kl.to_dict("records"), "eval_problems": n_problems, "rl_steps": cfg.train.steps}
    fileio.write_json(run_dir / REGIME_FILE, out)
    accuracy.to_csv(run_dir / "regime.csv")
    log.info("regime: %s", run_dir / REGIME_FILE)
    return {"accuracy": accuracy, "premise": pd.Series(premise, name="premise (test, greedy)"),
            "per_seed": per_seed, "kl": kl}


def report_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """`regime.json` of `run_dir` as the report's two tables: `regime` (base / SFT / SFT+GRPO with
    their targets, both rules, and the premise as its first row) and `regime_kl` (the shares above
    each δ); {} when the run has none (not the toy world, or notebook 03 has not run)."""
    path = Path(run_dir) / REGIME_FILE
    if not path.exists():
        return {}
    saved = fileio.read_json(path)
    premise = saved["premise"]
    rows = [{"row": "premise (greedy test, unguided → guided)",
             "avg@k": f"{100 * premise['unguided']:.1f} → {100 * premise['guided']:.1f}",
             "target": f"guided >= unguided + {100 * PREMISE_GAP:.0f} points, unguided > 0",
             "holds": premise["holds"], "holds on the mean": premise["holds"]}]
    for r in saved["accuracy"]:
        change = "" if r["row"] == "base" else f"{100 * r['relative change']:+.1f}% ({', '.join(f'{v:+.1f}' for v in r['per seed'])})"
        rows.append({"row": r["row"], "avg@k": f"{r['avg@k']:.1f}", "SE seeds × problems": r["SE seeds × problems"],
                     "change, mean (per seed)": change, "target": r["target"], "holds": r["holds"],
                     "holds on the mean": r["holds on the mean"]})
    title = f"world seed {saved['world_seed']}, strong_skip_rate {saved['strong_skip_rate']:g}, {saved['rl_steps']} RL steps"
    columns = ["avg@k", "change, mean (per seed)", "SE seeds × problems", "target", "holds", "holds on the mean"]
    kl = pd.DataFrame(saved["kl"]).set_index("delta")
    kl = pd.DataFrame({"tokens": kl["tokens"], "token share above (%)": 100 * kl["token share above"],
                       "KL mass share above (%)": 100 * kl["KL mass share above"]}).rename_axis("δ (nats)")
    return {"regime": pd.DataFrame(rows, columns=["row", *columns]).set_index("row").fillna("").rename_axis(title),
            "regime_kl": kl}
