"""The verifier's rules, each on hand-made inputs, run in this process (no workers):
extraction (`sgpo_lib.grading.extract`) and equivalence (`sgpo_lib.grading.check`)."""

from __future__ import annotations

import time

import pytest

from sgpo_lib.grading.check import as_number, check, looks_unparsed, mentions_percent, plain_subscripts
from sgpo_lib.grading.extract import answer_for, clean_text, extract_answer, extract_answers


@pytest.mark.parametrize("text, expected", [
    ("x = \\boxed{\\frac{1}{2}}", ("\\frac{1}{2}", "boxed")),
    ("first \\boxed{1}, finally \\boxed{\\sqrt{\\frac{a}{b}}} done", ("1, \\sqrt{\\frac{a}{b}}", "boxed")),
    ("first \\boxed{1}.\nfinally \\boxed{\\sqrt{\\frac{a}{b}}} done", ("\\sqrt{\\frac{a}{b}}", "boxed")),
    ("\\boxed{\\text{outer \\boxed{inner}}}", ("\\text{outer \\boxed{inner}}", "boxed")),
    ("so \\fbox{7}.", ("7", "boxed")),
    ("\\boxed{3} and an unclosed \\boxed{4", ("3", "boxed")),
    ("an unclosed \\boxed{4 then \\boxed{5}", ("5", "boxed")),
    ("escaped \\boxed{\\{1, 2\\}}", ("\\{1, 2\\}", "boxed")),
    ("reasoning 3+4=7\n#### 1,240", ("1240", "hash")),
    ("The final answer is $\\frac{3}{4}$.", ("\\frac{3}{4}", "answer_is")),
    ("Final Answer: **42**", ("42", "answer_is")),
    ("So the answer is 3.5. Check: 7/2 = 3.5 holds.", ("3.5", "answer_is")),
    ("we get 3, then 17.5 apples", ("17.5", "last_expression")),
    ("no answer at all", (None, "none")),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Final Answer: The final answer is $\\frac{\\pi}{3}$. I hope it is correct.", "\\frac{\\pi}{3}"),
    ("Final Answer: The final answer is $(2, -1)$. I hope it is correct.", "(2, -1)"),
    ("Final Answer: The final answer is 12. I hope it is correct.", "12"),
    ("Final answer: the answer is \\(x^2 + 1\\).", "x^2 + 1"),
])
def test_final_answer_sentence_format(text, expected):
    assert extract_answer(text) == (expected, "answer_is")


@pytest.mark.parametrize("text, expected", [
    ("Rationalising, the distance is $-\\frac{2\\sqrt{3}}{3}$.", "-\\frac{2\\sqrt{3}}{3}"),
    ("Rationalising, the distance is -2√3/3.", "-2\\sqrt3/3"),
    ("so the angle is $\\theta = 8\\pi/5$.", "8\\pi/5"),
    ("so the angle is 8π/5", "8\\pi/5"),
    ("the area is 2πr", "2\\pi"),
    ("Adding up, x = 1,234.", "1234"),
    ("(so the total is 12).", "12"),
])
def test_no_box_fallback_takes_the_whole_last_expression(text, expected):
    pred, how = extract_answer(text)
    assert (pred, how) == (expected, "last_expression")


def test_only_the_tail_is_read_and_cleaned():
    assert extract_answer("\\boxed{1}" + " filler" * 2000 + " so 7", tail_chars=1000) == ("7", "last_expression")
    assert clean_text("\uff14\uff12") == "42"  # full-width digits
    assert extract_answer("答案是 \\boxed{\uff14\uff12}") == ("42", "boxed")
    assert extract_answer("\\boxed{1\x00\ud8002}")[0] == "1?2"


