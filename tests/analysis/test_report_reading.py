"""The report as a collaborator reads it: readable tables, per-method curves in fixed colours, the
summary's sentences, numbered sections, figures and tables with a table of contents, and the
kernels' log lines (stdout, paths relative to the run folder)."""

import io as stdio
import logging

import nbformat
import pandas as pd
import pytest

from sgpo_lib.analysis import plots, report, report_format, report_summary, results
from sgpo_lib.core import run_folder
from sgpo_lib.workflow import runs


def test_readable_tables_have_no_index_column_percentages_with_one_decimal_and_written_names():
    health = pd.DataFrame({"frac_reward_zero_std": [0.0703125], "mismatch/auto/mean": [0.00123], "steps": [2.0]},
                          index=pd.Index(["train.method=sgpo_seed=0"], name="run"))
    shown = report_format.readable(health)
    assert list(shown.columns) == ["run", "groups with one reward value", "log-prob gap, autonomous (mean)", "steps"]
    assert shown.iloc[0].tolist() == ["train.method=sgpo_seed=0", "7.0%", "0.00123", "2"]
    plain = report_format.readable(pd.DataFrame({"ordering": ["w/o strategy distillation < full SGPO"], "paper Δ": [-2.2]}))
    assert list(plain.columns) == ["ordering", "paper Δ"]  # a 0, 1, … index is dropped, not shown
    text = report_format.as_text(pd.DataFrame({"ordering": ["x" * 120]}))
    assert "x" * 120 in text and not text.splitlines()[1].startswith("0")  # whole labels, no index
    html = report_format.styled(health).to_html()
    assert "white-space: normal" in html and "7.0%" in html and 'class="row_heading' not in html


def test_single_seed_cells_say_so_instead_of_a_std_of_zero():
    df = pd.DataFrame([{"run": "r", "status": "done", "train.method": "sgpo", "student.size": "small", "seed": 0,
                        "phase": "final", "split": "test", "source": "macro", "avg@k": 0.25}])
    table = results.scaling_table(df)
    assert table.loc[0, "std"] == "1 seed" and table.loc[0, "mean"] == 25.0 and table.loc[0, "seeds"] == 1


def test_curves_draw_one_mean_line_and_band_per_method_in_its_colour_with_the_legend_outside():
    runs_ = [pd.DataFrame({"step": [0, 1, 2], "acc": [0.1, 0.2, 0.3]}), pd.DataFrame({"step": [0, 1, 2], "acc": [0.3, 0.4, 0.5]})]
    groups = results.method_groups({"train.method=sgpo_seed=0": runs_[0], "train.method=sgpo_seed=1": runs_[1],
                                    "train.method=sft_seed=0": runs_[0]})
    assert list(groups) == ["SFT", "SGPO"] and len(groups["SGPO"]) == 2
    band = plots.mean_band(groups["SGPO"], "acc")
    assert band["mean"].tolist() == pytest.approx([0.2, 0.3, 0.4]) and band["n"].tolist() == [2, 2, 2]
    fig = plots.curves(groups, "acc", "accuracy")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["SFT (1 seed)", "SGPO (2 seeds)"]
    assert [line.get_color() for line in ax.lines] == [plots.color("SFT"), plots.color("SGPO")]
    assert len(ax.collections) == 1  # the band of the method with two seeds
    assert ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # right of the axes


def _finished(run_dir, method, seed, acc):
    from sgpo_lib.core import fileio

    out = run_dir / "main" / f"train.method={method}_seed={seed}"
    out.mkdir(parents=True)
    fileio.write_text(out / "config.yaml", f"train:\n  method: {method}\nseed: {seed}\n")
    rows = [{"split": "test", "source": f"toy/{f}", "avg@k": acc + d, "greedy": acc} for f, d in (("a", 0.01), ("b", -0.01))]
    rows.append({"split": "test", "source": "macro", "avg@k": acc, "greedy": acc})
    fileio.write_json(out / "results.json", {"base_eval": [{**r, "avg@k": 0.1} for r in rows], "final_eval": rows})
    run_folder.write_status(out, "done")


def test_the_summary_names_the_best_method_sgpos_rank_its_paired_difference_and_missing_runs(tmp_path):
    from sgpo_lib.config.run import load_config

    params = tmp_path / "p.yaml"
    params.write_text("experiment:\n  methods: [sft_grpo, sgpo, grpo]\n  seeds: [0, 1]\n  ablations: []\n")
    cfg = load_config(params)
    for seed in (0, 1):
        _finished(tmp_path, "sft_grpo", seed, 0.30 + seed / 100)
        _finished(tmp_path, "sgpo", seed, 0.20 + seed / 100)
    _finished(tmp_path, "grpo", 0, 0.50)
    text = report_summary.summary(cfg, tmp_path).data
    assert "the best method is GRPO (from base) with 50.0 points (base student 10.0)" in text
    assert "SGPO ranks 3rd of 4 rows (base student included) with 20.5" in text
    assert "SGPO minus SFT+GRPO is -10.0 points (95% interval -10.0 to -10.0, paired over 4 cells (seed × family cells: no per-problem rows))" in text
    assert "SGPO > SFT+GRPO reversed here" in text
    assert "No ablation the paper reports has run" in text
    assert "Main-table runs not finished: GRPO (from base) seed 1 (missing)" in text
    assert 3 <= text.count(". ") + 1 <= 6  # a few sentences


