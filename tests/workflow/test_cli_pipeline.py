"""The pipeline and the command line: `--only` leaves a partial run that a plain pipeline
completes, progress lines while a notebook runs, a lock per run, sweeps that exit non-zero on
failed points and print a short summary, `--help` with descriptions, `--run-id` rejected where
a folder is named otherwise, folders kept inside the outputs root."""

import logging
import os
import subprocess
import sys

import pytest

from sgpo_lib.__main__ import COMMANDS, main
from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import read_status, write_status
from sgpo_lib.workflow import pipeline


@pytest.fixture
def params(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(f"seed: 3\noutput:\n  root: {tmp_path / 'out'}\n")
    return p


FAKE_NOTEBOOK_S = 0.6  # the progress tests read the lines while a notebook runs


STEMS = [nb.stem for nb in pipeline.notebooks()]


def test_only_leaves_a_partial_run_that_a_plain_pipeline_completes(params, fake_papermill, tmp_path):
    out = pipeline.run_pipeline(params, run_id="r", only=["00_prepare", "01_extract_strategies"])
    run_dir = tmp_path / "out" / "r"
    assert out == run_dir and read_status(run_dir) == "partial" and not (run_dir / "report.html").exists()
    first = fileio.read_json(run_dir / "timings.json")
    assert sorted(first) == ["00_prepare", "01_extract_strategies"]
    pipeline.run_pipeline(params, run_id="r", only=["02_paired_rollouts"])
    assert sorted(fileio.read_json(run_dir / "timings.json")) == STEMS[:3]  # merged, not overwritten
    assert read_status(run_dir) == "partial"
    fake_papermill.clear()
    report = pipeline.run_pipeline(params, run_id="r")
    assert fake_papermill == STEMS and report == run_dir / "report.html" and read_status(run_dir) == "done"
    assert pipeline.is_complete(run_dir)
    fake_papermill.clear()
    pipeline.run_pipeline(params, run_id="r")
    assert fake_papermill == []  # complete: not redone


def test_a_done_status_without_every_notebook_is_completed(params, fake_papermill, tmp_path):
    run_dir = tmp_path / "out" / "r"
    fileio.write_json(run_dir / "timings.json", {"00_prepare": 1.0})
    fileio.write_text(run_dir / "report.html", "old partial report")
    write_status(run_dir, "done")  # what `--only` used to leave (by this code)
    pipeline.run_pipeline(params, run_id="r")
    assert fake_papermill == STEMS and pipeline.is_complete(run_dir)


def test_only_takes_notebook_stems(params, fake_papermill):
    with pytest.raises(ValueError, match=r"--only takes notebook stems; unknown \['prepare'\]"):
        pipeline.run_pipeline(params, run_id="r", only=["prepare"])


def test_progress_lines_name_the_notebook_and_a_heartbeat_fills_quiet_spells(params, fake_papermill, monkeypatch,
                                                                               caplog):
    monkeypatch.setattr(pipeline, "HEARTBEAT_S", 0.2)
    with caplog.at_level(logging.INFO, logger="sgpo_lib.workflow.pipeline"):
        pipeline.run_pipeline(params, run_id="r", only=["03_train_sgpo"])
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("[03_train_sgpo +00:00:0") and m.endswith("03_train_sgpo: step 2/2") for m in lines)
    assert any(m.startswith("[03_train_sgpo +") and m.endswith("] running") for m in lines)
    assert "SGPO_PROGRESS" not in os.environ


def test_a_failed_notebook_marks_the_run_failed(params, monkeypatch, tmp_path):
    import papermill

    def boom(*a, **kw):
        raise RuntimeError("cell 3 raised")

    monkeypatch.setattr(papermill, "execute_notebook", boom)
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(params, run_id="r")
    assert read_status(tmp_path / "out" / "r") == "failed"


def test_the_pipeline_command_ends_with_the_report_path(params, fake_papermill, capsys):
    """No main-table run yet (the notebooks are faked): no tables, just the report's path."""
    assert main(["pipeline", "--params", str(params)]) == 0
    out = capsys.readouterr().out
    assert out.strip().startswith("report: ") and out.strip().endswith("report.html") and "Main table" not in out


