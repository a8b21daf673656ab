"""Shared by the trainer tests (tests/train, tests/workflow, tests/model): a tiny params file, a
parity grader, train data on the tiny Qwen2, and a trainer run in a subprocess (to SIGKILL it)."""

import os
import subprocess
import sys

from sgpo_lib.core.records import Problem, Strategy
from sgpo_lib.train.trainer import TrainData

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))  # on the subprocess's path, for this module

PARAMS = """
model: {{source: hf, name_or_path: "{model}", lora: {{r: 4, alpha: 8}}}}
rollout: {{n_autonomous: 3, n_guided: 2, max_new_tokens: 6, batch_size: 16}}
train: {{steps: {steps}, batch_problems: 2, lr: 0.05, micro_batch_size: 3, checkpoint_every: 1}}
eval: {{every: 100, k: 2, max_problems: 2, splits: [test]}}
distill: {{target: all, weighting: constant}}
"""


class ParityGrader:
    """A fake grader for unit tests: reward 1 when the completion has an even length (varied rewards)."""

    def grade_many(self, texts, problems):
        from types import SimpleNamespace

        return [SimpleNamespace(reward=float(len(t) % 2 == 0), reason="correct" if len(t) % 2 == 0 else "wrong", pred=t)
                for t in texts]


def make_data(model_dir) -> TrainData:
    problems = [Problem(f"p{i}", f"What is {i} plus {i}?", str(2 * i), "toy/add", "train", "exact") for i in range(6)]
    test = [Problem(f"t{i}", f"What is {i} times 2?", str(2 * i), "toy/add", "test", "exact") for i in range(2)]
    strategy = Strategy("s1", "add", "Adding a number to itself doubles it.", ("Read.", "Double.", "Answer."))
    for p in problems:
        object.__setattr__(p, "strong_response", f"{p.answer} \\boxed{{{p.answer}}}")
    return TrainData(model_dir, problems, test, lambda p: strategy)


def params_file(tmp_path, model_dir, steps=2):
    path = tmp_path / "p.yaml"
    path.write_text(PARAMS.format(model=model_dir, steps=steps))
    return path


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from trainer_fixtures import make_data, ParityGrader
from sgpo_lib.config.run import load_config
from sgpo_lib.train.trainer import train
cfg = load_config({params!r})
train(cfg, make_data({model!r}), {out!r}, ParityGrader())
"""


def run_script(tmp_path, params, model, out):
    code = SCRIPT.format(tests=TESTS_DIR, params=str(params), model=str(model), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
