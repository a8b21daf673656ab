"""Tests of sgpo_lib.method.losses / distill against float64 references written from the definitions.

The references (`ref_*`) use numpy and explicit Python loops in probability space and share no
code with the implementation. Property tests check the method's claims (selective gradient,
coef = 0 is GRPO, sampled = SFT, top-k with K = V is full, chunked = dense, micro-batching).
"""

import math

import numpy as np
import pytest
import torch

from sgpo_lib.method.distill import DistillSpec, chunked_distill, distill_dense, distill_metrics, proximal_factor
from sgpo_lib.method.distill_terms import TeacherDist, distill_term, forward_kl_full, reverse_kl_full
from sgpo_lib.method.losses import (
    PassGapAlpha,
    aggregate,
    group_advantages,
    grpo_token_terms,
    guidance_weights,
    offpolicy_shaped_token_terms,
    rollout_is_weights,
    sft_token_terms,
)
from sgpo_lib.method.step import Seq, distill_token_coefs, loss_groups, select_targets, target_score, token_counts

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, scale=1.0, dtype=F64):
    return (torch.randn(*shape, generator=gen(seed), dtype=F64) * scale).to(dtype)


# ----------------------------------------------------------------------------- references (numpy, loops)
def ref_softmax(row):
    e = [math.exp(x - max(row)) for x in row]
    return [x / sum(e) for x in e]


def ref_kl(a, b):
    """KL(a || b) for two probability lists."""
    return sum(ai * math.log(ai / bi) for ai, bi in zip(a, b) if ai > 0)


def ref_full(student_logits, teacher_logits, reverse=False):
    out = []
    for s_row, t_row in zip(np.asarray(student_logits), np.asarray(teacher_logits)):
        p, q = ref_softmax(list(s_row)), ref_softmax(list(t_row))
        out.append(ref_kl(p, q) if reverse else ref_kl(q, p))
    return np.array(out)


def ref_topk(student_logits, teacher_logits, k, reverse=False):
    out = []
    for s_row, t_row in zip(np.asarray(student_logits), np.asarray(teacher_logits)):
        p, q = ref_softmax(list(s_row)), ref_softmax(list(t_row))
        ids = sorted(range(len(q)), key=lambda v: -q[v])[:k]
        q_b = [q[v] for v in ids] + [1.0 - sum(q[v] for v in ids)]
        p_b = [p[v] for v in ids] + [1.0 - sum(p[v] for v in ids)]
        out.append(ref_kl(p_b, q_b) if reverse else ref_kl(q_b, p_b))
    return np.array(out)


def ref_log_softmax_at(logits, targets):
    return np.array([math.log(ref_softmax(list(row))[t]) for row, t in zip(np.asarray(logits), targets.tolist())])


def ref_grpo(logp, old, adv, eps_low, eps_high, beta, ref):
    out = np.zeros(logp.shape)
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            rho = math.exp(logp[b, t] - old[b, t])
            clipped = min(max(rho, 1 - eps_low), 1 + eps_high)
            r = math.exp(ref[b, t]) / math.exp(logp[b, t])  # pi_ref / pi_theta
            out[b, t] = -min(rho * adv[b], clipped * adv[b]) + beta * (r - math.log(r) - 1)
    return out


# ----------------------------------------------------------------------------- fixtures
N, H, V = 6, 4, 5  # 2 rollouts x 3 tokens, tiny vocab


@pytest.fixture
def logits():
    """Student and teacher logits, 2x3 tokens flattened to N=6, vocab 5."""
    return randn(N, V, seed=1, scale=2.0), randn(N, V, seed=2, scale=2.0)


def lsm(x):
    return torch.log_softmax(x, dim=-1)


# ----------------------------------------------------------------------------- aggregation
def test_aggregate_matches_loops_and_microbatching():
    per_token, mask = randn(4, 5, seed=3), torch.rand(4, 5, generator=gen(4)) > 0.4
    mask[2] = False  # an empty sequence
    pt, m = per_token.numpy(), mask.numpy()
    tok_ref = sum(pt[b, t] for b in range(4) for t in range(5) if m[b, t]) / m.sum()
    seq_ref = np.mean([pt[b][m[b]].mean() for b in range(4) if m[b].any()])
    torch.testing.assert_close(aggregate(per_token, mask), torch.tensor(tok_ref, dtype=F64))
    torch.testing.assert_close(aggregate(per_token, mask, "seq_mean_token_mean"), torch.tensor(seq_ref, dtype=F64))
    for mode, key, total in (("token_mean", "num_tokens", mask.sum()), ("seq_mean_token_mean", "num_sequences", 3)):
        leaf = per_token.clone().requires_grad_()
        full = aggregate(leaf, mask, mode)
        (g_full,) = torch.autograd.grad(full, leaf)
        leaf2, acc = per_token.clone().requires_grad_(), 0.0
        for rows in (slice(0, 1), slice(1, 4)):  # uneven micro-batches, gradient accumulation
            part = aggregate(leaf2[rows], mask[rows], mode, **{key: total})
            part.backward()
            acc = acc + part.detach()
        torch.testing.assert_close(acc, full.detach())
        torch.testing.assert_close(leaf2.grad, g_full)
    with pytest.raises(ValueError, match="unknown mode"):
        aggregate(per_token, mask, "sum")


