"""The collaborator report: tables, figures and `report.html` (notebook 06).

`tables(cfg, run_dir)` and `figures(cfg, run_dir)` read what stages 00-05 wrote (figures are
also saved as PNG under `figures/`); `render_report(run_dir)` converts the executed
`06_report.ipynb` of the run folder to `report.html` with nbconvert, code hidden and the
set-up cells (tagged `report-hide`) left out. `show(items, name)` gives each report cell its
table or figure, or a plain "not run" sentence for a section without data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..core import fileio
from . import paper, plots, results, kl_signal
from ..config.run import RunConfig, load_config
from .results import collected, metrics_of, scaling_runs, scaling_table

log = logging.getLogger(__name__)

HEALTH_MEANS = ("frac_reward_zero_std", "frac_all_wrong", "guided_share", "guided_share_all_wrong", "mismatch/auto/mean",
                "mismatch/guided/mean")
HEALTH_MAXES = ("mismatch/auto/max", "mismatch/guided/max")
REPORT_HIDE_TAG = "report-hide"  # cells of 06_report that set up the run and are left out of report.html


def tables(cfg: RunConfig, run_dir: Path) -> dict[str, pd.DataFrame]:
    """Main, ablation, scaling, guidance-shift and premise tables, grade reasons, the strategy report and the environment."""
    out = {}
    main = collected(run_dir / "main")
    if len(main):
        out["main"] = results.main_table(main)
        out["main_greedy"] = results.main_table(main, "greedy")
    out["paper_main"] = paper.main_table()
    abl = results.ablation_results(cfg, run_dir)
    if len(abl) > 1:  # more than the reference row
        out["ablation"] = abl
        out["ablation_orderings"] = orderings_table(abl)
    scale = scaling_runs(cfg, run_dir) if cfg.experiment.scaling_sizes else pd.DataFrame()
    if len(scale):
        out["scaling"] = scaling_table(scale)
    main_metrics = metrics_of(run_dir / "main")  # every run's metrics.jsonl, read once
    health = rollout_health(main_metrics)
    if len(health):
        out["rollout_health"] = health
    completions = sgpo_completions(run_dir)
    if len(completions):
        out["completions"] = completions
    if (run_dir / "guidance_shift.csv").exists():
        out["guidance_shift"] = pd.read_csv(run_dir / "guidance_shift.csv", index_col="policy")
    if (run_dir / kl_signal.SIGNAL_FILE).exists():
        out["signal"] = kl_signal.summary(fileio.read_json(run_dir / kl_signal.SIGNAL_FILE)["rollouts"])
    if (run_dir / "premise.csv").exists():
        out["premise"] = pd.read_csv(run_dir / "premise.csv")
    reasons = results.grade_reasons(main_metrics)
    if len(reasons.columns):
        out["grade_reasons"] = reasons
    if (run_dir / "strategy_report.json").exists():
        out["strategy_report"] = pd.Series(fileio.read_json(run_dir / "strategy_report.json"), name="count").to_frame()
    if (run_dir / "strategy_selection.json").exists():
        out["strategy_selection"] = pd.Series(fileio.read_json(run_dir / "strategy_selection.json"), name="count").to_frame()
    env = fileio.read_json(run_dir / "env.json")
    cpu = env.get("cpu", {})
    out["environment"] = pd.Series({**env.get("packages", {}), "python": env.get("python"), "device": env.get("device"),
                                    "cpu": cpu.get("model"), "cpu_isa": " ".join(cpu.get("isa", [])),
                                    "cpu_native_bf16": cpu.get("native_bf16"), "torch_threads": cpu.get("torch_threads"),
                                    "git_commit": env.get("git_commit")}, name="value").to_frame()
    return out


def terminal_tables(run_dir: Path) -> str:
    """The main table, the ablation table with the paper's column and the paper's orderings, as
    text for the terminal at the end of `pipeline` (the same frames as the report); "" before
    notebook 03 has written a main-table run."""
    run_dir = Path(run_dir)
    main = collected(run_dir / "main")
    if not len(main):
        return ""
    parts = [("Main table (avg@k in points, mean ± std over seeds)", results.main_table(main))]
    ablation = results.ablation_results(load_config(run_dir / "config.yaml"), run_dir)
    if len(ablation) > 1:
        parts += [("Ablations (Δ vs full SGPO; paper: Qwen2.5-7B, compare the sign)", ablation),
                  ("The paper's orderings on this run", orderings_table(ablation).set_index("ordering"))]
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_colwidth", 80):
        return "\n\n".join(f"{title}\n{table.to_string()}" for title, table in parts)


def orderings_table(ablation: pd.DataFrame) -> pd.DataFrame:
    """Which of the paper's orderings "full SGPO > ablation" this run reproduces (`paper.orderings`)."""
    found = paper.orderings(results.ablation_deltas(ablation))
    return pd.DataFrame([{"ordering": text, "here": verdict} for verdict, texts in found.items() for text in texts])


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
    "kl_clip_frac": ("kl_clip_frac", "Share of distilled tokens with KL > δ (clipped, §4)", "KL-clip fraction", True),
}


