"""`MethodSpec` per `train.method` (the only branch on the method) and the pure `plan_step`:
which sequences each method's step builds and which no-grad passes it owes them."""

from types import SimpleNamespace as NS

import pandas as pd
import pytest
import torch

from sgpo_lib.config.run import DistillConfig, RolloutConfig, RunConfig, TrainConfig
from sgpo_lib.core.records import Problem, Rollout
from sgpo_lib.method.plan import Encoding, MethodSpec, group_seqs, plan_step
from sgpo_lib.method.step import Seq

METHODS = ["sgpo", "grpo", "sft", "sft_grpo", "hpt", "luffy"]


def _spec(method, **distill):
    cfg = RunConfig(train=TrainConfig(method=method, hpt_threshold=0.3, n_offpolicy=2),
                    rollout=RolloutConfig(n_autonomous=4, n_guided=2), distill=DistillConfig(**distill))
    return MethodSpec.from_config(cfg)


@pytest.mark.parametrize("method, rollouts, n_guided, strong, n_off, hpt, distils", [
    ("sgpo", True, 2, False, 0, None, True),
    ("grpo", True, 0, False, 0, None, False),
    ("sft", False, 0, False, 0, None, False),
    ("sft_grpo", True, 0, False, 0, None, False),
    ("hpt", True, 0, True, 0, 0.3, False),
    ("luffy", True, 0, True, 2, None, False),
])
def test_method_spec_per_method(method, rollouts, n_guided, strong, n_off, hpt, distils):
    spec = _spec(method)
    assert (spec.uses_rollouts, spec.n_guided, spec.strong_in_group, spec.n_offpolicy, spec.hpt_threshold,
            spec.distils, spec.select_one, spec.teacher_hidden) == (rollouts, n_guided, strong, n_off, hpt, distils,
                                                                    distils, distils)


def test_method_spec_distillation_switches():
    assert not _spec("sgpo", coef=0.0).distils and _spec("sgpo", coef=0.0).n_guided == 2  # guided, not distilled
    assert not _spec("sgpo", target="all").select_one and _spec("sgpo", target="all").teacher_hidden
    engine = MethodSpec.from_config(RunConfig(rollout=RolloutConfig(topk_logprobs=64),
                                              distill=DistillConfig(teacher="engine", estimator="topk")))
    assert engine.topk_logprobs == 64 and not engine.teacher_hidden
    assert _spec("grpo").topk_logprobs == 0 and _spec("sgpo").topk_logprobs == 0


def test_hpt_switches_per_problem_and_luffy_mixes_the_strong_response():
    auto = [NS(token_ids=[7], reward=r, logprobs=[-1.0]) for r in (1.0, 0.0, 0.0, 0.0)]
    strong = Seq("sft", [1], [9, 9])
    hpt = MethodSpec("hpt", hpt_threshold=0.0)
    assert [s.kind for s in group_seqs(hpt, [1], auto, strong)] == ["rl"] * 4  # p_auto 0.25 > 0
    assert group_seqs(hpt, [1], [NS(token_ids=[7], reward=0.0, logprobs=None)] * 4, strong) == [strong]
    assert [s.kind for s in group_seqs(MethodSpec("hpt", hpt_threshold=0.25), [1], auto, strong)] == ["sft"]
    luffy = group_seqs(MethodSpec("luffy", n_offpolicy=1), [1], auto, strong)
    assert [s.kind for s in luffy] == ["rl"] * 4 + ["off"]
    assert [s.advantage for s in luffy] == pytest.approx([0.6, -0.4, -0.4, -0.4, 0.6])  # mean reward 0.4
    assert [s.advantage for s in group_seqs(MethodSpec("grpo"), [1], auto, None)] == pytest.approx([0.75, -0.25, -0.25, -0.25])


def _paired(problems, rewards_auto, rewards_guided):
    """A hand-made paired batch: per problem, autonomous and guided rollouts with given rewards."""
    rollouts = []
    for p in problems:
        for guided, rewards in ((False, rewards_auto), (True, rewards_guided)):
            rollouts += [Rollout(p.id, guided, [10 + k, 20], [-0.5, -0.5], "t", r) for k, r in enumerate(rewards)]
    stats = pd.DataFrame({"problem_id": [p.id for p in problems], "n_guided_graded": [len(rewards_guided)] * len(problems)})
    return NS(problems=problems, rollouts=rollouts, stats=stats, prompts_unguided=["u"] * len(problems),
              prompts_guided=["g"] * len(problems),
              group=lambda pid, guided: [r for r in rollouts if r.problem_id == pid and r.guided == guided])


ENC = Encoding(text=lambda t: [ord(c) for c in t], unguided=lambda p: [1, 2], eos_id=0)


@pytest.mark.parametrize("method, kinds, passes", [
    ("sgpo", ["rl"] * 4 + ["distill"] * 2, (True, True)),
    ("grpo", ["rl"] * 4, (False, False)),
    ("sft_grpo", ["rl"] * 4, (False, False)),
    ("sft", ["sft"], (False, False)),
    ("hpt", ["sft"], (False, False)),  # p_auto 0.25 is not above 0.3
    ("luffy", ["rl"] * 4 + ["off"] * 2, (False, False)),
])
def test_plan_step_per_method(method, kinds, passes):
    p = Problem("p1", "1+1?", "2", "toy/add", "train", "exact", strong_response="2")
    spec = _spec(method)
    paired = _paired([p], [1.0, 0.0, 0.0, 0.0], [1.0, 1.0]) if spec.uses_rollouts else None
    w_P = torch.tensor([0.7], dtype=torch.float64) if spec.uses_rollouts else None
    plan = plan_step(spec, [p], paired, w_P, ENC)
    assert [s.kind for s in plan.seqs] == kinds
    assert (plan.select_targets, plan.teacher_states, plan.old_logprobs) == passes + (False,)
    for s in plan.seqs:
        if s.kind in ("sft", "off"):
            assert s.completion_ids == [ord("2"), 0]  # the strong response, ended by EOS
        if s.kind == "distill":
            assert (s.weight, s.prompt_ids, s.teacher_prompt_ids) == (0.7, [ord("u")], [ord("g")])


def test_plan_step_owes_no_scoring_without_correct_guided_rollouts():
    p = Problem("p1", "1+1?", "2", "toy/add", "train", "exact")
    plan = plan_step(_spec("sgpo"), [p], _paired([p], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0]), torch.zeros(1), ENC)
    assert [s.kind for s in plan.seqs] == ["rl"] * 4 and not plan.select_targets and not plan.teacher_states


def test_plan_step_needs_a_strong_response_for_sft():
    with pytest.raises(ValueError, match="needs a strong response"):
        plan_step(_spec("sft"), [Problem("p1", "1+1?", "2", "toy/add", "train", "exact")], None, None, ENC)
