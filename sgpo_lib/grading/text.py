"""Math written as plain text or unicode, rewritten as the LaTeX the equivalence check reads
(sgpo-method.md, Notation: the verifier). Standard library only; runs in the grading worker.

- `plain_math_to_latex`: `sqrt(6)/3` -> `\\sqrt{6}/3`, `pi/4` -> `\\pi/4`, `0.5 * ln(3)` ->
  `0.5 * \\ln(3)`, `theta^2` -> `\\theta^2`, `exp`, `log`, the trigonometric functions,
  lowercase Greek names and `infinity`. Without it the parser reads `pi` as p·i and `ln` as
  l·n, and `sqrt(...)` as leftover text. A name is rewritten only as a whole word not already
  behind a backslash, so LaTeX input is unchanged, and both sides of a comparison get it alike.
- `plain_scientific` (part of `plain_math_to_latex`): `3.2 x 10^-5`, `3.2*10^(-5)`, `3.2 \\times 10^-5`
  -> `3.2\\times10^{-5}`: an exponent without braces, or in parentheses, is the whole signed
  number (LaTeX would read `10^-5` as 10^{-}5), and a spaced `x` between a number and `10^` is
  a times sign.
- `unicode_scripts_to_latex`: `10⁻³⁴` -> `10^{-34}`, `m/s²` -> `m/s^{2}`, `x₁` -> `x_{1}` (NFKC would
  make them `10-34`, `m/s2`, `x1`).
- `unicode_roots_to_latex`: `√30/12` -> `\\sqrt{30}/12` (LaTeX reads `\\sqrt30` as √3·0),
  `√(x+1)` -> `\\sqrt{x+1}`, `∛2` -> `\\sqrt[3]{2}`.

- `unbold`: `\\mathbf{2 0}` -> `20`, `\\frac{\\mathbf{9}}{\\mathbf{2 0}}` -> `\\frac{9}{20}`: a bold answer
  (the way many worked solutions mark it) is its content, and digits that only spaces part in it
  are one number, as LaTeX typesets them (math mode ignores spaces).

All are linear in the length of the string: parentheses are matched in one pass with a stack.
"""

from __future__ import annotations

import re

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi rho "
          "sigma tau upsilon phi varphi chi psi omega").split()
_FUNCTIONS = "ln log exp sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh".split()
_WORD_RE = re.compile(r"(?<![\\A-Za-z])(" + "|".join(sorted(_GREEK + _FUNCTIONS, key=len, reverse=True))
                      + r"|infinity|sqrt)(?![A-Za-z])")
_ROOT_OPERAND_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\\[A-Za-z]+|[A-Za-z])")
_ROOTS = {"√": "\\sqrt", "∛": "\\sqrt[3]", "∜": "\\sqrt[4]"}
_SCIENTIFIC_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\s[x]\s|\*|\\times|\\cdot)\s*10\s*\^\s*(?:\{\s*([-+]?\d+)\s*\}|\(\s*([-+]?\d+)\s*\)|([-+]?\d+))")
_SUPERSCRIPTS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni"))
_SUBSCRIPTS = dict(zip("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()"))
_SCRIPT_RUN_RE = re.compile("([" + "".join(_SUPERSCRIPTS) + "]+)|([" + "".join(_SUBSCRIPTS) + "]+)")
_BOLD_RE = re.compile(r"\\(?:mathbf|boldsymbol|bm|textbf)\s*\{([^{}]*)\}")
_SPACED_DIGITS_RE = re.compile(r"(?<=[\d.,-])\s+(?=[\d.,])|(?<=\d)\s+(?=[.,])")


def _matching_parens(s: str) -> dict[int, int]:
    """{index of "(": index of its ")"} for every balanced pair, in one pass."""
    stack, out = [], {}
    for i, c in enumerate(s):
        if c == "(":
            stack.append(i)
        elif c == ")" and stack:
            out[stack.pop()] = i
    return out


def _root_edits(s: str, at: int, end: int, latex: str, parens: dict[int, int]) -> list[tuple[int, int, str]]:
    """Edits (start, end, replacement) writing the root symbol or word at s[at:end] and its
    operand as `latex{operand}`: a parenthesised group, a number, a command or one letter."""
    j = end
    while j < len(s) and s[j] == " ":
        j += 1
    if j < len(s) and s[j] == "(" and j in parens:
        return [(at, j + 1, latex + "{"), (parens[j], parens[j] + 1, "}")]
    if j < len(s) and s[j] == "{":
        return [(at, j, latex)]
    m = _ROOT_OPERAND_RE.match(s, end)
    if m:
        return [(at, m.end(), latex + "{" + m.group(1) + "}")]
    return [(at, end, latex + " ")]


