"""The answer the final sentence of a completion states, as a person reads it (rule 4 of
`sgpo_lib.grading.extract`; sgpo-method.md, Notation: the reward r(x, y) needs the answer of a
completion y). Standard library only: runs in the grading worker.

The final sentence is the one holding the text's last digit (a full stop inside the math,
`$x = 1.$ Then`, ends a sentence too), read from its concluding clause: after its last "so" /
"thus" / "therefore" / "hence" / "which means" / "for a total of" that a digit follows ("we try
$p = 3$, so the least sum is $11$" -> 11), else after a leading "Since ..., " / "If ..., "
clause; a closing remark ("Note: ...", "(Check: ...)") is not read. Then, in this order:

1. assignments that end the sentence (no digit after the last): two or more to different names
   (`x = -1, y = 4`), or one name's or one tuple's alternatives (`k = -1 or k = -9`, `x = 1 and
   x = 3`, `(x, y) = (1, 2) or (x, y) = (3, 4)`), give their values as a list, unless they sit in
   a clause that explains a quantity stated before it ("the minimum is $-\\frac{5}{4},$ which
   occurs at $x = \\frac{1}{2}$ and $y = -\\frac{1}{2}$" -> -5/4); `m = -1, b = 6, and m + b = 5`
   is no list (5);
2. the quantity right after the clause's first part's last "is" / "are" / "=" / `\\approx`
   ("there are 60 ways to seat the 5 guests" -> 60; "is then $x$"), with the quantities listed
   right after it by ", " / "and" (by "or" between inequalities) as one answer ("the roots are
   $1$, $2$ and $3$" -> `1, 2, 3`, which a one-item reference never equals);
3. the last quantity, unless it is a plain number given in the problem, not the right-hand side
   of an equation, and another plain number of the sentence is not ("she needs 7 more bags for
   the 42 apples" -> 7); inequalities joined by "or" before it come with it (`$x < 2$ or $x > 3$`).

Before all that, a last math segment without a digit, after the text's last digit, that "is" /
"=" / a conclusion word introduces is the answer ("Therefore, the least period is $\\pi.$").

A quantity in a math segment (`$..$`, `\\[..\\]`, or a bare `\\begin{align*}` / `equation` /
`gather` environment) is the segment's right-hand side after its last `=` / `\\approx` /
`\\simeq` / `\\equiv` / `\\Rightarrow`, or the number on the left of a lone variable there
(`18 &= x`), or, against an equation reference (`equation_reference`), its equation whole
(`_last_relation`); a plain one is a whole expression such as `-2\\sqrt{3}/3`, `8\\pi/5` or
`3.2 x 10^-5` (never a lone denominator; a rate's unit dropped: `$18,000/year` -> 18,000). A
modulus (`\\pmod{9}`, "modulo 11") is never the quantity.

A stated answer loses the punctuation that ends its sentence or clause inside the math (`$-3,$`)
and the frame of a displayed equation around its last line (`\\end{aligned}`, a trailing `\\\\`,
`&`, a note column `& \\text{add 3}`): `strip_wrappers`.

Every step is linear in the text's length (tests time each rule on 8 KB tails): no regex can
backtrack over more than one quantity, and the relations of a segment are read once.
"""

from __future__ import annotations

import bisect
import re

from .check import PROSE_WORD_RE, as_number

