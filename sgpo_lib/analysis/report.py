"""The collaborator report: tables, figures and `report.html` (notebook 07, the last).

`tables(cfg, run_dir)` and `figures(cfg, run_dir)` read what stages 00-05 wrote (figures are
also saved as PNG under `figures/`); `render_report(run_dir)` converts the executed
`07_report.ipynb` of the run folder to `report.html` with nbconvert, code hidden and the
set-up cells (tagged `report-hide`) left out, sections, figures and tables numbered and a table
of contents under the summary (`report_summary`). `show(items, name)` gives each report cell its
figure or table (in `report_format`'s readable form, marked with its name for the numbering), or a
plain "not run" sentence for a section without data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nbformat
import pandas as pd
import torch
from IPython import get_ipython
from IPython.display import Markdown
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from ..config.run import RunConfig, load_config
from ..core import fileio
from ..core.run_folder import read_completions
from . import kl_signal, paper, plots, report_format, report_summary, results, unknowns
from .results import collected, method_groups, metrics_of, scaling_runs, scaling_table

log = logging.getLogger(__name__)

HEALTH_MEANS = ("frac_reward_zero_std", "frac_all_wrong", "guided_share", "guided_share_all_wrong", "mismatch/auto/mean",
                "mismatch/guided/mean")
HEALTH_MAXES = ("mismatch/auto/max", "mismatch/guided/max")
REPORT_NOTEBOOK = "07_report"  # the last notebook: it reads what the others wrote
REPORT_HIDE_TAG = "report-hide"  # cells of 07_report that set up the run and are left out of report.html


def tables(cfg: RunConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Main, ablation, scaling, guidance-shift and premise tables, grade reasons, the strategy report and the environment."""
    out = {}
    main = collected(run_dir / "main")
    if len(main):
        out["main"] = results.main_table(main)
        out["main_greedy"] = results.main_table(main, "greedy")
        out["main_orderings"] = paper.main_orderings(results.with_method(main)) if "phase" in main else pd.DataFrame()
    out["paper_main"] = paper.main_table()
    abl = results.ablation_results(cfg, run_dir)
    if len(abl) > 1:  # more than the reference row
        out["ablation"] = abl
        out["ablation_orderings"] = paper.orderings(abl)
    scale = scaling_runs(cfg, run_dir) if cfg.experiment.scaling_sizes else pd.DataFrame()
    if len(scale):
        out["scaling_table"] = scaling_table(scale)
    if cfg.experiment.unknowns:
        study = unknowns.study(cfg, run_dir)
        out.update({f"unknown_{k}": study[k] for k in unknowns.UNKNOWNS})
        out["unknowns_read"] = unknowns.reads_frame(study)
    main_metrics = metrics_of(run_dir / "main")  # every run's metrics.jsonl, read once
    health = rollout_health(main_metrics)
    if len(health):
        out["rollout_health"] = health.rename(index=results.run_label).rename_axis("run")
    completions = sgpo_completions(run_dir)
    if len(completions):
        out["completions"] = completions
    if (run_dir / "guidance_shift.csv").exists():
        out["guidance_shift"] = pd.read_csv(run_dir / "guidance_shift.csv", index_col="policy").rename(index=results.run_label)
    if (run_dir / kl_signal.SIGNAL_FILE).exists():
        out["signal"] = kl_signal.summary(fileio.read_json(run_dir / kl_signal.SIGNAL_FILE)["rollouts"])
    if (run_dir / "premise.csv").exists():
        out["premise"] = pd.read_csv(run_dir / "premise.csv")
    reasons = results.grade_reasons(main_metrics)
    if len(reasons.columns):
        out["grade_reasons"] = reasons.rename(index=results.run_label).rename_axis("run")
    if (run_dir / "strategy_report.json").exists():
        out["strategy_report"] = pd.Series(fileio.read_json(run_dir / "strategy_report.json"), name="count").rename_axis("outcome").to_frame()
    if (run_dir / "strategy_selection.json").exists():
        out["strategy_selection"] = pd.Series(fileio.read_json(run_dir / "strategy_selection.json"), name="count").rename_axis("outcome").to_frame()
    env = fileio.read_json(run_dir / "env.json")
    cpu = env.get("cpu", {})
    out["environment"] = pd.Series({**env.get("packages", {}), "python": env.get("python"), "device": env.get("device"),
                                    "cpu": cpu.get("model"), "cpu_isa": " ".join(cpu.get("isa", [])),
                                    "cpu_native_bf16": cpu.get("native_bf16"), "torch_threads": cpu.get("torch_threads"),
                                    "git_commit": env.get("git_commit")}, name="value").rename_axis("name").to_frame()
    return out