def test_the_command_line_leaves_the_report_libraries_to_the_pipeline():
    """Each training run of a sweep is a `python -m sgpo_lib train` process: the report's and the
    notebooks' libraries (nbformat, matplotlib, ...) would add ~3 s to each (10.7 -> 7.4 s for `--help`)."""
    code = ("import sys, sgpo_lib.__main__; print([m for m in ('sgpo_lib.analysis.report', "
            "'sgpo_lib.workflow.pipeline', 'nbformat', 'papermill', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "[]"


def test_help_lists_commands_with_descriptions(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, text in COMMANDS.items():
        assert name in out and text[:40] in out
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    assert "notebook stems" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["train", "--out-dir", "x"], ["sweep", "--out", "x"]])
def test_run_id_is_rejected_where_the_folder_is_named_otherwise(params, command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command[0], "--params", str(params), *command[1:], "--run-id", "r"])
    assert e.value.code == 2 and "unrecognized arguments: --run-id" in capsys.readouterr().err


def test_out_dirs_stay_inside_the_outputs_root(params, tmp_path):
    for argv in (["train", "--out-dir", "outputs/x"], ["train", "--out-dir", str(tmp_path / "out" / ".." / "escape")],
                 ["train", "--out-dir", "/tmp/escape"], ["sweep", "--out", str(tmp_path / "x"), "--grid", "seed=0"]):
        with pytest.raises(ValueError, match="is outside the outputs root"):
            main([argv[0], "--params", str(params), *argv[1:]])
    assert not (tmp_path / "escape").exists()


def _fake_train(params_file, overrides, out_dir):
    from sgpo_lib.config.run import config_to_yaml, load_config
    from sgpo_lib.core.run_folder import write_status

    if overrides["seed"] == 1:
        raise RuntimeError("boom")
    fileio.write_text(out_dir / "config.yaml", config_to_yaml(load_config(params_file, overrides)))
    row = {"split": "test", "source": "macro", "n": 4, "greedy": 0.5, "avg@k": 0.5, "pass@k": 0.75, "step": 2}
    fileio.write_json(out_dir / "results.json", {"base_eval": [row], "final_eval": [row]})
    write_status(out_dir, "done")


def test_a_sweep_with_failed_points_exits_non_zero_and_prints_a_summary(params, tmp_path, monkeypatch, capsys):
    from sgpo_lib.workflow import stages

    monkeypatch.setattr(stages, "train_variant", _fake_train)
    sw = str(tmp_path / "out" / "sw")
    assert main(["sweep", "--params", str(params), "--grid", "seed=0,1", "--out", sw]) == 1
    out, err = capsys.readouterr()
    assert "1 of 2 runs did not finish" in err and "seed=1" in err
    assert max(len(line) for line in out.splitlines()) < 160  # axes, status, headline metrics only
    assert "seed=0" in out and "failed" in out and "pass@k" in out and "distill.coef" not in out
    full = (tmp_path / "out" / "sw" / "sweep_table.csv").read_text()
    assert "distill.coef" in full
    monkeypatch.setattr(stages, "train_variant", lambda p, o, d: _fake_train(p, {**o, "seed": 0}, d))
    assert main(["sweep", "--params", str(params), "--grid", "seed=0,1", "--out", sw]) == 0


def test_a_second_pipeline_or_train_on_a_folder_in_use_fails_at_once(params, tmp_path, fake_papermill):
    import signal
    import subprocess
    import sys

    from sgpo_lib.config.run import load_config
    from sgpo_lib.core.locks import RunLockedError
    from sgpo_lib.train.trainer import train

    hold = "import sys, time\nfrom sgpo_lib.core.locks import run_lock\nwith run_lock(sys.argv[1]):\n print('held', flush=True)\n time.sleep(120)"
    for folder in (tmp_path / "out" / "r", tmp_path / "t"):
        proc = subprocess.Popen([sys.executable, "-c", hold, str(folder)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "held"
            with pytest.raises(RunLockedError, match=f"in use by pid {proc.pid}"):
                if folder.name == "r":
                    pipeline.run_pipeline(params, run_id="r")
                else:
                    train(load_config(params), None, folder, None)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert fake_papermill == [] and not (tmp_path / "t" / "STATUS").exists()
