"""The restatement reward hack: an answer that only restates the expression the problem asks to
evaluate (sgpo-method.md, Notation: the verifier; reward r = 0, reason "restated").

The equivalence check evaluates both sides, so boxing the question's own `\\sum_{n=1}^{10} n^2`,
`\\binom{10}{3}`, `\\int_0^1 x^2\\,dx` or `\\sin 10^\\circ \\sin 30^\\circ` would earn reward 1, and a
policy under RL finds that. `restates(pred, problem, reference)` is True when the answer

1. still holds an unevaluated operation (`unevaluated`): a sum, product, integral, limit,
   binomial or factorial (bound variables allowed); or, in an answer without variables, a
   function applied to a number (`\\sin 30^\\circ`, `\\log_2 8`) or two numbers joined by
   +, -, ·, ×, *, ÷ or ^ (`3 \\cdot 4 + 1`, `2^{10}`; a fraction, a radical such as `1 + \\sqrt{2}`
   and scientific notation are results, not operations), and
2. appears in the problem statement up to whitespace and notation (`canonical`: spacing,
   `\\left`/`\\right`, braces and parentheses, `\\dfrac`/`\\dbinom`, `\\cdot`/`\\times`/`*`, and the
   plain-text forms `sum_{...}`, `binom(10, 3)`, `C(10, 3)`, `10 choose 3`, `sqrt(2)`, `pi`),
   as a whole term: no digit or operator glued to either side, no letter right after it,

unless the reference answer is such a term too (the question asks to pick one of its own
expressions: "which is larger, $2^{10}$ or $10^3$?").

An answer that simplifies the question's expression, or whose value is a number given in the
problem, is untouched: it holds no operation, or is not in the problem. Text only: nothing is
evaluated; regex passes and a substring search, and the problem is read only for an answer
that holds an operation.
"""

from __future__ import annotations

import re

from .extract import clean_text
from .text import plain_math_to_latex

