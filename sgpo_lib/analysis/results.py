"""The read side: sweep folders -> DataFrames -> the main, ablation and scaling tables.

Nothing here trains or writes a run; the stages (`stages.py`, which compute) and the report
(`report.py`, which only reads) both build their tables from these functions, so notebook 04 and
the report show the same ablation table. `collect(root)` gives one row per (run, phase, split,
benchmark) from each run's `config.yaml` + `results.json` (+ the sweep's `labels.json`, a display
name per run folder, e.g. the paper's ablation names). Tables report a metric (default `avg@k`,
the paper's protocol, sgpo-method.md §8; `greedy` is the extra) in points, as mean ± std over
seeds, per benchmark (family), the macro average over test benchmarks (`avg`) and the OOD macro
average (`ood`). `ablation_table` sets the paper's §7 numbers beside this run's (`paper.py`).
Each (run, phase, split, benchmark) row also holds its per-problem outcomes (`problems`, from the
run's `eval_problems.jsonl`; absent in older run folders), so two rows are compared problem by
problem (`paired.paired_cells`, `paired.paired_interval`: the same seeds and the same problems,
seeds and problems crossed); `paper.verdict` reads the interval. The main table gives each row's
standard error over seeds and problems (`paired.row_standard_error`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from ..config.deprecated import current_value
from ..config.experiment import WARMUP_METHODS, ablation_seeds
from ..config.run import RunConfig
from ..core import fileio
from ..core.run_folder import EVAL_PROBLEMS_FILE, read_status
from . import paper
from .paired import POINTS, UNIT_NOTES, interval_text, paired_cells, paired_interval, row_standard_error, unit_of
from .report_format import seeds_text

METRIC = "avg@k"  # the main metric (§8); evals.jsonl / results.json rows also hold greedy and pass@k
HEADLINE = ("greedy", "avg@k", "pass@k")
LABELS_FILE = "labels.json"  # in a sweep folder: {run folder: display name}
UNFINISHED_FILE = "unfinished.json"  # in a sweep folder of a run: {run folder: status} of the runs that did not finish
# §6 and §9: main-table rows in the paper's order, GRPO from the base model last (ours, extra)
METHOD_LABELS = {"sft": "SFT", "sft_grpo": "SFT+GRPO", "hpt": "HPT", "luffy": "LUFFY",
                 "sgpo": "SGPO", "grpo": "GRPO (from base)"}
FULL_SGPO = "full SGPO"  # the ablation table's reference row: the main table's SGPO runs


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_labels(root: Path) -> dict[str, str]:
    """`root/labels.json`: a display name per run folder of a sweep (empty without the file)."""
    path = Path(root) / LABELS_FILE
    return fileio.read_json(path) if path.exists() else {}


def collect(root: Path, require_complete: bool = True) -> pd.DataFrame:
    """One row per (run, phase, split, benchmark): status, label, flattened config, eval metrics.

    `phase` is `base` (step 0, before training) or `final`. Runs without results (failed,
    running) give one row with their status, unless `require_complete` raises for them. `label` is
    the run's name in `root/labels.json`, else its folder name without `_seed=N`. `problems` holds
    the row's per-problem outcomes (`problem_outcomes`), None in a run folder without them.
    """
    labels = run_labels(root)
    rows = []
    for run_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        status = read_status(run_dir)
        if require_complete and status != "done":
            raise RuntimeError(f"{run_dir}: STATUS is '{status or 'missing'}', not done")
        cfg = _flatten(yaml.safe_load((run_dir / "config.yaml").read_text())) if (run_dir / "config.yaml").exists() else {}
        label = labels.get(run_dir.name, re.sub(r"_seed=-?\d+$", "", run_dir.name))
        base = {"run": run_dir.name, "label": label, "status": status, **cfg}
        results = run_dir / "results.json"
        if not results.exists():
            rows.append(base)
            continue
        res = fileio.read_json(results)
        outcomes = problem_outcomes(run_dir)
        rows += [{**base, "phase": phase, **e, "problems": outcomes.get((e.get("step"), e["split"], e["source"]))}
                 for phase in ("base", "final") for e in res[f"{phase}_eval"]]
    return pd.DataFrame(rows)


def problem_outcomes(run_dir: Path) -> dict[tuple, dict[str, dict[str, float]]]:
    """`{(step, split, source): {problem_id: {"avg@k", "greedy", "pass@k"}}}` from the run's
    `eval_problems.jsonl` (pass@k with n = k: any correct sample); {} without the file (older runs)."""
    path = Path(run_dir) / EVAL_PROBLEMS_FILE
    out: dict[tuple, dict[str, dict[str, float]]] = {}
    for r in fileio.read_jsonl(path, tolerate_torn_tail=True) if path.exists() else ():
        out.setdefault((r["step"], r["split"], r["source"]), {})[r["problem_id"]] = {
            "avg@k": r["correct"] / r["k"], "greedy": float(r["greedy"]), "pass@k": float(r["correct"] > 0)}
    return out


def collected(root: Path) -> pd.DataFrame:
    """`collect(root)` of a sweep folder, finished or not; empty when it holds no run yet."""
    return collect(root, require_complete=False) if root.exists() and any(root.iterdir()) else pd.DataFrame()


def summary(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per run: the grid axes, its status and the final test macro metrics (the full
    table goes to a file)."""
    if not len(df):
        return df
    runs = df.groupby("run", sort=True).first()[[a for a in axes if a in df.columns] + ["status"]]
    if "phase" not in df.columns:
        return runs
    final = df[(df["phase"] == "final") & (df["split"] == "test") & (df["source"] == "macro")]
    return runs.join(final.set_index("run")[list(HEADLINE)], how="left")


