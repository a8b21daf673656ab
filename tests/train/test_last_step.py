"""`LastCompletedStep`: what a SIGTERM checkpoints. The state kept when a step completes (not a
later one), no checkpoint once an optimizer update began, none needed when the step is on disk,
a stop that waits for the trainer's own save, and no update that starts under the stop's save."""

import threading
import time

import pytest
import torch

from sgpo_lib.train.last_step import LastCompletedStep

pytestmark = pytest.mark.timeout(30)  # a lock a test forgot would hang it


class Saves:
    def __init__(self, hold_s: float = 0.0):
        self.calls, self.hold_s = [], hold_s

    def __call__(self, step, extra, rng):
        time.sleep(self.hold_s)
        self.calls.append((step, extra, rng))


def test_the_completed_steps_state_is_saved_not_a_later_one():
    saves, extra = Saves(), {"alpha": {"p1": 0.5}, "nonfinite_in_row": 0}
    last = LastCompletedStep(saves)
    last.completed(3, extra, checkpoint=False)
    want_rng = torch.get_rng_state()
    extra["alpha"]["p1"] = 0.9  # the next step's sampling moves the pass-gap state
    torch.rand(5)  # and the RNG
    assert saves.calls == []
    note = last.save_for_stop()
    assert note == "checkpoint of the last completed step 3 written; a rerun resumes from it"
    (step, saved, rng), = saves.calls
    assert step == 3 and saved == {"alpha": {"p1": 0.5}, "nonfinite_in_row": 0}
    assert torch.equal(rng["torch"], want_rng)


def test_no_checkpoint_after_an_optimizer_update_began():
    saves = Saves()
    last = LastCompletedStep(saves)
    last.completed(3, {}, checkpoint=False)
    last.moving()
    assert last.save_for_stop().startswith("no checkpoint: SIGTERM came after an optimizer update of step 4")
    assert saves.calls == []


def test_nothing_to_write_when_the_step_is_on_disk():
    assert LastCompletedStep(Saves()).save_for_stop() == "no checkpoint: no step was completed"
    saves = Saves()
    last = LastCompletedStep(saves)  # a stop keeps the lock (the process exits): a fresh one
    last.completed(2, {}, checkpoint=True)
    assert [c[0] for c in saves.calls] == [2] and saves.calls[0][2] is None  # the trainer's own save, now
    last.resumed(2)
    assert last.save_for_stop() == "no checkpoint needed: the last completed step 2 is the latest checkpoint"
    assert len(saves.calls) == 1


def test_a_stop_waits_for_the_trainers_own_save_and_no_update_starts_after_it():
    saves = Saves(hold_s=0.5)
    last = LastCompletedStep(saves)
    trainer = threading.Thread(target=last.completed, args=(1, {}, True))
    trainer.start()
    time.sleep(0.1)  # the trainer's checkpoint of step 1 is being written
    assert last.save_for_stop(wait_s=5) == "no checkpoint needed: the last completed step 1 is the latest checkpoint"
    update = threading.Thread(target=last.moving, daemon=True)  # the stop holds the lock until the process exits
    update.start()
    update.join(0.3)
    assert update.is_alive()


def test_a_stop_gives_up_on_a_lock_held_too_long():
    last = LastCompletedStep(Saves(hold_s=1.0))
    threading.Thread(target=last.completed, args=(1, {}, True), daemon=True).start()
    time.sleep(0.1)
    assert last.save_for_stop(wait_s=0.2) == "no checkpoint: the trainer held its checkpoint lock for more than 0.2 s"