_BIG_OP_RE = re.compile(r"\\(?:sum|prod|i{0,3}nt|oint|lim|binom)(?![A-Za-z])|[\d)}]\s*!")
_PLAIN_BIG_OP_RE = re.compile(r"(?<![\\A-Za-z])(sum|prod|int|integral|lim|binom)(?![A-Za-z])")
_PLAIN_BINOM_RE = re.compile(r"(?<![\\A-Za-z])(?:binom|C)\(\s*([^(),]+?)\s*,\s*([^(),]+?)\s*\)")
_CHOOSE_RE = re.compile(r"\{\s*([^{}]+?)\s*\\choose\s*([^{}]+?)\s*\}|(\w+)\s+choose\s+(\w+)")
_GAP = "\x00"  # where a math term ends: a math delimiter or a prose word (clean_text drops real null bytes)
_NOTATION = [
    (re.compile(r"\\[dt]frac"), r"\\frac"), (re.compile(r"\\[dt]binom"), r"\\binom"),
    (re.compile(r"\\(?:left|right|displaystyle|limits|nolimits|q?quad)(?![A-Za-z])|\\[,;:! ]|\\(?:big|Big)[lr]?"), " "),
    (re.compile(r"\\(?:cdot|times)(?![A-Za-z])|\*\*?"), "*"),
    (re.compile(r"\\(?:rightarrow|to)(?![A-Za-z])|->"), r"\\to"),
    (re.compile(r"\\(?:mathrm|text|operatorname)\s*\{([^{}]*)\}"), r"\1"),
    (re.compile(r"\^\s*\{?\\circ\}?|°"), "°"),
    (re.compile(r"\\?\$+|\\[()\[\]]|(?<![\\A-Za-z])[A-Za-z]{3,}(?![A-Za-z])"), _GAP),  # delimiters, prose words
    (re.compile(r"[\s{}()]+"), ""),
]
_GLUED_BEFORE = set("0123456789.^_\\*/+-!°")  # a term glued to these is part of a larger expression
_GLUED_AFTER = _GLUED_BEFORE | set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_SCI_RE = re.compile(r"\d(?:\.\d+)?\s*(?:\\times|\\cdot|\*)\s*10\s*\^\s*\{?\s*-?\d+\s*\}?")
_NUMBER_RE = re.compile(r"\\[dt]?frac\{\d+(?:\.\d+)?\}\{\d+(?:\.\d+)?\}|\d+(?:\.\d+)?")
_NUMBER_OP_RE = re.compile(r"N(?:[-+*^]|\\div)N")
_FUNCTION_OF_NUMBER_RE = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc|ln|log|exp|arcsin|arccos|arctan)(?:_N)?(?:\^N)?[({\s]*(?:N|\\pi)")


def _latex(s: str) -> str:
    """Plain-text math as LaTeX, plain-text binomials and `choose` as `\\binom`."""
    s = plain_math_to_latex(clean_text(s, len(s)))
    s = _PLAIN_BINOM_RE.sub(r"\\binom{\1}{\2}", s)
    s = _CHOOSE_RE.sub(lambda m: "\\binom{%s}{%s}" % ((m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))), s)
    return _PLAIN_BIG_OP_RE.sub(lambda m: "\\" + ("int" if m.group(1) == "integral" else m.group(1)), s)


def canonical(s: str) -> str:
    """The form compared: notation unified, no whitespace, braces or parentheses.

    >>> canonical("\\\\dbinom{10}{3}") == canonical("binom(10, 3)") == canonical("10 choose 3") == canonical("C(10,3)")
    True
    >>> canonical("\\\\sum_{n=1}^{10} n^{2}") == canonical("sum_(n=1)^10 n^2")
    True
    """
    s = _latex(s)
    for pattern, replacement in _NOTATION:
        s = pattern.sub(replacement, s)
    return s


def unevaluated(pred: str) -> bool:
    """True when the answer still holds an operation (rule 1 of the module docstring).

    >>> [unevaluated(s) for s in ("\\\\binom{10}{3}", "3 \\\\cdot 4 + 1", "\\\\sin 10^\\\\circ", "x^2 + 3",
    ...                            "1 + \\\\sqrt{2}", "\\\\frac{3}{4}", "3 \\\\times 10^{8}", "-5")]
    [True, True, True, False, False, False, False, False]
    """
    latex = _latex(pred)
    if _BIG_OP_RE.search(latex):
        return True
    if re.search(r"[A-Za-z]", _COMMAND_RE.sub("", latex)):
        return False  # a variable: only a big operator makes it an operation
    tokens = re.sub(r"[\s{}()]+", "", _NUMBER_RE.sub("N", _SCI_RE.sub("N", latex)))
    tokens = re.sub(r"\\(?:cdot|times)(?![A-Za-z])|\*\*?", "*", tokens)
    return bool(_NUMBER_OP_RE.search(tokens) or _FUNCTION_OF_NUMBER_RE.search(tokens))


def _appears_as_term(needle: str, haystack: str) -> bool:
    """`needle` occurs in `haystack` with nothing glued to it (rule 2 of the module docstring)."""
    start = haystack.find(needle)
    while start >= 0:
        before, after = haystack[start - 1:start], haystack[start + len(needle):start + len(needle) + 2]
        continues = after[:1] in _GLUED_AFTER and not (after[:1] == "." and not after[1:].isdigit())
        if before not in _GLUED_BEFORE and not continues:
            return True
        start = haystack.find(needle, start + 1)
    return False


def restates(pred: str, problem: str, reference: str = "") -> bool:
    """True for an answer that restates the problem's own unevaluated expression, unless the
    reference does too (the question asks to pick one of its own terms: "which is larger,
    $2^{10}$ or $10^3$?").

    >>> q = "Compute $\\\\displaystyle\\\\sum_{n=1}^{10} n^2$."
    >>> restates("\\\\sum_{n=1}^{10} n^{2}", q), restates("385", q), restates("\\\\sum_{n=1}^{11} n^2", q)
    (True, False, False)
    >>> restates("2^{10}", "Which is larger, $2^{10}$ or $10^3$?", reference="2^{10}")
    False
    """
    if not pred.strip() or not unevaluated(pred):  # most answers: the problem is never read
        return False
    problem_form = canonical(problem)
    return _appears_as_term(canonical(pred), problem_form) and not _is_problem_term(reference, problem_form)


def _is_problem_term(answer: str, problem_form: str) -> bool:
    """An unevaluated answer that appears as a term of the (canonical) problem."""
    needle = canonical(answer) if answer.strip() and unevaluated(answer) else ""
    return bool(needle) and _appears_as_term(needle, problem_form)