def metrics_of(root: Path) -> dict[str, pd.DataFrame]:
    """`metrics.jsonl` of every run under `root`, keyed by run name."""
    return {p.parent.name: pd.DataFrame(fileio.read_jsonl(p, tolerate_torn_tail=True))
            for p in sorted(Path(root).glob("*/metrics.jsonl"))}


def method_of(run: str) -> str:
    """The display name of a main-table run folder (`train.method=sft_grpo_seed=0` -> `SFT+GRPO`);
    any other folder keeps its name without `_seed=N`.

    Example:
        >>> method_of("train.method=sft_grpo_seed=0"), method_of("train.method=sgpo_distill.coef=0_seed=1")
        ('SFT+GRPO', 'train.method=sgpo_distill.coef=0')
    """
    name = re.sub(r"_seed=-?\d+$", "", run)
    method = name.removeprefix("train.method=")
    return METHOD_LABELS.get(current_value("train.method", method), name)


def run_label(run: str) -> str:
    """A main-table run folder as a person names it (`train.method=sgpo_seed=0` -> `SGPO, seed 0`);
    any other name is kept.

    Example:
        >>> run_label("train.method=sft_grpo_seed=2"), run_label("base student")
        ('SFT+GRPO, seed 2', 'base student')
    """
    seed = re.search(r"_seed=(-?\d+)$", run)
    return f"{method_of(run)}, seed {seed.group(1)}" if seed else run


def method_groups(series: dict[str, pd.DataFrame]) -> dict[str, list[pd.DataFrame]]:
    """`metrics_of`'s runs grouped by method (`method_of`), in the main table's order."""
    groups: dict[str, list[pd.DataFrame]] = {}
    for run, rows in series.items():
        groups.setdefault(method_of(run), []).append(rows)
    return dict(sorted(groups.items(), key=lambda kv: method_order(kv[0])))


def method_order(name: str) -> tuple[int, str]:
    """Sort key of a method's display name: the main table's order, other names after it by name."""
    order = list(dict.fromkeys(METHOD_LABELS.values()))
    return (order.index(name), "") if name in order else (len(order), name)


def alpha_of(root: Path) -> dict[str, pd.DataFrame]:
    """`alpha.jsonl` (rows `step, problem_id, alpha, p_auto, p_guided`, §5) of every run under `root`."""
    return {p.parent.name: pd.DataFrame(fileio.read_jsonl(p, tolerate_torn_tail=True))
            for p in sorted(Path(root).glob("*/alpha.jsonl"))}