def test_group_advantages_reference():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=F64)
    for scale in (False, True):
        ref = []
        for row in rewards.tolist():
            mean = sum(row) / len(row)
            std = math.sqrt(sum((r - mean) ** 2 for r in row) / len(row))
            ref.append([(r - mean) / (std + 1e-6) if scale else r - mean for r in row])
        torch.testing.assert_close(group_advantages(rewards, scale, eps=1e-6), torch.tensor(ref, dtype=F64))


# ----------------------------------------------------------------------------- GRPO and baselines
def test_grpo_terms_and_metrics_reference():
    logp, old, ref = randn(2, 3, seed=5, scale=0.5) - 1, randn(2, 3, seed=6, scale=0.5) - 1, randn(2, 3, seed=7) - 1
    adv, mask = torch.tensor([0.7, -1.3], dtype=F64), torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    per_token, metrics = grpo_token_terms(logp, old, adv, mask, 0.2, 0.28, beta=0.05, ref_logprobs_B_T=ref)
    expected = ref_grpo(logp.numpy(), old.numpy(), adv.numpy(), 0.2, 0.28, 0.05, ref.numpy())
    torch.testing.assert_close(per_token, torch.tensor(expected))
    rho = np.exp(logp.numpy() - old.numpy())
    cells = [(b, t) for b in range(2) for t in range(3) if mask[b, t]]
    low = sum(1 for b, t in cells if rho[b, t] < 0.8 and adv[b] < 0) / len(cells)
    high = sum(1 for b, t in cells if rho[b, t] > 1.28 and adv[b] > 0) / len(cells)
    assert low + high > 0  # the seeded inputs exercise the clip
    assert metrics["rl/clip_frac_low"] == pytest.approx(low) and metrics["rl/clip_frac_high"] == pytest.approx(high)
    assert metrics["rl/ratio_mean"] == pytest.approx(np.mean([rho[c] for c in cells]))
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_token_terms(logp, old, adv, mask, 0.2, 0.28, beta=0.1)


def ref_rollout_is(old, engine, mask, mode, cap):
    """Float64 loops: token ratio min(pi_old/mu, cap), or the sequence ratio kept below cap (else 0)."""
    out = np.ones((len(old), len(old[0])))
    for b in range(len(old)):
        toks = [t for t in range(len(old[0])) if mask[b][t]]
        if mode == "token_truncate":
            for t in toks:
                out[b][t] = min(math.exp(old[b][t] - engine[b][t]), cap)
        else:
            ratio = math.exp(sum(old[b][t] - engine[b][t] for t in toks))
            out[b][:] = ratio if ratio <= cap else 0.0
    return out


