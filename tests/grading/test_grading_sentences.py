"""Unboxed answers as a worked solution states them (`sgpo_lib.grading.extract`, rule 4 and the
tidying of a stated answer), on hand-made sentences: punctuation and equation frames inside the
math, the clause that concludes, the right-hand side of an equation that is also a given, displayed
equations, congruences, and a bold answer (`sgpo_lib.grading.text.unbold`)."""

from __future__ import annotations

import pytest

from sgpo_lib.grading.check import check
from sgpo_lib.grading.extract import extract_answer, strip_wrappers
from sgpo_lib.grading.worker import grade_item


def _graded(text: str, gold: str, problem: str = "") -> tuple[str, str]:
    result = grade_item({"text": text, "gold": gold, "problem": problem}, 8192)
    return result["reason"], result["pred"]


@pytest.mark.parametrize("raw, expected", [
    ("-3,", "-3"), ("\\frac{2}{5};", "\\frac{2}{5}"), ("y = 12:", "y = 12"), ("7.", "7"),
    ("& = 0.52 \\\\\n\\end{aligned}", "= 0.52"), ("\\begin{gathered}\nq=8\n\\end{gathered}", "q=8"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
])
def test_a_stated_answer_loses_its_punctuation_and_equation_frame(raw, expected):
    assert strip_wrappers(raw) == expected


@pytest.mark.parametrize("text, gold", [
    ("Comparing both sides, the largest root is $-3,$ as claimed before.", "-3"),
    ("Then the slope is $\\frac{2}{5};$ the intercept follows.", "\\frac{2}{5}"),
    ("Putting it together:\n\\[\n\\begin{aligned}\nv &= 3.1 \\times 4 \\\\\n&= 12.4 \\\\\n\\end{aligned}\n\\]", "12.4"),
    ("Hence\n$$\n\\begin{gathered}\nt=\\frac{9}{4}\n\\end{gathered}\n$$", "\\frac{9}{4}"),
])
def test_answers_in_punctuated_math_and_displayed_equations(text, gold):
    assert _graded(text, gold)[0] == "correct"


@pytest.mark.parametrize("text, gold", [
    # the conclusion word marks the clause that states the answer
    ("We try $p = 3$ and $q = 5,$ so the least sum is $11.$", "11"),
    ("There are 9 ways to pick the chair and 8 for the deputy, for a total of $9 \\cdot 8 = 72$ ways.", "72"),
    ("There are 4 red cards among 20, which means the chance is $\\frac{4}{20} = \\frac{1}{5}$.", "\\frac{1}{5}"),
    ("The two roots are $r = 2$ and $s = 7,$ thus $r + s = 9.$", "9"),
    ("Because the ladder is 13 feet long, the top reaches $\\sqrt{13^2 - 5^2} = 12$ feet up.", "12"),
    # a full stop inside the math ends the sentence before the next one
    ("The chord has length $6.$ Its distance from the centre is $4.$", "4"),
    # "so that" explains and does not conclude
    ("The width must be 6 so that the 3 rows fit.", "6"),
])
def test_the_concluding_clause_states_the_answer(text, gold):
    assert _graded(text, gold)[0] == "correct"


def test_the_right_hand_side_of_an_equation_is_stated_even_when_given():
    problem = "Points $x < y$ in $(0, 1)$ satisfy $x(1 - x) = y(1 - y)$. Find $x + y$."
    assert _graded("Factoring, $(x - y)(x + y - 1) = 0.$  As $x < y,$ we have $x + y = 1.$", "1", problem) == ("correct", "1")
    # a given number in plain text still yields to a fresh one (unchanged)
    assert _graded("So she needs 7 more bags to hold all 42 apples.", "7", "She picks 42 apples.")[0] == "correct"


def test_a_lone_final_number_is_still_read():
    assert extract_answer("Adding up, the total is $-120.$") == ("-120", "last_expression")


@pytest.mark.parametrize("text, gold", [
    # a displayed equation written without `$$`: its last line, the whole matrix
    ("Adding, \\begin{align*}\nw &= \\begin{pmatrix} 1 \\\\ 0 \\end{pmatrix} + 2u \\\\\n"
     "&= \\begin{pmatrix} 5 \\\\ -4 \\end{pmatrix}.\n\\end{align*}", "\\begin{pmatrix} 5 \\\\ -4 \\end{pmatrix}"),
    ("So \\begin{equation*}\nP = \\frac{3}{8} \\cdot \\frac{2}{7} = \\frac{3}{28}.\n\\end{equation*}", "\\frac{3}{28}"),
    # the number on the left of a lone variable, the note column of an alignment
    ("Solving, \\begin{align*}\n5y + 2 &= 7y - 9 \\\\\n\\frac{11}{2} &= y.\n\\end{align*}", "\\frac{11}{2}"),
    ("\\[\\begin{aligned}\n2t + 6 &= 3t - 1 \\\\\n\\Rightarrow\\qquad 7 &= t\n\\end{aligned}\\]", "7"),
    ("Undoing each step: \\begin{align*}\nh(3) &= 2 + 3 & \\text{add 3} \\\\\n&= 5 & \\text{done}\n\\end{align*}", "5"),
    # a modulus is not the value
    ("Reducing each term, the sum is $\\equiv 4 \\pmod{9}.$", "4"),
    ("So the remainder is 2 modulo 11.", "2"),
    ("Hence $3^{100} \\equiv 1 \\pmod 5$.", "1"),
])
def test_answers_in_displayed_equations_and_congruences(text, gold):
    assert _graded(text, gold)[0] == "correct"


def test_a_variable_that_is_the_answer_stays():
    assert _graded("Simplifying, $$\\frac{2a}{2} = a.$$", "a") == ("correct", "a")


@pytest.mark.parametrize("pred, gold, reason", [
    ("\\mathbf{3 6}", "36", "correct"), ("\\frac{\\mathbf{7}}{\\mathbf{1 2}}", "\\frac{7}{12}", "correct"),
    ("\\mathbf{4 . 2 5}", "4.25", "correct"), ("\\mathbf{- 3}", "-3", "correct"),
    ("\\mathbf{1 2 , 5 0 0}", "12500", "correct"), ("\\mathbf{8 1}-\\mathbf{9 \\pi}", "81 - 9\\pi", "correct"),
    ("\\mathbf{3 6}", "37", "wrong"), ("\\mathbf{v} + 2", "v + 2", "correct"),
])
def test_a_bold_answer_is_its_content_with_spaced_digits_joined(pred, gold, reason):
    assert check(pred, gold)[1] == reason


def test_a_bold_answer_in_a_worked_solution():
    text = "With $T = 5$, the desired sum is $12 + 8 = \\mathbf{2 0}$."
    assert _graded(text, "20")[0] == "correct"


@pytest.mark.parametrize("text, gold", [
    ("So the least value is $14.$\n\nNote: a table of the 6 cases gives the same.", "14"),
    ("Hence the perimeter is 30 cm. (Check: 5 + 12 + 13 = 30.)", "30"),
    ("The product is $-20.$ (We used that (2) holds for all 3 roots.)", "-20"),
])
def test_a_closing_remark_is_not_the_answer(text, gold):
    assert _graded(text, gold)[0] == "correct"


def test_note_that_in_the_reasoning_is_still_read():
    assert _graded("First $f(x) \\ge 9.$\n\nNote that $f(1) = 9,$ so the minimum is $9.$", "9")[0] == "correct"
    assert _graded("The area is 12 (in square units).", "12")[0] == "correct"


def test_one_names_alternatives_form_a_list():
    assert _graded("Therefore, $t = 4$ or $t = -7$.", "4, -7") == ("correct", "4, -7")
    assert _graded("Therefore, $t = 4$ or $t = -7$.", "-7")[0] == "correct"
    assert _graded("Here $r = 1$ gives 5 and $r = 2$ gives 9.", "9")[0] == "correct"


@pytest.mark.parametrize("pred, gold, reason", [
    ("340 \\mathrm{rad} / \\mathrm{s}", "340", "correct"), ("3.1e5 {~m} / {s}", "3.1e5", "correct"),
    ("5.2 {eV}", "5.2", "correct"), ("620 \\AA", "620", "correct"), ("2.5e14 {~s}^{-1}", "2.5e14", "correct"),
    ("0.7 \\operatorname{arcsec}", "0.7", "correct"), ("\\frac{1}{3} {y}", "\\frac{1}{3}", "wrong"),
])
def test_unit_groups_after_a_number(pred, gold, reason):
    assert check(pred, gold)[1] == reason


@pytest.mark.parametrize("text, gold", [
    ("Converting, \\[ E = \\frac{hc}{\\lambda} \\simeq 2.1 \\mathrm{eV} \\]", "2.1"),
    ("So $\\Delta t \\approx 3 \\mathrm{~h} \\Rightarrow 180 \\mathrm{~min}$.", "180"),
    ("There are 60 seconds in a minute and he waits 300 seconds so that's 300/60 = 5 minutes", "5"),
])
def test_other_relations_and_so_thats(text, gold):
    assert _graded(text, gold)[0] == "correct"


def test_the_new_readings_stay_linear_in_the_tail():
    import time

    texts = ["so 1, " * 1300, "Since " + "a" * 8000 + ", 1", "x. " + "(" * 4000 + ")" * 4000,
             "\\begin{align*}" + "x &= 1 \\\\ " * 700 + "\\end{align*}", "k = 1 or " * 900, "Note: 2\n" * 900,
             "\\mathbf{" + "1 " * 4000 + "}", "3 \\pmod{" * 1000]
    for text in texts:
        start = time.perf_counter()
        _graded(text, "1")
        assert time.perf_counter() - start < 0.5, text[:40]