def alpha_first_last(alpha: pd.DataFrame, n_problems: int = 8) -> pd.DataFrame:
    """α of the `n_problems` most visited problems (ties by id) at their first and last visit:
    index problem_id, columns `first`, `last`, `visits` (§5: α should fall as the student learns)."""
    visits = alpha.groupby("problem_id")["step"].count()
    chosen = sorted(visits.index, key=lambda p: (-visits[p], str(p)))[:n_problems]
    rows = alpha[alpha["problem_id"].isin(chosen)].sort_values("step").groupby("problem_id")["alpha"]
    return pd.DataFrame({"first": rows.first(), "last": rows.last(), "visits": visits[chosen]}).loc[chosen]


def _fmt(mean: float, std: float, n: int) -> str:
    return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"



def from_base_student(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs whose step 0 is the base student: not a method that starts from the SFT
    warm-up (`WARMUP_METHODS`, with `train.warmup_sft_fraction` > 0). Rows without those columns
    (not a training run's) are kept.

    Example:
        >>> df = pd.DataFrame({"train.method": ["sgpo", "grpo", "sft_grpo"], "train.warmup_sft_fraction": [0.5, 0.5, 0.0]})
        >>> list(from_base_student(df)["train.method"])
        ['grpo', 'sft_grpo']
    """
    if "train.method" not in df or "train.warmup_sft_fraction" not in df:
        return df
    from_warmup = df["train.method"].isin(WARMUP_METHODS) & (df["train.warmup_sft_fraction"] > 0)
    return df[~from_warmup]


WARMUP_ROW = "SFT warm-up (step 0)"  # a table's start row when every run starts from the SFT warm-up


def start_row(df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The name and the rows of a table's start: `base` and the runs that start from the base student
    (`from_base_student`), else `WARMUP_ROW` and all runs (each starts from the SFT warm-up)."""
    base = from_base_student(df)
    return ("base", base) if len(base) else (WARMUP_ROW, df)


def long_table(df: pd.DataFrame, group: str, metric: str = METRIC, phase: str = "final") -> pd.DataFrame:
    """Per (group value, split, source): mean, std, number of seeds, in points."""
    done = df[(df["status"] == "done") & (df["phase"] == phase)]
    agg = done.groupby([group, "split", "source"])[metric].agg(["mean", "std", "count"]).reset_index()
    agg[["mean", "std"]] = agg[["mean", "std"]].fillna(0.0) * POINTS
    return agg


def wide_table(df: pd.DataFrame, group: str, metric: str = METRIC, with_base: bool = True) -> pd.DataFrame:
    """Rows = `group` values (e.g. methods); columns = test benchmarks, `avg`, `ood` (mean ± std over
    seeds, the mean alone for one seed) and `seeds` ("1 seed", "3 seeds").

    With `with_base`, a first row holds the runs' start (`start_row`): `base`, the untrained student
    (the step-0 evaluation, seed-averaged, of the first group that starts from it), or `WARMUP_ROW`
    when every run starts from the SFT warm-up.
    """
    parts = [long_table(df, group, metric)]
    if with_base:
        name, start = start_row(df)
        base = long_table(start, group, metric, phase="base")
        if len(base):
            base = base.groupby(["split", "source"])[["mean", "std", "count"]].first().reset_index()
            base[group] = name
            parts.insert(0, base)
    long = pd.concat(parts, ignore_index=True)
    long["cell"] = [_fmt(m, s, int(c)) for m, s, c in zip(long["mean"], long["std"], long["count"])]
    long["column"] = [("avg" if sp == "test" else "ood") if src == "macro" else src.split("/")[-1]
                      for sp, src in zip(long["split"], long["source"])]
    long = long[(long["split"] == "test") | (long["source"] == "macro")]
    order = list(dict.fromkeys(long[group]))
    table = long.pivot_table(index=group, columns="column", values="cell", aggfunc="first").reindex(order)
    cols = [c for c in table.columns if c not in ("avg", "ood")] + [c for c in ("avg", "ood") if c in table.columns]
    table.columns.name = None
    seeds = long.groupby(group)["count"].max().reindex(order)
    return table[cols].assign(seeds=[seeds_text(int(n)) for n in seeds])


def with_method(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `method` column: the display name of its `train.method` (`METHOD_LABELS`; a
    deprecated name is read as its current one)."""
    return df.assign(method=df["train.method"].map(lambda m: METHOD_LABELS.get(current_value("train.method", m), m)))


def main_table(df: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """The main table (§9): rows base, SFT, SFT+GRPO, HPT, LUFFY, SGPO, then GRPO from the base model
    (the methods that ran, in that order), per family, `avg` and `ood`, mean ± std over seeds, and
    `SE avg`: the standard error of `avg` over seeds and problems (`standard_error_text`)."""
    if not len(df) or "train.method" not in df or "phase" not in df:
        return pd.DataFrame()
    df = with_method(df)
    table = wide_table(df, "method", metric)
    order = [m for m in ["base", WARMUP_ROW, *dict.fromkeys(METHOD_LABELS.values())] if m in table.index]
    table = table.reindex(order + [m for m in table.index if m not in order])
    table.insert(len(table.columns) - 1, SE_COLUMN, [standard_error_text(df, "method", m, metric) for m in table.index])
    return table.rename_axis(f"method ({metric})")


SE_COLUMN = "SE avg"  # the main table's standard error of `avg` over seeds and problems (points)


def standard_error_text(df: pd.DataFrame, group: str, name: str, metric: str = METRIC) -> str:
    """Row `name`'s standard error of its test mean over seeds and problems (`paired.row_standard_error`),
    in points; the start row (`base` or `WARMUP_ROW`) is `wide_table`'s: the step-0 evaluation of the
    first group of `start_row`; "" with one cell."""
    phase, value = "final", name
    if name in ("base", WARMUP_ROW):
        df = start_row(df)[1]
        phase, value = "base", sorted(df.loc[(df["phase"] == "base") & (df["status"] == "done"), group])[0]
    se, unit = row_standard_error(df, group, value, metric, phase)
    return "" if se != se else f"{se:.1f}{UNIT_NOTES[unit]}"


def base_accuracy(df: pd.DataFrame, group: str, split: str = "test", metric: str = METRIC) -> float | None:
    """The untrained student's macro accuracy on `split`, in points: the step-0 evaluation of the
    first group that starts from it (`from_base_student`); None without one."""
    base = long_table(from_base_student(df), group, metric, phase="base")
    macro = base[(base["source"] == "macro") & (base["split"] == split)]
    return float(macro["mean"].iloc[0]) if len(macro) else None


def numeric_table(df: pd.DataFrame, group: str, metric: str = METRIC) -> pd.DataFrame:
    """Macro test/OOD means and stds per `group` value (for plots)."""
    long = long_table(df, group, metric)
    macro = long[long["source"] == "macro"]
    return macro.pivot_table(index=group, columns="split", values=["mean", "std"]).sort_index()


def ablation_table(ablate: pd.DataFrame, main: pd.DataFrame, seeds: tuple[int, ...], metric: str = METRIC) -> pd.DataFrame:
    """The ablation table (§7): the reference row `full SGPO` (the main table's SGPO runs of `seeds`),
    then one row per ablation (its `label`, e.g. the paper's name; the paper's order first): per-family cells and `avg` as mean ± std
    over seeds, `Δ avg` vs full SGPO with its paired 95% interval over (seed, problem) cells (`paired`), the paper's value
    and Δ (`paper.py`, Qwen2.5-7B average) and whether the paper's ordering holds here, is reversed
    or is inconclusive (`paper.verdict`); "" for a name the paper lacks."""
    parts = [d for d in (ablate,) if len(d) and "phase" in d]
    if len(main) and "phase" in main:
        ref = main[(main["train.method"] == "sgpo") & main["seed"].isin(seeds)]
        parts.insert(0, ref.assign(label=FULL_SGPO))
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, ignore_index=True)
    table = wide_table(df, "label", metric, with_base=False).drop(columns="ood", errors="ignore")
    named = [n for n in [FULL_SGPO, *paper.ABLATIONS] if n in table.index]  # the paper's order, then the others
    table = table.reindex(named + [n for n in table.index if n not in named])
    means = numeric_table(df, "label", metric)[("mean", "test")]
    delta = means - means.get(FULL_SGPO, float("nan"))
    table["Δ avg"] = [f"{delta[n]:+.1f}" for n in table.index]
    cells = {n: paired_cells(df, "label", n, FULL_SGPO, metric) for n in table.index if n != FULL_SGPO}
    intervals = {n: paired_interval(c) for n, c in cells.items()}
    table["Δ 95% CI"] = [interval_text(intervals[n], unit_of(cells[n])) if n in intervals else "" for n in table.index]
    table["paper"] = [paper.FULL if n == FULL_SGPO else paper.ABLATIONS.get(n) for n in table.index]
    table["paper Δ"] = [paper.ablation_delta(n) for n in table.index]
    table["paper's ordering here"] = [paper.verdict(intervals[n], paper.ablation_delta(n)) if n in intervals else ""
                                      for n in table.index]
    return table.rename_axis(f"ablation ({metric})")


def ablation_results(cfg: RunConfig, run_dir: Path, metric: str = METRIC) -> pd.DataFrame:
    """`ablation_table` of the run's `ablate/` and `main/` sweeps: the one table notebook 04 and the
    report show. Ablation runs that are main-table runs (named in `ablate/labels.json`, trained
    once, in `main/`) are read from there under their ablation name."""
    main = collected(run_dir / "main")
    labels = run_labels(run_dir / "ablate")
    reused = main[main["run"].isin(labels)].assign(label=lambda d: d["run"].map(labels)) if len(main) else main
    ablate = pd.concat([d for d in (collected(run_dir / "ablate"), reused) if len(d)] or [pd.DataFrame()],
                       ignore_index=True)
    return ablation_table(ablate, main, ablation_seeds(cfg.experiment), metric)


def main_runs_at_default_size(cfg: RunConfig, run_dir: Path) -> pd.DataFrame:
    """Finished main-table runs that are also scaling-study runs (same config: reused, not retrained);
    none without a scaling study (real models have no student sizes)."""
    if not cfg.experiment.scaling_sizes:
        return pd.DataFrame()
    main = collected(run_dir / "main")
    if not len(main):
        return main
    keep = ((main["status"] == "done") & main["train.method"].isin(cfg.experiment.scaling_methods)
            & main["seed"].isin(cfg.experiment.scaling_seeds) & (main["student.size"] == cfg.student.size))
    return main[keep]


def scaling_runs(cfg: RunConfig, run_dir: Path) -> pd.DataFrame:
    """The scaling study's runs: its own sweep plus the reused main-table runs of the default size."""
    return pd.concat([collected(run_dir / "scaling"), main_runs_at_default_size(cfg, run_dir)], ignore_index=True)


def scaling_table(df: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """Per (size, method): test macro accuracy (`metric`) before/after training, in points: `mean`,
    `std` over seeds ("1 seed" where there is one: no spread to show) and `seeds`."""
    macro = df[(df["status"] == "done") & (df["source"] == "macro") & (df["split"] == "test")]
    agg = macro.groupby(["student.size", "train.method", "phase"])[metric].agg(["mean", "std", "count"]).reset_index()
    agg["mean"] = agg["mean"] * POINTS
    agg["std"] = [std * POINTS if n > 1 else seeds_text(n) for std, n in zip(agg["std"], agg["count"])]
    return agg.rename(columns={"count": "seeds"})


def grade_reasons(metrics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Rollout grades by reason (`grade/<reason>` of metrics.jsonl, summed over steps), one row per run."""
    rows = {run: df.filter(like="grade/").sum().rename(lambda c: c.split("/", 1)[1]) for run, df in metrics.items()}
    return pd.DataFrame(rows).T.fillna(0).astype(int) if rows else pd.DataFrame()


def missing_runs(run_dir: Path) -> dict[str, str]:
    """`{"<sweep>/<run folder>": status}` of the training runs of a pipeline run that did not finish
    (`failed`, `running` when another process held the folder, `stale` when killed, `missing`),
    from each sweep's `unfinished.json` (written by `stages`); {} when every run finished. The
    pipeline's STATUS is `partial` while this is not empty; the report names them."""
    out = {}
    for path in sorted(Path(run_dir).glob(f"*/{UNFINISHED_FILE}")):
        out.update({f"{path.parent.name}/{name}": status for name, status in fileio.read_json(path).items()})
    return out
