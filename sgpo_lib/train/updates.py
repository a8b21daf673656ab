"""The optimizer steps of one rollout batch: `train.ppo_epochs` passes, each split into
`train.mini_batches` PPO mini-batches (verl's `ppo_mini_batch_size`, written as a count).

With one update per rollout batch, pi_old is pi_theta detached: the ratio is 1 and the clip (and
every `distill.proximal` option) cannot act. With several, the old log-probs are taken once,
before the first update (`takes_several`), and from the second update on the policy has moved
away from them. Each mini-batch is its own token-mean (its normalisers count its tokens over
all ranks), as in verl. The split interleaves the rank's sequences (`seqs[i::M]`) so that every
mini-batch mixes problems and loss kinds; a rank with fewer sequences than mini-batches joins
the collectives of an empty one.
"""

from __future__ import annotations


def takes_several(train_cfg) -> bool:
    """True when a rollout batch gets more than one optimizer step (old log-probs are needed)."""
    return train_cfg.ppo_epochs * train_cfg.mini_batches > 1


def ppo_updates(seqs: list, epochs: int, mini_batches: int) -> list[list]:
    """The sequences of each optimizer step, in order: `epochs` x `mini_batches` lists.

    Example:
        >>> ppo_updates([1, 2, 3, 4, 5], epochs=1, mini_batches=2)
        [[1, 3, 5], [2, 4]]
        >>> ppo_updates(["a"], epochs=2, mini_batches=1)
        [['a'], ['a']]
    """
    return [seqs[i::mini_batches] for _ in range(epochs) for i in range(mini_batches)]
