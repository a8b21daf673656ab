"""Run folders that cannot escape the outputs root, be used by two processes at once, or lie
about being alive: run ids and grid values, SGPO_OUTPUTS, the lock, STATUS, sweep children
dying with the sweep, the command line, stale student builds, damaged checkpoints."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sgpo_lib.core import locks
from sgpo_lib.core.locks import RunLockedError, run_lock
from sgpo_lib.core.paths import REPO_ROOT, safe_name
from sgpo_lib.core.run_folder import read_status, write_status
from sgpo_lib.workflow.runs import start_run
from sgpo_lib.workflow.sweep import run_name, run_sweep


@pytest.fixture
def params(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(f"seed: 3\noutput:\n  root: {tmp_path / 'out'}\n")
    return p


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("run_id", ["..", "../../x", "/tmp/abs", "a/b", "a\nb", ".hidden", "-x", "a b", "x" * 161, "",
                                    "run\n", "run\r\n"])
def test_unsafe_run_ids_are_refused_before_anything_is_written(params, tmp_path, run_id):
    before = set(REPO_ROOT.iterdir()), set(tmp_path.iterdir())
    with pytest.raises(ValueError, match="run id .* is not a safe folder name"):
        start_run(params, run_id=run_id)
    assert (set(REPO_ROOT.iterdir()), set(tmp_path.iterdir())) == before
    assert not (tmp_path / "out").exists()


def test_safe_run_ids_stay_inside_the_root(params, tmp_path):
    _, run_dir = start_run(params, run_id="my-run_1.a=b")
    assert run_dir == tmp_path / "out" / "my-run_1.a=b" and (run_dir / "config.yaml").exists()


def test_sgpo_outputs_moves_run_folders_and_the_cache(tmp_path, monkeypatch):
    from sgpo_lib.core.paths import outputs_dir

    p = tmp_path / "exp.yaml"
    p.write_text("seed: 3\n")  # keeps the default output.root: outputs
    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path / "elsewhere"))
    _, run_dir = start_run(p)
    assert run_dir.parent == tmp_path / "elsewhere" and outputs_dir() / "cache" == tmp_path / "elsewhere" / "cache"


def test_a_custom_output_root_holds_the_cache_too(tmp_path, monkeypatch):
    from sgpo_lib.config.run import load_config
    from sgpo_lib.core.cache import cache_dir
    from sgpo_lib.workflow import assets

    monkeypatch.delenv("SGPO_OUTPUTS", raising=False)
    p = tmp_path / "exp.yaml"
    p.write_text(f"output:\n  root: {tmp_path / 'mine'}\n")
    cfg = load_config(p)
    assert cache_dir(cfg, "strategies", {"k": 1}).parent.parent == tmp_path / "mine" / "cache"
    library, _ = assets.strategy_library(cfg)  # the toy extractor: offline, seconds
    assert len(library) and list((tmp_path / "mine" / "cache" / "strategies").iterdir())


@pytest.mark.parametrize("value", ["../up", "a/b", "/abs", "two words", "x\ny"])
def test_unsafe_grid_values_are_refused_before_any_run_starts(tmp_path, params, value):
    with pytest.raises(ValueError, match="sweep value .* is not a safe folder name"):
        run_name({"data.local_dir": value})
    calls = []
    with pytest.raises(ValueError, match="not a safe folder name"):
        run_sweep(params, [{"seed": 1}, {"data.local_dir": value}], tmp_path / "s", train_fn=lambda *a: calls.append(a))
    assert calls == [] and not (tmp_path / "s").exists()


def test_a_bad_grid_point_config_fails_before_the_first_run(tmp_path, params):
    from sgpo_lib.config.run import ConfigError

    calls = []
    with pytest.raises(ConfigError, match="distill.estimator"):
        run_sweep(params, [{"seed": 1}, {"distill.estimator": "ful"}], tmp_path / "s", train_fn=lambda *a: calls.append(a))
    assert calls == []


def test_safe_name_bounds_length():
    assert safe_name("a" * 160, "run id")
    with pytest.raises(ValueError, match="at most 160"):
        safe_name("a" * 161, "run id")


# ---------------------------------------------------------------- the lock

HOLD = textwrap.dedent("""
    import sys, time
    from sgpo_lib.core.locks import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_process_gets_a_clear_error_and_a_dead_holders_lock_is_taken_over(tmp_path, caplog):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"{tmp_path} is in use by pid {proc.pid}"):
            with run_lock(tmp_path):
                pass
        assert locks.holder(tmp_path)["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert locks.holder(tmp_path) is None  # SIGKILLed: the lock file is left, naming a dead pid
    with caplog.at_level(logging.WARNING, logger="sgpo_lib.core.locks"), run_lock(tmp_path):
        assert locks.read_holder(tmp_path)["pid"] == os.getpid()
    assert f"taking over the stale lock of pid {proc.pid}" in caplog.text
    assert not (tmp_path / locks.LOCK_FILE).exists()


def test_a_hand_written_lock_of_a_dead_pid_is_taken_over(tmp_path):
    (tmp_path / locks.LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "start": "1"}))
    with run_lock(tmp_path):
        assert locks.holder(tmp_path)["pid"] == os.getpid()


