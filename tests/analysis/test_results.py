"""The read side: main and ablation tables from hand-made sweep frames and folders, the paper's
numbers beside them, the α readers; notebook 04 and the report show one ablation table."""

import math

import pandas as pd
import pytest

from sgpo_lib.analysis import paired, paper, plots, results
from sgpo_lib.config.run import config_to_yaml, load_config
from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import write_status


def rows(run, method, seed, final, base=0.1, label=None, family_gap=0.0):
    """Result rows of one run: test macro + two families, and OOD macro, at phases base/final."""
    out = []
    for phase, acc in (("base", base), ("final", final)):
        for split, source, a in (("test", "macro", acc), ("test", "toy/add", acc + family_gap), ("test", "toy/mul", acc - family_gap),
                                 ("ood", "macro", acc / 2)):
            out.append({"run": run, "label": label or run, "status": "done", "train.method": method, "seed": seed, "phase": phase,
                        "split": split, "source": source, "avg@k": a, "greedy": a + 0.05})
    return out


def frame(*runs):
    return pd.DataFrame([r for run in runs for r in run])


def test_main_table_has_the_papers_rows_in_order_mean_and_std_over_seeds():
    df = frame(rows("g0", "grpo", 0, 0.3), rows("s0", "sgpo", 0, 0.5), rows("s1", "sgpo", 1, 0.6),
               rows("h0", "hybrid", 0, 0.4), rows("f0", "sft", 0, 0.2), rows("w0", "sft_grpo", 0, 0.45))
    table = results.main_table(df)
    assert list(table.index) == ["base", "SFT", "SFT+GRPO", "LUFFY", "SGPO", "GRPO (from base)"]
    assert table.loc["SGPO", "avg"] == "55.0 ± 7.1" and table.loc["SGPO", "ood"] == "27.5 ± 3.5"
    assert table.loc["base", "avg"] == "10.0" and list(table.columns) == ["add", "mul", "avg", "ood", "SE avg", "seeds"]
    assert table["seeds"].tolist() == ["1 seed", "1 seed", "1 seed", "1 seed", "2 seeds", "1 seed"]  # no std of 0
    assert results.main_table(df, "greedy").loc["SFT", "avg"] == "25.0"  # greedy: the extra table
    assert table.index.name == "method (avg@k)"


def test_the_base_row_is_a_step_0_of_the_base_student_never_of_the_sft_warm_up():
    warm = [dict(r, **{"train.warmup_sft_fraction": 1 / 3}) for r in
            rows("w0", "sft_grpo", 0, 0.45, base=0.3) + rows("s0", "sgpo", 0, 0.5, base=0.3)]
    from_base = [dict(r, **{"train.warmup_sft_fraction": 1 / 3}) for r in rows("f0", "sft", 0, 0.2, base=0.1)]
    table = results.main_table(pd.DataFrame(warm + from_base))  # "SFT" sorts after "SFT+GRPO"'s step 0 no more
    assert table.loc["base", "avg"] == "10.0" and results.base_accuracy(pd.DataFrame(warm + from_base), "train.method") == 10.0
    only_warm = results.main_table(pd.DataFrame(warm))
    assert list(only_warm.index) == [results.WARMUP_ROW, "SFT+GRPO", "SGPO"]  # every run starts from the warm-up
    assert only_warm.loc[results.WARMUP_ROW, "avg"] == "30.0"
    assert results.base_accuracy(pd.DataFrame(warm), "train.method") is None  # the base student was not evaluated
    off = [dict(r, **{"train.warmup_sft_fraction": 0.0}) for r in rows("s0", "sgpo", 0, 0.5, base=0.3)]
    assert results.main_table(pd.DataFrame(off)).loc["base", "avg"] == "30.0"  # no warm-up: SGPO starts from the base


