"""The KL clip forms (`distill.kl_clip_mode`) against float64 references written from their definitions.

The references work in probability space with Python loops and share no code with
`sgpo_lib.method.distill_terms`: the entries `e_v` of each token's KL, their derivatives
`d e_v / d z_j` wrt the student logits (softmax calculus), and each form's value and gradient
from those. Chunked = dense for every form is in `test_losses.test_chunked_equals_dense`.
"""

import math

import numpy as np
import pytest
import torch

from sgpo_lib.method.distill import DistillSpec, chunked_distill, distill_dense, distill_metrics
from sgpo_lib.method.distill_terms import TeacherDist

F64 = torch.float64
N, V = 6, 5
MODES = ("token_min", "token_mask", "token_scale", "entry_clamp")


def softmax(row):
    e = [math.exp(x - max(row)) for x in row]
    return [x / sum(e) for x in e]


def entries_and_derivatives(student_row, teacher_row, reverse):
    """Entries `e_v` of KL(q||p) (forward: `q_v log(q_v/p_v)`) or KL(p||q) (reverse: `p_v log(p_v/q_v)`),
    and `D[v][j] = d e_v / d z_j` with `d p_v / d z_j = p_v (1[v=j] - p_j)`."""
    p, q = softmax(list(student_row)), softmax(list(teacher_row))
    if not reverse:
        e = [q[v] * math.log(q[v] / p[v]) for v in range(V)]
        d = [[-q[v] * ((v == j) - p[j]) for j in range(V)] for v in range(V)]
    else:
        e = [p[v] * math.log(p[v] / q[v]) for v in range(V)]
        d = [[p[v] * ((v == j) - p[j]) * (math.log(p[v] / q[v]) + 1.0) for j in range(V)] for v in range(V)]
    return e, d


def reference(student, teacher, coef, mode, delta, reverse):
    """(loss, clipped per token, l'_t per token, gradient (N, V)) of `mode`, from the definitions."""
    terms, clipped, grads = [], [], []
    for t in range(N):
        e, d = entries_and_derivatives(student[t], teacher[t], reverse)
        kl, grad_kl = sum(e), [sum(d[v][j] for v in range(V)) for j in range(V)]
        if mode == "entry_clamp":
            kept = [v for v in range(V) if e[v] <= delta]
            terms.append(sum(e[v] if v in kept else delta for v in range(V)))
            clipped.append(len(kept) < V)
            grads.append([sum(d[v][j] for v in kept) for j in range(V)])
            continue
        clipped.append(kl > delta)
        terms.append((0.0 if kl > delta else kl) if mode == "token_mask" else min(kl, delta))
        factor = 1.0 if kl <= delta else (delta / kl if mode == "token_scale" else 0.0)
        grads.append([factor * g for g in grad_kl])
    scale = N / (N - sum(clipped)) if mode == "token_mask" else 1.0  # masked tokens leave the normaliser
    loss = scale * sum(coef[t] * terms[t] for t in range(N))
    grad = [[scale * coef[t] * g for g in grads[t]] for t in range(N)]
    return loss, np.array(clipped), np.array(terms), np.array(grad)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, V, generator=g, dtype=F64) * 2.0, torch.randn(N, V, generator=g, dtype=F64) * 2.0


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("mode", MODES)
def test_kl_clip_form_reference(logits, mode, direction):
    """Value, which tokens, l'_t and the gradient of each form; delta clips some tokens, not all."""
    student, teacher = logits
    reverse = direction == "reverse"
    per_entry = [entries_and_derivatives(s, t, reverse)[0] for s, t in zip(student.tolist(), teacher.tolist())]
    size = (lambda e: max(e)) if mode == "entry_clamp" else sum  # noqa: E731  what the threshold reads
    delta = float(np.median([size(e) for e in per_entry]))
    coef = torch.rand(N, generator=torch.Generator().manual_seed(2), dtype=F64)
    loss, clipped, terms, grad = reference(student.tolist(), teacher.tolist(), coef.tolist(), mode, delta, reverse)
    assert 0 < clipped.sum() < N
    leaf = student.clone().requires_grad_()
    out = distill_dense(leaf, torch.zeros(N, dtype=torch.long), coef, TeacherDist.from_logits(teacher),
                        DistillSpec("full", direction, kl_clip=delta, kl_clip_mode=mode))
    torch.testing.assert_close(out.loss, torch.tensor(loss, dtype=F64))
    assert out.kl_clipped_N.tolist() == clipped.tolist()
    torch.testing.assert_close(out.kl_term_N, torch.tensor(terms, dtype=F64))
    torch.testing.assert_close(out.per_token_N, torch.tensor([sum(e) for e in per_entry], dtype=F64))  # l_t
    torch.testing.assert_close(torch.autograd.grad(out.loss, leaf)[0], torch.tensor(grad, dtype=F64))
    metrics = distill_metrics(out, torch.ones(N, dtype=torch.bool))
    assert metrics["distill/kl_clip_frac"] == pytest.approx(clipped.mean())
    assert metrics["distill/kl_negative_frac"] == pytest.approx(float(np.mean(terms < 0)))


