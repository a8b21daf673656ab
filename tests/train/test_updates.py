"""PPO mini-batches (`train.mini_batches`): with several, the ratio leaves 1 and the clip acts from
the second update; with one, the step is today's single update on the whole batch."""

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