def ablation_frames():
    main = frame(*(rows(f"s{s}", "sgpo", s, 0.50 + s / 100) for s in (0, 1, 2)), rows("s9", "sgpo", 9, 0.9))
    ablate = frame(*(rows(f"k{s}", "sgpo", s, 0.45, label="w/o KL clipping") for s in (0, 1, 2)),
                   *(rows(f"r{s}", "sgpo", s, 0.60, label="reverse KL") for s in (0, 1)),
                   *(rows(f"t{s}", "sgpo", s, a, label="w/o target selection") for s, a in ((0, 0.55), (1, 0.46), (2, 0.52))),
                   rows("m0", "sgpo", 0, 0.40, label="my own"))
    return ablate, main


def test_ablation_table_reference_row_deltas_and_the_papers_column():
    ablate, main = ablation_frames()
    table = results.ablation_table(ablate, main, seeds=(0, 1, 2))
    assert list(table.index) == [results.FULL_SGPO, "w/o KL clipping", "w/o target selection", "reverse KL",
                                 "my own"]  # the paper's order; seed 9 is not a reference
    assert table.loc[results.FULL_SGPO, "avg"] == "51.0 ± 1.0" and table.loc["w/o KL clipping", "avg"] == "45.0 ± 0.0"
    assert table["Δ avg"].tolist() == ["+0.0", "-6.0", "+0.0", "+9.0", "-11.0"]
    assert table.loc[results.FULL_SGPO, "paper"] == paper.FULL and table.loc["reverse KL", "paper"] == 50.9
    assert math.isclose(table.loc["w/o KL clipping", "paper Δ"], 48.7 - 52.1) and math.isnan(table.loc["my own", "paper Δ"])
    # no per-problem rows: paired over (seed, benchmark), seeds and families crossed; KL clipping -5, -6, -7 on
    # both families (MS_seed 2, the rest 0: Var 2/6 on 2 df, t 4.303); reverse KL +10, +9; target selection +5, -5, 0
    assert table["paper's ordering here"].tolist() == ["", "holds", "inconclusive", "reversed", "inconclusive"]
    note = " (seed × family cells: no per-problem rows)"
    assert table.loc["w/o KL clipping", "Δ 95% CI"] == "[-8.5, -3.5]" + note
    assert table.loc["my own", "Δ 95% CI"] == "[-10.0, -10.0]" + note


def test_an_ablation_whose_runs_have_not_finished_is_left_out_not_a_crash():
    """Read mid-sweep (a pipeline run with --only, or a killed one): a label with only running runs."""
    ablate, main = ablation_frames()
    running = pd.DataFrame([{"run": "p0", "label": "w/o proximal constraints", "status": "running", "train.method": "sgpo",
                             "seed": 0}])
    table = results.ablation_table(pd.concat([ablate, running], ignore_index=True), main, seeds=(0, 1, 2))
    assert "w/o proximal constraints" not in table.index and len(table) == 5


def test_paired_difference_pairs_seeds_and_benchmarks_and_decides_the_papers_direction():
    ablate, main = ablation_frames()
    df = pd.concat([main, ablate], ignore_index=True)
    diffs = paired.paired_cells(df, "label", "w/o KL clipping", "s0")  # only seed 0 is in both
    assert diffs.to_dict() == pytest.approx({(0, "toy/add"): -5.0, (0, "toy/mul"): -5.0})
    assert paired.paired_cells(df, "label", "w/o KL clipping", "nobody").empty
    mean, low, high = paired.paired_interval(pd.Series([-5.0, -6.0, -7.0]))
    assert mean == -6.0 and math.isclose(high, -6.0 + 4.302653 * 1.0 / 3**0.5, rel_tol=1e-5)
    assert math.isnan(paired.paired_interval(pd.Series([2.0]))[1])
    assert paper.verdict((mean, low, high), -3.4) == "holds" and paper.verdict((mean, low, high), +2.2) == "reversed"
    assert paper.verdict((1.0, -0.5, 2.5), -3.4) == "inconclusive" and paper.verdict((2.0, math.nan, math.nan), -3.4) == "inconclusive"