# a clause explaining the answer before it: cut there
EXPLANATION_RE = re.compile(r"(?i)(?:,\s*|\s+)(?:which|since|because|as|so that|given|where|when)\b|;|,\s+(?!and\b|or\b)(?=[A-Za-z]{3})")
SENTENCE_END_RE = re.compile(r"[.!?](?:\$+|\\[)\]])?(?=\s)|\n")  # `x = 1.$ Then`: a full stop inside the math ends it too
_COPULA_RE = re.compile(r"(?i)\b(?:is|are|was|were|equals?|be)\b|=|\\approx")
_FILLERS = r"about|approximately|roughly|around|nearly|exactly|only|just|then|thus|therefore|hence|also|now|simply|clearly"
_BEFORE_QUANTITY_RE = re.compile(r"(?i)(?:\s|\$|\\[(\[]|\*|~|\b(?:" + _FILLERS + r")\b)*")
_BEFORE_WORDED_RE = re.compile(r"(?i)(?:\s|:|\$|\\[(\[]|\*|~|\b(?:" + _FILLERS + r"|an?)\b)*")  # `is an $\text{odd}$ function`
_INTRODUCER_RE = re.compile(r"(?i)\b(?:gets?|obtains?|have|finds?|gives?|yields?)\b")  # `Thus, we obtain \[ ... \]`
# a closing condition in parentheses: `$= 3$ (as long as $T \neq 0$).`
_CONDITION_RE = re.compile(r"(?i)\s*(?:as long as|provided|assuming|if|when|whenever|for all|for every|for any|unless)\b")
_ASSIGNMENT_RE = re.compile(r"(?:^|(?<=[\s,;(]))([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*([^,;=]*\d[^,;=]*?)\s*(?=,|;|\band\b|\bor\b|$)")
# a tuple of names given a tuple of values: `(x, y) = (1, 2)`
_TUPLE_ASSIGNMENT_RE = re.compile(r"(\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])+\s*\))\s*=\s*(\([^()=]*\))")
_NAME_EQUALS_RE = re.compile(r"\s*[A-Za-z](?:_\{?\w+\}?)?\s*=")
_ALTERNATIVE_RE = re.compile(r"[\s,]*(?:or|and)?\s*")
_PLAIN_MATH_RE = re.compile(r"\$+|\\[()\[\]]|\\(?:left|right)(?![A-Za-z])")  # delimiters and `\left(`, `\right)`
_LIST_GAP_RE = re.compile(r"\s*(?:,\s*(?:and\s+)?|and\s+|,?\s*(or)\s+)\s*")
_INEQUALITY_RE = re.compile(r"[<>]|\\(?:le|ge|leq|geq|leqslant|geqslant|lt|gt)(?![A-Za-z])")
_CONCLUSION_RE = re.compile(r"(?i)(?:^|[\s,;])(?:so(?![ \t]+that\b(?!'))|thus|therefore|hence|which means"
                            r"|which gives|this gives|giving|meaning|for a total of|in total)\b")
_SUBORDINATE_RE = re.compile(r"(?i)\s*(?:since|because|as|if|given that|when)\b(?:[^,;{]|\{,?)*,")  # `123{,}999`: no comma
_REMARK_RE = re.compile(r"\s*(?:\*\*)?(?:Note|Remark|Check|Verification)\s*(?:\*\*)?:")
_DELIMITER_RE = re.compile(r"\$+|\\[()\[\]]")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
# scientific notation in any spelling: `3.2e-5`, `3.2 x 10^-5`, `3.2*10^(-5)`, `2.1 \times 10^{3}`
_SCIENTIFIC = (r"\d+(?:\.\d+)?(?:[eE][-+]?\d+(?![A-Za-z])|\s*(?:x|\\times|\\cdot|\*)\s*10\s*\^\s*"
               r"(?:\{\s*[-+]?\d+\s*\}|\(\s*[-+]?\d+\s*\)|[-+]?\d+))")
_EXPR_RE = re.compile(r"(?:" + _SCIENTIFIC + r"|\d{1,3}(?:,\d{3})+|\\(?:d?frac|sqrt|pi|cdot|times)|(?<![A-Za-z])(?:sqrt|pi)(?![A-Za-z])|\\%"
                      r"|[0-9{}^/.()*%+\-])+")
