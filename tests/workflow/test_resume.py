"""A training run SIGKILLed at any point and re-run leaves every JSONL (the pass-gap `alpha.jsonl`
included), completion table, results file and the pass-gap alpha state of the checkpoints exactly
as an uninterrupted run's (timings aside); a damaged cached student fails
naming its file with STATUS failed; completion tables and tracking sinks; progress lines."""

import logging
import shutil
import signal
import sys
import time

import pytest
import torch
from trainer_fixtures import PARAMS, ParityGrader, make_data, run_script  # noqa: E402

from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import Progress, read_status

STEPS = 5


def _params(tmp_path, model_dir, small: bool = False):
    """Checkpoints at steps 2 and 4 (and the last), evaluations at 0, 2, 4 and 5; the v2 defaults
    (pass-gap alpha state, select_one targets, KL clip). `small`: 2 + 2 rollouts of 4 tokens per
    problem, evaluations of one problem with one sample (the SIGKILL test's budget)."""
    text = PARAMS.format(model=model_dir, steps=STEPS).replace("checkpoint_every: 1", "checkpoint_every: 2")
    text = text.replace("distill: {target: all, weighting: constant}", "distill: {gamma: 0.3}")
    text = text.replace("eval: {every: 100", "eval: {every: 2")
    if small:
        text = text.replace("n_autonomous: 3, n_guided: 2, max_new_tokens: 6", "n_autonomous: 2, n_guided: 2, max_new_tokens: 4")
        text = text.replace("k: 2, max_problems: 2", "k: 1, max_problems: 1")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _without_timings(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "time" and not k.endswith("_s") and not k.endswith("_per_s")}


def _snapshot(run_dir):
    """Every step log, completion table and the results, timings aside."""
    files = {name: [_without_timings(r) for r in fileio.read_jsonl(run_dir / name)]
             for name in ("metrics.jsonl", "evals.jsonl", "eval_problems.jsonl", "alpha.jsonl")}
    files["alpha state"] = {p.name: torch.load(p, weights_only=False)["extra"]["alpha"]
                            for p in sorted((run_dir / "checkpoints").glob("step_*.pt"))}
    files.update({f"completions/{p.name}": fileio.read_jsonl(p) for p in sorted((run_dir / "completions").glob("*.jsonl"))})
    files["results.json"] = fileio.read_json(run_dir / "results.json")
    return files


def _metrics_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    return [r["step"] for r in fileio.read_jsonl(path, tolerate_torn_tail=True)] if path.exists() else []


def _checkpoint_step(run_dir):
    try:
        return fileio.read_json(run_dir / "checkpoints" / "latest.json")["step"]
    except (OSError, ValueError):
        return None


KILL_POINTS = {
    # after the step-0 evaluation, before the first checkpoint
    "before_first_checkpoint": lambda d: 0 in _metrics_steps(d) and _checkpoint_step(d) is None,
    # step 3 logged past checkpoint 2 (its eval rows and completions must go on resume)
    "past_a_checkpoint": lambda d: 3 in _metrics_steps(d) and _checkpoint_step(d) == 2,
    # checkpoint 4 written, the last step not yet
    "after_a_checkpoint": lambda d: _checkpoint_step(d) == 4 and STEPS not in _metrics_steps(d),
}


@pytest.mark.integration
def test_sigkill_at_three_points_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_model_dir):
    """One run folder SIGKILLed at each point in turn (each re-run resumes the previous kill's
    state), then finished; the uninterrupted run is trained in-process (one process start less)."""
    from sgpo_lib.config.run import load_config
    from sgpo_lib.train.trainer import train

    params = _params(tmp_path, tiny_model_dir, small=True)
    train(load_config(params), make_data(tiny_model_dir), tmp_path / "straight", ParityGrader())
    want = _snapshot(tmp_path / "straight")
    assert [r["step"] for r in want["metrics.jsonl"]] == list(range(STEPS + 1))
    alphas = {r["alpha"] for r in want["alpha.jsonl"]}
    assert len(want["alpha.jsonl"]) == 2 * STEPS and len(alphas) >= 3, alphas  # the state moved (0.5 +- 0.3 steps)
    assert want["alpha state"]["step_000005.pt"] and "alpha_mean" in want["metrics.jsonl"][-1]
    base = want["results.json"]["base_eval"]
    assert len(base) == len({(r["split"], r["source"]) for r in base}) >= 1  # one row per benchmark, not doubled
    assert sorted(set(r["step"] for r in want["evals.jsonl"])) == [0, 2, 4, 5]
    assert sorted(set(r["step"] for r in want["eval_problems.jsonl"])) == [0, 2, 4, 5]  # per-problem rows rewound too
    run_dir = tmp_path / "killed"
    for name, reached in KILL_POINTS.items():
        proc = run_script(tmp_path, params, tiny_model_dir, run_dir)
        deadline = time.time() + 300
        while time.time() < deadline and not reached(run_dir) and proc.poll() is None:
            time.sleep(0.005)
        assert reached(run_dir), f"{name}: the window was missed (steps {_metrics_steps(run_dir)})"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert read_status(run_dir) == "stale", name
    assert run_script(tmp_path, params, tiny_model_dir, run_dir).wait() == 0
    assert _snapshot(run_dir) == want
    assert read_status(run_dir) == "done"