def test_a_zombie_is_not_running():
    """An exited child not yet reaped is no lock holder or server (a stale server's SIGTERM wait ended
    only at its 30 s grace before)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert locks.process_start(child.pid) == "" and not locks.process_alive(child.pid)
        assert locks.process_alive(os.getpid())
    finally:
        child.wait()


def test_a_child_of_the_holder_uses_the_folder_under_its_lock(tmp_path):
    with run_lock(tmp_path):
        child = subprocess.run([sys.executable, "-c", "import sys\nfrom sgpo_lib.core.locks import run_lock\n"
                                "with run_lock(sys.argv[1]): print('ok')", str(tmp_path)], capture_output=True, text=True)
        assert child.stdout.strip() == "ok", child.stderr


def test_status_running_of_a_dead_process_reads_stale(tmp_path):
    write_status(tmp_path, "running", "stage: x")
    assert read_status(tmp_path) == "running"
    text = (tmp_path / "STATUS").read_text()
    assert f"pid: {os.getpid()}" in text
    (tmp_path / "STATUS").write_text(text.replace(f"pid: {os.getpid()}", f"pid: {_dead_pid()}"))
    assert read_status(tmp_path) == "stale"
    write_status(tmp_path, "done")
    assert read_status(tmp_path) == "done"


# ---------------------------------------------------------------- sweep children

CHILD = textwrap.dedent("""
    import subprocess, sys, time
    from sgpo_lib.__main__ import _kill_own_group_on_sigterm
    _kill_own_group_on_sigterm()
    grandchild = subprocess.Popen(["sleep", "300"])
    print("READ" + "Y", __import__("os").getpid(), grandchild.pid, flush=True)
    time.sleep(300)
""")

SWEEP = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from sgpo_lib.workflow import sweep
    sweep._spawn([sys.executable, "-c", sys.argv[1]], dict(os.environ), Path(sys.argv[2]))
""")


def _alive(pid: int) -> bool:
    return locks.process_alive(pid)


@pytest.mark.integration
def test_killing_a_sweep_kills_its_children_and_their_groups_and_logs_are_appended(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_text("earlier attempt\n")
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP, CHILD, str(log)])
    try:
        deadline = time.time() + 60
        while time.time() < deadline and "\nREADY " not in log.read_text():
            time.sleep(0.1)
        child, grandchild = map(int, log.read_text().split("\nREADY ")[1].split())
        assert _alive(child) and _alive(grandchild)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
        deadline = time.time() + 20
        while time.time() < deadline and (_alive(child) or _alive(grandchild)):
            time.sleep(0.1)
        survivors = [pid for pid in (child, grandchild) if _alive(pid)]
    finally:
        sweep.kill()
        if "\nREADY " in log.read_text():
            subprocess.run(["kill", "-KILL", "--", f"-{log.read_text().split(chr(10) + 'READY ')[1].split()[0]}"])
    assert survivors == []
    assert log.read_text().startswith("earlier attempt\n==== ")


def test_a_sweep_leaves_a_folder_in_use_alone(tmp_path, params):
    busy = tmp_path / "s" / "seed=1"
    busy.mkdir(parents=True)
    (busy / "stdout.log").write_text("live child's log\n")
    write_status(busy, "running")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(busy)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        calls = []
        run_sweep(params, [{"seed": 1}], tmp_path / "s", train_fn=lambda *a: calls.append(a))
        assert calls == [] and (busy / "stdout.log").read_text() == "live child's log\n"
        assert read_status(busy) == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- students and checkpoints