_RELATION_RE = re.compile(r"=|\\(?:approx|equiv|simeq|sim|Rightarrow|implies)(?![A-Za-z])")
_LINE_BREAK_RE = re.compile(r"\\\\|\n|\\(?:Rightarrow|Longrightarrow|implies|iff|q?quad)(?![A-Za-z])")
_LONE_VARIABLE_RE = re.compile(r"(?:[A-Za-z]|\\(?!pi\b|infty\b)[A-Za-z]+)(?:_(?:\{(?:[^{}]|\{[^{}]*\})*\}|\w))?")  # `x`, `v_0`, `\lambda_{\text{ball}}`
_WORD_VALUE_RE = re.compile(r"\\text\s*\{\s*[A-Za-z ]+\}")  # `= \text{constant}`: no value
# a modulus after the value: `\pmod{13}`, `\pmod n`, `(\text{mod } 7)`, `modulo 7`; before a number: it is no answer
_MODULUS_RE = re.compile(r"\\pmod\s*(?:\{[^{}]*\}|\w+)|\(\s*\\(?:text|mathrm)\{\s*mod\s*\}\s*\w+\s*\)"
                         r"|(?:\\b?mod|\bmod(?:ulo)?)\s*\{?\s*\w+\}?")
_MODULUS_BEFORE_RE = re.compile(r"(?:\\pmod|\\b?mod|\bmod(?:ulo)?)\s*\{?\s*$")
# the frame of a displayed equation around its last line: `\begin{aligned}`, `\end{align*}`, `\\`, `&`
_ALIGNMENT_RE = re.compile(r"\\(?:begin|end)\{(?:align|aligned|gather|gathered|eqnarray|split|equation|multline)\*?\}"
                           r"|\\\\\s*$|^\s*(?:\\text\{\s*\}\s*)?&|&\s*(?:\\text\{[^{}]*\}\s*)?$")  # `&\text{added 1}`: a note


def strip_wrappers(s: str) -> str:
    """Strip markdown bold, math delimiters, the frame of a displayed equation and the
    punctuation that ends a sentence or a clause around a one-line answer.

    >>> strip_wrappers("**$\\\\frac{3}{4}$**.")
    '\\\\frac{3}{4}'
    >>> strip_wrappers("-1,"), strip_wrappers("x &= 4.25 \\\\\\\\\\n\\\\end{aligned}")
    ('-1', 'x &= 4.25')
    """
    s = _ALIGNMENT_RE.sub("", s.strip()).strip().rstrip(".,;:").strip().strip("*").strip()
    s = re.sub(r"^(\$+|\\\(|\\\[)|(\$+|\\\)|\\\])$", "", s).strip()
    return _ALIGNMENT_RE.sub("", s).strip().rstrip(".,;:/").strip()


def _quantity(text: str, m: re.Match, maths: list[tuple[int, int]], keep_relation: bool = False) -> tuple[int, int, str, bool]:
    """(start, end, answer, is the right-hand side of an equation) of one quantity: its math
    segment's right-hand side after its last `=` (or, with `keep_relation`, its last relation
    whole: `_last_relation`), else the whole plain expression, unmatched outer brackets trimmed."""
    for s, e in maths:
        if s <= m.start() and m.end() <= e:
            return (s, e, *_segment_value(text[s:e], keep_relation))
    expr = m.group().strip(".").strip().rstrip("/*^").strip().strip("*")  # `$18,000/year`: a rate's unit; `**12**`: bold
    for left, right in ("()", "{}"):
        while expr.endswith(right) and expr.count(right) > expr.count(left):
            expr = expr[:-1]
        while expr.startswith(left) and expr.count(left) > expr.count(right):
            expr = expr[1:]
    return m.start(), m.end(), expr.replace(",", "") if THOUSANDS_RE.match(expr) else expr, False


def stated_value(segment: str, keep_relation: bool = False) -> str:
    """The answer a math segment states (as a quantity of the module docstring), except that
    several assignments stay whole (`x = 1, y = 2`).

    >>> stated_value("7 \\\\cdot 6 = 42"), stated_value("x = 1, y = 2"), stated_value("y' = 2y", keep_relation=True)
    ('42', 'x = 1, y = 2', "y' = 2y")
    """
    return strip_wrappers(segment) if _assignments(segment)[1] else _segment_value(segment, keep_relation)[0]


def _segment_value(segment: str, keep_relation: bool) -> tuple[str, bool]:
    return (_last_relation(segment), True) if keep_relation and _RELATION_RE.search(segment) else _right_hand_side(segment)