def test_orderings_name_the_papers_rows_with_their_verdicts():
    ablate, main = ablation_frames()
    found = paper.orderings(results.ablation_table(ablate, main, seeds=(0, 1, 2)))
    assert found["ordering"].tolist() == ["w/o KL clipping < full SGPO", "w/o target selection < full SGPO", "reverse KL < full SGPO"]
    assert found["here"].tolist() == ["holds", "inconclusive", "reversed"]
    assert found.loc[0, "Δ here (95% CI)"].startswith("-6.0 [-8.5, -3.5]") and found.loc[0, "paper Δ"] == "-3.4"
    assert len(paper.ABLATIONS) == 8
    assert paper.main_table().loc["Llama ~8B-Instruct"].isna().sum() == 4


def test_empty_inputs_give_empty_tables():
    assert results.main_table(pd.DataFrame()).empty
    assert results.ablation_table(pd.DataFrame(), pd.DataFrame(), (0,)).empty
    assert paper.orderings(pd.DataFrame()).empty


def test_alpha_first_and_last_visit_of_the_most_visited_problems():
    alpha = pd.DataFrame([{"step": s, "problem_id": p, "alpha": a, "p_auto": 0.0, "p_guided": 1.0}
                          for s, p, a in [(3, "a", 0.6), (1, "a", 0.5), (7, "a", 0.2), (2, "b", 0.5), (5, "b", 0.6), (4, "c", 0.5)]])
    table = results.alpha_first_last(alpha, n_problems=2)
    assert list(table.index) == ["a", "b"]
    assert table.loc["a"].tolist() == [0.5, 0.2, 3] and table.loc["b"].tolist() == [0.5, 0.6, 2]


