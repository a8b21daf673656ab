"""Engine-vs-trainer checks without an engine: the gap and reward-group metrics on hand-made
data, and `train.rollout_is` inside the GRPO micro-batch loss (`none` is the loss of before).
The checks against a real vLLM engine (agreement, stale weights, skipped sync, resume) are in
test_vllm_backend.py, which shares that module's engine."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from sgpo_lib.config.run import ConfigError, TrainConfig, config_to_yaml, load_config
from sgpo_lib.core.records import Problem, Rollout
from sgpo_lib.method import losses
from sgpo_lib.method.step import Seq, policy_loss
from sgpo_lib.model.policy import pack, token_logprobs
from sgpo_lib.train.engine_checks import gap_metrics, group_stats


def test_gap_metrics_by_hand():
    m = gap_metrics([torch.tensor([0.0, -0.3]), torch.tensor([0.05]), torch.tensor([])], 0.1, "mismatch/x")
    assert m == pytest.approx({"mismatch/x/mean": 0.35 / 3, "mismatch/x/max": 0.3, "mismatch/x/frac_above": 1 / 3})
    assert gap_metrics([], 0.1, "mismatch/x") == {} == gap_metrics([torch.tensor([])], 0.1, "mismatch/x")


def _paired(auto_rewards: dict[str, list[float]], guided: set[str]):
    problems = [Problem(pid, "q", "a", "toy/add", "train") for pid in auto_rewards]
    rollouts = [Rollout(pid, False, [1], [-0.1], "t", reward=r) for pid, rs in auto_rewards.items() for r in rs]
    rollouts += [Rollout(pid, True, [1], [-0.1], "t", reward=1.0) for pid in guided]
    group = lambda pid, guided: [r for r in rollouts if r.problem_id == pid and r.guided == guided]  # noqa: E731
    return SimpleNamespace(problems=problems, rollouts=rollouts, group=group)


def test_group_stats_by_hand():
    paired = _paired({"wrong": [0, 0, 0], "right": [1, 1, 1], "mixed": [1, 0, 0], "wrong2": [0, 0, 0]},
                     guided={"wrong", "mixed", "wrong2"})
    seqs = [Seq("distill", [1], [1], weight=w, meta={"problem_id": pid}) for pid, w in
            (("wrong", 1.0), ("mixed", 0.7), ("wrong2", 0.0))]  # wrong2: distilled with w = 0, no signal
    m = group_stats(paired, seqs + [Seq("rl", [1], [1])], distilling=True)
    assert m == {"frac_reward_zero_std": 0.75, "frac_all_wrong": 0.5, "guided_share": 0.5, "guided_share_all_wrong": 0.5}
    off = group_stats(paired, seqs, distilling=False)  # distill.coef = 0: the guided branch gives nothing
    assert off["guided_share"] == 0 and off["guided_share_all_wrong"] == 0
    assert set(group_stats(_paired({"a": [1, 0]}, set()), [], True)) == {"frac_reward_zero_std", "frac_all_wrong"}


def _rl_seqs(model, shift: float):
    """Two rollouts whose engine log-probs are the trainer's minus `shift` (ratio pi_old / mu = e^shift)."""
    prompts, completions = [[5, 6, 7], [8, 9]], [[10, 11, 12, 13], [14, 15]]
    with torch.no_grad():
        batch = pack(prompts, completions, 0)
        lp_B_T = token_logprobs(model, batch)
    rows = [lp_B_T[b][batch.completion_mask_B_T[b].bool()] - shift for b in range(2)]
    return [Seq("rl", p, c, advantage=a, engine_logprobs=r.tolist()) for p, c, a, r in zip(prompts, completions, (0.5, -1.0), rows)]


def _loss_and_grads(model, seqs, mode):
    cfg = TrainConfig(eps_low=0.2, eps_high=0.28, rollout_is=mode, rollout_is_cap=2.0)
    model.zero_grad()
    loss, metrics, _ = policy_loss(model, seqs, 6.0, cfg, 0, "cpu")
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, metrics