def terminal_tables(run_dir: Path) -> str:
    """The main table, the ablation table with the paper's column, the paper's orderings and the
    study's "Read:" lines, as text for the terminal at the end of `pipeline` (the same frames as the report); "" before
    notebook 03 has written a main-table run."""
    run_dir = Path(run_dir)
    main = collected(run_dir / "main")
    if not len(main):
        return ""
    parts = [("Main table (avg@k in points, mean ± std over seeds; SE avg: standard error over seeds and problems)",
              results.main_table(main))]
    if "phase" in main:
        parts.append(("The paper's main-table orderings on this run (holds / reversed / inconclusive: paired 95% interval "
                      "over seed × problem cells)", paper.main_orderings(results.with_method(main))))
    cfg = load_config(run_dir / "config.yaml")
    ablation = results.ablation_results(cfg, run_dir)
    if len(ablation) > 1:
        parts += [("Ablations (Δ vs full SGPO with its paired 95% interval; paper: Qwen2.5-7B)", ablation),
                  ("The paper's ablation orderings on this run (holds / reversed / inconclusive at 95%)", paper.orderings(ablation))]
    if cfg.experiment.unknowns:
        parts.append(("The study of the paper's unknowns (notebook 06)", unknowns.reads_frame(unknowns.study(cfg, run_dir))))
    return "\n\n".join(f"{title}\n{report_format.as_text(table)}" for title, table in parts)


