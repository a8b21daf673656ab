"""Run folders, run-id determinism, status, metrics and atomic writes."""

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from sgpo_lib.core import fileio
from sgpo_lib.core.run_folder import MetricsLogger, read_status, rewind_logs, status_guard
from sgpo_lib.workflow.runs import make_run_id, start_run


@pytest.fixture
def params(tmp_path, monkeypatch):
    p = tmp_path / "exp.yaml"
    p.write_text(f"seed: 3\noutput:\n  root: {tmp_path / 'out'}\n")
    return p


def test_run_id_is_deterministic_and_config_sensitive(params):
    cfg1, dir1 = start_run(params)
    cfg2, dir2 = start_run(params)
    assert dir1 == dir2 and dir1.name == make_run_id(params, cfg1)
    assert dir1.name.startswith("exp-")
    _, dir3 = start_run(params, {"train.lr": 0.5})
    assert dir3 != dir1


def test_run_folder_contents(params):
    _, run_dir = start_run(params, {"distill.coef": 0.5})
    for name in ("config.yaml", "params_source.yaml", "env.json", "code.diff", "overrides.json"):
        assert (run_dir / name).exists(), name
    env = fileio.read_json(run_dir / "env.json")
    assert env["packages"]["torch"] and "python" in env
    assert env["packages"]["numpy"] and env["cpu"]["cores"] >= 1 and "native_bf16" in env["cpu"]
    assert fileio.read_json(run_dir / "overrides.json") == {"distill.coef": 0.5}


def test_changed_config_refuses_existing_folder(params):
    _, run_dir = start_run(params)
    with pytest.raises(FileExistsError, match="different config"):
        start_run(params, {"seed": 4}, run_id=run_dir.name)


def test_status_guard_records_failure(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with status_guard(tmp_path, "train"):
            1 / 0
    assert read_status(tmp_path) == "failed"
    assert "ZeroDivisionError" in (tmp_path / "STATUS").read_text()


def test_metrics_logger_always_has_step(tmp_path):
    m = MetricsLogger(tmp_path / "metrics.jsonl")
    m.log(1, loss=0.5)
    m.log(2, loss=0.25)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a torn last line from a crash
    assert [r["step"] for r in m.read()] == [1, 2]
    rewind_logs(tmp_path, 1)
    assert [r["step"] for r in m.read()] == [1]


def test_atomic_write_killed_halfway_keeps_old_file(tmp_path):
    target = tmp_path / "state.json"
    fileio.write_json(target, {"version": "old"})
    script = textwrap.dedent(f"""
        import os, sys
        from sgpo_lib.core import fileio
        with fileio.atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as f:
                f.write('{{"version": "new", "half')
                f.flush()
                os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"version": "old"}
    fileio.write_json(target, {"version": "new"})
    assert fileio.read_json(target) == {"version": "new"}
    # the killed writer leaves only a hidden temp file beside it, never a torn target
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if p.name.endswith(".tmp"))


def test_read_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:2: malformed JSON"):
        fileio.read_jsonl(p)


def test_import_has_no_side_effects():
    code = "import sys, sgpo_lib; print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
