"""The benchmarks run at a tiny size and report what the summary table needs.

Train step and teacher benchmarks in this process (no spawned children, one timed step),
the TRL comparison only where `trl` is installed; the demo timings reader, the summary
loader and the runner's handling of a missing benchmark.
"""

import json

import pytest

from bench import bench_demo, bench_teacher, bench_train_step, summary
from bench.bench_train_step import PHASES, StepSettings
from bench.run_all import Job, run_job

TINY = StepSettings(problems=2, group=2, guided=2, max_new_tokens=4, micro_batch=4, repeats=1, rounds=1)


def _check_timings(r: dict) -> None:
    assert r["step_s"] > 0 and r["gen_tokens"] > 0 and r["generate_s"] > 0 and r["train_s"] > 0
    assert all(r[k] >= 0 for k in PHASES)
    assert r["step_s"] >= r["generate_s"] + r["train_s"]


def test_train_step_bench_reports_every_variant(tiny_model_dir):
    trl_ok = bench_train_step.trl_missing() is None
    out = bench_train_step.run(tiny_model_dir, TINY, trl=trl_ok, isolate=False)
    for name in ("grpo", "sgpo", "sgpo_engine", "grpo_g_plus_s") + (("trl_grpo",) if trl_ok else ()):
        _check_timings(out["results"][name])
    assert out["results"]["sgpo"]["teacher_s"] > out["results"]["grpo"]["teacher_s"]  # GRPO: no teacher pass
    assert out["ratios"]["sgpo_over_grpo"]["value"] > 0 and out["ratios"]["sgpo_engine_over_grpo"]["value"] > 0
    assert (out["ratios"]["grpo_over_trl"]["value"] is not None) == trl_ok
    assert out["config"]["torch_threads"] == 1 and out["config"]["group"] == 2
    rows = summary.rows_for("train_step", json.loads(json.dumps(out)))
    assert any(r["target"] == "sgpo/grpo <= 1.5" and r["met"] in (True, False) for r in rows)


def test_teacher_bench_engine_skips_the_teacher_pass(tiny_model_dir):
    out = bench_teacher.run(tiny_model_dir, TINY, topk=4, isolate=False)
    fwd, eng = out["results"]["forward"], out["results"]["engine"]
    _check_timings(fwd)
    _check_timings(eng)
    assert fwd["teacher_s"] > 0 and eng["teacher_s"] < fwd["teacher_s"]
    assert out["ratios"]["step_engine_over_forward"] > 0 and out["config"]["topk"] == 4


def test_demo_bench_reads_newest_timings_or_reports_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path))
    assert "missing" in bench_demo.run()
    (tmp_path / "toy-demo-abc").mkdir()
    (tmp_path / "toy-demo-abc" / "timings.json").write_text('{"00_world": 1.5, "01_train": 2.5}')
    out = bench_demo.run()
    assert out["total_s"] == 4.0 and out["timings_s"]["00_world"] == 1.5
    (tmp_path / "toy-demo-abc" / "timings.json").write_text('{"00_world": "slow"}')
    with pytest.raises(ValueError, match="timings.json"):
        bench_demo.run(tmp_path / "toy-demo-abc")


def test_load_summary_empty_then_rows(tmp_path):
    frame = summary.load_summary(tmp_path)
    assert frame.empty and list(frame.columns) == list(summary.COLUMNS)
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "demo.json").write_text(json.dumps({"timings_s": {"00_world": 3.0}, "total_s": 3.0}))
    (bench / "summary.json").write_text(json.dumps({"jobs": {"grader": {"status": "missing", "reason": "not there"}}}))
    frame = summary.load_summary(tmp_path)
    assert set(frame["bench"]) == {"demo", "grader"}
    assert frame.loc[frame["metric"] == "total s", "value"].item() == 3.0
    assert frame.loc[frame["bench"] == "grader", "metric"].item() == "missing: not there"


def test_a_bench_file_that_is_not_json_is_a_row_naming_it_and_the_others_are_read(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "demo.json").write_text(json.dumps({"timings_s": {"00_world": 3.0}, "total_s": 3.0}))
    (bench / "lines.json").write_text('{"a": 1}\n{"a": 2}\n')  # JSON lines under a .json name
    frame = summary.load_summary(tmp_path)
    bad = frame.loc[frame["bench"] == "lines", "metric"].item()
    assert bad.startswith(f"unreadable: {bench / 'lines.json'}: Extra data")
    assert frame.loc[frame["metric"] == "total s", "value"].item() == 3.0


def test_run_job_reports_missing_and_skipped():
    assert run_job(Job("nothing", "bench_does_not_exist"))["status"] == "missing"
    assert run_job(Job("gpu", "bench_losses", skip="no GPU")) == {"status": "skipped", "reason": "no GPU"}


