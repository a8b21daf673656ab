"""Answer equivalence for the verifier (sgpo-method.md, Notation: r(x, y) ∈ {0, 1}).

Runs inside the grading worker process (standard library at import time, math-verify and sympy
on first use). `check(pred, gold, kind)` returns (reward, reason), reason one of
"correct", "wrong", "unparsed", "error":

1. `kind == "exact"` (toy world): strings equal after `normalize_exact`.
2. Fast path: equal after `normalize_latex_light`; or both plain numbers (`as_number`: integers,
   decimals, thousands commas, fractions, `a\\times10^{b}`, `1.07e16`, a `%` sign, trailing unit
   words) compared exactly when both are integers, else to a relative `NUMERIC_REL_TOL` (the
   tolerance of the usual MATH/OlympiadBench judges); `x%` also equals `x/100`, and in a problem
   stated in percent a bare `0.625` equals a bare `62.5`.
3. A prediction must be a complete expression: one longer than `MAX_ANSWER_CHARS`, one that
   looks like code (`PYTHON_JUNK_RE`) or holds leftover prose (`looks_unparsed`) is "unparsed"
   before any parser sees it, and so is one in which math-verify finds no expression.
4. math-verify (`parse` + `verify` of each side wrapped in `\\boxed{}`), then rules it lacks:
   an inequality or a list of inequalities equals the same interval or union
   (`1/2 <= x <= 8` = `[1/2, 8]`), and solution families `a + c k` with an integer parameter
   (k, n, m) are equal when the offsets differ by a multiple of `c` (`pi/4 + k pi` =
   `-3pi/4 + n pi`). Two plain numbers must also agree to `NUMERIC_REL_TOL` (math-verify's
   6-decimal rounding makes all numbers below 5e-7 equal).

Model text is data: nothing here evaluates it (math-verify parses LaTeX with an ANTLR grammar).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from .sets import NUMERIC_REL_TOL, equivalent

MAX_ANSWER_CHARS = 1000
PYTHON_JUNK_RE = re.compile(r"__|(?<!\\)\b(?:lambda|import|exec|eval|getattr|globals|open)\b|['\"`;]|[\w)\]]\.[A-Za-z_]")
_LATEX_NOISE_RE = re.compile(r"\\\$|\\left|\\right|\\[!,;:> ]|\\q?quad|\\displaystyle|\^\{?\\circ\}?|\s+")
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\{([^{}]*)\}")
_ONE_CHAR_GROUP_RE = re.compile(r"([_^])\{(\w)\}")
# up to three trailing unit groups: `\text{ kcal} \text{m}^{-2} \text{yr}^{-1}`, `\text{ erg} \cdot \text{s}^{-1}`, ` cm`
_UNITS_RE = re.compile(r"(?:(?:\s*\\(?:cdot|[,;!])|\s*~)?\s*\\(?:text|mathrm|mbox)\{[^{}]*\}(?:\^\{?-?\d\}?)?"
                       r"|\s+[A-Za-z]+(?:/[A-Za-z]+)?(?:\^\{?-?\d\}?)?){1,3}$")
_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_ENVIRONMENT_RE = re.compile(r"\\(?:begin|end)\{[^{}]*\}")
_MATH_WORDS = frozenset("""sin cos tan cot sec csc log exp lim max min gcd lcm mod det deg arg inf sup and for all
                           arcsin arccos arctan sinh cosh tanh none""".split())
_NUMBER_RE = re.compile(r"^([-+]?)(\d+(?:\.\d*)?|\.\d+)(?:e([-+]?\d+)|(?:\\times|\\cdot)10\^\{?([-+]?\d+)\}?)?$")
_FRACTION_RE = re.compile(r"^([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$|^([^/]+)/([^/]+)$")
_TRAILING_LETTER_RE = re.compile(r"\}\s*([A-Za-z])\s*$")
_SCI_RE = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_PERCENT_RE = re.compile(r"%|(?i:\bpercent)")
_GREEK = "alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu|nu|xi|pi|rho|sigma|tau|phi|chi|psi|omega"
# a subscript naming a variable (`L_{\odot}`, `\lambda_{\text{red}}`, `m_{\max}`): after a lone letter or a
# Greek letter, never after `\int`, `\sum`, `\log` ...; one level of braces inside
_NAMED_SUBSCRIPT_RE = re.compile(r"((?<![\\A-Za-z])[A-Za-z]|\\(?:var)?(?:" + _GREEK + r")(?![A-Za-z]))_\{((?:[^{}]|\{[^{}]*\})*)\}")
_LETTER_SUBSCRIPT_RE = re.compile(r"_\{[A-Za-z]+\}")
_SUBSCRIPT_NOISE_RE = re.compile(r"\\(?:text|mathrm|rm|mbox|operatorname)\s*|[\\{}\s]")


def normalize_exact(s: str) -> str:
    """Toy-world normalisation: no whitespace, no trailing full stops.

    >>> normalize_exact(" 4 2 . ")
    '42'
    """
    return re.sub(r"\s+", "", s).rstrip(".")


def normalize_latex_light(s: str) -> str:
    """String form used for the quick equality test before math-verify (formatting only).

    >>> normalize_latex_light("\\\\text{B, E, G}") == normalize_latex_light("B,E,G")
    True
    >>> normalize_latex_light("E_{1}, E_2")
    'E_1,E_2'
    >>> normalize_latex_light("45^\\\\circ, 135^\\\\circ")
    '45,135'
    """
    s = s.strip().strip("$").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _ONE_CHAR_GROUP_RE.sub(r"\1\2", _TEXT_WRAP_RE.sub(r"\1", s))
    return normalize_exact(_LATEX_NOISE_RE.sub("", s))


def _plain_number(s: str) -> Fraction | None:
    m = _NUMBER_RE.match(s)
    if not m:
        return None
    sign, digits, exp1, exp2 = m.groups()
    value = Fraction(digits) * Fraction(10) ** int(exp1 or exp2 or 0)
    return -value if sign == "-" else value


def as_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, has_percent_sign) for a plain number, else None.

    >>> as_number("1,240 \\\\text{ dollars}")
    (Fraction(1240, 1), False)
    >>> as_number("-\\\\frac{3}{4}")
    (Fraction(-3, 4), False)
    >>> as_number("17.5\\\\%")
    (Fraction(35, 2), True)
    >>> as_number("2\\\\sqrt{2}") is None
    True
    """
    s = _UNITS_RE.sub("", s.strip().strip("$")).strip()
    percent = s.endswith("%")
    s = _LATEX_NOISE_RE.sub("", s.rstrip("%").rstrip("\\")).replace("\\dfrac", "\\frac")
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if len(s) > 60:
        return None
    value = _plain_number(s)
    frac = None if value is not None else _FRACTION_RE.match(s)
    if frac:
        sign, a, b = (frac.group(1), frac.group(2), frac.group(3)) if frac.group(2) else ("", frac.group(4), frac.group(5))
        num, den = _plain_number(a), _plain_number(b)
        value = None if num is None or not den else (-1 if sign == "-" else 1) * num / den
    return None if value is None else (value, percent)


def numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool], percent_problem: bool = False) -> bool:
    """Plain numbers: exact for two integers, else relative `NUMERIC_REL_TOL`; `x%` = `x/100`;
    in a problem stated in percent (`percent_problem`), a bare fraction of one `v` (0 < |v| < 1)
    also equals the bare percentage `100 v` (a probability 0.625 for a reference 62.5)."""
    (p, p_pct), (g, g_pct) = pred, gold
    candidates = [(p, g)]
    if p_pct != g_pct:
        candidates.append((p / 100, g) if p_pct else (p, g / 100))
    elif percent_problem and not p_pct:
        candidates += [(100 * a, b) for a, b in ((p, g), (g, p)) if 0 < abs(a) < 1]
    for a, b in candidates:
        if a.denominator == 1 and b.denominator == 1:
            if a == b:
                return True
        elif abs(a - b) <= NUMERIC_REL_TOL * max(abs(a), abs(b)):
            return True
    return False


def fast_check(pred: str, gold: str, percent_problem: bool = False) -> bool | None:
    """True/False when strings or plain numbers decide, None when math-verify must."""
    if normalize_latex_light(pred) == normalize_latex_light(gold):
        return True
    p, g = as_number(pred), as_number(gold)
    if p is not None and g is not None:
        return numbers_equal(p, g, percent_problem)
    return None


def mentions_percent(problem: str) -> bool:
    """True for a problem stated in percent (a `%` sign or the word), for `numbers_equal`.

    >>> mentions_percent("a $50 \\%$ chance"), mentions_percent("What percentage ..."), mentions_percent("p = 0.5")
    (True, True, False)
    """
    return bool(_PERCENT_RE.search(problem))


