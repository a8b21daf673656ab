"""The verifier through its workers: exact and math grading, reasons, the per-answer budget,
adversarial inputs, safety, and agreement with real labelled responses
(../shared/data/realcritic, skipped when absent). The rules themselves: test_grading_rules.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from sgpo_lib.core.paths import shared_data_dir
from sgpo_lib.core.records import Problem
from sgpo_lib.grading.check import as_number, check, half_unit
from sgpo_lib.grading.grader import REASONS, Grade, Grader, extract_answer, grade, reason_counts
from sgpo_lib.grading.pool import PACKAGE_ROOT

REALCRITIC = shared_data_dir() / "realcritic"


def _math(answer: str, pid: str = "m") -> Problem:
    return Problem(id=pid, problem="?", answer=answer, source="test", split="test")


def _exact(answer: str) -> Problem:
    return Problem(id="e", problem="?", answer=answer, source="toy", split="test", answer_kind="exact")


@pytest.fixture(scope="module")
def grader():
    with Grader(workers=2) as g:
        yield g


def test_exact_grading(grader):
    grades = grader.grade_many(["\\boxed{ 4 2 . }", "the answer is 41", "nothing"], [_exact("42")] * 3)
    assert [x.reason for x in grades] == ["correct", "wrong", "no_answer"]
    assert [x.reward for x in grades] == [1.0, 0.0, 0.0]


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


def test_problem_text_and_reference_shape_reach_the_worker(grader):
    """A problem stated in percent lets 0.625 match 62.5; a one-item reference is graded against
    the last of several final boxes, a list reference against all of them."""
    in_percent = Problem(id="p", problem="A $50 \\%$ chance ... What is the probability?", answer="62.5",
                         source="test", split="test")
    texts = ["so \\boxed{0.625}", "so \\boxed{0.625}", "price \\boxed{6.2}, quantity \\boxed{57}",
             "price \\boxed{6.2}, quantity \\boxed{57}"]
    grades = grader.grade_many(texts, [in_percent, _math("62.5"), _math("57"), _math("6.2, 57")])
    assert [(g.reason, g.pred) for g in grades] == [("correct", "0.625"), ("wrong", "0.625"), ("correct", "57"),
                                                     ("correct", "6.2, 57")]


def test_restatement_polarity_and_numeric_policy_reach_the_worker():
    """The problem statement travels with each answer (restatement, yes/no), and so does the policy."""
    asks = Problem(id="r", problem="Compute $\\sum_{k=1}^{6} k^3$.", answer="441", source="test", split="test")
    yes_no = Problem(id="y", problem="Is the series $\\sum 1/n^2$ convergent?", answer="True", source="test", split="test")
    texts = ["so \\boxed{\\sum_{k=1}^{6} k^3}", "so \\boxed{441}", "Yes, it converges by the p-test with p = 2.",
             "It diverges, since 2 > 1.", "The answer is 1.6180339", "The answer is 1.6180339"]
    problems = [asks, asks, yes_no, yes_no, _math("1.62"), _math("1.62")]
    with Grader(workers=1) as ours, Grader(workers=1, numeric_policy="rel_tol") as old:
        grades = ours.grade_many(texts, problems)
        assert old.grade_many(texts[-1:], problems[-1:])[0].reason == "wrong"
        assert ours.reasons["restated"] == 1 and ours.reasons["polarity"] == 1
    assert [(g.reason, g.reward) for g in grades] == [("restated", 0.0), ("correct", 1.0), ("correct", 1.0),
                                                      ("polarity", 0.0), ("correct", 1.0), ("correct", 1.0)]
    assert [g.pred for g in grades[2:4]] == ["Yes", ""]
    with pytest.raises(ValueError, match="numeric_policy"):
        Grader(numeric_policy="rounded")


def test_reasons_counter_and_length_guard():
    with Grader(workers=1) as g:
        grades = g.grade_many(["\\boxed{" + "1+" * 600 + "1}", "nothing", "\\boxed{5}", "\\boxed{import os}"], [_math("5")] * 4)
        assert g.reasons == Counter({"unparsed": 2, "no_answer": 1, "correct": 1})
    assert reason_counts(x.reason for x in grades) == {"grade/correct": 1, "grade/wrong": 0, "grade/no_answer": 1,
                                                        "grade/unparsed": 2, "grade/restated": 0, "grade/polarity": 0,
                                                        "grade/timeout": 0, "grade/error": 0}
    assert set(REASONS) == {"correct", "wrong", "no_answer", "unparsed", "restated", "polarity", "timeout", "error"}


def test_grade_convenience():
    assert grade("so \\boxed{7}", _exact("7")).reward == 1.0
    assert grade("so \\boxed{\\frac{14}{2}}", _math("7")).reason == "correct"


def test_stuck_worker_is_replaced_by_a_warm_fork():
    """A timeout costs the budget, not a restart: the answers after it (same batch) go on at once."""
    with Grader(budget_s=1.0, workers=1) as g:
        g.grade_many(["\\boxed{1}"], [_math("1")])  # worker started
        texts = ["\\boxed{9^{9^{9^{9}}}}", "\\boxed{\\frac{6}{3}}", "\\boxed{9^{9^{9^{9}}}}", "\\boxed{3}"]
        start = time.monotonic()
        grades = g.grade_many(texts, [_math("1"), _math("2"), _math("1"), _math("3")])
        elapsed = time.monotonic() - start
    assert [x.reason for x in grades] == ["timeout", "correct", "timeout", "correct"]
    assert g.restarts == 2
    assert elapsed < 20, f"budget not enforced: {elapsed:.1f} s for two 1 s timeouts"  # ~2.1 s quiet; 10x for a busy machine


def test_recovers_from_killed_workers(grader):
    grader.grade_many(["\\boxed{\\frac{2}{4}}"], [_math("0.5")])
    for w in list(grader._pool._workers):
        w.proc.kill()
        w.proc.wait()
    restarts = grader.restarts
    grades = grader.grade_many(["\\boxed{\\frac{2}{4}}", "\\boxed{3}"], [_math("0.5"), _math("4")])
    assert [g.reason for g in grades] == ["correct", "wrong"]
    assert grader.restarts >= restarts + 1


def test_recovers_from_killed_grading_children(grader):
    """A grading child that dies is reported by its warm parent, which forks the next one."""
    grader.grade_many(["\\boxed{1}"], [_math("1")])
    children = [w.child_pid for w in grader._pool._workers if w.ready]
    assert children
    for pid in children:
        os.kill(pid, 9)
    grades = grader.grade_many(["\\boxed{\\frac{2}{4}}", "\\boxed{3}"] * 4, [_math("0.5"), _math("4")] * 4)
    assert [g.reason for g in grades] == ["correct", "wrong"] * 4


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
    target = tmp_path / "pwned"
    for text in _payloads(target):
        pred, _ = extract_answer(text)
        assert check(pred, "12345")[0] == 0.0
    assert not target.exists()


def test_worker_audit_hook_blocks_side_effects(tmp_path):
    target = tmp_path / "pwned"
    code = ("from sgpo_lib.grading import worker as w; w._start(2048)\n"
            "import os, subprocess\n"
            f"for f in (lambda: os.system('touch {target}'), lambda: open({str(target)!r}, 'w'),\n"
            f"          lambda: subprocess.run(['touch', {str(target)!r}])):\n"
            "    try:\n        f(); print('ALLOWED')\n    except PermissionError:\n        print('BLOCKED')\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)})
    assert out.stdout.split() == ["BLOCKED"] * 3, out.stderr
    assert not target.exists()


@pytest.mark.skipif(not (REALCRITIC / "math.jsonl").exists(), reason="../shared/data/realcritic absent")
def test_math_reference_solutions_grade_correct(grader):
    from sgpo_lib.data.benchmarks import load_realcritic

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


_SCI_GOLD_RE = re.compile(r"^(-?\d+(?:\.\d+)?)e([-+]?\d+)$")


def _labeller_failure(p: Problem) -> str | None:
    """The source's systematic label differences, found from its own `response_pred` alone, all
    labelled wrong: an e-notation reference (`1.07e16`) against the same number written
    `1.07\\times10^{16}`; a list in another order (`4,8` vs `8,4`); and a plain number that
    rounds to a decimal reference at its last digit (`1.57` for `1.6`: the source's labeller
    uses a relative tolerance, `grading.numeric_policy: reference_precision` accepts it)."""
    if p.meta["response_correct"] in (True, "True"):
        return None
    src = str(p.meta.get("response_pred") or "").replace(" ", "").replace("\\,", "")
    m = _SCI_GOLD_RE.match(p.answer)
    if m and src in (f"{m.group(1)}\\times10^{{{int(m.group(2))}}}", f"{m.group(1)}\\times10^{int(m.group(2))}"):
        return "e-notation reference"
    items = src.split(",")
    if len(items) > 1 and items != p.answer.split(",") and sorted(items) == sorted(p.answer.split(",")):
        return "order of a list"
    pred, unit = as_number(str(p.meta.get("response_pred") or "")), half_unit(p.answer)
    if pred is not None and unit is not None and abs(pred[0] - as_number(p.answer)[0]) <= unit:
        return "more precise than a rounded reference"
    return None


@pytest.mark.slow
@pytest.mark.skipif(not REALCRITIC.exists(), reason="../shared/data/realcritic absent")
def test_agreement_with_realcritic_labels():
    """Agreement with the source's labels, raw and with its systematic label differences
    (`_labeller_failure`) set right. A generous budget: load must not change the figure, and
    no answer of these real responses may come near it (no timeouts at all).

    Measured with `rel_tol` (the numeric policy before 2026-12-06): raw 96.35% (39 of 1,069
    disagree), corrected 98.32%. All 39 were read by hand and are label errors by the source's
    own definition (is the final answer right): 31 labelled wrong whose final answer is right
    (20 e-notation references against the same number written `\\times 10^{k}`, 8 lists in
    another order or spacing, 3 equivalent expressions) and 8 labelled right whose final answer is
    wrong (the labeller's 1e-4 tolerance on integers and exact fractions, its x100 percent rule
    without a percent, commas deleted from lists, ...). With the default `reference_precision`
    and the final-sentence extraction: raw 95.70% (46 disagree), corrected 98.32%: 6 more are
    answers more precise than a Minerva reference rounded to two digits (`1.57` for `1.6`), which
    the source's relative tolerance labels wrong and the policy accepts (set right by the third
    rule), and 1 (`Sam took 2 more hours`, reference 2) is labelled wrong although right, where
    the last number (400, a given) used to be read. The bounds keep a margin of three rows."""
    from sgpo_lib.data.benchmarks import REALCRITIC_FILES, load_realcritic

    problems = [p for name in REALCRITIC_FILES for p in load_realcritic(name, correct_only=False)]
    assert len(problems) == 1069
    with Grader(budget_s=10.0, workers=2) as g:
        grades = g.grade_many([p.strong_response for p in problems], problems)
    assert not [p.id for p, gr in zip(problems, grades) if gr.reason == "timeout"]
    labels = [p.meta["response_correct"] in (True, "True") for p in problems]
    fixed = [label or _labeller_failure(p) is not None for p, label in zip(problems, labels)]
    raw = sum((gr.reward == 1.0) == label for gr, label in zip(grades, labels)) / len(problems)
    corrected = sum((gr.reward == 1.0) == label for gr, label in zip(grades, fixed)) / len(problems)
    assert sum(f != label for f, label in zip(fixed, labels)) < 35, "label corrections must stay few"
    assert raw >= 0.954, f"raw agreement {raw:.4f}"
    assert corrected >= 0.98, f"agreement with corrected labels {corrected:.4f} (raw {raw:.4f})"


@pytest.fixture(scope="module")
def adversarial_texts():
    tower = "\\boxed{" + "9^{" * 50 + "9" + "}" * 50 + "}"
    return {
        "1,000 unclosed boxes in 100 KB": "\\boxed{" * 1000 + "so we try again. " * 5500,
        "5 MB response": "we try again. " * 370_000 + "\\boxed{2}",
        "null bytes": "\x00" * 10_000 + "\\boxed{2\x00}",
        "lone surrogates": "\ud800\udfff" * 5000 + "\\boxed{\ud8002}",
        "nested exponent tower": tower,
        "power tower 9^9^9^9": "\\boxed{9^{9^{9^{9}}}}",
        "giant factorial": "\\boxed{(10^{9})!}",
        "deep braces": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    }


def test_adversarial_inputs_each_graded_within_the_budget(adversarial_texts, tmp_path):
    budget = 2.0
    with Grader(budget_s=budget, workers=2) as g:
        g.grade_many(["\\boxed{1}"], [_math("1")])  # workers started
        texts = {**adversarial_texts, **{f"payload {i}": t for i, t in enumerate(_payloads(tmp_path / "pwned"))}}
        texts["reward hack"] = "\\boxed{(lambda: 0).__globals__['os'].system('ls')}"
        for name, text in texts.items():
            start = time.monotonic()
            [result] = g.grade_many([text], [_math("12345" if name.startswith("payload") else "0" if name == "reward hack" else "2")])
            elapsed = time.monotonic() - start
            assert elapsed < budget + 1.0, f"{name}: {elapsed:.2f} s"
            assert result.reason in REASONS, name
            if name.startswith("payload") or name == "reward hack":
                assert result.reward == 0.0, name
    assert result.reason == "unparsed"
    assert not (tmp_path / "pwned").exists()



# (name, problem, response, reference): the answer restates the question's own expression
RESTATEMENTS = [
    ("sum", "Compute $\\sum_{n=1}^{10} n^2$.", "so \\boxed{\\sum_{n=1}^{10} n^2}", "385"),
    ("sum, other notation", "Compute $\\sum_{n=1}^{10} n^2$.", "\\boxed{\\displaystyle\\sum\\limits_{n = 1}^{10} n^{2}}", "385"),
    ("product", "Evaluate $\\prod_{k=2}^{5} \\left(1 - \\frac{1}{k}\\right)$.", "\\boxed{\\prod_{k=2}^5 (1-\\frac1k)}", "\\frac15"),
    ("trigonometric product", "Compute $\\cos 20^\\circ \\cos 40^\\circ \\cos 80^\\circ$.",
     "\\boxed{\\cos 20^{\\circ}\\cos 40^{\\circ}\\cos 80^{\\circ}}", "\\frac18"),
    ("integral", "Evaluate $\\int_0^{\\pi} \\sin x \\, dx$.", "\\boxed{\\int_{0}^{\\pi}\\sin x\\,dx}", "2"),
    ("limit", "Find $\\lim_{n\\to\\infty} \\left(1+\\frac{1}{n}\\right)^n$.", "\\boxed{\\lim_{n \\rightarrow \\infty}(1+\\frac{1}{n})^{n}}", "e"),
    ("binomial", "What is $\\dbinom{12}{4}$?", "\\boxed{\\binom{12}{4}}", "495"),
    ("binomial as choose", "What is $\\dbinom{12}{4}$?", "\\boxed{{12 \\choose 4}}", "495"),
    ("factorials", "What is $\\frac{10!}{7!\\,3!}$?", "\\boxed{\\frac{10!}{7!3!}}", "120"),
    ("nested arithmetic", "Compute $(3 + 4 \\cdot 5)^2 - 2^{8}$.", "\\boxed{(3+4\\cdot5)^2-2^8}", "273"),
    ("plain-text sum", "Compute sum_{n=1}^{10} n^2.", "The answer is sum_{n=1}^{10} n^2.", "385"),
    ("plain-text sum against LaTeX", "Compute $\\sum_{k=1}^{5} k^2$.", "The final answer is sum_(k=1)^5 k^2", "55"),
    ("plain-text binomial", "Find C(12, 4).", "The final answer is binom(12,4)", "495"),
    ("plain-text arithmetic", "What is 17*23 + 4?", "The answer is 17 * 23 + 4.", "395"),
    ("unicode root of a power", "Compute √(2^10).", "The answer is √(2^10).", "32"),
]
# (name, problem, response, reference): near-misses that stay correct
NEAR_MISSES = [
    ("simplified expression", "Simplify $\\frac{x^2-1}{x-1}$.", "\\boxed{x+1}", "x+1"),
    ("simplified radical", "Simplify $\\sqrt{72}$.", "\\boxed{6\\sqrt{2}}", "6\\sqrt2"),
    ("closed form of the sum", "Compute $\\sum_{n=1}^{10} n^2$.", "\\boxed{\\frac{10 \\cdot 11 \\cdot 21}{6}}", "385"),
    ("given value", "The roots of $x^2-5x+6$ are $2$ and $3$. What is the larger root?", "\\boxed{3}", "3"),
    ("given fraction", "A tank is $\\frac{3}{4}$ full. What fraction of it is full?", "\\boxed{\\frac34}", "\\frac{3}{4}"),
    ("given radical", "The number $1+\\sqrt{2}$ is a root of $x^2 - 2x - 1$. Which root exceeds 2?", "\\boxed{1+\\sqrt{2}}",
     "1+\\sqrt2"),
    ("one of the question's own terms", "Which is larger, $2^{10}$ or $10^3$?", "\\boxed{2^{10}}", "2^{10}"),
    ("given in scientific notation", "Light travels at $3 \\times 10^8$ m/s. What is its speed in m/s?",
     "\\boxed{3\\times10^8}", "3e8"),
]


def test_restatements_and_near_misses_one_per_call_within_the_budget():
    """No restatement is rewarded (reason "restated"), every near-miss is: each answer graded
    alone, within the 2 s budget (+1 s for a busy machine, as above)."""
    budget = 2.0
    with Grader(budget_s=budget, workers=2) as g:
        g.grade_many(["\\boxed{1}"], [_math("1")])  # workers started
        for cases, expected in ((RESTATEMENTS, "restated"), (NEAR_MISSES, "correct")):
            for name, question, text, answer in cases:
                problem = Problem(id=name, problem=question, answer=answer, source="test", split="test")
                start = time.monotonic()
                [result] = g.grade_many([text], [problem])
                elapsed = time.monotonic() - start
                assert elapsed < budget + 1.0, f"{name}: {elapsed:.2f} s"
                assert result.reason == expected, (name, result)


def test_grade_reason_table_for_the_report():
    import pandas as pd

    from sgpo_lib.analysis.results import grade_reasons

    metrics = {"a": pd.DataFrame([{"step": 1, "grade/correct": 2, "grade/timeout": 1},
                                  {"step": 2, "grade/correct": 3, "grade/timeout": 0}]),
               "b": pd.DataFrame([{"step": 1, "loss": 0.1}])}
    table = grade_reasons(metrics)
    assert table.loc["a"].to_dict() == {"correct": 5, "timeout": 1}
    assert table.loc["b"].to_dict() == {"correct": 0, "timeout": 0}