def test_stale_half_built_students_are_cleaned(tmp_path):
    from sgpo_lib.toy.students import BUILDER_FILE, clean_stale_builds

    dead, live, old, fresh = (tmp_path / f".toy-student-small-{n}.x" for n in ("dead", "live", "old", "fresh"))
    for d in (dead, live, old, fresh):
        d.mkdir()
    (dead / BUILDER_FILE).write_text(json.dumps({"pid": _dead_pid(), "start": "1"}))
    (live / BUILDER_FILE).write_text(json.dumps(locks.identity()))
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sorted(clean_stale_builds(tmp_path)) == sorted([dead, old])
    assert live.exists() and fresh.exists() and not dead.exists() and not old.exists()


def _save_two_checkpoints(ckpt):
    import torch

    from sgpo_lib.model import checkpoint

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for step in (1, 2):
        model.weight.data.fill_(step)
        checkpoint.save(ckpt, step, model, opt, sched)
    return model


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    from sgpo_lib.model import checkpoint

    _save_two_checkpoints(tmp_path)
    newest = tmp_path / "step_000002.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="sgpo_lib.model.checkpoint"):
        state = checkpoint.load_latest(tmp_path)
    assert state["step"] == 1 and float(state["trainable"]["weight"][0, 0]) == 1.0
    assert f"checkpoint {newest} cannot be loaded" in caplog.text


def test_a_truncated_latest_json_falls_back_to_the_newest_checkpoint_on_disk(tmp_path, caplog):
    from sgpo_lib.model import checkpoint

    _save_two_checkpoints(tmp_path)
    (tmp_path / "latest.json").write_text('{"step": 2, "fi')
    with caplog.at_level(logging.WARNING, logger="sgpo_lib.model.checkpoint"):
        assert checkpoint.load_latest(tmp_path)["step"] == 2
    assert f"{tmp_path / 'latest.json'} is unreadable" in caplog.text


