"""SIGTERM checkpoints the last completed step when it can (`train.last_step`): stopped while
step 3 grades, a run with `train.checkpoint_every: 100` writes step 2's checkpoint, and the rerun
reaches the weights and the step logs of an uninterrupted run; stopped inside an optimizer update,
it writes none and says so in STATUS. Each within seconds of the signal, in one process (the
two-rank stop is in test_ranks.py)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from trainer_fixtures import TESTS_DIR, ParityGrader, make_data, params_file

from sgpo_lib.config.run import load_config
from sgpo_lib.core import fileio
from sgpo_lib.train.trainer import train

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

STEPS = 4
OVERRIDES = {"train.steps": STEPS, "train.checkpoint_every": 100}  # no checkpoint but the last one

SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
import torch
from trainer_fixtures import make_data, ParityGrader
from sgpo_lib.config.run import load_config
from sgpo_lib.train.trainer import train

def stall(marker):
    open(marker, "w").close()
    time.sleep(120)

class StallingGrader(ParityGrader):
    '''Stalls in the grading of training step {stall_grading} (0: never).'''
    calls = 0
    def grade_many(self, texts, problems):
        if problems[0].split == "train":
            self.calls += 1
            if self.calls == {stall_grading}:
                stall({marker!r})
        return super().grade_many(texts, problems)

updates, adam_step = [0], torch.optim.AdamW.step
def stalling_step(self, *a, **k):  # stalls right after optimizer update {stall_update} (0: never)
    out = adam_step(self, *a, **k)
    updates[0] += 1
    if updates[0] == {stall_update}:
        stall({marker!r})
    return out
torch.optim.AdamW.step = stalling_step

cfg = load_config({params!r}, {overrides!r})
train(cfg, make_data({model!r}), {out!r}, StallingGrader())
"""


def _run(tmp_path, model, out, stall_grading=0, stall_update=0):
    script = tmp_path / f"run_{stall_grading}_{stall_update}.py"
    marker = tmp_path / "stalled"
    script.write_text(SCRIPT.format(tests=TESTS_DIR, params=str(params_file(tmp_path, model)), model=str(model),
                                    out=str(out), overrides=OVERRIDES, stall_grading=stall_grading,
                                    stall_update=stall_update, marker=str(marker)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True), marker


def _terminate_when_stalled(proc, marker) -> float:
    """SIGTERM once the run stalls; returns the seconds from the signal to the exit."""
    deadline = time.time() + 200
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else "never stalled"
    start = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    return time.time() - start


def _final(out):
    return torch.load(out / "checkpoints" / f"step_{STEPS:06d}.pt", weights_only=False)["trainable"]


def _steps_without_timings(out):
    return [{k: v for k, v in r.items() if k != "time" and not k.endswith("_s") and not k.endswith("_per_s")}
            for r in fileio.read_jsonl(out / "metrics.jsonl")]


def test_sigterm_while_grading_checkpoints_the_last_step_and_the_rerun_matches(tmp_path, tiny_model_dir):
    straight = tmp_path / "straight"
    train(load_config(params_file(tmp_path, tiny_model_dir), OVERRIDES), make_data(tiny_model_dir), straight,
          ParityGrader())
    out = tmp_path / "stopped"
    seconds = _terminate_when_stalled(*_run(tmp_path, tiny_model_dir, out, stall_grading=3))
    status = (out / "STATUS").read_text()
    assert ("stopped by SIGTERM at step 3 on rank 0; checkpoint of the last completed step 2 written" in status
            and seconds < 15), (seconds, status)
    assert fileio.read_json(out / "checkpoints" / "latest.json")["step"] == 2
    proc, _ = _run(tmp_path, tiny_model_dir, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    assert (out / "STATUS").read_text().startswith("done")
    want, got = _final(straight), _final(out)
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert _steps_without_timings(out) == _steps_without_timings(straight)


def test_sigterm_inside_an_optimizer_update_writes_no_checkpoint_and_says_so(tmp_path, tiny_model_dir):
    out = tmp_path / "stopped"
    seconds = _terminate_when_stalled(*_run(tmp_path, tiny_model_dir, out, stall_update=2))
    status = (out / "STATUS").read_text()
    assert "stopped by SIGTERM at step 2 on rank 0; no checkpoint: SIGTERM came after an optimizer update of step 2" \
        in status and seconds < 15, (seconds, status)
    assert not (out / "checkpoints" / "latest.json").exists()