def looks_unparsed(pred: str) -> bool:
    """True for code (`PYTHON_JUNK_RE`) or leftover prose: a word of 3+ letters that is no
    LaTeX command, function name, subscript name (`v_{max}`) or one of three trailing unit words.

    >>> looks_unparsed("5 and then I added the rest"), looks_unparsed("12 cm"), looks_unparsed("sin(x) + 1")
    (True, False, False)
    """
    s = _TEXT_WRAP_RE.sub(r" \1 ", _ENVIRONMENT_RE.sub(" ", _UNITS_RE.sub("", plain_subscripts(pred))))
    if PYTHON_JUNK_RE.search(s):
        return True
    return any(w.lower() not in _MATH_WORDS for w in _WORD_RE.findall(_LETTER_SUBSCRIPT_RE.sub(" ", s)))


def check(pred: str, gold: str, kind: str = "math", percent_problem: bool = False) -> tuple[float, str]:
    """(reward, reason) for one extracted prediction against a reference answer; `percent_problem`:
    the problem is stated in percent (`mentions_percent`)."""
    if kind == "exact":
        same = normalize_exact(pred) == normalize_exact(gold)
        return float(same), "correct" if same else "wrong"
    if len(pred) > MAX_ANSWER_CHARS:
        return 0.0, "unparsed"
    fast = fast_check(pred, gold, percent_problem)
    if fast is not None:
        return float(fast), "correct" if fast else "wrong"
    if looks_unparsed(pred):
        return 0.0, "unparsed"

    gold_parsed = parse_boxed(for_parser(gold))
    pred_parsed = parse_boxed(for_parser(pred))
    if not has_expression(gold_parsed):
        return 0.0, "error"
    if not has_expression(pred_parsed):
        return 0.0, "unparsed"
    ok = equivalent(gold_parsed, pred_parsed)
    return float(ok), "correct" if ok else "wrong"


def for_parser(s: str) -> str:
    """The LaTeX math-verify is given: e-notation, trailing letters and named subscripts rewritten."""
    return protect_trailing_letter(plain_subscripts(to_latex_number(s)))


def plain_subscripts(s: str) -> str:
    """`L_{\\odot}` -> `L_{odot}`, `\\lambda_{\\text{red}}` -> `\\lambda_{red}`: a subscript that names a
    variable with LaTeX commands becomes plain letters, which math-verify reads as one symbol
    (it fails on the whole expression otherwise). Applied to both sides alike.

    >>> plain_subscripts("\\\\frac{L_{\\\\odot}}{M_{\\\\text {core }}} + x_{1} + \\\\int_{\\\\pi}^{2} t")
    '\\\\frac{L_{odot}}{M_{core}} + x_{1} + \\\\int_{\\\\pi}^{2} t'
    """
    return _NAMED_SUBSCRIPT_RE.sub(_plain_subscript, s)


def _plain_subscript(m: re.Match) -> str:
    name = m.group(2)
    return m.group() if "\\" not in name else m.group(1) + "_{" + _SUBSCRIPT_NOISE_RE.sub("", name) + "}"


def to_latex_number(s: str) -> str:
    """`1.07e16` -> `1.07\\times10^{16}` (latex2sympy reads `e` as Euler's number); else unchanged.

    >>> to_latex_number("2.88e-19")
    '2.88\\\\times10^{-19}'
    """
    m = _SCI_RE.match(s.strip())
    return f"{m.group(1)}\\times10^{{{m.group(2)}}}" if m else s


def protect_trailing_letter(s: str) -> str:
    """`\\frac{1}{m}t` -> `\\frac{1}{m}{t}`: math-verify drops a trailing letter as a unit (t, c, ...).

    >>> protect_trailing_letter("\\\\frac{c}{2} c")
    '\\\\frac{c}{2}{c}'
    """
    return _TRAILING_LETTER_RE.sub(r"}{\1}", s)


@functools.lru_cache(maxsize=4096)
def parse_boxed(latex: str) -> tuple:
    """math-verify's parse of `\\boxed{latex}`, no signal timeout (the parent kills the worker)."""
    from math_verify import parse

    return tuple(parse("\\boxed{" + latex + "}", parsing_timeout=None))


def has_expression(parsed: tuple) -> bool:
    """math-verify returns [sympy_expr, str] on success and only [str] when parsing failed."""
    return any(not isinstance(x, str) for x in parsed)
