"""Where the signal lands (kl_signal.py): per-token KL(q‖p), SFT's per-token gradient norm and the
top-10% shares against float64 references written from the definitions; the model part on a tiny Qwen2."""

import math

import pytest
import torch

from sgpo_lib.analysis import kl_signal, plots


def _probs_to_logits(rows):
    return torch.tensor(rows, dtype=torch.float64).log()


Q = [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [0.1, 0.1, 0.8]]
P = [[0.7, 0.2, 0.1], [0.5, 0.25, 0.25], [0.6, 0.3, 0.1]]


def test_token_kl_matches_the_definition_in_float64():
    want = [sum(q * (math.log(q) - math.log(p)) for q, p in zip(qr, pr)) for qr, pr in zip(Q, P)]
    got = kl_signal.token_kl(_probs_to_logits(Q) + 3.0, _probs_to_logits(P) - 1.0)  # logits are shift-invariant
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert abs(float(got[0])) < 1e-15  # the strategy did not move token 0: no distillation signal there
    assert not torch.allclose(kl_signal.token_kl(_probs_to_logits(P), _probs_to_logits(Q)), got)  # KL is not symmetric


def test_sft_grad_norm_is_the_gradient_of_the_token_cross_entropy():
    logits = _probs_to_logits(P).requires_grad_(True)
    targets = torch.tensor([0, 2, 1])
    got = kl_signal.sft_grad_norm(logits.detach(), targets)
    for t in range(3):  # autograd of -log softmax(logits_t)[y_t], one token at a time
        (g,) = torch.autograd.grad(-logits[t].log_softmax(-1)[targets[t]], logits)
        assert math.isclose(float(got[t]), float(g[t].norm()), rel_tol=1e-12)
    # by hand: token 0, p = (0.7, 0.2, 0.1), y = 0 -> ‖(-0.3, 0.2, 0.1)‖
    assert math.isclose(float(got[0]), math.sqrt(0.09 + 0.04 + 0.01), rel_tol=1e-12)
    assert (got > 0).all()  # SFT pushes every token, also token 0 where KL is 0


def test_top_share_of_a_concentrated_and_a_flat_signal():
    assert kl_signal.top_share(torch.tensor([5.0] + [0.0] * 19)) == 1.0  # top 2 of 20 carry everything
    assert math.isclose(kl_signal.top_share(torch.ones(20, dtype=torch.float64)), 0.1)
    assert math.isclose(kl_signal.top_share(torch.tensor([3.0, 1.0, 1.0, 1.0]), 0.25), 0.5)
    assert math.isclose(kl_signal.top_share(torch.tensor([1.0, 2.0, 3.0]), 0.1), 0.5)  # ceil(0.3) = 1 token
    assert math.isnan(kl_signal.top_share(torch.zeros(4))) and math.isnan(kl_signal.top_share(torch.zeros(0)))


def test_pick_rollouts_takes_guided_ones_per_family_correct_first():
    from sgpo_lib.core.records import Problem, Rollout

    problems = {f"{f}{i}": Problem(f"{f}{i}", "q", "1", f"toy/{f}", "train", "exact") for f in "ab" for i in range(3)}
    rollouts = [Rollout(pid, guided, [1, 2], [0.0, 0.0], "t", reward=reward)
                for pid in problems for guided, reward in ((False, 1.0), (True, 0.0), (True, 1.0 if pid.endswith("2") else 0.0))]
    chosen = kl_signal.pick_rollouts(rollouts, problems, per_source=2)
    assert [r.problem_id for r in chosen] == ["a0", "a2", "b0", "b2"] and all(r.guided for r in chosen)
    assert [r.reward for r in chosen] == [0.0, 1.0, 0.0, 1.0]


def test_rollout_signal_on_a_tiny_model_is_zero_for_identical_prompts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)
    completion = tok("1 2 3 4 5 6", add_special_tokens=False)["input_ids"]
    same = kl_signal.rollout_signal(model, tok, "Problem: add 2 and 3.", "Problem: add 2 and 3.", completion)
    assert max(same["kl"]) < 1e-6 and len(same["tokens"]) == len(completion) == len(same["sft_grad"])
    other = kl_signal.rollout_signal(model, tok, "Strategy: count up. Problem: add 2 and 3.", "Problem: add 2 and 3.", completion)
    assert max(other["kl"]) > 1e-6 and other["sft_grad"] == pytest.approx(same["sft_grad"])  # p is the unguided one in both
    fig = plots.heat_strip([{**other, "source": "toy/add", "problem_id": "p1"}, {**same, "source": "toy/add", "problem_id": "p2"}])
    assert len(fig.axes[0].texts) == 2 * len(completion)
    table = kl_signal.summary([{**other, "source": "toy/add", "problem_id": "p1", "reward": 1.0}])
    assert list(table["source"]) == ["toy/add", "mean"] and 0.0 < table["KL top-10% share"].iloc[0] <= 1.0