def test_token_scale_has_token_min_value_and_a_scaled_gradient(logits):
    student, teacher = logits
    runs = {}
    for mode in ("token_min", "token_scale", None):
        leaf = student.clone().requires_grad_()
        spec = DistillSpec("full", kl_clip=None if mode is None else 1.0, kl_clip_mode=mode or "token_min")
        out = distill_dense(leaf, torch.zeros(N, dtype=torch.long), torch.ones(N, dtype=F64),
                            TeacherDist.from_logits(teacher), spec)
        runs[mode] = (out, torch.autograd.grad(out.loss, leaf)[0])
    (mini, g_min), (scaled, g_scaled), (free, g_free) = runs["token_min"], runs["token_scale"], runs[None]
    torch.testing.assert_close(scaled.loss, mini.loss)
    c = scaled.kl_clipped_N
    assert 0 < c.sum() < N and torch.all(g_min[c] == 0) and torch.all(g_scaled[c].abs().sum(-1) > 0)
    torch.testing.assert_close(g_scaled[c], g_free[c] * (1.0 / free.per_token_N[c])[:, None])  # direction kept


def test_entry_clamp_can_make_a_token_negative():
    """q = (0.9, 0.1), p = (0.1, 0.9): entries 0.9 log 9 and 0.1 log(1/9); clamped at 0.1 the sum is < 0."""
    teacher = torch.tensor([[math.log(0.9), math.log(0.1)], [0.0, 0.0]], dtype=F64)
    student = torch.tensor([[math.log(0.1), math.log(0.9)], [0.0, 0.0]], dtype=F64)
    out = distill_dense(student, torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=F64),
                        TeacherDist.from_logits(teacher), DistillSpec("full", kl_clip=0.1, kl_clip_mode="entry_clamp"))
    want = 0.1 + 0.1 * math.log(0.1 / 0.9)
    torch.testing.assert_close(out.kl_term_N, torch.tensor([want, 0.0], dtype=F64))
    assert out.per_token_N[0] > 0 > out.kl_term_N[0]
    assert distill_metrics(out, torch.ones(2, dtype=torch.bool))["distill/kl_negative_frac"] == pytest.approx(0.5)


@pytest.mark.parametrize("mode", MODES)
def test_sampled_is_never_kl_clipped(mode):
    g = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(7, 4, generator=g, dtype=F64), torch.randn(V, 4, generator=g, dtype=F64)
    targets = torch.randint(0, V, (7,), generator=g)
    out = chunked_distill(hidden, weight, targets, torch.full((7,), 1 / 7, dtype=F64),
                          spec=DistillSpec("sampled", kl_clip=0.01, kl_clip_mode=mode), chunk_size=3)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(hidden @ weight.T, targets))
    assert not out.kl_clipped_N.any()


def test_unknown_kl_clip_mode_raises():
    with pytest.raises(ValueError, match="distill.kl_clip_mode='token_max' is not defined"):
        DistillSpec(kl_clip_mode="token_max")


def test_the_spec_follows_the_config():
    """`DistillSpec.from_config` carries every `distill.*` choice the loss reads (the trainer builds its spec so)."""
    from sgpo_lib.config.run import DistillConfig

    spec = DistillSpec.from_config(DistillConfig(direction="reverse", kl_clip=0.5, kl_clip_mode="entry_clamp",
                                                 proximal="is_clip", is_clip_cap=3.0))
    assert spec == DistillSpec("full", "reverse", "is_clip", 0.2, 3.0, None, 0.5, "entry_clamp")
    assert DistillSpec.from_config(DistillConfig(estimator="topk", topk=8)).topk == 8  # computed from hidden states
    engine = DistillConfig(estimator="topk", topk=8, teacher="engine")
    assert DistillSpec.from_config(engine).topk is None  # the engine's top-k comes with the rollouts
