"""Answers stated without a box the way chatty and theorem-style answers state them
(`sgpo_lib.grading.sentence`, `sgpo_lib.grading.extract`, `sgpo_lib.grading.check`), on hand-made
sentences: scientific notation in any spelling, rates and unit groups after a number, answer
labels and markdown headings, lists and alternatives, equation references, answers without a
digit, diagram code after the answer. Each rule has near-misses that must stay wrong."""

from __future__ import annotations

import time

import pytest

from sgpo_lib.grading.check import check
from sgpo_lib.grading.extract import extract_answer
from sgpo_lib.grading.worker import grade_item


def _graded(text: str, gold: str, problem: str = "") -> tuple[str, str]:
    result = grade_item({"text": text, "gold": gold, "problem": problem}, 8192)
    return result["reason"], result["pred"]


@pytest.mark.parametrize("text, gold, reason", [
    ("The rate constant is 3.2e-5 s^-1.", "3.2 \\times 10^{-5}", "correct"),
    ("The rate constant is 3.2 × 10^-5 per second.", "3.2e-5", "correct"),
    ("So the answer is 3.2*10^(-5).", "3.2e-5", "correct"),
    ("**Final Answer:** 3.2 x 10^-5 m", "3.2 \\times 10^{-5}", "correct"),
    ("The energy is about 2.1 \\times 10^{3} J.", "2100", "correct"),
    ("So the result is 2.5 x 10^3 Hz", "2500", "correct"),
    ("There will be 4.4e7 ferrets on the island.", "4.4e7", "correct"),
    # near-misses: another exponent, another mantissa
    ("The rate constant is 3.2e-4 s^-1.", "3.2e-5", "wrong"),
    ("So the result is 2.6 x 10^3 Hz", "2500", "wrong"),
])
def test_scientific_notation_in_any_spelling(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("pred, gold, reason", [
    ("10^{-8}\\,[\\mathrm{F}]", "1e-8", "correct"), ("500 \\mu \\mathrm{m}", "500", "correct"),
    ("9.35 \\times 10^{5} {m} / {s}", "9.35e5", "correct"), ("10^{-8}", "1e-7", "wrong"),
    ("\\frac{1}{3} {y}", "\\frac{1}{3}", "wrong"),  # a lone braced letter is a variable, not a unit
])
def test_more_unit_groups_and_bare_powers_of_ten(pred, gold, reason):
    assert check(pred, gold)[1] == reason


@pytest.mark.parametrize("text, gold, reason", [
    ("She earns $18,000/year.", "18000", "correct"),
    ("So her hourly pay is $12/hour.", "12", "correct"),
    ("Her mean score is 630 / 9 = 70/quiz.", "70", "correct"),
    ("So her hourly pay is $13/hour.", "12", "wrong"),
])
def test_a_rate_is_its_number(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("text, gold, reason", [
    ("The answer is 2.5 × 10⁻³.", "0.0025", "correct"), ("The answer is 6.63 × 10⁻³⁴ J·s.", "6.63e-34", "correct"),
    ("The acceleration is 9.8 m/s².", "9.8", "correct"), ("The answer is $5\\sqrt{2}$ cm.", "5\\sqrt2", "correct"),
    ("The answer is 2.5 × 10⁻².", "0.0025", "wrong"), ("The answer is x².", "x^2", "correct"),
])
def test_unicode_superscripts_and_units_around_a_value(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("text, gold", [
    ("**Answer:** $x = 5$", "5"), ("**Answer: B**", "B"), ("Answer: (B)", "B"),
    ("#### Final Answer\nThe final answer is 7.", "7"), ("#### Step 3: add\nSo the total is 9.", "9"),
])
def test_answer_labels_and_markdown_headings(text, gold):
    assert _graded(text, gold)[0] == "correct"


@pytest.mark.parametrize("text, gold, reason", [
    ("So the point is where both lines meet.\n\n# Answer\n\n(1, 2)", "(1,2)", "correct"),
    ("Adding up the cases.\n\n### Final Answer\n$\\frac{3}{4}$", "0.75", "correct"),
    ("**Final Answer**\n\n-7", "-7", "correct"),
    ("So the point is where both lines meet.\n\n# Answer\n\n(2, 1)", "(1,2)", "wrong"),
    # prose under the heading is read as a final sentence
    ("### Final Answer\nThe minimum is **-3**.", "-3", "correct"),
    ("Thus, the value is **12**.", "12", "correct"),
])
def test_the_answer_under_an_answer_heading_and_in_bold(text, gold, reason):
    assert _graded(text, gold)[0] == reason


def test_a_gsm8k_hash_line_is_still_the_answer():
    assert extract_answer("3 + 4 = 7\n#### 7") == ("7", "hash")


@pytest.mark.parametrize("text, gold, reason", [
    ("The eigenvalues are $1$, $2$ and $3$.", "1, 2, 3", "correct"),
    ("The solutions are $(-1,-9)$, $(4, 8)$ and $(2, 8)$.", "(-1,-9), (4,8), (2,8)", "correct"),
    ("So $x < 2$ or $x > 3$.", "(-\\infty,2)\\cup(3,\\infty)", "correct"),
    ("The solutions are $x = 1$ and $x = 3$.", "1, 3", "correct"),
    ("Therefore $(x, y) = (1, 2)$ or $(x, y) = (3, 4)$.", "(1,2),(3,4)", "correct"),
    # a list is no single answer; a value restated another way is not a list
    ("The roots are $2$ and $3$.", "3", "wrong"),
    ("The probability is $\\frac{1}{4}$, or $25\\%$.", "\\frac{1}{4}", "correct"),
])
def test_lists_and_alternatives(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("text, gold", [
    ("Thus $m=-1$, $b=6$, and $m+b=-1+6=5$.", "5"),  # assignments followed by the asked quantity
    ("We see that the minimum value is $-\\frac{5}{4},$ which occurs at $x = \\frac{1}{2}$ and $y = -\\frac{1}{2}.$",
     "-\\frac{5}{4}"),
    ("The minimum value is then $-\\frac{1}{16},$ which occurs when $\\cos \\theta = -\\frac{1}{4}.$", "-\\frac{1}{16}"),
    ("Since $123{,}999$ is a multiple of $3$, the digit is the third one, namely $3$.", "3"),
    ("Then $b=2\\cdot(-3)$, or $(a,b)=(5,-6)$.", "(5,-6)"),
])
def test_the_asked_quantity_not_the_values_around_it(text, gold):
    assert _graded(text, gold)[0] == "correct"


@pytest.mark.parametrize("text, gold, reason", [
    ("The differential equation is $\\frac{dx}{dt} = kx - a$.", "\\frac{dx}{dt}=kx-a", "correct"),
    ("In standard form it is $x' + 3x - 2 = 0$.", "x'+3x-2=0", "correct"),
    ("Hence\n$$\\begin{aligned} g(x) &= (x-1)^2 + 1 \\\\ &= x^2 - 2x + 2 \\end{aligned}$$", "g(x)=x^2-2x+2", "correct"),
    ("The differential equation is $\\frac{dx}{dt} = kx + a$.", "\\frac{dx}{dt}=kx-a", "wrong"),
    # a `name = value` reference still takes the value of a chain
    ("So $x = 2 + 3 = 5$.", "x = 5", "correct"),
])
def test_an_equation_reference_takes_the_whole_equation(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("text, gold, reason", [
    ("The period divides $2\\pi$. Therefore, the least period is $\\pi.$", "\\pi", "correct"),
    ("Let $h = f + g$ for odd $f, g$; then $h(-x) = -h(x)$, so $h$ is $\\text{odd}.$", "\\text{odd}", "correct"),
    ("The period divides $2\\pi$. Therefore, the least period is $2\\pi.$", "\\pi", "wrong"),
    ("Since $f(-x) = -f(x)$ for all $x$, $f$ is an $\\text{odd}$ function.", "\\text{odd}", "correct"),
    # a digit-free segment that is not introduced as the answer is not read
    ("So the count is 12, where $n$ is the number of rows.", "12", "correct"),
])
def test_an_answer_without_digits_in_the_final_sentence(text, gold, reason):
    assert _graded(text, gold)[0] == reason


@pytest.mark.parametrize("text, gold, reason", [
    ("So the answer is $7 \\cdot 6 \\cdot 5 = 210$.", "210", "correct"),
    ("The final answer is $x = 1, y = 2$.", "x = 1, y = 2", "correct"),
    ("The final answer is $\\frac{dy}{dx} = 2y$.", "\\frac{dy}{dx}=2y", "correct"),
    ("So the answer is $7 \\cdot 6 \\cdot 5 = 211$.", "210", "wrong"),
])
def test_the_value_a_math_segment_after_the_answer_is_states(text, gold, reason):
    assert _graded(text, gold)[0] == reason


def test_an_article_before_a_number_does_not_make_it_the_answer():
    assert _graded("So the triangle is a $8-15-17$ triangle with perimeter 40.", "40")[0] == "correct"


@pytest.mark.parametrize("text, gold, reason", [
    ("So \\[ \\lambda = \\frac{h}{mv} = 4.6e-24 \\mathrm{~m} = \\lambda_{\\text{ball}} \\]", "4.6e-24", "correct"),
    ("From these we find: \\[ v(r) = \\sqrt{4 \\pi G \\rho_0} = \\text{ constant } \\]", "\\sqrt{4 \\pi G \\rho_0}", "correct"),
    ("So $s = -5$, meaning the solution is $y = A e^{-5t}$, meaning $\\tau = 0.2$.", "0.2", "correct"),
    ("Thus, we obtain \\[ t_s = -\\tau \\ln \\Delta \\]", "-\\tau \\ln \\Delta", "correct"),
    ("The expression simplifies to $\\frac{6T}{2T} = 3$ (as long as $T \\neq 0$).", "3", "correct"),
    ("With $T = 1$, they mow $5 \\cdot 2 = \\mathbf{10}$ lawns in 2 hours.", "10", "correct"),
    ("So \\[ \\lambda = 4.7e-24 \\mathrm{~m} = \\lambda_{\\text{ball}} \\]", "4.6e-24", "wrong"),
    ("Thus, we obtain \\[ t_s = \\tau \\ln \\Delta \\]", "-\\tau \\ln \\Delta", "wrong"),
])
def test_a_value_named_after_it_a_condition_after_it(text, gold, reason):
    assert _graded(text, gold, problem="Two mowers take 2 hours ... T = 1.")[0] == reason


@pytest.mark.parametrize("pred, gold", [("5.3e3{ }^{\\circ} \\mathrm{C}", "5.3e3"),
                                        ("5.3e-9 \\mathrm{~mol} \\mathrm{Bi}_{2} \\mathrm{~S}_{3}", "5.3e-9")])
def test_empty_groups_and_subscripted_units(pred, gold):
    assert check(pred, gold)[1] == "correct"


def test_diagram_code_after_the_answer_is_not_read():
    text = "So the area is $12.$\n[asy]\ndraw((0,0)--(3,4)--(3,0)--cycle); label(\"$5$\", (1.5,2), NW);\n[/asy]"
    assert _graded(text, "12") == ("correct", "12")


def test_the_new_readings_stay_linear_in_the_tail():
    texts = ["3e5 x 10^" * 900, "$1$, " * 1600, "$x < 1$ or " * 700, "(x, y) = (1, 2) or " * 400,
             "[asy]" * 1600, "& = 1 \\\\ " * 800, "Since {," * 1000 + "so 1", "x = 1 and " * 800,
             "$2 = \\lambda_{" + "{a}" * 2000 + "}$", "(as long as " * 1000 + ").", "we get $" + "\\alpha " * 1000 + "$"]
    for text in texts:
        for gold in ("1", "y' + y = 0"):
            start = time.perf_counter()
            _graded(text, gold)
            assert time.perf_counter() - start < 0.5, text[:40]
