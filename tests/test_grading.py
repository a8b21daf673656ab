"""The verifier: answer extraction, exact and math-verify grading, hard timeouts, safety, and
agreement with real labelled responses (../shared/data/realcritic, skipped when absent)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from sgpo_lib.grading import Grade, Grader, extract_answer, grade, normalize_exact
from sgpo_lib.grading_pool import WORKER_PATH
from sgpo_lib.paths import shared_data_dir
from sgpo_lib.records import Problem

REALCRITIC = shared_data_dir() / "realcritic"


def _math(answer: str, pid: str = "m") -> Problem:
    return Problem(id=pid, problem="?", answer=answer, source="test", split="test")


def _exact(answer: str) -> Problem:
    return Problem(id="e", problem="?", answer=answer, source="toy", split="test", answer_kind="exact")


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout_s=3.0, workers=2) as g:
        yield g


@pytest.mark.parametrize("text, expected", [
    ("x = \\boxed{\\frac{1}{2}}", ("\\frac{1}{2}", "boxed")),
    ("first \\boxed{1}, finally \\boxed{\\sqrt{\\frac{a}{b}}} done", ("\\sqrt{\\frac{a}{b}}", "boxed")),
    ("\\boxed{\\text{outer \\boxed{inner}}}", ("\\text{outer \\boxed{inner}}", "boxed")),
    ("so \\fbox{7}.", ("7", "fbox")),
    ("\\boxed{3} and an unclosed \\boxed{4", ("3", "boxed")),
    ("reasoning 3+4=7\n#### 1,240", ("1240", "hash")),
    ("The final answer is $\\frac{3}{4}$.", ("\\frac{3}{4}", "answer_is")),
    ("Final Answer: **42**", ("42", "answer_is")),
    ("So the answer is 3.5. Check: 7/2 = 3.5 holds.", ("3.5", "answer_is")),
    ("we get 3, then 17.5 apples", ("17.5", "last_number")),
    ("no answer at all", (None, "none")),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_exact_grading_runs_in_process():
    g = Grader()
    grades = g.grade_many(["\\boxed{ 4 2 . }", "the answer is 41", "nothing"], [_exact("42")] * 3)
    assert [x.reason for x in grades] == ["correct", "wrong", "no_answer"]
    assert [x.reward for x in grades] == [1.0, 0.0, 0.0]
    assert g._pool is None, "exact answers must not start math-verify workers"
    assert normalize_exact("x = 3.") == "x=3"


def test_math_equivalence(grader):
    cases = [
        ("\\boxed{0.5}", "\\frac{1}{2}", "correct"),
        ("\\boxed{\\dfrac{1}{2}}", "\\frac12", "correct"),
        ("\\boxed{(1, 2)}", "(1,2)", "correct"),
        ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", "correct"),
        ("\\boxed{1.07 \\times 10^{16}}", "1.07e16", "correct"),
        ("\\boxed{2.89 \\times 10^{-19}}", "2.88e-19", "wrong"),  # math-verify alone says equal
        ("\\boxed{3}", "4", "wrong"),
        ("\\boxed{x^2+1}", "x^2+2", "wrong"),
    ]
    grades = grader.grade_many([t for t, _, _ in cases], [_math(a) for _, a, _ in cases])
    assert [g.reason for g in grades] == [r for _, _, r in cases]
    assert grades[0] == Grade(1.0, "correct", "0.5")


def test_reason_counter_and_length_guard():
    with Grader(timeout_s=3.0, workers=1, max_answer_chars=50) as g:
        g.grade_many(["\\boxed{" + "1+" * 40 + "1}", "nothing", "\\boxed{5}"], [_math("5")] * 3)
        assert g.reasons == Counter({"too_long": 1, "no_answer": 1, "correct": 1})


def test_grade_convenience():
    assert grade("so \\boxed{7}", _exact("7")).reward == 1.0
    assert grade("so \\boxed{\\frac{14}{2}}", _math("7")).reason == "correct"


def test_stuck_worker_is_killed_and_replaced():
    with Grader(timeout_s=1.0, workers=1) as g:
        texts = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{\\frac{6}{3}}"]
        start = time.monotonic()
        grades = g.grade_many(texts, [_math("1"), _math("2")])
        elapsed = time.monotonic() - start
    assert [x.reason for x in grades] == ["timeout", "correct"]
    assert g.restarts == 1
    assert elapsed < 15, f"timeout not enforced: {elapsed:.1f} s"


def test_recovers_from_killed_workers(grader):
    grader.grade_many(["\\boxed{\\frac{2}{4}}"], [_math("0.5")])
    for w in list(grader._pool._workers):
        w.proc.kill()
        w.proc.wait()
    restarts = grader.restarts
    grades = grader.grade_many(["\\boxed{\\frac{2}{4}}", "\\boxed{3}"], [_math("0.5"), _math("4")])
    assert [g.reason for g in grades] == ["correct", "wrong"]
    assert grader.restarts >= restarts + 1


def _payloads(target) -> list[str]:
    t = str(target)
    return [
        f"\\boxed{{__import__('os').system('touch {t}')}}",
        f"The answer is __import__('os').system('touch {t}')",
        f"#### exec(\"open('{t}', 'w').write('x')\")",
        f"\\boxed{{(lambda: __import__('subprocess').run(['touch', '{t}']))()}}",
        f"\\boxed{{eval(\"open('{t}','w')\")}}",
        f"\\boxed{{x = Symbol('x').__class__.__init__.__globals__['os'].system('touch {t}')}}",
        f"1 + __import__('os').system('touch {t}') = 2",
        f"\\boxed{{\\text{{__import__('os').system('touch {t}')}}}}",
    ]


def test_model_text_is_never_executed(tmp_path, grader):
    target = tmp_path / "pwned"
    texts = _payloads(target)
    grades = grader.grade_many(texts, [_math("12345")] * len(texts))
    assert all(g.reward == 0.0 for g in grades)
    grader.grade_many(texts, [_math(t) for t in reversed(texts)])  # payloads as references too
    grader.grade_many(texts, [_exact("1")] * len(texts))
    assert not target.exists()


def test_math_verify_itself_does_not_eval_payloads(tmp_path):
    """The worker's checker in *this* process, without the audit hook: still nothing runs."""
    sys.path.insert(0, str(WORKER_PATH.parent))
    try:
        from grading_worker import check
    finally:
        sys.path.remove(str(WORKER_PATH.parent))
    target = tmp_path / "pwned"
    for text in _payloads(target):
        pred, _ = extract_answer(text)
        assert check(pred, "12345")["ok"] is False
    assert not target.exists()