def figures(cfg: RunConfig, run_dir: Path) -> dict[str, object]:
    """Learning curves, α, entropy, KL-clip fraction, p_guided vs p_auto, main bars, scaling, where the
    signal lands; PNGs saved. A figure whose input is missing is skipped with a logged note."""
    figs = {}
    main_metrics = metrics_of(run_dir / "main")
    if main_metrics:
        figs["learning_curves"] = plots.curves(main_metrics, f"eval/test/macro/{results.METRIC}", "Held-out unguided accuracy",
                                               f"test macro {results.METRIC}")
        figs["reward"] = plots.curves(main_metrics, "reward_auto", "Training reward (autonomous rollouts)", smooth=5)
        figs["engine_mismatch"] = plots.panels(main_metrics, plots.ROLLOUT_HEALTH_KEYS, "Rollout engine vs trainer, reward groups")
        main = collected(run_dir / "main")
        figs["main_bars"] = plots.bars(results.numeric_table(main, "train.method"), "SGPO vs baselines",
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
        figs["scaling"] = plots.scaling(final, "parameters", "train.method")
    for name, fig in figs.items():
        plots.save(fig, run_dir / "figures" / f"{name}.png")
    return figs


def dynamics_figures(run_dir: Path) -> dict[str, object]:
    """`DYNAMICS` curves of the main table's runs and α of a few fixed problems at their first and last
    visit (`alpha.jsonl` of the first SGPO run); each one skipped, with a logged note, without its input."""
    figs, metrics = {}, metrics_of(run_dir / "main")
    for name, (key, title, ylabel, sgpo_only) in DYNAMICS.items():
        series = {k: m for k, m in metrics.items() if key in m and (not sgpo_only or "method=sgpo" in k)}
        if series:
            figs[name] = plots.curves(series, key, title, ylabel, smooth=5)
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
    "kl_clip_frac": "No SGPO run has logged `kl_clip_frac` yet (notebook 03).",
    "ablation_orderings": "",
    "signal": "Not measured: notebook 02 has not run.",
    "signal_kl": "",
    "signal_sft": "",
    "guidance_shift": "Not measured: notebook 03 has not run.",
    "guided_vs_auto": "Not measured: notebook 02 has not run.",
    "ablation": "Not run: `experiment.ablations` is empty, or notebook 04 has not run.",
    "scaling": "Not run: `experiment.scaling_sizes` is empty, so no scaling study was made.",
    "scaling_figure": "",
    "premise": "Not measured: the premise table exists for the toy world only (notebook 00).",
    "strategy_report": "Not available: notebook 01 has not run.",
    "strategy_selection": "Not available: notebook 01 has not run.",
    "completions": "No completions logged: no rollout-based training run has run yet (notebook 03).",
}


def show(items: dict, name: str, note: str | None = None):
    """`items[name]` (a table or figure) for a report cell, or a plain sentence when the section has
    no data (`NOT_RUN[note or name]`; nothing when that is "", said by another cell)."""
    from IPython.display import Markdown

    if name in items:
        return items[name]
    text = NOT_RUN.get(note or name, "No data for this section.")
    return Markdown(f"*{text}*") if text else None


def sgpo_completions(run_dir: Path, rows: int = 8) -> pd.DataFrame:
    """The first `rows` completions of the last logged step of the main table's first SGPO run
    (prompt, strategy, response, reward, grade); empty when there is none."""
    from ..core.run_folder import read_completions

    runs = sorted(Path(run_dir).glob("main/train.method=sgpo_*/completions"))
    if not runs:
        return pd.DataFrame()
    table = read_completions(runs[0].parent).head(rows)
    return table.assign(run=runs[0].parent.name)[["run", "step", "prompt", "guided", "strategy", "response", "reward",
                                                   "grade"]]


def _sizes(run_dir: Path) -> pd.DataFrame:
    """Parameter count of each prepared student size (from its config.json)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    students = fileio.read_json(run_dir / "prepare.json")["students"]
    rows = []
    for size, path in students.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
        rows.append({"student.size": size, "parameters": sum(p.numel() for p in model.parameters())})
    return pd.DataFrame(rows)


def render_report(run_dir: Path) -> Path:
    """`run_dir/06_report.ipynb` (executed) -> `run_dir/report.html`, code cells hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    executed = Path(run_dir) / "06_report.ipynb"
    if not executed.exists():
        raise FileNotFoundError(f"{executed}: run notebook 06 through the pipeline first (python -m sgpo_lib pipeline ...)")
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={REPORT_HIDE_TAG}, enabled=True), enabled=True)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    path = Path(run_dir) / "report.html"
    fileio.write_text(path, body)
    log.info("report: %s", path)
    return path
