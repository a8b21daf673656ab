"""Runs that know their code: a fingerprint of the library's sources in env.json and STATUS,
compared wherever a folder is reused (start_run, train --out-dir, a sweep's done-skip, the
pipeline's early return); `output.reuse: config` reuses on purpose; `--force` redoes the trained
runs; a sweep rerun with other settings is refused; nbval has its own outputs root."""

import os
import subprocess
import sys

import pytest

from sgpo_lib.config.run import load_config
from sgpo_lib.core import code_fingerprint, fileio
from sgpo_lib.core.code_fingerprint import CodeChangedError
from sgpo_lib.core.paths import REPO_ROOT
from sgpo_lib.workflow import pipeline
from sgpo_lib.workflow.runs import start_run
from sgpo_lib.workflow.sweep import run_sweep


@pytest.fixture
def params(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(f"seed: 3\noutput:\n  root: {tmp_path / 'out'}\n")
    return p


@pytest.fixture
def edit_library(tmp_path, monkeypatch):
    """The fingerprint taken over a small stand-in package; `edit()` changes one line of it."""
    src = tmp_path / "src"
    (src / "method").mkdir(parents=True)
    (src / "method" / "trainer.py").write_text("LR_SCALE = 1\n")
    monkeypatch.setattr(code_fingerprint, "PACKAGE_DIR", src)
    code_fingerprint.fingerprint.cache_clear()

    def edit():
        (src / "method" / "trainer.py").write_text("LR_SCALE = 30\n")
        code_fingerprint.fingerprint.cache_clear()

    yield edit
    code_fingerprint.fingerprint.cache_clear()


def test_the_fingerprint_covers_every_source_of_the_package_in_subpackages(edit_library, tmp_path):
    before = code_fingerprint.fingerprint()
    edit_library()
    after = code_fingerprint.fingerprint()
    (tmp_path / "src" / "method" / "trainer.py").rename(tmp_path / "src" / "trainer.py")
    code_fingerprint.fingerprint.cache_clear()
    assert len({before, after, code_fingerprint.fingerprint()}) == 3


def test_the_real_fingerprint_hashes_the_library_sources():
    code_fingerprint.fingerprint.cache_clear()
    assert code_fingerprint.PACKAGE_DIR == REPO_ROOT / "sgpo_lib" and len(code_fingerprint.fingerprint()) == 16


def test_start_run_records_the_code_and_refuses_a_folder_of_other_code(params, edit_library):
    _, run_dir = start_run(params)
    first = code_fingerprint.fingerprint()
    assert fileio.read_json(run_dir / "env.json")["code_fingerprint"] == first
    edit_library()
    with pytest.raises(CodeChangedError) as e:
        start_run(params)
    message = str(e.value)
    assert str(run_dir) in message and first in message and "new run id" in message and "output.reuse: config" in message
    assert fileio.read_json(run_dir / "env.json")["code_fingerprint"] == first  # nothing written
    _, again = start_run(params, {"output.reuse": "config"})
    assert again == run_dir  # output.reuse is not part of the run id
    assert load_config(run_dir / "config.yaml").output.reuse == "config"  # the stages' sweeps read it from there
    assert fileio.read_json(run_dir / "env.json")["code_fingerprint"] == code_fingerprint.fingerprint()  # the last execution


def test_a_folder_without_a_fingerprint_counts_as_other_code(params):
    _, run_dir = start_run(params)
    env = fileio.read_json(run_dir / "env.json")
    del env["code_fingerprint"]
    fileio.write_json(run_dir / "env.json", env)
    with pytest.raises(CodeChangedError, match="unknown version"):
        start_run(params)


def test_status_carries_the_code(tmp_path):
    from sgpo_lib.core.run_folder import write_status

    write_status(tmp_path, "done")
    assert f"code: {code_fingerprint.fingerprint()}" in (tmp_path / "STATUS").read_text()
    assert code_fingerprint.recorded(tmp_path) == code_fingerprint.fingerprint()


def _done(params_file, overrides, out_dir):
    from sgpo_lib.config.run import config_to_yaml, load_config
    from sgpo_lib.core.run_folder import write_status

    fileio.write_text(out_dir / "config.yaml", config_to_yaml(load_config(params_file, overrides)))
    write_status(out_dir, "done")


def test_a_sweep_refuses_done_runs_of_other_code_or_other_settings_before_starting(params, tmp_path, edit_library):
    calls = []

    def train(p, o, d):
        calls.append(d.name)
        _done(p, o, d)

    root = tmp_path / "out" / "sw"
    run_sweep(params, [{"seed": 0}, {"seed": 1}], root, train_fn=train)
    assert calls == ["seed=0", "seed=1"]
    with pytest.raises(FileExistsError, match=r"train.lr: 0.0001 there, 0.5 here"):
        run_sweep(params, [{"seed": 0}], root, base_overrides={"train.lr": 0.5}, train_fn=train)
    edit_library()
    with pytest.raises(CodeChangedError, match="seed=0"):
        run_sweep(params, [{"seed": 0}, {"seed": 1}], root, train_fn=train)
    assert calls == ["seed=0", "seed=1"]
    run_sweep(params, [{"seed": 0}], root, base_overrides={"output.reuse": "config"}, train_fn=train)
    assert calls == ["seed=0", "seed=1"]  # reused on purpose: skipped as done


def test_after_a_code_edit_the_pipeline_refuses_its_done_folder_and_says_how_to_go_on(params, fake_papermill,
                                                                                    edit_library, capsys):
    from sgpo_lib.__main__ import main

    report = pipeline.run_pipeline(params, run_id="r")
    n = len(pipeline.notebooks())  # 00-07
    assert len(fake_papermill) == n == 8
    edit_library()
    assert main(["pipeline", "--params", str(params), "--run-id", "r"]) == 2
    err = capsys.readouterr().err
    assert "new run id" in err and "output.reuse: config" in err and "Traceback" not in err
    assert len(fake_papermill) == n
    assert pipeline.run_pipeline(params, {"output.reuse": "config"}, run_id="r") == report  # done: not redone
    assert len(fake_papermill) == n


def test_force_redoes_the_trained_runs(params, fake_papermill, tmp_path):
    run_dir = tmp_path / "out" / "r"
    pipeline.run_pipeline(params, run_id="r")
    _done(str(params), {"seed": 0}, run_dir / "main" / "seed=0")  # a trained run the sweep would skip
    pipeline.run_pipeline(params, run_id="r", only=["07_report"], force=True)
    assert (run_dir / "main" / "seed=0" / "STATUS").exists()  # --only: the other notebooks' results stay
    pipeline.run_pipeline(params, run_id="r", force=True)
    assert len(fake_papermill) == 2 * len(pipeline.notebooks()) + 1 and not (run_dir / "main").exists()
    assert (run_dir / "report.html").exists()


def test_train_out_dir_refuses_a_folder_of_other_code(params, tmp_path, edit_library):
    from sgpo_lib.workflow.stages import train_variant

    out = tmp_path / "out" / "t"
    _done(str(params), {}, out)
    edit_library()
    with pytest.raises(CodeChangedError):
        train_variant(str(params), {}, out)


def test_nbval_runs_the_notebooks_into_an_outputs_root_of_its_own(tmp_path):
    """The notebooks' conftest moves SGPO_OUTPUTS under the root before any kernel starts."""
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_probe.py").write_text(
        "import os\ndef test_root():\n    print('ROOT=' + os.environ['SGPO_OUTPUTS'])\n")
    (tests / "conftest.py").write_text((REPO_ROOT / "notebooks" / "conftest.py").read_text())
    env = {**os.environ, "SGPO_OUTPUTS": str(tmp_path / "outputs"),  # the tree under test, whatever the install points at
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    from sgpo_lib.core.run_folder import write_status

    write_status(tmp_path / "outputs" / "nbval" / "current", "done")  # by this code: kept
    fileio.write_text(tmp_path / "outputs" / "nbval" / "old" / "STATUS", "done\ncode: 0123\n")  # by other code: removed
    fileio.write_text(tmp_path / "outputs" / "nbval" / "cache" / "x", "")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(tests)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert f"ROOT={tmp_path / 'outputs' / 'nbval'}" in out.stdout, out.stdout + out.stderr
    assert sorted(p.name for p in (tmp_path / "outputs" / "nbval").iterdir()) == ["cache", "current"]


def test_a_notebook_refusing_other_code_ends_the_pipeline_with_that_one_line(params, monkeypatch, capsys):
    """The library edited while a pipeline runs: the next notebook's start_run refuses, and the
    command ends with its message, not a kernel traceback."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from sgpo_lib.__main__ import main

    def execute_notebook(src, dst, parameters, **kw):
        raise PapermillExecutionError(1, 1, "x", "CodeChangedError", "/o/r: this run folder was made by code a, "
                                      "... Two ways on: ...", ["Traceback ..."])

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    assert main(["pipeline", "--params", str(params), "--run-id", "r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 00_prepare.ipynb: /o/r: this run folder was made by code a")