def _last_relation(segment: str) -> str:
    """A math segment's last equation whole: the left-hand side of the first relation on the last
    line that has one, and the right-hand side of the last relation (`\\frac{dx}{dt} = kx - a`;
    `y = 3x = 6` gives `y = 6`; the chain `g(x) &= (x-1)^2 + 1 \\\\ &= x^2 - 2x + 2` gives
    `g(x) = x^2 - 2x + 2`), for an equation reference."""
    relations = list(_RELATION_RE.finditer(segment))
    rhs = strip_wrappers(_MODULUS_RE.sub("", segment[relations[-1].end():]))
    breaks = [0] + [b.end() for b in _LINE_BREAK_RE.finditer(segment)]
    firsts = {}  # the first relation of each line
    for r in relations:
        firsts.setdefault(breaks[bisect.bisect_right(breaks, r.start()) - 1], r)
    for line, first in sorted(firsts.items(), reverse=True):
        lhs = strip_wrappers(segment[line:first.start()])
        if lhs:
            return f"{lhs} {first.group()} {rhs}"
    return rhs


def _right_hand_side(segment: str) -> tuple[str, bool]:
    """(value, is the right-hand side of a relation) of a math segment: what follows its last
    relation (`_RELATION_RE`), a trailing modulus dropped; a lone variable there with a number
    on the other side of that relation, within its line (`18 &= x`, `4.6e-24 \\mathrm{~m} =
    \\lambda_{\\text{ball}}`), gives the number, and so does a word (`= \\text{constant}`)."""
    relations = list(_RELATION_RE.finditer(segment))
    if not relations:
        return strip_wrappers(_MODULUS_RE.sub("", segment)), False
    last = relations[-1]
    rhs = strip_wrappers(_MODULUS_RE.sub("", segment[last.end():]))
    if not (_LONE_VARIABLE_RE.fullmatch(rhs) or _WORD_VALUE_RE.fullmatch(rhs)):
        return rhs, True
    begin = max([relations[-2].end()] if len(relations) > 1 else [0])
    begin = max([begin] + [b.end() for b in _LINE_BREAK_RE.finditer(segment, begin, last.start())])
    lhs = strip_wrappers(segment[begin:last.start()])
    is_number = any(c.isdigit() for c in lhs) and (as_number(lhs) is not None or not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", lhs)))
    return (lhs if is_number or _WORD_VALUE_RE.fullmatch(rhs) and lhs else rhs), True


def _assignments(sentence: str) -> tuple[int, list[str]]:
    """(where the first starts, values) of two or more assignments to different names
    (`x = -1, y = 4`), or to one name or tuple of names (its solutions: `k = -1 or k = -9`,
    `x = 1 and x = 3`, `(x, y) = (1, 2) or (x, y) = (3, 4)`), that end the sentence: no digit
    follows the last one (`m = -1, b = 6, and m + b = 5` states 5); else (0, [])."""
    plain = _PLAIN_MATH_RE.sub(lambda d: " " * len(d.group()), sentence)  # positions kept
    found = sorted((m for r in (_ASSIGNMENT_RE, _TUPLE_ASSIGNMENT_RE) for m in r.finditer(plain)
                    if not PROSE_WORD_RE.search(m.group(2))), key=lambda m: m.start())  # `r = 1 gives 5`: no assignment
    if len(found) < 2 or re.search(r"\d", plain[found[-1].end():]):
        return 0, []
    names = {re.sub(r"\s", "", m.group(1)) for m in found}
    if len({m.re for m in found}) > 1:  # `b = -6, or (a, b) = (5, -6)`: a name and a tuple
        return 0, []
    alternatives = len(names) == 1 and all(_ALTERNATIVE_RE.fullmatch(plain[a.end():b.start()]) for a, b in zip(found, found[1:]))
    return (found[0].start(), [strip_wrappers(m.group(2)) for m in found]) if len(names) == len(found) or alternatives else (0, [])


def _after_copula(sentence: str, starts: dict[int, str], offset: int) -> int | None:
    """Where the quantity right after the last copula of the first clause that has one begins
    (`starts`: the quantities by their position in the text, `offset`: the sentence's)."""
    cuts = [m.start() for m in EXPLANATION_RE.finditer(sentence)] + [len(sentence)]
    begin = 0
    for end in cuts:
        chosen = None
        for c in _COPULA_RE.finditer(sentence, begin, end):
            at = offset + _BEFORE_QUANTITY_RE.match(sentence, c.end()).end()
            chosen = at if at in starts else chosen
        if chosen is not None:
            return chosen
        begin = end
    return None


def _listed(text: str, spans: list[tuple[int, int, str]], first: int) -> str:
    """The quantity at `first` and those that follow it joined by ", " / "and" (or by "or"
    between inequalities): `the roots are $1$, $2$ and $3$` -> `1, 2, 3`."""
    at = next(i for i, (start, _, _) in enumerate(spans) if start == first)
    items = [spans[at]]
    for start, end, value in spans[at + 1:]:
        gap = _DELIMITER_RE.sub(" ", text[items[-1][1]:start])
        joined = _LIST_GAP_RE.fullmatch(gap)
        if not joined or joined.group(1) and not (_INEQUALITY_RE.search(items[-1][2]) and _INEQUALITY_RE.search(value)):
            break
        items.append((start, end, value))
    return ", ".join(v for _, _, v in items)


def equation_reference(gold: str) -> bool:
    """True for a reference that is an equation other than `name = value` (`\\frac{dx}{dt} = kx - a`,
    `MR = SRMC`): its answer is a math segment's last relation whole, not its right-hand side.

    >>> equation_reference("y' + ry = 0"), equation_reference("x = 5"), equation_reference("12")
    (True, False, False)
    """
    return "=" in gold and not _NAME_EQUALS_RE.match(gold)


def _without_remark(text: str) -> str:
    """The text without a closing remark that follows the answer: a final paragraph that starts
    with "Note:" / "Remark:" / "Check:", a final sentence wholly in parentheses, or a condition in
    parentheses that ends the last sentence ("(as long as $T \\neq 0$).")."""
    body = text.rstrip()
    paragraph = body.rfind("\n") + 1
    if paragraph and _REMARK_RE.match(body, paragraph):
        return body[:paragraph]
    if not body.endswith((")", ").")):
        return text
    end = len(body) - body.endswith(").")
    depth, i = 0, end
    while i > 0 and (depth or i == end):
        i -= 1
        depth += {")": 1, "(": -1}.get(body[i], 0)
    before = body[:i].rstrip().rstrip("$").removesuffix("\\]")
    closing = before[-1:] in (".", "!", "?") or _CONDITION_RE.match(body, i + 1)
    return body[:i] if i > 0 and depth == 0 and closing else text


def final_sentence_answer(text: str, maths: list[tuple[int, int]], problem: str, keep_relation: bool = False) -> list[str] | None:
    """The answer the final sentence states (the module docstring); `keep_relation`: a math
    segment's last relation whole instead of its right-hand side (an equation reference)."""
    text = _without_remark(text)
    exprs = [m for m in _EXPR_RE.finditer(text)
             if any(c.isdigit() for c in m.group()) and not _MODULUS_BEFORE_RE.search(text, max(0, m.start() - 12), m.start())]
    worded = _stated_without_digits(text, maths, exprs[-1].end() if exprs else 0, keep_relation)
    if worded or not exprs:
        return [worded] if worded else None
    last = exprs[-1]
    begin = _sentence_start(text, last.start())
    end_m = SENTENCE_END_RE.search(text, last.end())
    sentence = text[begin:end_m.start() if end_m else len(text)]
    skip = _main_clause(sentence)
    begin, sentence = begin + skip, sentence[skip:]
    found = {start: (end, value, equation) for start, end, value, equation in
             (_quantity(text, m, maths, keep_relation) for m in exprs if m.start() >= begin) if value}
    quantities = {start: value for start, (_, value, _) in found.items()}
    listed_at, listed = _assignments(sentence)
    if listed:
        cut = [c.start() for c in EXPLANATION_RE.finditer(sentence, 0, listed_at)]
        head = _after_copula(sentence[:cut[-1]], quantities, begin) if cut else None  # `the least is $-5/4,$ which occurs at x = .., y = ..`
        return [quantities[head]] if head is not None else listed
    if not quantities:
        return None
    spans = sorted((start, end, value) for start, (end, value, _) in found.items())
    stated = _after_copula(sentence, quantities, begin)
    if stated is not None:
        return [_listed(text, spans, stated)]
    chosen = _not_given(quantities, {start for start, (_, _, eq) in found.items() if eq}, problem)
    return [_listed(text, spans, _first_alternative(text, spans, chosen))] if _INEQUALITY_RE.search(quantities[chosen]) else [quantities[chosen]]


def _sentence_start(text: str, at: int) -> int:
    ends = [m.end() for m in SENTENCE_END_RE.finditer(text, max(0, at - 2000), at)]
    return ends[-1] if ends else max(0, at - 2000)


def _stated_without_digits(text: str, maths: list[tuple[int, int]], after: int, keep_relation: bool) -> str | None:
    """The answer of a last math segment without a digit, after the text's last digit, that a
    copula, a conclusion word or "we get / obtain / have / find" introduces (`Therefore, the least
    period is $\\pi.$`, `so $h$ is $\\text{odd}$`, `Thus, we obtain \\[t = -\\tau \\ln \\Delta\\]`), else None."""
    last = max(((s, e) for s, e in maths if e <= len(text) and s >= after and text[s:e].strip()), key=lambda x: x[1], default=None)
    if last is None or any(c.isdigit() for c in text[last[0]:last[1]]):
        return None
    begin = _sentence_start(text, last[0])
    lead = text[begin:last[0]]
    introduced = [m for r in (_COPULA_RE, _CONCLUSION_RE, _INTRODUCER_RE) for m in r.finditer(lead)
                  if _BEFORE_WORDED_RE.match(text, begin + m.end()).end() >= last[0]]
    value = _segment_value(text[last[0]:last[1]], keep_relation)[0] if introduced else ""
    return value or None


def _main_clause(sentence: str) -> int:
    """Where the clause that states the answer begins: after the last conclusion word ("so",
    "thus", "hence", "which means", "for a total of" ...) that a digit follows; else after a
    leading subordinate clause ("Since ..., ", "If ..., "); else 0."""
    last_digit = max(sentence.rfind(d) for d in "0123456789")
    marks = [m.end() for m in _CONCLUSION_RE.finditer(sentence) if m.end() <= last_digit]
    if marks:
        return marks[-1]
    lead = _SUBORDINATE_RE.match(sentence)
    return lead.end() if lead and lead.end() <= last_digit else 0


def _not_given(quantities: dict[int, str], equations: set[int], problem: str) -> int:
    """Where the last quantity starts, unless it is a plain number given in the problem, not the
    right-hand side of an equation, and another plain number or right-hand side of the sentence is
    not given ("they mow $5 \\cdot 2 = \\mathbf{10}$ lawns in 2 hours" -> 10)."""
    last_start, last = max(quantities.items())
    given = set(_NUMBER_RE.findall(problem.replace(",", "")))
    fresh = [start for start, v in sorted(quantities.items()) if (_NUMBER_RE.fullmatch(v) or start in equations) and v not in given]
    return fresh[-1] if last in given and last_start not in equations and fresh else last_start


def _first_alternative(text: str, spans: list[tuple[int, int, str]], start: int) -> int:
    """Where a run of inequalities joined by "or" that ends at the one at `start` begins (`$x < 2$
    or $x > 3$`), for `_listed`."""
    at = next(i for i, span in enumerate(spans) if span[0] == start)
    while at and _INEQUALITY_RE.search(spans[at - 1][2]) and _INEQUALITY_RE.search(spans[at][2]):
        joined = _LIST_GAP_RE.fullmatch(_DELIMITER_RE.sub(" ", text[spans[at - 1][1]:spans[at][0]]))
        if not (joined and joined.group(1)):
            break
        at -= 1
    return spans[at][0]
