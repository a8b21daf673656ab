"""The trainer on a tiny random Qwen2: every method runs, LoRA moves and the base does not,
metrics are logged, a NaN step is skipped, and a SIGKILLed run resumes to the same weights."""


import pytest
import torch
from trainer_fixtures import ParityGrader, make_data, params_file

from sgpo_lib.config.run import load_config
from sgpo_lib.core import fileio
from sgpo_lib.core.records import Problem
from sgpo_lib.data.batches import batch_for_step
from sgpo_lib.train.trainer import Trainer


@pytest.mark.parametrize("method", ["sgpo", "grpo", "sft", "luffy", "hpt", "sft_grpo"])
def test_every_method_trains_lora_only(tmp_path, tiny_model_dir, method):
    cfg = load_config(params_file(tmp_path, tiny_model_dir), {"train.method": method})
    trainer = Trainer(cfg, make_data(tiny_model_dir), tmp_path / "run", ParityGrader())
    base = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    results = trainer.run()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(lora[n], after[n]) for n in lora), "LoRA parameters did not change"
    assert all(torch.equal(base[n], after[n]) for n in base), "base weights changed"
    rows = fileio.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    for key in ("loss", "grad_norm", "step_s", "train_s", "train_tokens_per_s", "eval/test/macro/greedy"):
        assert key in rows[-1], key
    if method != "sft":
        assert {"reward_auto", "w_mean", "generate_s", "grade_s", "p_auto/toy/add", "entropy_mc"} <= set(rows[-1])
        graded = rows[-1]["grade/correct"] + rows[-1]["grade/wrong"]  # every rollout of the step, by reason
        assert graded == 2 * cfg.rollout.n_autonomous + 2 * cfg.rollout.n_guided * (method == "sgpo")
        assert rows[-1]["grade/timeout"] == 0
    if method == "sgpo":
        assert "reward_guided" in rows[-1] and "distill/term" in rows[-1]
    assert results["final_step"] == 2 and (tmp_path / "run" / "STATUS").read_text().startswith("done")


def test_v2_defaults_distil_one_target_per_problem_and_log_alpha(tmp_path, tiny_model_dir):
    """select_one: at most one distilled rollout per problem; alpha.jsonl, alpha_mean, entropy, distill/kl_clip_frac."""
    cfg = load_config(params_file(tmp_path, tiny_model_dir), {"distill.target": "select_one", "distill.weighting": "pass_gap"})
    Trainer(cfg, make_data(tiny_model_dir), tmp_path / "run", ParityGrader()).run()
    rows = fileio.read_jsonl(tmp_path / "run" / "metrics.jsonl")[1:]
    assert all(r["n_distill_seqs"] <= cfg.train.batch_problems for r in rows)
    assert any(r["n_distill_seqs"] > 0 for r in rows)
    alpha = fileio.read_jsonl(tmp_path / "run" / "alpha.jsonl")
    assert [r["step"] for r in alpha] == [1, 1, 2, 2] and {round(r["alpha"], 9) for r in alpha} <= {0.4, 0.6, 0.3, 0.5, 0.7}
    for r in rows:
        assert r["alpha_mean"] == pytest.approx(sum(a["alpha"] for a in alpha if a["step"] == r["step"]) / 2)
        assert r["entropy"] > 0
    assert any("distill/kl_clip_frac" in r and 0 <= r["distill/kl_clip_frac"] <= 1 for r in rows)


def test_select_one_keeps_the_likeliest_correct_target_and_scores_only_real_choices(tmp_path, tiny_model_dir, monkeypatch):
    """Problem a: three correct candidates, the one most likely under the unguided prompt is kept
    (checked against an independent forward); b: one candidate, kept without a scoring pass."""
    from sgpo_lib.method import step as step_module
    from sgpo_lib.method.step import Seq, select_one_target

    cfg = load_config(params_file(tmp_path, tiny_model_dir), {"distill.target": "select_one"})
    trainer = Trainer(cfg, make_data(tiny_model_dir), tmp_path / "run", ParityGrader())
    prompt = trainer.tok("What is 1 plus 1?", add_special_tokens=False)["input_ids"]
    completions = {("a", 0): [11, 12, 13], ("a", 1): [40, 41], ("a", 2): [7, 7, 7, 7], ("b", 0): [5, 6]}
    seqs = [Seq("rl", prompt, [9], advantage=1.0)] + [
        Seq("distill", prompt, ids, weight=0.5, teacher_prompt_ids=prompt, meta={"problem_id": pid, "reward": 1.0})
        for (pid, _), ids in completions.items()]
    scored = []
    real = step_module.unguided_logprobs
    monkeypatch.setattr(step_module, "unguided_logprobs", lambda model, cand, *a: scored.append(cand) or real(model, cand, *a))
    kept = select_one_target(trainer.model, seqs, trainer.pad_id, trainer.acc.device, 4, "mean_logprob", False)
    assert [[s.meta["problem_id"] for s in call] for call in scored] == [["a", "a", "a"]]
    with torch.no_grad():
        means = []
        for k in range(3):
            ids = torch.tensor([prompt + completions[("a", k)]])
            lp = torch.log_softmax(trainer.model(input_ids=ids).logits[0, len(prompt) - 1 : -1].double(), -1)
            means.append(float(lp.gather(-1, ids[0, len(prompt):, None]).mean()))
    best = max(range(3), key=means.__getitem__)
    assert [s.kind for s in kept] == ["rl", "distill", "distill"]
    assert [s.completion_ids for s in kept[1:]] == [completions[("a", best)], completions[("b", 0)]]


def test_coef_zero_trains_like_grpo(tmp_path, tiny_model_dir):
    """SGPO with distill.coef = 0 reaches exactly GRPO's weights (guided samples do not disturb the rest)."""
    states = []
    for method, coef in (("sgpo", 0.0), ("grpo", 1.0)):
        cfg = load_config(params_file(tmp_path, tiny_model_dir), {"train.method": method, "distill.coef": coef})
        trainer = Trainer(cfg, make_data(tiny_model_dir), tmp_path / method, ParityGrader())
        trainer.run()
        states.append({n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad})
    for n in states[0]:
        torch.testing.assert_close(states[0][n], states[1][n], rtol=0, atol=1e-6)


def test_nonfinite_loss_is_skipped_then_stops(tmp_path, tiny_model_dir, monkeypatch):
    cfg = load_config(params_file(tmp_path, tiny_model_dir, steps=5), {"train.method": "sft", "train.max_nonfinite_in_row": 2})
    trainer = Trainer(cfg, make_data(tiny_model_dir), tmp_path / "run", ParityGrader())
    monkeypatch.setattr(trainer, "_backward", lambda seqs: (float("nan"), {}))
    assert trainer.train_step(1)["skipped_nonfinite"] == 1
    with pytest.raises(FloatingPointError, match="max_nonfinite_in_row"):
        trainer.train_step(2)


def test_batches_are_a_pure_function_of_seed_and_step():
    ps = [Problem(str(i), "q", "a", "s", "train") for i in range(7)]
    ids = [[p.id for p in batch_for_step(ps, 3, step, 3)] for step in (1, 2, 3)]
    assert ids == [[p.id for p in batch_for_step(ps, 3, step, 3)] for step in (1, 2, 3)]
    assert sorted(ids[0] + ids[1] + [ids[2][0]]) == sorted(p.id for p in ps)  # one epoch covers every problem