def test_completion_tables_are_written_per_step(tmp_path, tiny_model_dir):
    from sgpo_lib.analysis.report import sgpo_completions
    from sgpo_lib.config.run import load_config
    from sgpo_lib.train.trainer import train

    cfg = load_config(_params(tmp_path, tiny_model_dir), {"train.steps": 2})
    run_dir = tmp_path / "main" / "train.method=sgpo_seed=0"
    train(cfg, make_data(tiny_model_dir), run_dir, ParityGrader())
    files = sorted(p.name for p in (run_dir / "completions").iterdir())
    assert files == ["step_000001.jsonl", "step_000002.jsonl"]
    rows = fileio.read_jsonl(run_dir / "completions" / "step_000002.jsonl")
    assert len(rows) == 2 * (3 + 2)  # 2 problems x (3 autonomous + 2 guided)
    guided = [r for r in rows if r["guided"]]
    assert guided and all(r["strategy"] == "Adding a number to itself doubles it." for r in guided)
    assert all(r["strategy"] == "" for r in rows if not r["guided"])
    assert all(r["reward"] == float(len(r["response"]) % 2 == 0) for r in rows)
    assert all(r["grade"] == ("correct" if r["reward"] else "wrong") for r in rows)  # ParityGrader's reasons
    assert rows[0]["prompt"].startswith("What is")
    table = sgpo_completions(tmp_path, rows=3)
    assert len(table) == 3 and list(table.columns) == ["run", "step", "prompt", "guided", "strategy", "response",
                                                       "reward", "grade"]
    assert set(table["step"]) == {2}


def test_a_damaged_cached_student_fails_naming_the_file_and_the_run_is_failed(tmp_path, tiny_model_dir):
    from sgpo_lib.config.run import load_config
    from sgpo_lib.train.trainer import train

    damaged = tmp_path / "student"
    shutil.copytree(tiny_model_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match=rf"{weights}: cannot be read .*delete {damaged}"):
        train(load_config(_params(tmp_path, damaged)), make_data(damaged), tmp_path / "run", ParityGrader())
    assert read_status(tmp_path / "run") == "failed"
    assert str(weights) in (tmp_path / "run" / "STATUS").read_text()


def test_tracking_sinks_are_chosen_by_params_and_imported_lazily(tmp_path, monkeypatch):
    import types

    from sgpo_lib.core import tracking

    assert tracking.make_sink("none", tmp_path, {}) is None
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as when the package is not installed
    with pytest.raises(ImportError, match=r"output.report_to: tensorboard needs the 'tensorboard' package.*tracking"):
        tracking.make_sink("tensorboard", tmp_path, {})
    logged = []
    fake = types.SimpleNamespace(init=lambda project, name, config: logged.append(("init", project, name, config)),
                                 log=lambda values, step: logged.append((step, values)))
    monkeypatch.setitem(sys.modules, "trackio", fake)
    sink = tracking.make_sink("trackio", tmp_path / "main" / "seed=0", {"seed": 0})
    sink.log({"step": 3, "time": 1.0, "loss": 0.5, "flag": True, "name": "x", "n": 2})
    assert logged == [("init", "sgpo", "main/seed=0", {"seed": 0}), (3, {"loss": 0.5, "n": 2.0})]


def test_tensorboard_is_the_default_and_its_event_files_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from sgpo_lib.config.run import RunConfig
    from sgpo_lib.core import tracking

    assert RunConfig().output.report_to == "tensorboard"
    sink = tracking.make_sink("tensorboard", tmp_path, {})
    sink.log({"step": 0, "loss": 1.5, "flag": True})
    sink.log({"step": 1, "loss": 0.5})
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss")] == [(0, 1.5), (1, 0.5)]
    assert events.Tags()["scalars"] == ["loss"]


def test_the_report_to_key_is_validated(tmp_path):
    from sgpo_lib.config.run import ConfigError, load_config

    path = tmp_path / "p.yaml"
    path.write_text("output:\n  report_to: tensorbord\n")
    with pytest.raises(ConfigError, match=r"'output.report_to'.*did you mean 'tensorboard'"):
        load_config(path)


def test_progress_lines_give_step_total_and_eta(caplog, monkeypatch):
    clock = iter([0.0, 1.0, 10.0, 11.0])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    p = Progress("train sgpo", total=10, initial=0, every_s=5.0)
    with caplog.at_level(logging.INFO, logger="sgpo_lib.core.run_folder"):
        p.update(1)  # t=1: under every_s since the start, not logged
        p.update(5)  # t=10: 2 s/step, 5 steps left
        p.update(10)  # the last step is always logged
    assert [r.getMessage() for r in caplog.records] == ["train sgpo: step 5/10, 2.0 s/step, ETA 00:00:10",
                                                        "train sgpo: step 10/10, 1.1 s/step, ETA 00:00:00"]


def test_report_sections_without_data_say_so():
    import pandas as pd
    from IPython.display import Markdown

    from sgpo_lib.analysis.report import Shown, show

    shown = show({"main": pd.DataFrame({"avg": ["1.0"]}, index=pd.Index(["SGPO"], name="method"))}, "main")
    assert isinstance(shown, Shown) and shown.name == "main" and "SGPO" in shown.value.to_html()  # readable, marked
    assert isinstance(show({"main": pd.DataFrame()}, "main"), Markdown)  # an empty table is no data
    note = show({}, "ablation")
    assert isinstance(note, Markdown) and "Not run: `experiment.ablations` is empty" in note.data


def test_tqdm_finds_ipywidgets_so_kernels_show_no_iprogress_note():
    """transformers imports tqdm.auto; in a kernel without ipywidgets that prints a TqdmWarning box
    in every notebook's import cell (ipywidgets is a dependency for that reason)."""
    from tqdm.notebook import IProgress

    assert IProgress is not None


def test_a_section_said_by_another_cell_shows_nothing():
    from sgpo_lib.analysis.report import show

    assert show({}, "scaling_table") is None and show({}, "main_bars") is None
    assert "Not run" in show({}, "scaling", note="scaling_figure").data
    assert show({"scaling": "fig"}, "scaling", note="scaling_figure").value == "fig"