def test_rollout_is_in_the_grpo_loss(tiny_model):
    seqs = _rl_seqs(tiny_model, shift=1.0)  # every token ratio e > cap 2
    none, none_grads, none_metrics = _loss_and_grads(tiny_model, seqs, "none")
    # the loss as it was before rollout IS: clipped surrogate with pi_old = pi_theta.detach()
    tiny_model.zero_grad()
    batch = pack([s.prompt_ids for s in seqs], [s.completion_ids for s in seqs], 0)
    lp_B_T = token_logprobs(tiny_model, batch)
    terms_B_T, _ = losses.grpo_token_terms(lp_B_T, lp_B_T.detach(), torch.tensor([0.5, -1.0]), batch.completion_mask_B_T,
                                           0.2, 0.28)
    before = losses.aggregate(terms_B_T, batch.completion_mask_B_T, num_tokens=6.0)
    before.backward()
    assert torch.equal(none, before.detach()) and "rollout_is/weight_mean" not in none_metrics
    assert all(torch.equal(none_grads[n], p.grad) for n, p in tiny_model.named_parameters() if p.grad is not None)
    truncated, truncated_grads, m = _loss_and_grads(tiny_model, seqs, "token_truncate")
    assert truncated == pytest.approx(2 * float(none), rel=1e-6) and m["rollout_is/frac_capped"] == 1.0
    name = next(iter(none_grads))
    torch.testing.assert_close(truncated_grads[name], 2 * none_grads[name])
    masked, _, m = _loss_and_grads(tiny_model, seqs, "sequence_mask")  # sequence ratios e^4, e^2 > 2: all masked
    assert float(masked) == 0.0 and m["rollout_is/weight_mean"] == 0.0
    assert all(s.meta["logprob_gap"].tolist() == pytest.approx([1.0] * len(s.completion_ids), abs=1e-5) for s in seqs)


def test_rollout_is_default_follows_the_backend(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("extends: %s\n" % (Path(__file__).parents[2] / "params" / "base.yaml"))
    assert load_config(path).train.rollout_is == "none"  # transformers: the sampler is the trainer's model
    assert load_config(path, {"rollout.backend": "vllm"}).train.rollout_is == "token_truncate"
    vllm_none = load_config(path, {"rollout.backend": "vllm", "train.rollout_is": "none"})
    assert vllm_none.train.rollout_is == "none"
    (tmp_path / "resolved.yaml").write_text(config_to_yaml(load_config(path, {"rollout.backend": "vllm"})))
    assert load_config(tmp_path / "resolved.yaml").train.rollout_is == "token_truncate"  # config.yaml holds the resolved value
    with pytest.raises(ConfigError, match="train.rollout_is_cap"):
        load_config(path, {"train.rollout_is_cap": 0.5})
    with pytest.raises(ConfigError, match="train.rollout_is.*did you mean 'token_truncate'"):
        load_config(path, {"train.rollout_is": "token_truncated"})


def test_rollout_health_table_and_panels():
    import pandas as pd

    from sgpo_lib.analysis import plots
    from sgpo_lib.analysis.report import rollout_health

    sgpo = pd.DataFrame({"step": [1, 2], "frac_reward_zero_std": [0.5, 1.0], "frac_all_wrong": [0.25, 0.75],
                         "guided_share_all_wrong": [1.0, 0.0], "mismatch/auto/mean": [1e-6, 3e-6],
                         "mismatch/auto/max": [2e-6, 9e-6]})
    sft = pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.5]})
    table = rollout_health({"sgpo": sgpo, "sft": sft})
    assert list(table.index) == ["sgpo"]
    assert table.loc["sgpo"].to_dict() == pytest.approx({"frac_reward_zero_std": 0.75, "frac_all_wrong": 0.5,
                                                         "guided_share_all_wrong": 0.5, "mismatch/auto/mean": 2e-6,
                                                         "mismatch/auto/max": 9e-6})
    fig = plots.panels({"SGPO": [sgpo], "SFT": [sft]}, plots.ROLLOUT_HEALTH_KEYS, "health", {"guided_share": "SGPO only"})
    assert [ax.get_title() for ax in fig.axes] == ["mismatch/auto/mean", "frac_reward_zero_std"]  # no empty panel
    assert len(fig.axes[0].lines) == 1 and fig.axes[0].lines[0].get_color() == plots.color("SGPO")
    left_out = " ".join(t.get_text() for t in fig.texts)
    assert "mismatch/guided/mean: no run logged a value" in left_out and "guided_share: SGPO only" in left_out
    assert plots.panels({"SFT": [sft]}, plots.ROLLOUT_HEALTH_KEYS, "health") is None