@pytest.mark.parametrize("pred, gold, reason", [
    ("42", "42", "correct"),
    ("1,240", "1240", "correct"),
    ("\\$1,240", "1240", "correct"),
    ("0.5", "\\frac{1}{2}", "correct"),
    ("17.5", "17.5\\%", "correct"),  # percent sign vs bare number
    ("17.5\\%", "17.5", "correct"),
    ("0.175", "17.5\\%", "correct"),  # x% = x/100
    ("0.175", "17.5", "wrong"),  # no percent sign: no factor 100
    ("85.71", "\\frac{600}{7}", "correct"),  # relative 1e-4
    ("85.7", "\\frac{600}{7}", "wrong"),
    ("10001", "10000", "wrong"),  # two integers: exact
    ("1.07 \\times 10^{16} \\text{ m}", "1.07e16", "correct"),
    ("2.89 \\times 10^{-19}", "2.88e-19", "wrong"),
    ("\\frac12 \\le x \\le 8", "[\\frac{1}{2}, 8]", "correct"),  # inequality vs interval
    ("[\\frac{1}{2}, 8]", "\\frac{1}{2} \\le x \\le 8", "correct"),
    ("\\frac12 < x \\le 8", "[\\frac{1}{2}, 8]", "wrong"),
    ("x < -1 \\text{ or } x \\geq 3", "(-\\infty, -1) \\cup [3, \\infty)", "correct"),  # union
    ("(-\\infty, -1) \\cup [3, \\infty)", "(-\\infty,-1)\\cup[3,\\infty)", "correct"),
    ("(-\\infty, -1] \\cup [3, \\infty)", "(-\\infty,-1)\\cup[3,\\infty)", "wrong"),
    ("x = \\frac{\\pi}{4} + k\\pi", "-\\frac{3\\pi}{4}+n\\pi", "correct"),  # same family, other offset
    ("\\frac{\\pi}{4} + 2k\\pi", "\\frac{\\pi}{4}+k\\pi", "wrong"),  # other period
    ("\\frac{\\pi}{6} + k\\pi, \\frac{5\\pi}{6} + k\\pi", "\\frac{5}{6}\\pi+\\pi n,\\frac{7}{6}\\pi+\\pi n", "correct"),
    ("\\frac{\\pi}{3} + k\\pi", "\\frac{\\pi}{4}+k\\pi", "wrong"),
    ("1, 2", "\\{2, 1\\}", "correct"),
    ("\\frac{1}{a} \\sinh(at)", "\\frac{1}{2a}(e^{at}-e^{-at})", "correct"),  # hyperbolic vs exp
    ("\\frac{1}{a} \\cosh(at)", "\\frac{1}{2a}(e^{at}-e^{-at})", "wrong"),
    ("\\frac{t}{m}", "\\frac{1}{m}t", "correct"),  # a trailing letter is a variable, not a unit
    ("(lambda: 0).__globals__['os'].system('ls')", "0", "unparsed"),
    ("0 and then some more words", "0", "unparsed"),
    ("\\text{Monday}", "Monday", "correct"),
    # named subscripts: a reference with `L_{\\odot}` or `\\text{}` in a subscript parses (it was "error")
    ("\\frac{10^8 L_{\\odot}}{7 c^2 M_{\\odot}^6} M^6", "\\frac{10^{5}L_{\\odot}}{0.007c^{2}M_{\\odot}^{6}}M^{6}", "correct"),
    ("\\frac{10^8 L_{\\odot}}{7 c^2 M_{\\odot}^6} M^5", "\\frac{10^{5}L_{\\odot}}{0.007c^{2}M_{\\odot}^{6}}M^{6}", "wrong"),
    ("\\frac{\\lambda_{\\text{red}}}{\\sqrt{2}}", "\\lambda_{\\text {red}}/\\sqrt{2}", "correct"),
    ("\\frac{\\lambda_{\\text{blue}}}{\\sqrt{2}}", "\\lambda_{\\text {red}}/\\sqrt{2}", "wrong"),
    ("m_{\\max} = n^2 - n - 1", "m_{\\max}=n^{2}-n-1", "correct"),
    # e-notation and `\\times 10^{k}` are one number, both ways, with or without a unit
    ("4.5e33", "4.5 \\times 10^{33} \\, \\text{erg/s}", "correct"),
    ("10^{-8} \\text{ F}", "1e-8", "correct"),
    ("3 \\times 10^8", "3e9", "wrong"),
    # units of up to three groups, joined by `\\cdot` or `\\,`, are no leftover text
    ("7.6 \\times 10^{37} \\text{ erg} \\cdot \\text{s}^{-1}", "7.6e37", "correct"),
    ("11000 \\text{ kcal} \\text{m}^{-2} \\text{yr}^{-1}", "15000", "wrong"),
])
def test_equivalence_rules(pred, gold, reason):
    assert check(pred, gold) == (float(reason == "correct"), reason)