def rollout_health(series: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run, over its training steps: how often autonomous groups had one reward value
    (`frac_reward_zero_std`) or were all wrong, the guided branch's share on those all-wrong
    groups, the engine-vs-trainer log-prob gap (`engine_checks`): means over steps, `*/max` the maximum."""
    rows = {name: {**{k: m[k].mean() for k in HEALTH_MEANS if k in m}, **{k: m[k].max() for k in HEALTH_MAXES if k in m}}
            for name, m in series.items() if "frac_reward_zero_std" in m}
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.reindex(columns=[k for k in HEALTH_MEANS + HEALTH_MAXES if k in table])


# §4-5 training dynamics the trainer logs per step (metrics.jsonl): name -> (key, title, y label, SGPO runs only)
DYNAMICS = {
    "alpha_mean": ("alpha_mean", "Mean adaptive weight α per step (should fall, §5)", "mean α over the step's problems", True),
    "entropy": ("entropy", "Policy entropy on autonomous rollouts (a collapse shows here, §4)", "mean token entropy", False),
    "kl_clip_frac": ("distill/kl_clip_frac", "Share of distilled tokens with KL > δ (clipped, §4)", "KL-clip fraction", True),
}


def figures(cfg: RunConfig, run_dir: Path) -> dict[str, object]:
    """Learning curves, α, entropy, KL-clip fraction, p_guided vs p_auto, main bars, scaling, where the
    signal lands; PNGs saved. A figure whose input is missing is skipped with a logged note."""
    figs = training_figures(run_dir)
    main = collected(run_dir / "main")
    if len(main) and "phase" in main:
        numeric = results.numeric_table(results.with_method(main), "method")
        numeric = numeric.reindex(sorted(numeric.index, key=results.method_order))
        figs["main_bars"] = plots.bars(numeric, "SGPO vs baselines",
                                       baseline=results.base_accuracy(main, "train.method"), metric=results.METRIC)
    figs.update(dynamics_figures(run_dir))
    if (run_dir / kl_signal.SIGNAL_FILE).exists():
        rows = fileio.read_json(run_dir / kl_signal.SIGNAL_FILE)["rollouts"]
        figs["signal_kl"] = plots.heat_strip(rows)
        figs["signal_sft"] = plots.heat_strip(rows, "sft_grad", "Per-token SFT gradient norm on the same tokens")
    else:
        log.info("report: figures signal_kl, signal_sft skipped: no %s (notebook 02)", run_dir / kl_signal.SIGNAL_FILE)
    if (run_dir / "paired_stats.csv").exists():
        figs["guided_vs_auto"] = plots.guided_vs_auto(pd.read_csv(run_dir / "paired_stats.csv"))
    scale = scaling_runs(cfg, run_dir) if cfg.experiment.scaling_sizes else pd.DataFrame()
    if len(scale):
        table = scaling_table(scale)
        final = table[table["phase"] == "final"].merge(_sizes(run_dir), on="student.size")
        final = final.assign(method=final["train.method"].map(lambda m: results.METHOD_LABELS.get(m, m)))
        figs["scaling"] = plots.scaling(final, "parameters", "method")
    for name, fig in figs.items():
        plots.save(fig, run_dir / "figures" / f"{name}.png")
    return figs


def training_figures(run_dir: Path) -> dict[str, object]:
    """Held-out accuracy and training reward per method (mean over seeds, band), and the rollout-health
    panels (a metric no run logged gets no panel: the figure says which and why); {} before any run."""
    groups = method_groups(metrics_of(Path(run_dir) / "main"))
    if not groups:
        return {}
    figs = {"learning_curves": plots.curves(groups, f"eval/test/macro/{results.METRIC}", "Held-out unguided accuracy",
                                            f"test macro {results.METRIC} (points)", scale=results.POINTS),
            "reward": plots.curves(groups, "reward_auto", "Training reward (autonomous rollouts)", smooth=5)}
    health = plots.panels(groups, plots.ROLLOUT_HEALTH_KEYS, "Rollout engine vs trainer, reward groups", HEALTH_NOT_LOGGED)
    if health is not None:
        figs["engine_mismatch"] = health
    return figs


# Why a rollout-health metric can be absent from every run (its panel is left out, with this reason)
HEALTH_NOT_LOGGED = {
    "mismatch/guided/mean": "no run re-scored guided rollouts (on the transformers backend, or when no guided rollout was sampled)",
    "mismatch/auto/mean": "no run compared engine and trainer log-probs",
    "guided_share": "no run has a guided branch (SGPO only)",
}


def dynamics_figures(run_dir: Path) -> dict[str, object]:
    """`DYNAMICS` curves of the main table's runs (mean over seeds per method) and α of a few fixed
    problems at their first and last visit (`alpha.jsonl` of the first SGPO run); each one skipped,
    with a logged note, without its input."""
    figs, metrics = {}, metrics_of(run_dir / "main")
    for name, (key, title, ylabel, sgpo_only) in DYNAMICS.items():
        series = {k: m for k, m in metrics.items() if key in m and (not sgpo_only or "method=sgpo" in k)}
        if series:
            figs[name] = plots.curves(method_groups(series), key, title, ylabel, smooth=5)
        else:
            log.info("report: figure %s skipped: no run under %s logged '%s'", name, run_dir / "main", key)
    alpha = {k: a for k, a in results.alpha_of(run_dir / "main").items() if "method=sgpo" in k and len(a)}
    if alpha:
        run = sorted(alpha)[0]
        figs["alpha_first_last"] = plots.first_last(results.alpha_first_last(alpha[run]), f"α on fixed problems ({run})")
    else:
        log.info("report: figure alpha_first_last skipped: no SGPO run under %s wrote alpha.jsonl", run_dir / "main")
    return figs


NOT_RUN = {
    "main": "No training run has finished yet (notebook 03, `experiment.methods`).",
    "main_bars": "",  # "" = said by the section's other cell
    "main_greedy": "",
    "learning_curves": "No training run has logged metrics yet (notebook 03).",
    "reward": "",
    "alpha_mean": "No SGPO run has logged `alpha_mean` yet (notebook 03).",
    "alpha_first_last": "No SGPO run has written `alpha.jsonl` yet (notebook 03).",
    "entropy": "No run has logged the policy `entropy` yet (notebook 03).",
    "kl_clip_frac": "No SGPO run has logged `distill/kl_clip_frac` yet (notebook 03).",
    "ablation_orderings": "",
    "main_orderings": "",
    "signal": "Not measured: notebook 02 has not run.",
    "signal_kl": "",
    "signal_sft": "",
    "guidance_shift": "Not measured: notebook 03 has not run.",
    "guided_vs_auto": "Not measured: notebook 02 has not run.",
    "ablation": "Not run: `experiment.ablations` is empty, or notebook 04 has not run.",
    "scaling_table": "",
    "unknowns_read": "Not run: `experiment.unknowns` is empty (`make study` runs params/toy-unknowns.yaml), or notebook 06 has not run.",
    "unknown_kl_clip": "",
    "unknown_alpha_rule": "",
    "unknown_target_score": "",
    "unknown_mini_batches": "",
    "scaling_figure": "Not run: `experiment.scaling_sizes` is empty, so no scaling study was made.",
    "premise": "Not measured: the premise table exists for the toy world only (notebook 00).",
    "regime": "Not measured: the regime table needs the toy world with `sft_grpo` among the methods (notebooks 00, 02, 03).",
    "regime_kl": "",
    "strategy_report": "Not available: notebook 01 has not run.",
    "strategy_selection": "Not available: notebook 01 has not run.",
    "completions": "No completions logged: no rollout-based training run has run yet (notebook 03).",
    "engine_mismatch": "No run logged rollout-health metrics yet (notebook 03).",
    "rollout_health": "",
    "grade_reasons": "No run logged grade reasons yet (notebook 03).",
    "benchmarks": "Not measured: `make bench` has not run on this machine (it writes `outputs/bench/`).",
}


CAPTIONS = {
    "main": "Main table: test avg@k per family, avg and ood, mean ± std over seeds, SE of avg over seeds and problems (points).",
    "main_greedy": "The same runs under greedy decoding.",
    "main_orderings": "The paper's main-table orderings on this run: holds, reversed or inconclusive (paired 95% interval).",
    "paper_main": "The paper's main table (§9), average of 4 benchmarks.",
    "main_bars": "Test macro avg@k per method, std bars over seeds; dashed: the base student.",
    "learning_curves": "Held-out avg@k over training, mean over seeds per method (band: ± std).",
    "reward": "Training reward of the autonomous rollouts per method (5-step mean).",
    "alpha_mean": "Mean adaptive weight α per step (SGPO).",
    "alpha_first_last": "α of the most visited problems at their first and last visit.",
    "entropy": "Policy entropy on autonomous rollouts per method.",
    "kl_clip_frac": "Share of distilled tokens with KL above δ (SGPO).",
    "engine_mismatch": "Rollout health per step: engine-vs-trainer log-prob gap, one-reward groups, guided share.",
    "rollout_health": "Rollout health per run, means over steps.",
    "guidance_shift": "Guidance weight w on notebook 02's problems, base student vs each SGPO run.",
    "guided_vs_auto": "Per problem: solved with the strategy against solved alone.",
    "signal": "Share of each guided rollout's KL (and of SFT's push) on its top 10% of tokens.",
    "signal_kl": "Tokens coloured by KL(q‖p).",
    "signal_sft": "Tokens coloured by SFT's per-token gradient norm.",
    "ablation": "Ablations: Δ vs full SGPO with its paired 95% interval, beside the paper's.",
    "ablation_orderings": "The paper's orderings on this run: holds, reversed or inconclusive.",
    "scaling": "Test avg@k after training against the student's size.",
    "unknowns_read": "The study of the paper's unknowns: one Read line per unknown.",
    "unknown_kl_clip": "KL clip form × δ, each against w/o KL clipping (paired 95% interval).",
    "unknown_alpha_rule": "α rule: stateful and stateless pass gap, each against constant α.",
    "unknown_target_score": "Target score: mean and sum of token log-probs, each against w/o target selection.",
    "unknown_mini_batches": "Mini-batches 1 and 4, each against the same count w/o proximal constraints.",
    "scaling_table": "Test avg@k before and after training per size and method.",
    "premise": "Held-out greedy accuracy of the base students, unguided vs guided.",
    "regime": "The regime: premise, SFT warm-up vs base, SFT+GRPO vs SFT, each target on every seed and on the mean.",
    "regime_kl": "KL(guided‖unguided) of the starting student: share of tokens above δ and of the KL mass they carry.",
    "strategy_report": "Strategy extraction outcomes.",
    "strategy_selection": "Candidate strategies and how one was selected per problem.",
    "completions": "Completions of the last logged step of the first SGPO run.",
    "grade_reasons": "Training rollouts per grade reason, summed over steps.",
    "benchmarks": "Speed and memory measured by make bench.",
    "environment": "Package versions, device, CPU and git commit.",
}


class Shown:
    """A figure or table of the report with its name in the output's metadata, so that
    `render_report` numbers it and gives it its caption (`CAPTIONS`)."""

    def __init__(self, value, name: str):
        self.value, self.name = value, name

    def _repr_mimebundle_(self, include=None, exclude=None):
        data, _ = get_ipython().display_formatter.format(self.value)
        return data, {report_summary.ITEM_KEY: {"item": self.name}}


def show(items: dict, name: str, note: str | None = None):
    """`items[name]` for a report cell: a figure as it is, a table in its readable form
    (`report_format.styled`), both marked for numbering; or a plain sentence when the section has no
    data (`NOT_RUN[note or name]`; nothing when that is "", said by another cell)."""
    value = items.get(name)
    if isinstance(value, pd.DataFrame) and len(value):
        return Shown(report_format.styled(value), name)
    if value is not None and not isinstance(value, pd.DataFrame):
        return Shown(value, name)
    text = NOT_RUN.get(note or name, "No data for this section.")
    return Markdown(f"*{text}*") if text else None


def sgpo_completions(run_dir: Path, rows: int = 8) -> pd.DataFrame:
    """The first `rows` completions of the last logged step of the main table's first SGPO run
    (prompt, strategy, response, reward, grade); empty when there is none."""
    runs = sorted(Path(run_dir).glob("main/train.method=sgpo_*/completions"))
    if not runs:
        return pd.DataFrame()
    table = read_completions(runs[0].parent).head(rows)
    return table.assign(run=results.run_label(runs[0].parent.name))[["run", "step", "prompt", "guided", "strategy", "response", "reward",
                                                   "grade"]]


def _sizes(run_dir: Path) -> pd.DataFrame:
    """Parameter count of each prepared student size (from its config.json)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    students = fileio.read_json(run_dir / "prepare.json")["students"]
    rows = []
    for size, path in students.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
        rows.append({"student.size": size, "parameters": sum(p.numel() for p in model.parameters())})
    return pd.DataFrame(rows)


def render_report(run_dir: Path) -> Path:
    """`run_dir/07_report.ipynb` (executed) -> `run_dir/report.html`, code cells hidden, sections,
    figures and tables numbered, the table of contents under the summary."""
    executed = Path(run_dir) / f"{REPORT_NOTEBOOK}.ipynb"
    if not executed.exists():
        raise FileNotFoundError(f"{executed}: run notebook 07 through the pipeline first (python -m sgpo_lib pipeline ...)")
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={REPORT_HIDE_TAG}, enabled=True), enabled=True)
    notebook = report_summary.numbered(nbformat.read(executed, as_version=4), CAPTIONS)
    body, _ = exporter.from_notebook_node(notebook)
    path = Path(run_dir) / "report.html"
    fileio.write_text(path, body)
    log.info("report: %s", path)
    return path
