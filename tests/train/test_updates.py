"""PPO mini-batches (`train.mini_batches`): with several, the ratio leaves 1 and the clip acts from
the second update; with one, the step is today's single update on the whole batch. Micro-batches by
a token budget (`train.micro_batch_tokens`) and gradient checkpointing (`model.gradient_checkpointing`)."""

import pytest

from sgpo_lib.config.run import load_config
from sgpo_lib.train.trainer import Trainer
from sgpo_lib.train.updates import ppo_updates
from trainer_fixtures import ParityGrader, make_data, params_file


def _recorded_updates(tmp_path, model_dir, overrides, monkeypatch):
    """One grpo train_step; returns [(sequences, metrics)] of each optimizer step."""
    cfg = load_config(params_file(tmp_path, model_dir), {"train.method": "grpo", **overrides})
    trainer = Trainer(cfg, make_data(model_dir), tmp_path / "run", ParityGrader())
    calls, backward = [], trainer._backward

    def recording(seqs):
        loss, metrics = backward(seqs)
        calls.append((list(seqs), metrics))
        return loss, metrics
    monkeypatch.setattr(trainer, "_backward", recording)
    trainer.train_step(1)
    return calls


def test_four_mini_batches_move_the_ratio_and_clip_from_the_second(tmp_path, tiny_model_dir, monkeypatch):
    calls = _recorded_updates(tmp_path, tiny_model_dir, {"train.mini_batches": 4, "train.lr": 0.2}, monkeypatch)
    assert len(calls) == 4
    assert all(s.old_logprobs is not None for seqs, _ in calls for s in seqs)  # taken once, before the first
    first, later = calls[0][1], [m for _, m in calls[1:]]
    assert first["rl/ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert first["rl/clip_frac_low"] == first["rl/clip_frac_high"] == 0
    assert all(abs(m["rl/ratio_mean"] - 1) > 1e-3 for m in later)
    assert any(m["rl/clip_frac_low"] + m["rl/clip_frac_high"] > 0 for m in later)


def test_one_mini_batch_is_one_update_on_the_whole_batch(tmp_path, tiny_model_dir, monkeypatch):
    calls = _recorded_updates(tmp_path, tiny_model_dir, {}, monkeypatch)
    assert len(calls) == 1 and len(calls[0][0]) == 2 * 3  # 2 problems x 3 autonomous rollouts
    assert all(s.old_logprobs is None for s in calls[0][0])  # pi_old = pi_theta detached, as before
    assert calls[0][1]["rl/ratio_mean"] == pytest.approx(1.0, abs=1e-6)


def test_updates_split_every_epoch_into_interleaved_mini_batches():
    assert ppo_updates(list(range(5)), 1, 1) == [[0, 1, 2, 3, 4]]
    assert ppo_updates(list(range(5)), 2, 2) == [[0, 2, 4], [1, 3], [0, 2, 4], [1, 3]]
    assert ppo_updates([0], 1, 3) == [[0], [], []]  # a rank with fewer sequences still takes every step


def test_micro_batches_by_token_budget_fill_to_the_padded_budget():
    from sgpo_lib.method.step import Seq, micro_batches

    seqs = [Seq("rl", [0] * 2, [0] * n) for n in (2, 2, 6, 1, 20)]  # 4, 4, 8, 3, 22 tokens
    sizes = lambda groups: [len(g) for g in groups]  # noqa: E731
    assert sizes(micro_batches(seqs, 2)) == [2, 2, 1]  # by count, as before
    assert sizes(micro_batches(seqs, 2, max_tokens=24)) == [3, 1, 1]  # 4 x 8 > 24 breaks; the 22-token one alone
    assert sizes(micro_batches(seqs, 2, max_tokens=8)) == [2, 1, 1, 1]


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path, tiny_model_dir):
    """`model.gradient_checkpointing` recomputes the decoder layers: same loss and LoRA gradients."""
    import torch

    from sgpo_lib.model.policy import token_logprobs
    from sgpo_lib.method.step import Seq, _pack

    grads = []
    for ckpt in (False, True):
        cfg = load_config(params_file(tmp_path, tiny_model_dir), {"model.gradient_checkpointing": ckpt})
        trainer = Trainer(cfg, make_data(tiny_model_dir), tmp_path / f"run{ckpt}", ParityGrader())
        assert trainer.model.base_model.model.model.gradient_checkpointing == ckpt
        batch = _pack([Seq("rl", [1, 2, 3], [4, 5, 6, 7])], trainer.pad_id, "cpu")
        token_logprobs(trainer.model, batch).sum().backward()
        grads.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad})
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n])