def test_worker_audit_hook_blocks_side_effects(tmp_path):
    target = tmp_path / "pwned"
    code = (f"import sys; sys.path.insert(0, {str(WORKER_PATH.parent)!r}); import grading_worker as w; w._start(2048)\n"
            "import os, subprocess\n"
            f"for f in (lambda: os.system('touch {target}'), lambda: open({str(target)!r}, 'w'),\n"
            f"          lambda: subprocess.run(['touch', {str(target)!r}])):\n"
            "    try:\n        f(); print('ALLOWED')\n    except PermissionError:\n        print('BLOCKED')\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["BLOCKED"] * 3, out.stderr
    assert not target.exists()


@pytest.mark.skipif(not (REALCRITIC / "math.jsonl").exists(), reason="../shared/data/realcritic absent")
def test_math_reference_solutions_grade_correct(grader):
    from sgpo_lib.data import load_realcritic

    problems = load_realcritic("math", correct_only=False)
    solutions = [p.meta["orig_solution"] for p in problems]
    own = grader.grade_many(solutions, problems)
    wrong_own = [(p.id, g.pred, p.answer) for p, g in zip(problems, own) if g.reward != 1.0]
    assert len(wrong_own) <= 0.01 * len(problems), wrong_own
    # against another problem's (different) answer: every 4th solution, to keep the test fast
    picked = range(0, len(problems), 4)
    others = [next(q for q in problems[i + 1:] + problems if q.answer != problems[i].answer) for i in picked]
    cross = grader.grade_many([solutions[i] for i in picked], others)
    assert sum(g.reward for g in cross) <= 0.01 * len(cross), [g for g in cross if g.reward]


@pytest.mark.slow
@pytest.mark.skipif(not REALCRITIC.exists(), reason="../shared/data/realcritic absent")
def test_agreement_with_realcritic_labels():
    from sgpo_lib.data import REALCRITIC_FILES, load_realcritic

    problems = [p for name in REALCRITIC_FILES for p in load_realcritic(name, correct_only=False)]
    assert len(problems) == 1069
    with Grader(timeout_s=5.0, workers=2) as g:
        grades = g.grade_many([p.strong_response for p in problems], problems)
    labels = [p.meta["response_correct"] in (True, "True") for p in problems]
    agree = sum((gr.reward == 1.0) == label for gr, label in zip(grades, labels)) / len(problems)
    assert agree >= 0.94, f"agreement {agree:.3f}"