@pytest.mark.parametrize("mode", ["token_truncate", "sequence_mask"])
def test_rollout_is_weights_reference(mode):
    old = [[-1.0, -0.5, -2.0, -0.1], [-0.3, -0.2, -0.9, 0.0], [-0.7, -1.1, 0.0, 0.0]]
    engine = [[-1.2, -0.5, -0.4, -0.1], [-0.3, -0.25, -1.0, 0.0], [-3.0, -0.1, 0.0, 0.0]]  # ratios 0.2 .. 10
    mask = [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
    w, metrics = rollout_is_weights(torch.tensor(old, dtype=F64), torch.tensor(engine, dtype=F64),
                                    torch.tensor(mask), mode, cap=2.0)
    ref = ref_rollout_is(old, engine, mask, mode, 2.0)
    m = np.array(mask, dtype=bool)
    np.testing.assert_allclose(w.numpy()[m], ref[m], rtol=1e-12)
    assert not w.requires_grad
    if mode == "token_truncate":
        assert metrics["rollout_is/frac_capped"] == pytest.approx(1 / 9)  # only exp(-0.7 + 3.0) > 2
    else:  # sequence ratios exp(-1.4) and exp(0.15) kept, exp(1.3) masked
        assert metrics["rollout_is/frac_capped"] == pytest.approx(2 / 9)
    assert metrics["rollout_is/weight_mean"] == pytest.approx(ref[m].mean(), rel=1e-12)


def test_rollout_is_none_and_unknown():
    x = torch.zeros(1, 2)
    assert rollout_is_weights(x, x - 5, torch.ones(1, 2), "none", 2.0) == (None, {})
    with pytest.raises(ValueError, match="train.rollout_is"):
        rollout_is_weights(x, x, torch.ones(1, 2), "token_mask", 2.0)


def test_luffy_shaping_value_and_gradient():
    logp, adv, gamma = (randn(2, 3, seed=8) - 1).requires_grad_(), torch.tensor([1.5, -0.5], dtype=F64), 0.1
    per_token = offpolicy_shaped_token_terms(logp, adv, gamma)
    (grad,) = torch.autograd.grad(per_token.sum(), logp)
    pi = np.exp(logp.detach().numpy())
    a = adv.numpy()[:, None]
    torch.testing.assert_close(per_token.detach(), torch.tensor(-a * pi / (pi + gamma)))
    torch.testing.assert_close(grad, torch.tensor(-a * gamma * pi / (pi + gamma) ** 2))  # d/dlogp pi/(pi+g)


def test_sft_is_cross_entropy(logits):
    student, _ = logits
    targets = torch.randint(0, V, (N,), generator=gen(9))
    torch.testing.assert_close(sft_token_terms(lsm(student).gather(-1, targets[:, None]).squeeze(-1)),
                               torch.tensor(-ref_log_softmax_at(student, targets)))


# ----------------------------------------------------------------------------- distillation terms
@pytest.mark.parametrize("estimator,direction", [("full", "forward"), ("full", "reverse"),
                                                 ("topk", "forward"), ("topk", "reverse")])
def test_kl_terms_reference(logits, estimator, direction):
    student, teacher_logits = logits
    k = 2 if estimator == "topk" else None
    got = distill_term(estimator, direction)(lsm(student), TeacherDist.from_logits(teacher_logits, k)).sum(-1)
    reverse = direction == "reverse"
    if k is None:
        expected = ref_full(student, teacher_logits, reverse)
    else:
        expected = ref_topk(student, teacher_logits, k, reverse)
    torch.testing.assert_close(got, torch.tensor(expected))
    # identical distributions give 0
    same = distill_term(estimator, direction)(lsm(teacher_logits), TeacherDist.from_logits(teacher_logits, k)).sum(-1)
    torch.testing.assert_close(same, torch.zeros(N, dtype=F64))


def test_forward_differs_from_reverse(logits):
    student, teacher_logits = logits
    fwd = forward_kl_full(lsm(student), TeacherDist.from_logits(teacher_logits)).sum(-1)
    rev = reverse_kl_full(lsm(student), TeacherDist.from_logits(teacher_logits)).sum(-1)
    assert (fwd - rev).abs().min() > 1e-3


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_topk_with_k_equal_v_is_full(logits, direction):
    student, teacher_logits = logits
    vals, grads = [], []
    for k in (None, V):
        leaf = student.clone().requires_grad_()
        est = "full" if k is None else "topk"
        val = distill_term(est, direction)(lsm(leaf), TeacherDist.from_logits(teacher_logits, k)).sum(-1)
        vals.append(val.detach())
        grads.append(torch.autograd.grad(val.sum(), leaf)[0])
    torch.testing.assert_close(vals[0], vals[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_forward_kl_gradient_is_selective(logits):
    """d KL(q||p) / d student logits = p - q: zero exactly where the strategy changed nothing."""
    student, teacher_logits = logits
    student = student.clone()
    student[::2] = teacher_logits[::2]  # q_t = p_t at tokens 0, 2, 4
    leaf = student.clone().requires_grad_()
    (grad,) = torch.autograd.grad(forward_kl_full(lsm(leaf), TeacherDist.from_logits(teacher_logits)).sum(), leaf)
    p_minus_q = [np.array(ref_softmax(list(s))) - np.array(ref_softmax(list(t)))
                 for s, t in zip(student.numpy(), teacher_logits.numpy())]
    torch.testing.assert_close(grad, torch.tensor(np.array(p_minus_q)))
    torch.testing.assert_close(grad[::2], torch.zeros(3, V, dtype=F64), rtol=0, atol=1e-15)
    assert grad[1::2].abs().max() > 1e-2
    # SFT on the guided rollout (the one-sample estimate) pushes the unchanged tokens too
    leaf2 = student.clone().requires_grad_()
    targets = torch.arange(N) % V
    (g_sft,) = torch.autograd.grad(distill_term("sampled", "forward")(lsm(leaf2), TeacherDist(), targets).sum(), leaf2)
    assert g_sft[::2].abs().max() > 1e-2


def test_engine_topk_equals_topk_from_logits(logits):
    student, teacher_logits = logits
    ref_lp = torch.tensor([[math.log(p) for p in ref_softmax(list(row))] for row in teacher_logits.numpy()], dtype=F64)
    ids = torch.tensor([sorted(range(V), key=lambda v: -row[v])[:3] for row in ref_lp.tolist()])
    engine = TeacherDist(topk_ids_N_K=ids, topk_logprobs_N_K=ref_lp.gather(-1, ids))
    for direction in ("forward", "reverse"):
        term = distill_term("topk", direction)
        from_logits = TeacherDist.from_logits(teacher_logits, 3)
        torch.testing.assert_close(term(lsm(student), engine), term(lsm(student), from_logits))


def test_unknown_variants_raise():
    with pytest.raises(ValueError, match="distill.estimator='sampled' with distill.direction='reverse'"):
        DistillSpec(estimator="sampled", direction="reverse")
    with pytest.raises(ValueError, match="distill.proximal"):
        DistillSpec(proximal="trust")
    with pytest.raises(ValueError, match="teacher_hidden_N_H"):
        chunked_distill(randn(2, H), randn(V, H), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=F64),
                        spec=DistillSpec(estimator="full"))
    with pytest.raises(ValueError, match=r"must be \(N, H\)"):
        chunked_distill(randn(1, 2, H), randn(V, H), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=F64),
                        spec=DistillSpec(estimator="sampled"))
    with pytest.raises(ValueError, match="target_ids_N has 3 rows"):
        chunked_distill(randn(2, H), randn(V, H), torch.zeros(3, dtype=torch.long), torch.ones(2, dtype=F64),
                        spec=DistillSpec(estimator="sampled"))
    with pytest.raises(ValueError, match="distill.weighting"):
        guidance_weights(torch.zeros(2), torch.zeros(2), "linear", 1.0)


# ----------------------------------------------------------------------------- proximal constraint
def _dense_with_delta(deltas, spec):
    """Dense loss whose old log-probs are set so that delta_t = deltas[t] exactly (up to rounding)."""
    student = randn(len(deltas), V, seed=10).requires_grad_()
    targets = torch.arange(len(deltas)) % V
    token_lp = torch.tensor(ref_log_softmax_at(student.detach(), targets))
    old = token_lp - torch.tensor(deltas, dtype=F64)
    teacher = TeacherDist.from_logits(randn(len(deltas), V, seed=11))
    out = distill_dense(student, targets, torch.ones(len(deltas), dtype=F64), teacher, spec, old)
    return out, torch.autograd.grad(out.loss, student)[0]


def test_proximal_clip_masks_exactly_tokens_beyond_threshold():
    deltas = [0.0, 0.1, -0.1, 0.3, -0.3, 0.18, -0.19, 2.0]  # threshold log(1.2) = 0.1823
    out, grad = _dense_with_delta(deltas, DistillSpec(proximal="ratio_clip", eps_kl=0.2))
    beyond = [abs(d) > math.log(1.2) for d in deltas]
    assert out.clipped_N.tolist() == beyond
    assert out.factor_N.tolist() == [0.0 if b else 1.0 for b in beyond]
    for t, b in enumerate(beyond):
        assert (grad[t].abs().max() == 0) == b
    metrics = distill_metrics(out, torch.ones(len(deltas), dtype=torch.bool))
    assert metrics["distill/proximal_clip_frac"] == pytest.approx(sum(beyond) / len(deltas))


def test_proximal_is_clip_weight():
    deltas = [0.0, 0.5, -0.5, 1.0, -2.0]
    out, _ = _dense_with_delta(deltas, DistillSpec(proximal="is_clip", is_clip_cap=2.0))
    torch.testing.assert_close(out.factor_N, torch.tensor([min(math.exp(d), 2.0) for d in deltas], dtype=F64))
    assert out.clipped_N.tolist() == [math.exp(d) > 2.0 for d in deltas]
    none = proximal_factor(torch.tensor(deltas), "none", 0.2, 2.0)
    assert none.factor_N.tolist() == [1.0] * 5 and not none.clipped_N.any()


# ----------------------------------------------------------------------------- section 5 weights
def test_guidance_weights_tables():
    p_auto = torch.tensor([0.0, 0.25, 0.5, 1.0, 0.75, 0.0])
    p_guided = torch.tensor([1.0, 0.5, 0.0, 1.0, 0.5, 0.0])
    table = {
        ("failure", 1.0): [1.0, 0.75, 0.0, 0.0, 0.25, 0.0],
        ("failure", 2.0): [1.0, 0.5625, 0.0, 0.0, 0.0625, 0.0],
        ("gap", 1.0): [1.0, 0.25, 0.0, 0.0, 0.0, 0.0],
        ("constant", 1.0): [0.5] * 6,  # alpha0
        ("pass_gap", 0.1): [0.6, 0.6, 0.4, 0.4, 0.4, 0.4],  # a first visit from alpha0 = 0.5
        ("pass_gap", 0.5): [0.8, 0.8, 0.0, 0.0, 0.0, 0.0],  # capped at alpha_max, floored at 0
        # alpha0 + p_guided - p_auto within [0, alpha_max]: gaps 1, 0.25, -0.5, 0, -0.25, 0; gamma unused
        ("pass_gap_stateless", 0.1): [0.8, 0.75, 0.0, 0.5, 0.25, 0.5],
    }
    for (mode, gamma), expected in table.items():
        torch.testing.assert_close(guidance_weights(p_auto, p_guided, mode, gamma), torch.tensor(expected))


def test_pass_gap_state_on_hand_made_sequences():
    """alpha starts at 0.5; +0.1 (cap 0.8) when p_guided > p_auto, else -0.1 (floor 0); per problem."""
    state = PassGapAlpha(alpha0=0.5, gamma=0.1, alpha_max=0.8)
    visits_a = [(0.0, 0.5, 0.6), (0.0, 1.0, 0.7), (0.25, 0.5, 0.8), (0.0, 1.0, 0.8), (0.5, 0.5, 0.7), (1.0, 0.0, 0.6)]
    visits_b = [(1.0, 1.0, 0.4), (1.0, 0.0, 0.3), (0.5, 0.25, 0.2), (0.5, 0.5, 0.1), (0.75, 0.5, 0.0), (1.0, 1.0, 0.0)]
    for (pa_a, pg_a, want_a), (pa_b, pg_b, want_b) in zip(visits_a, visits_b):
        got = state.update(["a", "b"], torch.tensor([pa_a, pa_b], dtype=F64), torch.tensor([pg_a, pg_b], dtype=F64))
        assert got == pytest.approx([want_a, want_b], abs=1e-12)
    assert state.update(["c"], torch.tensor([0.0]), torch.tensor([0.0])) == pytest.approx([0.4])  # a new problem
    again = PassGapAlpha(0.5, 0.1, 0.8)
    again.load_state_dict(state.state_dict())
    assert again.alpha == pytest.approx({"a": 0.6, "b": 0.0, "c": 0.4})
    assert again.update(["a"], torch.tensor([0.0]), torch.tensor([1.0])) == pytest.approx([0.7])


def test_select_targets_hand_made():
    """select_one keeps per problem the correct guided rollout most likely under the unguided pi_old."""
    ids = ["p", "p", "p", "q", "q", "r", "r"]
    rewards = [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    scores = [-0.1, -0.5, -0.3, -0.2, -0.2, -0.01, -0.02]  # p: the wrong one is likeliest; q: a tie; r: none correct
    assert select_targets(ids, rewards, scores, "select_one") == [False, False, True, True, False, False, False]
    assert select_targets(ids, rewards, None, "all_correct") == [False, True, True, True, True, False, False]
    assert select_targets(ids, rewards, None, "all") == [True] * 7
    short, long = torch.tensor([-0.5, -0.5], dtype=F64), torch.tensor([-0.4] * 5, dtype=F64)
    assert (target_score(short, "mean_logprob"), target_score(short, "sum_logprob")) == (-0.5, -1.0)
    by_mean = [target_score(t, "mean_logprob") for t in (short, long)]
    by_sum = [target_score(t, "sum_logprob") for t in (short, long)]
    assert select_targets(["x", "x"], [1.0, 1.0], by_mean, "select_one") == [False, True]
    assert select_targets(["x", "x"], [1.0, 1.0], by_sum, "select_one") == [True, False]


def test_section6_normalisation_reference():
    """sum_x alpha(x) sum_y sum_t m_t l_t / sum_x sum_y |y| over the distilled rollouts, written as loops."""
    student, teacher_logits = randn(4, 3, V, seed=12), randn(4, 3, V, seed=13)  # P=2, S=2 -> B=4, T=3
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    w_P, on_B = [0.5, 2.0], [True, True, False, True]
    rows = [b for b in range(4) if on_B[b]]
    lengths = [int(mask[b].sum()) for b in rows]
    coef_N = distill_token_coefs([w_P[b // 2] for b in rows], lengths, float(sum(lengths))).double()
    pick = lambda x: torch.cat([x[b][mask[b]] for b in rows])  # noqa: E731  (N, V)
    out = distill_dense(pick(student), torch.zeros(sum(lengths), dtype=torch.long), coef_N,
                        TeacherDist.from_logits(pick(teacher_logits)), DistillSpec(proximal="none"))
    kl = ref_full(student.reshape(-1, V), teacher_logits.reshape(-1, V)).reshape(4, 3)
    num = sum(w_P[b // 2] * kl[b, t] for b in range(4) if on_B[b] for t in range(3) if mask[b, t])
    den = sum(1 for b in range(4) if on_B[b] for t in range(3) if mask[b, t])
    torch.testing.assert_close(out.loss, torch.tensor(num / den, dtype=F64))


def ref_kl_grad(student_row, teacher_row, reverse):
    """d KL / d student logits in probability space: forward `p - q`; reverse `p (log p - log q - KL(p||q))`."""
    p, q = ref_softmax(list(student_row)), ref_softmax(list(teacher_row))
    if not reverse:
        return np.array([pi - qi for pi, qi in zip(p, q)])
    kl = ref_kl(p, q)
    return np.array([pi * (math.log(pi) - math.log(qi) - kl) for pi, qi in zip(p, q)])


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_kl_clip_reference(logits, direction):
    """l'_t = min(l_t, delta): value, which tokens, and a zero gradient on the clipped ones."""
    student, teacher = logits
    kl = ref_full(student, teacher, reverse=direction == "reverse")
    delta = float(np.median(kl))
    coef = torch.rand(N, generator=gen(14), dtype=F64)
    leaf = student.clone().requires_grad_()
    out = distill_dense(leaf, torch.zeros(N, dtype=torch.long), coef, TeacherDist.from_logits(teacher),
                        DistillSpec("full", direction, kl_clip=delta))
    clipped = kl > delta
    assert 0 < clipped.sum() < N
    torch.testing.assert_close(out.loss, torch.tensor((coef.numpy() * np.minimum(kl, delta)).sum(), dtype=F64))
    assert out.kl_clipped_N.tolist() == clipped.tolist()
    torch.testing.assert_close(out.per_token_N, torch.tensor(kl, dtype=F64))  # l_t before the clip
    grad = torch.autograd.grad(out.loss, leaf)[0]
    for t in range(N):
        want = 0.0 * kl[t] if clipped[t] else coef[t].item() * ref_kl_grad(student[t], teacher[t], direction == "reverse")
        torch.testing.assert_close(grad[t], torch.as_tensor(want, dtype=F64).expand(V))
    metrics = distill_metrics(out, torch.ones(N, dtype=torch.bool))
    assert metrics["distill/kl_clip_frac"] == pytest.approx(clipped.mean())


# ----------------------------------------------------------------------------- chunked = dense
def _chunk_inputs(seed=20, n=7, k=None):
    torch.manual_seed(seed)
    hidden, weight, bias = randn(n, H, seed=seed), randn(V, H, seed=seed + 1), randn(V, seed=seed + 2)
    teacher_hidden = randn(n, H, seed=seed + 3)
    targets = torch.randint(0, V, (n,), generator=gen(seed + 4))
    coef = torch.rand(n, generator=gen(seed + 5), dtype=F64)
    student_lp = lsm(hidden @ weight.T + bias).gather(-1, targets[:, None]).squeeze(-1)
    old = student_lp + randn(n, seed=seed + 6, scale=0.3)  # some tokens beyond the clip threshold
    return hidden, weight, bias, teacher_hidden, targets, coef, old


SPECS = [DistillSpec("full", "forward", "ratio_clip"), DistillSpec("full", "reverse", "is_clip", is_clip_cap=1.1),
         DistillSpec("topk", "forward", "none", topk=2), DistillSpec("topk", "reverse", "ratio_clip", topk=3),
         DistillSpec("sampled", "forward", "ratio_clip"), DistillSpec("full", "forward", "none", kl_clip=0.5),
         DistillSpec("full", "reverse", "ratio_clip", kl_clip=0.5), DistillSpec("topk", "forward", "none", topk=2, kl_clip=1.5),
         DistillSpec("sampled", "forward", "none", kl_clip=0.5)]
SPECS += [DistillSpec("full", direction, proximal, kl_clip=1.5, kl_clip_mode=mode)  # the other KL clip forms
          for direction, proximal in (("forward", "ratio_clip"), ("reverse", "none"))
          for mode in ("token_mask", "token_scale", "entry_clamp")]
SPECS += [DistillSpec("topk", "forward", "none", topk=2, kl_clip=1.5, kl_clip_mode="entry_clamp"),
          DistillSpec("topk", "reverse", "is_clip", is_clip_cap=1.1, topk=3, kl_clip=1.5, kl_clip_mode="token_mask"),
          DistillSpec("sampled", "forward", "none", kl_clip=0.5, kl_clip_mode="entry_clamp")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.estimator}-{s.direction}-{s.proximal}-klclip{s.kl_clip}"
                                                      f"-{s.kl_clip_mode}")
def test_chunked_equals_dense(spec):
    hidden, weight, bias, teacher_hidden, targets, coef, old = _chunk_inputs()
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    dense = distill_dense(leaves[0] @ leaves[1].T + leaves[2], targets, coef,
                          TeacherDist.from_logits(teacher_hidden @ weight.T + bias, spec.topk), spec, old)
    g_dense = torch.autograd.grad(dense.loss, leaves)
    assert 0 < dense.clipped_N.sum() < 7 or spec.proximal == "none"
    assert 0 < dense.kl_clipped_N.sum() < 7 or spec.kl_clip is None or spec.estimator == "sampled"
    for chunk in (1, 3, 4, 7, 100):  # 3 and 4 do not divide N = 7
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        out = chunked_distill(leaves[0], leaves[1], targets, coef, spec=spec, teacher_hidden_N_H=teacher_hidden,
                              old_logprobs_N=old, lm_head_bias_V=leaves[2], chunk_size=chunk)
        torch.testing.assert_close(out.loss, dense.loss.detach())
        for got, want in zip(out[1:], dense[1:]):
            torch.testing.assert_close(got, want)
        for got, want in zip(torch.autograd.grad(out.loss * 1.7, leaves), g_dense):  # grad_output is applied
            torch.testing.assert_close(got, want * 1.7)


def test_chunked_engine_topk_frozen_weight_and_no_grad():
    hidden, weight, _, teacher_hidden, targets, coef, old = _chunk_inputs(seed=30)
    teacher = TeacherDist.from_logits(teacher_hidden @ weight.T, 3)
    spec = DistillSpec("topk", "forward", "ratio_clip")
    leaf = hidden.clone().requires_grad_()
    dense = distill_dense(leaf @ weight.T, targets, coef, teacher, spec, old)
    frozen_w = weight.clone()  # requires_grad False: frozen lm_head under LoRA
    h2 = hidden.clone().requires_grad_()
    engine = dict(teacher_topk_ids_N_K=teacher.topk_ids_N_K, teacher_topk_logprobs_N_K=teacher.topk_logprobs_N_K)
    out = chunked_distill(h2, frozen_w, targets, coef, spec=spec, old_logprobs_N=old, chunk_size=2, **engine)
    out.loss.backward()
    torch.testing.assert_close(out.loss, dense.loss.detach())
    torch.testing.assert_close(h2.grad, torch.autograd.grad(dense.loss, leaf)[0])
    assert frozen_w.grad is None
    with torch.no_grad():
        again = chunked_distill(hidden, weight.requires_grad_(), targets, coef, spec=spec, old_logprobs_N=old,
                                chunk_size=3, **engine)
    assert again.loss.grad_fn is None
    torch.testing.assert_close(again.loss, dense.loss.detach())


def test_sampled_equals_sft_on_guided_rollout():
    hidden, weight, _, _, targets, _, _ = _chunk_inputs(seed=40)
    h1, w1, h2, w2 = (t.clone().requires_grad_() for t in (hidden, weight, hidden, weight))
    out = chunked_distill(h1, w1, targets, torch.full((7,), 1 / 7, dtype=F64),
                          spec=DistillSpec("sampled", proximal="none", kl_clip=1.0), chunk_size=3)  # never KL-clipped
    sft = torch.nn.functional.cross_entropy(h2 @ w2.T, targets)
    torch.testing.assert_close(out.loss, sft.detach())
    for got, want in zip(torch.autograd.grad(out.loss, (h1, w1)), torch.autograd.grad(sft, (h2, w2))):
        torch.testing.assert_close(got, want)


def test_chunked_microbatches_sum_to_full_batch():
    hidden, weight, _, teacher_hidden, targets, _, old = _chunk_inputs(seed=50, n=12)
    weights_B, lengths_B = [1.0, 0.5, 2.0], [4, 2, 3]  # 3 guided rollouts; rollout b holds rows 4b .. 4b+len-1
    rows_of = lambda bs: torch.cat([torch.arange(4 * b, 4 * b + lengths_B[b]) for b in bs])  # noqa: E731
    spec = DistillSpec("full", "forward", "ratio_clip", kl_clip=0.8)
    kwargs = dict(spec=spec, chunk_size=5)
    h_full, h_micro = hidden.clone().requires_grad_(), hidden.clone().requires_grad_()
    tok = rows_of((0, 1, 2))
    full = chunked_distill(h_full[tok], weight, targets[tok], distill_token_coefs(weights_B, lengths_B, 9.0).double(),
                           teacher_hidden_N_H=teacher_hidden[tok], old_logprobs_N=old[tok], **kwargs)
    full.loss.backward()
    total = 0.0
    for bs in ((0,), (1, 2)):
        coef_micro = distill_token_coefs([weights_B[b] for b in bs], [lengths_B[b] for b in bs], 9.0).double()
        tok = rows_of(bs)
        part = chunked_distill(h_micro[tok], weight, targets[tok], coef_micro, teacher_hidden_N_H=teacher_hidden[tok],
                               old_logprobs_N=old[tok], **kwargs)
        part.loss.backward()
        total = total + part.loss.detach()
    assert 0 < full.kl_clipped_N.sum() < 9
    torch.testing.assert_close(total, full.loss.detach())
    torch.testing.assert_close(h_micro.grad, h_full.grad)


# ----------------------------------------------------------------------------- which seqs go to which loss
def test_coef_zero_is_grpo_and_rl_coef_zero_is_distillation_only():
    seqs = [Seq("rl", [1], [2, 3], advantage=0.5), Seq("off", [1], [4], advantage=-0.5), Seq("sft", [1], [5]),
            Seq("distill", [1], [6, 7], weight=0.5)]
    grpo = loss_groups([s for s in seqs if s.kind != "distill"], 1.0, 1.0)
    assert loss_groups(seqs, 0.0, 1.0) == grpo  # distill.coef = 0: the GRPO losses, nothing else
    assert [(k, c, [s.kind for s in g]) for k, c, g in loss_groups(seqs, 0.5, 0.0)] == [
        ("sft", 1.0, ["sft"]), ("distill", 0.5, ["distill"])]
    assert token_counts(seqs) == [3.0, 1.0, 2.0]


def test_instance_weights_update_the_pass_gap_state_of_problems_with_guided_rollouts():
    import pandas as pd

    from sgpo_lib.config.run import DistillConfig
    from sgpo_lib.method.step import instance_weights

    stats = pd.DataFrame({"problem_id": ["a", "b", "c"], "p_auto": [0.0, 1.0, 0.5], "p_guided": [0.5, 0.5, float("nan")],
                          "n_guided_graded": [2, 2, 0]}).set_index("problem_id")
    state = PassGapAlpha(0.5, 0.1, 0.8)
    w_P, rows = instance_weights(stats, DistillConfig(), state, step=3)
    assert w_P.tolist() == pytest.approx([0.6, 0.4, 0.5]) and state.alpha == pytest.approx({"a": 0.6, "b": 0.4})
    assert rows[2] == {"step": 3, "problem_id": "c", "alpha": 0.5, "p_auto": 0.5, "p_guided": None}
    w_P, _ = instance_weights(stats, DistillConfig(), state, step=4)  # a second visit moves on from the state
    assert w_P.tolist() == pytest.approx([0.7, 0.3, 0.5])
    w_P, _ = instance_weights(stats, DistillConfig(weighting="failure", gamma=1.0), state, step=5)
    assert w_P.tolist() == pytest.approx([1.0, 0.0, 0.0])  # v1: (1 - p_auto) 1[p_guided > 0]; state untouched
    assert state.alpha == pytest.approx({"a": 0.7, "b": 0.3})
    for step in (6, 7):  # stateless: the same pass gap gives the same alpha at every visit, the state stays
        w_P, rows = instance_weights(stats, DistillConfig(weighting="pass_gap_stateless"), state, step=step)
        assert w_P.tolist() == pytest.approx([0.8, 0.0, 0.0]) and rows[0]["alpha"] == pytest.approx(0.8)
    assert state.alpha == pytest.approx({"a": 0.7, "b": 0.3})


# ----------------------------------------------------------------------------- low precision
def test_low_precision_tolerance():
    hidden, weight, _, teacher_hidden, targets, coef, _ = _chunk_inputs(seed=70, n=8)
    expected = (coef.numpy() * ref_full(hidden @ weight.T, teacher_hidden @ weight.T)).sum()
    spec = DistillSpec("full", "forward", "none")
    leaves64 = [hidden.clone().requires_grad_(), weight.clone().requires_grad_()]
    loss64 = distill_dense(leaves64[0] @ leaves64[1].T, targets, coef,
                           TeacherDist.from_logits(teacher_hidden @ weight.T), spec).loss
    grads64 = torch.autograd.grad(loss64, leaves64)
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 3e-2)):
        leaves = [hidden.to(dtype).requires_grad_(), weight.to(dtype).requires_grad_()]
        out = chunked_distill(*leaves, targets, coef, spec=spec, teacher_hidden_N_H=teacher_hidden.to(dtype),
                              chunk_size=3)
        torch.testing.assert_close(out.loss.double(), torch.tensor(expected, dtype=F64), rtol=tol, atol=tol)
        for got, want in zip(torch.autograd.grad(out.loss, leaves), grads64):
            assert got.dtype == dtype
            torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