def _output(name, mime):
    return nbformat.v4.new_output("display_data", data={mime: "x"}, metadata={report_summary.ITEM_KEY: {"item": name}})


def test_render_numbers_sections_figures_and_tables_and_puts_the_contents_under_the_summary():
    summary = nbformat.v4.new_code_cell("summary", metadata={"tags": [report_summary.SUMMARY_TAG]})
    fig = nbformat.v4.new_code_cell("fig", outputs=[_output("learning_curves", "image/png")])
    table = nbformat.v4.new_code_cell("table", outputs=[_output("main", "text/html")])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Report"), summary,
                                         nbformat.v4.new_markdown_cell("## Main table\nRead: …"), table,
                                         nbformat.v4.new_markdown_cell("## Learning curves"), fig])
    out = report_summary.numbered(nb, report.CAPTIONS)
    sources = [c.source for c in out.cells]
    assert sources[2].startswith('<nav id="contents">') and '<a href="#section-2">2. Learning curves</a>' in sources[2]
    assert '<a href="#table-1">Table 1. Main table: test avg@k' in sources[2]
    assert '<a href="#figure-1">Figure 1. Held-out avg@k over training' in sources[2]
    assert sources[3].startswith('<a id="section-1"></a>\n\n## 1. Main table\nRead: …')
    assert sources[5].startswith('<p id="table-1" class="caption"><b>Table 1.</b>')
    assert sources[-1].startswith('<p id="figure-1" class="caption"><b>Figure 1.</b>')


def test_a_kernels_info_lines_go_to_stdout_with_paths_relative_to_the_run_folder(tmp_path, monkeypatch):
    class OutStream(stdio.StringIO):  # stands for ipykernel.iostream.OutStream
        __module__ = "ipykernel.iostream"

    out, err = OutStream(), OutStream()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    logger = logging.getLogger("sgpo_lib")
    saved = list(logger.handlers)
    try:
        run_dir = tmp_path / "runs" / "my-run"
        runs.configure_logging(run_dir)
        log = logging.getLogger("sgpo_lib.test")
        log.info("checkpoint %s", run_dir / "main" / "step_1.pt")
        log.info("student at %s", tmp_path / "runs" / "cache" / "student")
        log.debug("a cache hit")
        log.warning("real warning")
    finally:
        logger.handlers[:] = saved
    assert "checkpoint main/step_1.pt" in out.getvalue() and "student at ../cache/student" in out.getvalue()
    assert "a cache hit" not in out.getvalue() and "real warning" not in out.getvalue()
    assert "real warning" in err.getvalue() and "checkpoint" not in err.getvalue()


def test_families_and_problems_never_take_a_methods_colour():
    from matplotlib.colors import to_hex

    stats = pd.DataFrame({"source": [f"toy/{f}" for f in "abcdefgh"], "p_auto": 0.5, "p_guided": 1.0})
    scatter = plots.guided_vs_auto(stats).axes[0].collections
    alpha = pd.DataFrame({"first": [0.5] * 8, "last": [0.3] * 8, "visits": [2] * 8}, index=list("abcdefgh"))
    lines = plots.first_last(alpha, "α").axes[0].lines
    used = {to_hex(c.get_facecolor()[0], keep_alpha=False) for c in scatter} | {to_hex(line.get_color()) for line in lines}
    assert len(used) == 8 and not used & set(plots.METHOD_COLORS.values())


def test_the_summary_before_any_run_and_with_a_failed_run(tmp_path):
    from sgpo_lib.config.run import load_config

    params = tmp_path / "p.yaml"
    params.write_text("experiment:\n  methods: [sgpo, sft_grpo]\n  seeds: [0]\n  ablations: []\n")
    cfg = load_config(params)
    assert "No main-table run has finished yet" in report_summary.summary(cfg, tmp_path).data
    _finished(tmp_path, "sgpo", 0, 0.2)
    failed = tmp_path / "main" / "train.method=sft_grpo_seed=0"
    failed.mkdir()
    (failed / "config.yaml").write_text("train:\n  method: sft_grpo\nseed: 0\n")
    run_folder.write_status(failed, "failed", "boom")
    text = report_summary.summary(cfg, tmp_path).data
    assert "SFT+GRPO has no finished run, so SGPO is not compared" in text
    assert "Main-table runs not finished: SFT+GRPO seed 0 (failed)" in text