def test_rewind_logs_drops_rows_and_completions_past_the_checkpoint(tmp_path):
    from sgpo_lib.core import fileio
    from sgpo_lib.core.run_folder import rewind_logs

    for step in range(4):
        fileio.append_jsonl(tmp_path / "metrics.jsonl", {"step": step})
        fileio.append_jsonl(tmp_path / "evals.jsonl", {"step": step, "source": "macro"})
        if step:
            fileio.write_jsonl(tmp_path / "completions" / f"step_{step:06d}.jsonl", [{"step": step}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # torn by the kill
    rewind_logs(tmp_path, 1)
    assert [r["step"] for r in fileio.read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1]
    assert [r["step"] for r in fileio.read_jsonl(tmp_path / "evals.jsonl")] == [0, 1]
    assert [p.name for p in (tmp_path / "completions").iterdir()] == ["step_000001.jsonl"]
    rewind_logs(tmp_path, -1)  # no checkpoint: the run starts over, step 0 included
    assert fileio.read_jsonl(tmp_path / "metrics.jsonl") == [] and fileio.read_jsonl(tmp_path / "evals.jsonl") == []
    assert list((tmp_path / "completions").iterdir()) == []


def test_a_truncated_cached_student_fails_naming_its_file(tmp_path):
    from sgpo_lib.toy import PretrainConfig, StudentConfig, ToyWorldConfig, prepare_student

    spec = (ToyWorldConfig(n_train=4, n_test=4, n_ood=4), StudentConfig(size="tiny"),
            PretrainConfig(steps=2, batch_size=4, warmup_steps=1))
    folder = prepare_student(*spec, seed=0, cache_dir=tmp_path)
    weights = folder / "model.safetensors"
    assert not (folder / "builder.json").exists()
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(RuntimeError, match=rf"{weights}: cannot be read .*delete {folder} and run again"):
        prepare_student(*spec, seed=0, cache_dir=tmp_path)


SWEEP_OF_TWO = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from sgpo_lib.workflow import sweep
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as under a terminal: a CI shell that runs the
    # tests in the background starts them with SIGINT ignored, and Python then keeps it ignored
    sweep._subprocess_run = lambda params, overrides, out_dir, device, threads, port=29500: sweep._spawn(
        [sys.executable, "-c", sys.argv[1]], dict(os.environ), Path(out_dir).parent / f"{out_dir.name}.log")
    sweep.run_sweep(sys.argv[2], [{"seed": 0}, {"seed": 1}], Path(sys.argv[3]), parallel=2)
""")


@pytest.mark.integration
def test_ctrl_c_on_a_parallel_sweep_kills_its_children(tmp_path, params):
    root = tmp_path / "s"
    root.mkdir()
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP_OF_TWO, CHILD, str(params), str(root)])
    pids = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(pids) < 2:
            pids = [int(p.read_text().split("\nREADY ")[1].split()[0]) for p in root.glob("*.log")
                    if "\nREADY " in p.read_text()]
            time.sleep(0.1)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        sweep.send_signal(signal.SIGINT)
        assert sweep.wait(timeout=30) != 0
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        survivors = [p for p in pids if _alive(p)]
    finally:
        sweep.kill()
        for p in pids:
            subprocess.run(["kill", "-KILL", "--", f"-{p}"], stderr=subprocess.DEVNULL)
    assert survivors == []


def test_only_rank_zero_of_a_distributed_launch_takes_the_lock(tmp_path, monkeypatch):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        monkeypatch.setenv("RANK", "1")  # a sibling rank of the holder under `accelerate launch`
        with locks.rank_zero_lock(tmp_path):
            pass
        monkeypatch.setenv("RANK", "0")
        with pytest.raises(RunLockedError):
            with locks.rank_zero_lock(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- the second attack campaign (issue 27)


def _finished_run(folder, params, overrides):
    from sgpo_lib.config.run import config_to_yaml, load_config
    from sgpo_lib.core import fileio

    fileio.write_text(folder / "config.yaml", config_to_yaml(load_config(params, overrides)))
    fileio.write_json(folder / "results.json", {"method": "sft"})
    write_status(folder, "done")


def test_train_out_dir_refuses_another_runs_folder_naming_the_differing_keys(params, tmp_path):
    from sgpo_lib.__main__ import main

    sft = tmp_path / "out" / "sft-run"
    _finished_run(sft, params, {"train.method": "sft"})
    before = (sft / "config.yaml").read_text()
    with pytest.raises(FileExistsError, match=r"train.method: 'sft' there, 'grpo' here"):
        main(["train", "--params", str(params), "--out-dir", str(sft), "--set", "train.method=grpo"])
    assert (sft / "config.yaml").read_text() == before and read_status(sft) == "done"


def test_train_and_sweep_refuse_the_outputs_root_and_a_pipelines_folder(params, tmp_path):
    from sgpo_lib.__main__ import main
    from sgpo_lib.core import fileio

    for argv in (["train", "--out-dir", str(tmp_path / "out")], ["sweep", "--out", str(tmp_path / "out") + "/",
                                                                 "--grid", "seed=0"]):
        with pytest.raises(ValueError, match="is the outputs root itself"):
            main([argv[0], "--params", str(params), *argv[1:]])
    fileio.write_json(tmp_path / "out" / "pipe" / "timings.json", {"00_prepare": 1.0})
    with pytest.raises(ValueError, match="holds a pipeline's run"):
        main(["train", "--params", str(params), "--out-dir", str(tmp_path / "out" / "pipe")])


def test_a_failed_or_locked_training_run_is_listed_as_missing(params, tmp_path, monkeypatch):
    from sgpo_lib.analysis import results
    from sgpo_lib.config.run import load_config
    from sgpo_lib.core.locks import LOCK_FILE, identity, process_start
    from sgpo_lib.workflow import stages

    cfg = load_config(params, {"experiment.methods": ["sft", "grpo"]})
    run_dir = tmp_path / "out" / "r"
    (run_dir / "main").mkdir(parents=True)
    from sgpo_lib.config.run import config_to_yaml
    (run_dir / "config.yaml").write_text(config_to_yaml(cfg))
    locked = run_dir / "main" / "train.method=grpo_seed=0"
    locked.mkdir()
    other = {**identity(), "pid": os.getppid(), "start": process_start(os.getppid())}  # a live process holds it
    (locked / LOCK_FILE).write_text(json.dumps(other))

    def train(p, o, d):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(stages, "train_variant", train)
    monkeypatch.setattr(stages.assets, "prepare_warmups", lambda *a: [])
    stages._sweep(cfg, run_dir, "main", [{"train.method": m, "seed": 0} for m in ("sft", "grpo")])
    assert results.missing_runs(run_dir) == {"main/train.method=sft_seed=0": "failed",
                                             "main/train.method=grpo_seed=0": "missing"}


def test_a_missing_training_run_makes_the_pipeline_partial_and_exit_non_zero(params, tmp_path, monkeypatch, capsys):
    import papermill

    from sgpo_lib.__main__ import main
    from sgpo_lib.core import fileio
    from sgpo_lib.workflow import pipeline

    def execute_notebook(src, dst, parameters, **kw):
        if "03_" in src:
            fileio.write_json(tmp_path / "out" / "r" / "main" / "unfinished.json", {"train.method=sgpo_seed=0": "failed"})
        fileio.write_text(dst, "{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(pipeline, "render_report", lambda d: (fileio.write_text(d / "report.html", "x"), d / "report.html")[1])
    assert main(["pipeline", "--params", str(params), "--run-id", "r"]) == 1
    assert read_status(tmp_path / "out" / "r") == "partial"
    assert "main/train.method=sgpo_seed=0" in capsys.readouterr().err
    assert "train.method=sgpo_seed=0" in (tmp_path / "out" / "r" / "STATUS").read_text()


def test_an_empty_sgpo_outputs_is_refused_and_a_relative_one_is_pinned_before_any_kernel(params, tmp_path, monkeypatch):
    import papermill

    from sgpo_lib.core import fileio, paths
    from sgpo_lib.workflow import pipeline

    monkeypatch.setenv("SGPO_OUTPUTS", "")
    with pytest.raises(ValueError, match="SGPO_OUTPUTS is set but empty"):
        paths.outputs_dir()
    rel = os.path.relpath(tmp_path / "rel", REPO_ROOT)
    monkeypatch.setenv("SGPO_OUTPUTS", rel)
    monkeypatch.chdir(tmp_path)  # another working folder: the value is still taken from the repository root
    seen = []

    def execute_notebook(src, dst, parameters, **kw):
        seen.append(os.environ["SGPO_OUTPUTS"])
        fileio.write_text(dst, "{}")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(pipeline, "render_report", lambda d: d)
    plain = tmp_path / "plain.yaml"
    plain.write_text("seed: 3\n")
    pipeline.run_pipeline(plain, run_id="r")
    assert set(seen) == {str(tmp_path / "rel")} and (tmp_path / "rel" / "r" / "timings.json").exists()


def test_reports_results_and_figures_are_readable_by_everyone(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sgpo_lib.analysis import plots
    from sgpo_lib.core import fileio

    old = os.umask(0o022)
    try:
        fileio.write_text(tmp_path / "report.html", "<html/>")
        fileio.write_json(tmp_path / "results.json", {})
        plots.save(plt.figure(), tmp_path / "figures" / "a.png")
    finally:
        os.umask(old)
    for name in ("report.html", "results.json", "figures/a.png"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o644", name


def test_a_linked_run_folder_leading_out_of_the_root_is_refused(params, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "r").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside the outputs root"):
        start_run(params, run_id="r")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_ablation_names_that_cannot_be_folders_fail_with_the_params(tmp_path):
    from sgpo_lib.config.run import ConfigError, check_variants, load_config

    p = tmp_path / "p.yaml"
    p.write_text("experiment:\n  ablations:\n    - bad: {data.local_dir: ../up}\n")
    with pytest.raises(ConfigError, match=r"experiment.ablate run .*not a safe folder name"):
        check_variants(load_config(p), str(p))


def _no_space(*a, **kw):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_gives_one_line_naming_the_folder_and_status_is_still_written(tmp_path, monkeypatch):
    from sgpo_lib.core import fileio
    from sgpo_lib.core.run_folder import status_guard

    write_status(tmp_path, "running", "stage: train")  # STATUS exists: its blocks take the failure
    monkeypatch.setattr(fileio.tempfile, "mkstemp", _no_space)
    with pytest.raises(fileio.DiskFullError) as e:
        with status_guard(tmp_path, "train"):
            fileio.write_json(tmp_path / "results.json", {})
    message = str(e.value)
    assert "\n" not in message and str(tmp_path) in message and "MiB free" in message and "delete" in message
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert read_status(tmp_path) == "failed" and "disk full" in (tmp_path / "STATUS").read_text()


def test_a_full_disk_in_a_notebook_ends_the_pipeline_with_that_one_line(params, tmp_path, monkeypatch, capsys):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from sgpo_lib.__main__ import main

    def execute_notebook(src, dst, parameters, **kw):
        raise PapermillExecutionError(3, 3, "x", "DiskFullError", "disk full: writing /o/r/x failed with 1.0 MiB free",
                                      ["Traceback ...", "DiskFullError: disk full"])

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    assert main(["pipeline", "--params", str(params), "--run-id", "r"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: 00_prepare.ipynb: disk full: writing /o/r/x") and not any("Traceback" in l for l in err)
    assert read_status(tmp_path / "out" / "r") == "failed"