def test_exact_kind_and_numbers():
    assert check(" 4 2 .", "42", "exact") == (1.0, "correct")
    assert check("41", "42", "exact") == (0.0, "wrong")
    assert as_number("-\\frac{3}{4}")[0] == -0.75
    assert as_number("x + 1") is None
    assert not looks_unparsed("(2, 32) \\text{ and } (8, 18)")
    assert not looks_unparsed("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}")


def test_extraction_is_linear_in_the_tail():
    """1,000 unclosed boxes and a long degenerate rollout: the old scanner was quadratic."""
    for text in ("\\boxed{" * 1000 + "x" * 90_000, "\\boxed{" * 8192, "$" * 8191 + "\\(" * 4000, "{" * 8192):
        start = time.perf_counter()
        extract_answer(text)
        assert time.perf_counter() - start < 1.0


def test_named_subscripts_become_plain_symbols():
    assert plain_subscripts("M_{\\text {core }} + \\lambda_{\\max}") == "M_{core} + \\lambda_{max}"
    for untouched in ("x_{1} + a_{n+1}", "\\sum_{\\alpha} x", "\\int_{\\pi}^{2\\pi} t", "\\log_{\\frac12} x"):
        assert plain_subscripts(untouched) == untouched


@pytest.mark.parametrize("pred, gold, problem, reason", [
    ("0.625", "62.5", "A $50 \\%$ chance ... what is the probability?", "correct"),  # fraction of one = percentage
    ("62.5", "0.625", "What percentage of the apples are red?", "correct"),
    ("0.625", "62.5", "What is the probability?", "wrong"),  # no percent in the problem: no factor 100
    ("1", "100", "A 20% discount ... how many ways?", "wrong"),  # integers are counts, never fractions of one
    ("0.6", "62.5", "A 50% chance ...", "wrong"),
    ("62.5\\%", "0.625", "What is the probability?", "correct"),  # a percent sign decides alone
])
def test_percent_scale_in_a_problem_stated_in_percent(pred, gold, problem, reason):
    assert check(pred, gold, percent_problem=mentions_percent(problem)) == (float(reason == "correct"), reason)


@pytest.mark.parametrize("text, gold, expected", [
    ("so the price is \\boxed{6.2} and the quantity is \\boxed{57}.", "57", "57"),  # one item: the last box
    ("so the price is \\boxed{6.2} and the quantity is \\boxed{57}.", "6.2, 57", "6.2, 57"),
    ("the roots are \\boxed{1} and \\boxed{5}", "\\{1, 5\\}", "1, 5"),
    ("the roots are \\boxed{1} and \\boxed{5}", "1,240", "5"),  # a thousands separator is no list
    ("\\boxed{3}.\nSo \\boxed{4}", "4", "4"),
])
def test_several_final_boxes_against_the_reference(text, expected, gold):
    parts, how = extract_answers(text)
    assert how == "boxed" and answer_for(parts, gold) == expected


def test_equations_in_other_symbols_are_wrong_without_solving():
    """math-verify `solve`s two equations for all their symbols before calling them different:
    about 20 s for this pair on a busy 2-core machine, and more for longer ones."""
    pred = "\\frac{d^2y}{dt^2} - (g/l) * sin(y) = f(t) / (m * l)"
    gold = "m l \\ddot{y}(t) + m g \\sin y(t) = u(t) \\cos y(t)"
    check("y = 1", "y = 1")  # math-verify imported
    start = time.perf_counter()
    assert check(pred, gold) == (0.0, "wrong")
    assert time.perf_counter() - start < 1.0  # ~1 ms quiet
    assert check("y = 2x + 1", "2x - y + 1 = 0") == (1.0, "correct")  # same symbols: still compared