@pytest.mark.integration
def test_toy_step_bench_times_every_variant_on_the_toy_world(tmp_path, monkeypatch):
    """bench_toy_step on the smoke params (its student, pretrained 20 steps, and its warm-up built
    into a temporary outputs root): every variant timed, the ratios computed from the same run."""
    from bench import bench_toy_step

    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path))
    out = bench_toy_step.run("params/toy-smoke.yaml", steps=1, overrides={"pretrain.steps": 20, "pretrain.warmup_steps": 2})
    assert set(out["results"]) == set(bench_toy_step.VARIANTS)
    for r in out["results"].values():
        _check_timings(r)
    assert set(out["ratios"]) == {"sgpo_over_grpo", "sgpo_engine_over_grpo", "sgpo_over_sft_grpo", "sgpo_engine_over_sft_grpo"}
    r = out["ratios"]["sgpo_over_sft_grpo"]
    assert r["value"] == out["results"]["sgpo"]["step_s"] / out["results"]["sft_grpo"]["step_s"]
    assert out["ratios"]["sgpo_engine_over_grpo"]["value"] == out["results"]["sgpo_engine"]["step_s"] / out["results"]["grpo"]["step_s"]


def test_selfconsistency_bench_unboxes_the_last_box_only():
    from bench.bench_selfconsistency import _last_box

    text = "first \\boxed{1}, then \\boxed{\\frac{a}{b^{2}}} done"
    i, j, k = _last_box(text)
    assert text[j:k] == "\\frac{a}{b^{2}}" and text[:i] + text[j:k] + text[k + 1:] == "first \\boxed{1}, then \\frac{a}{b^{2}} done"
    assert _last_box("no box") is None and _last_box("\\boxed{open") is None


def test_rl_temperature_gap_averages_families_not_problems():
    from bench.rl_temperature_gap import family_means

    rows = [{"split": "test", "source": "toy/a", "greedy": 0, "correct": 2, "k": 2},
            {"split": "test", "source": "toy/a", "greedy": 0, "correct": 0, "k": 2},
            {"split": "test", "source": "toy/b", "greedy": 0, "correct": 1, "k": 4}]
    assert family_means(rows) == {"a": 50.0, "b": 25.0, "macro": 37.5}  # families weigh the same, not problems


def test_power_projects_each_main_rows_standard_error_and_reports_the_largest(tmp_path):
    """Two methods x 3 seeds on 2 benchmarks of 4 problems: `SE` is the main table's standard error,
    the projections shrink with more seeds and problems, and `max` is the largest row."""
    import random

    from bench.power import projections
    from sgpo_lib.analysis import paired, results
    from sgpo_lib.config.run import config_to_yaml, load_config
    from sgpo_lib.core import fileio
    from sgpo_lib.core.run_folder import write_status

    params, rng = tmp_path / "p.yaml", random.Random(0)
    params.write_text("experiment:\n  methods: [sgpo, sft_grpo]\n  seeds: [0, 1, 2]\n")
    for method, skill in (("sgpo", 0.6), ("sft_grpo", 0.3)):
        for seed in (0, 1, 2):
            run = tmp_path / "run" / "main" / f"train.method={method}_seed={seed}"
            fileio.write_text(run / "config.yaml", config_to_yaml(load_config(params, {"train.method": method, "seed": seed})))
            outcomes = [{"step": step, "split": "test", "source": source, "problem_id": f"{source}-{i}", "k": 2, "greedy": 1.0,
                         "correct": sum(rng.random() < skill + i / 10 for _ in range(2))}
                        for step in (0, 4) for source in ("toy/a", "toy/b") for i in range(4)]
            fileio.write_jsonl(run / "eval_problems.jsonl", outcomes)
            table = [{"split": "test", "source": s, "avg@k": 0.5, "greedy": 1.0, "step": 4} for s in ("toy/a", "toy/b", "macro")]
            fileio.write_json(run / "results.json", {"base_eval": [{**r, "step": 0} for r in table], "final_eval": table})
            write_status(run, "done")
    found = projections(tmp_path / "run", [3, 6], [1.0, 4.0])
    main = results.with_method(results.collected(tmp_path / "run" / "main"))
    assert list(found.index) == ["SFT+GRPO", "SGPO", "max"]
    for method in ("SFT+GRPO", "SGPO"):
        assert found.loc[method, "SE"] == pytest.approx(paired.row_standard_error(main, "method", method)[0], rel=1e-12)
        assert found.loc[method, "6 seeds, 4x problems"] < found.loc[method, "3 seeds, 1x problems"]
    assert (found.loc["max"] == found.drop(index="max").max()).all()