def _apply(s: str, edits: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, new in sorted(edits):
        if start < pos:  # overlapping edit (cannot happen for well-formed input): keep the first
            continue
        out += [s[pos:start], new]
        pos = end
    return "".join(out) + s[pos:]


def unicode_scripts_to_latex(s: str) -> str:
    """Unicode superscript and subscript runs as `^{...}` and `_{...}` (see the module docstring).

    >>> unicode_scripts_to_latex("6.63 × 10⁻³⁴ J·s, 9.8 m/s², x₁₂")
    '6.63 × 10^{-34} J·s, 9.8 m/s^{2}, x_{12}'
    """
    return _SCRIPT_RUN_RE.sub(lambda m: "^{%s}" % "".join(_SUPERSCRIPTS[c] for c in m.group(1)) if m.group(1)
                              else "_{%s}" % "".join(_SUBSCRIPTS[c] for c in m.group(2)), s)


def unicode_roots_to_latex(s: str) -> str:
    """Root signs with their operand in braces.

    >>> unicode_roots_to_latex("√30/12 + 2√(x+1) - ∛2 + √x")
    '\\\\sqrt{30}/12 + 2\\\\sqrt{x+1} - \\\\sqrt[3]{2} + \\\\sqrt{x}'
    """
    if not any(r in s for r in _ROOTS):
        return s
    parens = _matching_parens(s)
    edits = [e for i, c in enumerate(s) if c in _ROOTS for e in _root_edits(s, i, i + 1, _ROOTS[c], parens)]
    return _apply(s, edits)


def plain_math_to_latex(s: str) -> str:
    """Plain-text function and constant names as LaTeX commands (see the module docstring).

    >>> plain_math_to_latex("(1 + sqrt(5)) / 2 + pi/4 - 0.5 * ln(3) + theta^2 + sqrt 2")
    '(1 + \\\\sqrt{5}) / 2 + \\\\pi/4 - 0.5 * \\\\ln(3) + \\\\theta^2 + \\\\sqrt{2}'
    >>> plain_math_to_latex("\\\\sqrt{2} + \\\\pi + \\\\varphi + x_{max} + \\\\text{spin}")
    '\\\\sqrt{2} + \\\\pi + \\\\varphi + x_{max} + \\\\text{spin}'
    """
    s = plain_scientific(s)
    matches = list(_WORD_RE.finditer(s))
    if not matches:
        return s
    parens = _matching_parens(s) if "(" in s else {}
    edits = []
    for m in matches:
        word = m.group(1)
        if word == "sqrt":
            edits += _root_edits(s, m.start(), m.end(), "\\sqrt", parens)
        else:
            edits.append((m.start(), m.end(), "\\infty" if word == "infinity" else "\\" + word))
    return _apply(s, edits)


def plain_scientific(s: str) -> str:
    """Scientific notation in any spelling as `a\\times10^{b}` (see the module docstring).

    >>> plain_scientific("3.2 x 10^-5 m"), plain_scientific("6*10^(23)"), plain_scientific("2x10^3")
    ('3.2\\\\times10^{-5} m', '6\\\\times10^{23}', '2x10^3')
    >>> plain_scientific("2 \\\\times 10^{3}")
    '2\\\\times10^{3}'
    """
    if "10" not in s:
        return s
    return _SCIENTIFIC_RE.sub(lambda m: f"{m.group(1)}\\times10^{{{next(g for g in m.groups()[1:] if g)}}}", s)


def unbold(s: str) -> str:
    """Bold wrappers dropped, the digits they part by spaces joined (see the module docstring).

    >>> unbold("\\\\frac{\\\\mathbf{9} \\\\sqrt{\\\\mathbf{3}}}{\\\\mathbf{2 0}}"), unbold("\\\\mathbf{1 0 2 , 0 1 8}"), unbold("\\\\mathbf{- 7}")
    ('\\\\frac{9 \\\\sqrt{3}}{20}', '102,018', '-7')
    >>> unbold("\\\\mathbf{1 0 2 4}-\\\\mathbf{2 5 6 \\\\pi}"), unbold("2 3")
    ('1024-256 \\\\pi', '2 3')
    """
    return _BOLD_RE.sub(lambda m: _SPACED_DIGITS_RE.sub("", m.group(1)), s) if "\\" in s else s
