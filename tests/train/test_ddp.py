"""`accelerate launch --multi_gpu` with two processes (gloo on CPU, NCCL on GPUs): each rank
trains on its share of the problems, and the run reaches the weights of a one-process run on
the whole batch. (`accelerate launch --cpu` starts one process, whatever `--num_processes` says.)"""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from trainer_fixtures import SCRIPT, TESTS_DIR, params_file

from sgpo_lib.core import fileio
from sgpo_lib.workflow.sweep import accelerate_launch

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="needs the accelerate launcher")]


def _script(tmp_path, params, model, out):
    path = tmp_path / f"train_{out.name}.py"
    path.write_text(SCRIPT.format(tests=TESTS_DIR, params=str(params), model=str(model), out=str(out)))
    return str(path)


def _final(out):
    return torch.load(out / "checkpoints" / "step_000002.pt", weights_only=False)["trainable"]


def test_two_process_launch_matches_one_process(tmp_path, tiny_model_dir):
    params = params_file(tmp_path, tiny_model_dir, steps=2)  # 2 problems a step: one per rank
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, _script(tmp_path, params, tiny_model_dir, one)], env=env, check=True, capture_output=True)
    # this interpreter's launcher (its ranks run sys.executable too), not whichever `accelerate` is on PATH
    launch = accelerate_launch(2, 29511, tmp_path / "launch") + [_script(tmp_path, params, tiny_model_dir, two)]
    proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any((tmp_path / "launch").iterdir())  # the elastic agent's folders: here, not a new /tmp/torchelastic_*
    rows_one, rows_two = fileio.read_jsonl(one / "metrics.jsonl"), fileio.read_jsonl(two / "metrics.jsonl")
    assert rows_one[0]["ranks"] == 1 and rows_two[0]["ranks"] == 2
    assert [r["step"] for r in rows_two] == [0, 1, 2]
    for r1, r2 in zip(rows_one[1:], rows_two[1:]):  # each rank sampled its own problem's rollouts only
        assert 2 * r2["gen_tokens"] == r1["gen_tokens"]
    a, b = _final(one), _final(two)
    for n in a:  # Adam magnifies summation-order noise at near-zero gradients; a rank out of sync is off by ~lr = 0.05
        torch.testing.assert_close(b[n], a[n], rtol=0, atol=1e-3)
