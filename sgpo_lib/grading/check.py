"""Answer equivalence for the verifier (sgpo-method.md, Notation: r(x, y) ∈ {0, 1}).

Runs inside the grading worker process (standard library at import time, math-verify and sympy
on first use). `check(pred, gold, kind, problem, policy)` returns (reward, reason), reason one of
"correct", "wrong", "unparsed", "error":

1. `kind == "exact"` (toy world): strings equal after `normalize_exact`.
2. Both sides in LaTeX: plain-text math (`sqrt(6)/3`, `pi/4`, `ln 3`, `theta`) is rewritten
   and bold unwrapped (`\\mathbf{2 0}` is 20) (`sgpo_lib.grading.text`); a multiple-choice
   answer is graded by its letter or label (`sgpo_lib.grading.words.choice_match`).
3. Fast path: equal after `normalize_latex_light`; or both plain numbers (`as_number`: integers,
   decimals, thousands commas, fractions, `a\\times10^{b}`, `10^{-8}`, `1.07e16`, a `%` sign, trailing unit
   words and groups such as `\\mathrm{rad} / \\mathrm{s}`, `{~m}`, `\\AA`), or two lists of plain
   numbers in the same brackets item by item (`[1.618, 0.59]` vs
   `[1.62, 0.59]`), compared by the numeric policy below; `x%` also equals `x/100`, and in a problem stated
   in percent a bare `0.625` equals a bare `62.5`, except that a percentage (`5`) never stands
   for a reference fraction of one (`0.05`) when the problem asks for a probability, a fraction,
   a proportion or a value between 0 and 1 (`asks_unit_interval`): that was a free reward.
4. A prediction must be a complete expression: one longer than `MAX_ANSWER_CHARS`, one that
   looks like code (`PYTHON_JUNK_RE`) or holds leftover prose (`looks_unparsed`) is "unparsed"
   before any parser sees it, and so is one in which math-verify finds no expression.
5. math-verify (`parse` + `verify` of each side wrapped in `\\boxed{}`, a plain number without its
   units: `without_units`), then rules it lacks
   (`sgpo_lib.grading.sets`: intervals vs inequalities, `+ k pi` families, hyperbolic functions).
   A decimal reference under `reference_precision` is compared with the value of any numeric
   answer (`\\frac{\\pi}{2}` for `1.57`) by the same rounding rule.

Numeric policy (`grading.numeric_policy`, the reward policy for numbers that are not both
integers): `rel_tol`, the old rule, accepts a relative difference up to `NUMERIC_REL_TOL` (1e-4,
the usual MATH/OlympiadBench judges'); `reference_precision` (the default) does the same except
for a decimal reference (`1.62`, `0.59`, `3.7`, `2.5e-3`, never an integer), which accepts an
answer that rounds to it at its last digit: |answer - reference| <= half a unit of that digit.
Consequences: a short reference is looser than 1e-4 (`3.7` accepts 3.65 to 3.75; `1.6180339`,
`5/12` for `0.42`, `\\pi/2` for `1.57`, which 1e-4 rejected), a long one is stricter (`123456.7`
needs 123456.65 to 123456.75, where 1e-4 accepted +-12), an answer less precise than the reference
is wrong (`1.6` for `1.62`), and integer references stay exact and fractions stay at 1e-4.

Model text is data: nothing here evaluates it (math-verify parses LaTeX with an ANTLR grammar).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from .sets import NUMERIC_REL_TOL, equivalent
from .text import plain_math_to_latex, unbold
from .words import choice_match

NUMERIC_POLICIES = ("rel_tol", "reference_precision")
DEFAULT_NUMERIC_POLICY = "reference_precision"

MAX_ANSWER_CHARS = 1000
PYTHON_JUNK_RE = re.compile(r"__|(?<!\\)\b(?:lambda|import|exec|eval|getattr|globals|open)\b|['\"`;]|[\w)\]]\.[A-Za-z_]")
_LATEX_NOISE_RE = re.compile(r"\\\$|\\left|\\right|\\[!,;:> ]|\\q?quad|\\displaystyle|\^\{?\\circ\}?|\{\s*\}|\s+")  # `{ }^{\circ}`
_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|operatorname)\{([^{}]*)\}")
_ONE_CHAR_GROUP_RE = re.compile(r"([_^])\{(\w)\}")
# up to three trailing unit groups: `\text{ kcal} \text{m}^{-2} \text{yr}^{-1}`, `\text{ erg} \cdot \text{s}^{-1}`, ` cm`,
# `\mathrm{rad} / \mathrm{s}`, `{~m} / {s}`, `{m} / {s}`, `\AA`, `\mu \mathrm{m}`, `[\mathrm{F}]`
_UNITS_RE = re.compile(r"(?:(?:\s*\\(?:cdot|[,;!])|\s*~|\s*/)?\s*(?:(?:\\mu\s*)?\\(?:text|mathrm|mbox|operatorname)\s*\{[^{}]*\}"
                       r"|\[\s*\\(?:text|mathrm)\s*\{[^{}]*\}\s*\]|\{\s*[A-Za-z]+\s*\}(?=\s*/\s*\{)"
                       r"|\{\s*(?:~\s*[A-Za-z]+|[A-Za-z]{2,})\s*\}|(?<=/)\s*\{\s*[A-Za-z]+\s*\}|\\AA(?![A-Za-z]))(?:_\{?\d\}?)?(?:\^\{?-?\d\}?)?"
                       r"|(?:\s*\\cdot)?\s+[A-Za-z]+(?:/[A-Za-z]+)?(?:\^\{?-?\d\}?)?){1,3}$")  # `J \cdot s`
_LONE_LETTER_RE = re.compile(r"(?<![A-Za-z\\])[A-Za-z](?![A-Za-z])")
PROSE_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # three letters or more, not a LaTeX command
_ENVIRONMENT_RE = re.compile(r"\\(?:begin|end)\{[^{}]*\}")
_MATH_WORDS = frozenset("""sin cos tan cot sec csc log exp lim max min gcd lcm mod det deg arg inf sup and for all
                           arcsin arccos arctan sinh cosh tanh none""".split())
_NUMBER_RE = re.compile(r"^([-+]?)(\d+(?:\.\d*)?|\.\d+)(?:e([-+]?\d+)|(?:\\times|\\cdot)10\^\{?([-+]?\d+)\}?)?$")
_POWER_OF_TEN_RE = re.compile(r"^10\^\{?([-+]?\d+)\}?$")
_FRACTION_RE = re.compile(r"^([-+]?)\\frac\{([^{}]+)\}\{([^{}]+)\}$|^([^/]+)/([^/]+)$")
_TRAILING_LETTER_RE = re.compile(r"\}\s*([A-Za-z])\s*$")
_SCI_RE = re.compile(r"^(-?\d+(?:\.\d+)?)[eE]([+-]?\d+)$")
_PERCENT_RE = re.compile(r"%|(?i:\bpercent)")
_UNIT_INTERVAL_RE = re.compile(r"(?i)\bprobabilit|\bbetween 0 and 1\b|\bas a (?:common |decimal )?fraction\b|\bas a decimal\b"
                               r"|\bproportion\b|\bfraction of\b")
_ASKS_PERCENT_RE = re.compile(r"(?i)\bwhat percent|\bpercentage\b|\b(?:as|in) (?:a )?percent")
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
        power = _POWER_OF_TEN_RE.match(s)  # `10^{-8}`: scientific notation without its mantissa
        return Fraction(10) ** int(power.group(1)) if power and abs(int(power.group(1))) <= 400 else None
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


def without_units(s: str) -> str:
    """A plain number without the unit groups after it (`7.0711 cm` -> `7.0711`), for the parser,
    which reads `cm` as c·m; anything else, and a number before a lone letter (`2 x`), unchanged.

    >>> without_units("7.0711 \\text{ cm}"), without_units("2 x")
    ('7.0711', '2 x')
    """
    number = _UNITS_RE.sub("", s).strip()
    return number if as_number(s) is not None and not _LONE_LETTER_RE.search(s[len(number):]) else s


def half_unit(gold: str) -> Fraction | None:
    """Half a unit of the last digit of a decimal reference, else None (integers, fractions).

    >>> half_unit("1.62"), half_unit("2.5e-3"), half_unit("3.7 \\\\text{ m}"), half_unit("12"), half_unit("\\\\frac{1}{2}")
    (Fraction(1, 200), Fraction(1, 20000), Fraction(1, 20), None, None)
    """
    s = _LATEX_NOISE_RE.sub("", _UNITS_RE.sub("", gold.strip().strip("$")).strip().rstrip("%").rstrip("\\"))
    m = _NUMBER_RE.match(s)
    if not m or "." not in m.group(2) or m.group(2).endswith("."):
        return None
    decimals = len(m.group(2).split(".")[1])
    return Fraction(1, 2) * Fraction(10) ** (int(m.group(3) or m.group(4) or 0) - decimals)


def numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool], percent_problem: bool = False,
                  gold_half_unit: Fraction | None = None, unit_interval: bool = False) -> bool:
    """Plain numbers: exact for two integers; within `gold_half_unit` of a decimal reference (the
    `reference_precision` policy), else relative `NUMERIC_REL_TOL`; `x%` = `x/100`; in a problem
    stated in percent (`percent_problem`), a bare fraction of one `v` (0 < |v| < 1) also equals the
    bare percentage `100 v`, unless the problem asks for a value in [0, 1] (`unit_interval`) and the
    answer is the percentage."""
    (p, p_pct), (g, g_pct) = pred, gold
    candidates = [(p, g, 1)]  # (answer, reference, scale of the reference)
    if p_pct != g_pct:
        candidates.append((p / 100, g, 1) if p_pct else (p, g / 100, Fraction(1, 100)))
    elif percent_problem and not p_pct:
        if 0 < abs(p) < 1:
            candidates.append((100 * p, g, 1))
        if 0 < abs(g) < 1 and not unit_interval:
            candidates.append((p, 100 * g, 100))
    for a, b, scale in candidates:
        if a.denominator == 1 and b.denominator == 1 and gold_half_unit is None:
            if a == b:
                return True
        elif gold_half_unit is not None:
            if abs(a - b) <= gold_half_unit * scale:
                return True
        elif abs(a - b) <= NUMERIC_REL_TOL * max(abs(a), abs(b)):
            return True
    return False


def fast_check(pred: str, gold: str, problem: str = "", policy: str = DEFAULT_NUMERIC_POLICY) -> bool | None:
    """True/False when strings or plain numbers decide, None when math-verify must."""
    if normalize_latex_light(pred) == normalize_latex_light(gold):
        return True
    percent, unit_interval = mentions_percent(problem), asks_unit_interval(problem)
    pairs = [(pred, gold)] if as_number(gold) is not None else _number_list_pairs(pred, gold)
    numbers = [(as_number(p), as_number(g), g) for p, g in pairs]
    if not numbers or any(p is None or g is None for p, g, _ in numbers):
        return None
    return all(numbers_equal(p, g, percent, half_unit(text) if policy == "reference_precision" else None, unit_interval)
               for p, g, text in numbers)


def _number_list_pairs(pred: str, gold: str) -> list[tuple[str, str]]:
    """Item pairs of two lists in the same brackets (`[1.618, 0.59]` vs `[1.62, 0.59]`), else []."""
    p, g = (_LATEX_NOISE_RE.sub("", s) for s in (pred, gold))
    if len(p) < 2 or len(g) < 2 or p[0] + p[-1] != g[0] + g[-1] or p[0] + p[-1] not in ("[]", "()"):
        return []
    p_items, g_items = p[1:-1].split(","), g[1:-1].split(",")
    return list(zip(p_items, g_items)) if len(p_items) == len(g_items) > 1 else []


def mentions_percent(problem: str) -> bool:
    """True for a problem stated in percent (a `%` sign or the word), for `numbers_equal`.

    >>> mentions_percent("a $50 \\%$ chance"), mentions_percent("What percentage ..."), mentions_percent("p = 0.5")
    (True, True, False)
    """
    return bool(_PERCENT_RE.search(problem))


def asks_unit_interval(problem: str) -> bool:
    """True for a problem that asks for a probability, fraction, proportion or a value between 0
    and 1 and not for a percentage, for `numbers_equal`.

    >>> asks_unit_interval("A 5% tax ... what is the probability?"), asks_unit_interval("What percentage ...?")
    (True, False)
    """
    return bool(_UNIT_INTERVAL_RE.search(problem)) and not _ASKS_PERCENT_RE.search(problem)


def looks_unparsed(pred: str) -> bool:
    """True for code (`PYTHON_JUNK_RE`) or leftover prose: a word of 3+ letters that is no
    LaTeX command, function name, subscript name (`v_{max}`) or one of three trailing unit words.

    >>> looks_unparsed("5 and then I added the rest"), looks_unparsed("12 cm"), looks_unparsed("sin(x) + 1")
    (True, False, False)
    """
    s = _TEXT_WRAP_RE.sub(r" \1 ", _ENVIRONMENT_RE.sub(" ", _UNITS_RE.sub("", plain_subscripts(pred))))
    if PYTHON_JUNK_RE.search(s):
        return True
    return any(w.lower() not in _MATH_WORDS for w in PROSE_WORD_RE.findall(_LETTER_SUBSCRIPT_RE.sub(" ", s)))


def check(pred: str, gold: str, kind: str = "math", problem: str = "",
          policy: str = DEFAULT_NUMERIC_POLICY) -> tuple[float, str]:
    """(reward, reason) for one extracted prediction against a reference answer; `problem` the
    problem statement (percent and unit-interval rules), `policy` one of `NUMERIC_POLICIES`."""
    if kind == "exact":
        same = normalize_exact(pred) == normalize_exact(gold)
        return float(same), "correct" if same else "wrong"
    if len(pred) > MAX_ANSWER_CHARS:
        return 0.0, "unparsed"
    pred, gold = plain_math_to_latex(unbold(pred)), plain_math_to_latex(unbold(gold))
    chosen = choice_match(pred, gold)
    if chosen is not None:
        return float(chosen), "correct" if chosen else "wrong"
    fast = fast_check(pred, gold, problem, policy)
    if fast is not None:
        return float(fast), "correct" if fast else "wrong"
    if looks_unparsed(pred):
        return 0.0, "unparsed"

    gold_parsed = parse_boxed(for_parser(without_units(gold)))
    pred_parsed = parse_boxed(for_parser(without_units(pred)))
    if not has_expression(gold_parsed):
        return 0.0, "error"
    if not has_expression(pred_parsed):
        return 0.0, "unparsed"
    reference = as_number(gold) if policy == "reference_precision" else None
    unit = half_unit(gold) if reference else None
    ok = _rounds_to(pred_parsed[0], reference[0], unit) if unit is not None else None
    if ok is None:
        ok = equivalent(gold_parsed, pred_parsed)
    return float(ok), "correct" if ok else "wrong"


def _rounds_to(pred, gold: Fraction, unit: Fraction) -> bool | None:
    """Whether a numeric answer (a sympy number) is within `unit` of a decimal reference; None
    when the answer is no real number."""
    if not getattr(pred, "is_number", False):
        return None
    try:
        value = complex(pred.evalf(30))
    except (TypeError, ValueError):
        return None
    if value.imag != 0:
        return None
    return abs(Fraction(value.real) - gold) <= unit * (1 + Fraction(1, 10**9))


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