def _fake_run(out_dir, cfg, overrides, final):
    """A finished run folder as the trainer leaves it (config.yaml, results.json, STATUS)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fileio.write_text(out_dir / "config.yaml", config_to_yaml(load_config(cfg, overrides)))
    row = {"split": "test", "source": "macro", "n": 4, "greedy": final, "avg@k": final, "pass@k": final, "k": 2, "step": 2}
    fileio.write_json(out_dir / "results.json", {"base_eval": [{**row, "avg@k": 0.1}], "final_eval": [row]})
    write_status(out_dir, "done")


def test_notebook_04_and_the_report_show_the_same_ablation_table(tmp_path, monkeypatch):
    """stages.ablate (notebook 04) and report.tables read the same folders with the same function."""
    from sgpo_lib.analysis import report
    from sgpo_lib.config.run import ablation_runs
    from sgpo_lib.workflow import stages
    from sgpo_lib.workflow.sweep import run_name

    params = tmp_path / "p.yaml"
    params.write_text("experiment:\n  methods: [sgpo, sft_grpo]\n  seeds: [0, 1]\n  ablations:\n"
                      "    - direct SFT on guided rollouts: {distill.estimator: sampled}\n"
                      "    - w/o strategy distillation: {train.method: sft_grpo}\n")
    cfg = load_config(params)
    fileio.write_text(tmp_path / "config.yaml", config_to_yaml(cfg))
    fileio.write_json(tmp_path / "env.json", {})
    for s in (0, 1):
        _fake_run(tmp_path / "main" / f"train.method=sgpo_seed={s}", params, {"train.method": "sgpo", "seed": s}, 0.5 + s / 10)
        _fake_run(tmp_path / "main" / f"train.method=sft_grpo_seed={s}", params, {"train.method": "sft_grpo", "seed": s}, 0.6)
    for name, v in ablation_runs(cfg):  # finished already: the sweep skips them
        if "SFT" in name:  # the other one is the main table's sft_grpo runs: read from main/, never trained here
            _fake_run(tmp_path / "ablate" / run_name(v), params, v, 0.4)
    monkeypatch.setattr(stages, "train_variant", lambda *a: pytest.fail("a finished run was trained again"))
    shown = stages.ablate(cfg, tmp_path)
    assert sorted(p.name for p in (tmp_path / "ablate").iterdir()) == [
        "labels.json", "train.method=sgpo_distill.estimator=sampled_seed=0", "train.method=sgpo_distill.estimator=sampled_seed=1",
        "unfinished.json"]
    assert results.missing_runs(tmp_path) == {}
    pd.testing.assert_frame_equal(shown, report.tables(cfg, tmp_path)["ablation"])
    assert list(shown.index) == [results.FULL_SGPO, "w/o strategy distillation", "direct SFT on guided rollouts"]
    assert shown["Δ avg"].tolist() == ["+0.0", "+5.0", "-15.0"]
    orderings = report.tables(cfg, tmp_path)["ablation_orderings"].set_index("ordering")["here"]
    # two seeds whose differences disagree in size (-10, -20 and +10, 0): neither interval excludes 0
    assert orderings.to_dict() == {"w/o strategy distillation < full SGPO": "inconclusive",
                                   "direct SFT on guided rollouts < full SGPO": "inconclusive"}
    printed = report.terminal_tables(tmp_path)  # what `pipeline` prints at its end: the same tables as text
    assert printed.startswith("Main table") and "SFT+GRPO" in printed and "Ablations" in printed
    assert all(row in printed for row in shown.index) and "paper Δ" in printed and "paper's ordering here" in printed
    assert "direct SFT on guided rollouts < full SGPO" in printed and printed.rstrip().endswith("inconclusive")
    assert "\n0 " not in printed and "\n1 " not in printed  # no index column


def test_terminal_tables_are_empty_before_a_main_table_run(tmp_path):
    from sgpo_lib.analysis import report

    assert report.terminal_tables(tmp_path) == ""


def test_dynamics_figures_read_the_trainers_files_and_skip_with_a_note_without_them(tmp_path, caplog):
    """α per step, α on fixed problems first vs last visit, entropy per method, KL-clip fraction:
    drawn from hand-made metrics.jsonl / alpha.jsonl; each one skipped with a logged note without input."""
    import logging

    from sgpo_lib.analysis import report

    sgpo, grpo = tmp_path / "main" / "train.method=sgpo_seed=0", tmp_path / "main" / "train.method=grpo_seed=0"
    fileio.write_jsonl(grpo / "metrics.jsonl", [{"step": s, "entropy": 1.0 - s / 10} for s in range(3)])
    with caplog.at_level(logging.INFO, logger="sgpo_lib.analysis.report"):
        figs = report.dynamics_figures(tmp_path)
    assert set(figs) == {"entropy"} and len(figs["entropy"].axes[0].lines) == 1  # the GRPO run's 5-step mean
    assert all(f"figure {n} skipped" in caplog.text for n in ("alpha_mean", "kl_clip_frac", "alpha_first_last"))
    fileio.write_jsonl(sgpo / "metrics.jsonl", [{"step": s, "alpha_mean": 0.5 - s / 10, "entropy": 1.0, "distill/kl_clip_frac": 0.1}
                                            for s in range(3)])
    fileio.write_jsonl(sgpo / "alpha.jsonl", [{"step": s, "problem_id": p, "alpha": 0.5 - s / 10, "p_auto": 0.5, "p_guided": 1.0}
                                          for s in range(3) for p in ("x", "y")])
    figs = report.dynamics_figures(tmp_path)
    assert set(figs) == {"alpha_mean", "entropy", "kl_clip_frac", "alpha_first_last"}
    lines = figs["entropy"].axes[0].lines  # one per method, in the method's colour, the main table's order
    assert [line.get_label() for line in lines] == ["SGPO (1 seed)", "GRPO (from base) (1 seed)"]
    assert [line.get_color() for line in lines] == [plots.color("SGPO"), plots.color("GRPO (from base)")]
    first_last = figs["alpha_first_last"].axes[0].lines
    assert len(first_last) == 2 and list(first_last[0].get_ydata()) == [0.5, 0.3]


def test_collect_labels_runs_by_labels_json_else_by_folder_without_the_seed(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("seed: 0\n")
    for name in ("train.method=sgpo_distill.coef=0_seed=0", "train.method=sgpo_distill.coef=0_seed=1", "odd"):
        _fake_run(tmp_path / "sweep" / name, params, {}, 0.5)
    assert set(results.collect(tmp_path / "sweep")["label"]) == {"train.method=sgpo_distill.coef=0", "odd"}
    fileio.write_json(tmp_path / "sweep" / results.LABELS_FILE, {"odd": "w/o KL clipping"})
    assert set(results.collect(tmp_path / "sweep")["label"]) == {"train.method=sgpo_distill.coef=0", "w/o KL clipping"}
