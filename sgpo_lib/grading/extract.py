"""Answer extraction for the verifier (sgpo-method.md, Notation: the reward r(x, y) needs the
answer of a completion y). Standard library only: the grading worker imports this file by path.

`extract_answer(text)` looks only at the last `tail_chars` characters, cleans them (NFKC, so
full-width digits become ASCII; null bytes dropped; lone surrogates replaced; `√ π ≤ ∪ ...`
become LaTeX), and then takes, in this order:

1. the last `\\boxed{}` / `\\fbox{}` with balanced braces; when several outermost boxes share
   that box's line, all of them (graded as a set or tuple; or the last alone against a
   one-item reference: `answer_for`);
2. the last GSM8K `#### ...` line;
3. what follows the last "final answer" / "the (correct) answer is" / "the correct option is"
   phrase: the math segment (`$..$`, `\\(..\\)`, `\\[..\\]`) it starts with, else its sentence
   up to a clause that explains it (", which ...", " since ...", " because ...");
4. the answer the final sentence states, as a person reads it (that sentence: the one holding
   the text's last digit; a full stop inside the math, `$x = 1.$ Then`, ends a sentence too),
   read from its concluding clause: after its last "so" / "thus" / "therefore" / "hence" /
   "which means" / "for a total of" that a digit follows ("we try $p = 3$, so the least sum is
   $11$" -> 11), else after a leading "Since ..., " / "If ..., " clause; a closing remark
   ("Note: ...", "(Check: ...)") is not read: several assignments `x = -1, y = 4`, or one
   name's alternatives `k = -1 or k = -9`, give their values as a list; else the quantity right after the clause's
   first part's last "is" / "are" / "=" / `\\approx` ("there are 60 ways to seat the 5
   guests" -> 60); else the last quantity, unless it is a plain number given in the problem,
   not the right-hand side of an equation, and another plain number of the sentence is not
   ("she needs 7 more bags for the 42 apples" -> 7). A quantity in a math segment (`$..$`,
   `\\[..\\]`, or a bare `\\begin{align*}` / `equation` / `gather` environment) is the segment's
   right-hand side after its last `=` / `\\approx` / `\\simeq` / `\\equiv` / `\\Rightarrow`, or the number on the left of a
   lone variable there (`18 &= x`); a plain one is a whole expression such as `-2\\sqrt{3}/3`
   or `8\\pi/5` (never a lone denominator). A modulus (`\\pmod{9}`, "modulo 11") is never
   the quantity.

A stated answer (rules 3 and 4) loses the punctuation that ends its sentence or clause inside
the math (`$-3,$`) and the frame of a displayed equation around its last line
(`\\end{aligned}`, a trailing `\\\\`, `&`, a note column `& \\text{add 3}`): `strip_wrappers`.

Every step is linear in the tail's length: the braces and math delimiters are read in one
regex pass with a stack, and the other regexes have no nested quantifiers.
"""

from __future__ import annotations

import re
import unicodedata

from .text import unicode_roots_to_latex

DEFAULT_TAIL_CHARS = 8192
_UNICODE_LATEX = {"−": "-", "π": "\\pi", "≤": "\\le", "≥": "\\ge", "≠": "\\ne",
                  "∞": "\\infty", "∪": "\\cup", "∩": "\\cap", "×": "\\times", "·": "\\cdot",
                  "÷": "\\div", "⁄": "/", "°": "^\\circ", "±": "\\pm"}
_UNICODE_RE = re.compile("(" + "|".join(map(re.escape, _UNICODE_LATEX)) + ")([A-Za-z]?)")
# one token per match: a box opening, a math delimiter, an escaped character, a brace
_DISPLAY = r"\\(?:begin|end)\{(?:align|equation|gather|multline|eqnarray)\*?\}"  # a displayed equation without `$$`
_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\$\$?|\\[()\[\]]|" + _DISPLAY + r"|\\.|[{}]", re.S)
_CLOSER = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_HASH_RE = re.compile(r"####[ \t]*([^\n]+)")
_PHRASE_RE = re.compile(r"(?i)(?:final answer|the (?:correct |right )?answer(?: choice)?|the correct (?:option|choice))"
                        r"[ \t]*(?:is\b|:)[ \t]*:?[ \t]*")
# a clause explaining the answer before it: cut there
_EXPLANATION_RE = re.compile(r"(?i)(?:,\s*|\s+)(?:which|since|because|as|so that|given|where|when)\b|;|,\s+(?!and\b|or\b)(?=[A-Za-z]{3})")
_SENTENCE_END_RE = re.compile(r"[.!?](?:\$+|\\[)\]])?(?=\s)|\n")  # `x = 1.$ Then`: a full stop inside the math ends it too
_COPULA_RE = re.compile(r"(?i)\b(?:is|are|was|were|equals?|be)\b|=|\\approx")
_BEFORE_QUANTITY_RE = re.compile(r"(?i)(?:\s|\$|\\[(\[]|\*|~|\b(?:about|approximately|exactly|only|just)\b)*")
_ASSIGNMENT_RE = re.compile(r"(?:^|(?<=[\s,;(]))([A-Za-z](?:_\{?\w+\}?)?)\s*=\s*([^,;=]*\d[^,;=]*?)\s*(?=,|;|\band\b|\bor\b|$)")
_CONCLUSION_RE = re.compile(r"(?i)(?:^|[\s,;])(?:so(?![ \t]+that\b(?!'))|thus|therefore|hence|which means"
                            r"|which gives|this gives|giving|for a total of|in total)\b")
_SUBORDINATE_RE = re.compile(r"(?i)\s*(?:since|because|as|if|given that|when)\b[^,;]*,")
_REMARK_RE = re.compile(r"\s*(?:\*\*)?(?:Note|Remark|Check|Verification)\s*(?:\*\*)?:")
_DELIMITER_RE = re.compile(r"\$+|\\[()\[\]]")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_SENTENCE_RE = re.compile(r"[^\n]*?(?=\.\s|\.?[ \t]*(?:\n|$))")
_EXPR_RE = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\\(?:d?frac|sqrt|pi|cdot|times)|(?<![A-Za-z])(?:sqrt|pi)(?![A-Za-z])|\\%"
                      r"|[0-9{}^/.()*%+\-])+")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_RELATION_RE = re.compile(r"=|\\(?:approx|equiv|simeq|sim|Rightarrow|implies)(?![A-Za-z])")
_LINE_BREAK_RE = re.compile(r"\\\\|\n|\\(?:Rightarrow|Longrightarrow|implies|iff|q?quad)(?![A-Za-z])")
_LONE_VARIABLE_RE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?")
# a modulus after the value: `\pmod{13}`, `\pmod n`, `(\text{mod } 7)`, `modulo 7`; before a number: it is no answer
_MODULUS_RE = re.compile(r"\\pmod\s*(?:\{[^{}]*\}|\w+)|\(\s*\\(?:text|mathrm)\{\s*mod\s*\}\s*\w+\s*\)"
                         r"|(?:\\b?mod|\bmod(?:ulo)?)\s*\{?\s*\w+\}?")
_MODULUS_BEFORE_RE = re.compile(r"(?:\\pmod|\\b?mod|\bmod(?:ulo)?)\s*\{?\s*$")
# the frame of a displayed equation around its last line: `\begin{aligned}`, `\end{align*}`, `\\`, `&`
_ALIGNMENT_RE = re.compile(r"\\(?:begin|end)\{(?:align|aligned|gather|gathered|eqnarray|split|equation|multline)\*?\}"
                           r"|\\\\\s*$|^\s*(?:\\text\{\s*\}\s*)?&|&\s*(?:\\text\{[^{}]*\}\s*)?$")  # `&\text{added 1}`: a note


def clean_text(text: str, tail_chars: int = DEFAULT_TAIL_CHARS) -> str:
    """The last `tail_chars` characters, NFKC-normalised, with unicode math written as LaTeX.

    >>> clean_text("x = \\uff14\\uff12\\x00 and \\ud800 \\u221a30/12")
    'x = 42 and ? \\\\sqrt{30}/12'
    """
    text = text[-tail_chars:].replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _UNICODE_RE.sub(_to_latex, unicode_roots_to_latex(unicodedata.normalize("NFKC", text)))


def _to_latex(m: re.Match) -> str:
    latex = _UNICODE_LATEX[m.group(1)]
    return latex + (" " if m.group(2) and latex[-1].isalpha() else "") + m.group(2)


def _scan(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(closed boxes, closed math segments) as (content start, content end) spans, one pass.

    A box's braces nest; an unclosed box or delimiter is simply never reported.
    """
    boxes, maths = [], []
    stack: list[tuple[bool, int]] = []  # (is_box, content start) per open brace
    math_open: tuple[str, int] | None = None
    for m in _TOKEN_RE.finditer(text):
        tok = m.group()
        if tok in _CLOSER or tok in ("\\)", "\\]") or tok.startswith(("\\begin", "\\end")):
            if math_open is None and (tok in _CLOSER or tok.startswith("\\begin")):
                math_open = (_CLOSER.get(tok, tok.replace("begin", "end", 1)), m.end())
            elif math_open is not None and tok == math_open[0]:
                maths.append((math_open[1], m.start()))
                math_open = None
        elif tok == "{" or tok[-1] == "{" and tok[1] in "bf":
            stack.append((tok != "{", m.end()))
        elif tok == "}" and stack:
            is_box, start = stack.pop()
            if is_box:
                boxes.append((start, m.start()))
    return boxes, maths


def _outermost(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if not out or start > out[-1][1]:
            out.append((start, end))
    return out


def _final_boxes(text: str, boxes: list[tuple[int, int]]) -> list[str]:
    """The last box, or all distinct outermost boxes on its line, in order."""
    last = max(boxes, key=lambda s: s[1])
    line_start = text.rfind("\n", 0, last[0]) + 1
    line_end = text.find("\n", last[1])
    line_end = len(text) if line_end < 0 else line_end
    same = [text[s:e].strip() for s, e in _outermost(boxes) if s >= line_start and e <= line_end]
    return list(dict.fromkeys(c for c in same if c)) or [text[last[0]:last[1]].strip()]


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
    return _ALIGNMENT_RE.sub("", s).strip().rstrip(".,;:").strip()


def _after_phrase(text: str, start: int, maths: list[tuple[int, int]]) -> str:
    """The answer after a phrase ending at `start`: a math segment right there, else the
    sentence up to an explaining clause."""
    rest = text[start:start + 2]
    for s, e in maths:
        if s > start and s - start <= 2 and rest[:1] in "$\\":
            return text[s:e]
    m = _SENTENCE_RE.match(text, start)
    sentence = m.group() if m else ""
    cut = _EXPLANATION_RE.search(sentence)
    return sentence[:cut.start()] if cut and any(c.isdigit() or c.isalpha() for c in sentence[:cut.start()]) else sentence


def _quantity(text: str, m: re.Match, maths: list[tuple[int, int]]) -> tuple[int, str, bool]:
    """(start, answer, is the right-hand side of an equation) of one quantity: its math
    segment's right-hand side after its last `=`, else the whole plain expression, unmatched
    outer brackets trimmed."""
    for s, e in maths:
        if s <= m.start() and m.end() <= e:
            return (s, *_right_hand_side(text[s:e]))
    expr = m.group().strip(".").strip()
    for left, right in ("()", "{}"):
        while expr.endswith(right) and expr.count(right) > expr.count(left):
            expr = expr[:-1]
        while expr.startswith(left) and expr.count(left) > expr.count(right):
            expr = expr[1:]
    return m.start(), expr.replace(",", "") if _THOUSANDS_RE.match(expr) else expr, False


def _right_hand_side(segment: str) -> tuple[str, bool]:
    """(value, is the right-hand side of a relation) of a math segment: what follows its last
    relation (`_RELATION_RE`), a trailing modulus dropped; a lone variable there with a number
    on the other side of that relation, within its line (`18 &= x`), gives the number."""
    relations = list(_RELATION_RE.finditer(segment))
    if not relations:
        return strip_wrappers(_MODULUS_RE.sub("", segment)), False
    last = relations[-1]
    rhs = strip_wrappers(_MODULUS_RE.sub("", segment[last.end():]))
    if not _LONE_VARIABLE_RE.fullmatch(rhs):
        return rhs, True
    begin = max([relations[-2].end()] if len(relations) > 1 else [0])
    begin = max([begin] + [b.end() for b in _LINE_BREAK_RE.finditer(segment, begin, last.start())])
    lhs = strip_wrappers(segment[begin:last.start()])
    is_number = any(c.isdigit() for c in lhs) and not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", "", lhs))
    return (lhs if is_number else rhs), True


def _assignments(sentence: str) -> list[str]:
    """The values of two or more assignments to different names (`x = -1, y = 4`), or to one
    name (its solutions: `k = -1 or k = -9`), else []."""
    plain = _DELIMITER_RE.sub(" ", sentence)
    found = list(_ASSIGNMENT_RE.finditer(plain))
    names = {m.group(1) for m in found}
    alternatives = len(names) == 1 and all(re.fullmatch(r"[\s,]*or\s*", plain[a.end():b.start()]) for a, b in zip(found, found[1:]))
    return [strip_wrappers(m.group(2)) for m in found] if len(found) >= 2 and (len(names) == len(found) or alternatives) else []


def _after_copula(sentence: str, starts: dict[int, str], offset: int) -> str | None:
    """The quantity right after the last copula of the first clause that has one (`starts`: the
    quantities by their position in the text, `offset`: the sentence's)."""
    cuts = [m.start() for m in _EXPLANATION_RE.finditer(sentence)] + [len(sentence)]
    begin = 0
    for end in cuts:
        chosen = None
        for c in _COPULA_RE.finditer(sentence, begin, end):
            chosen = starts.get(offset + _BEFORE_QUANTITY_RE.match(sentence, c.end()).end(), chosen)
        if chosen:
            return chosen
        begin = end
    return None


def _without_remark(text: str) -> str:
    """The text without a closing remark that follows the answer: a final paragraph that starts
    with "Note:" / "Remark:" / "Check:", or a final sentence wholly in parentheses."""
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
    return body[:i] if i > 0 and depth == 0 and before[-1:] in (".", "!", "?") else text


def _final_sentence_answer(text: str, maths: list[tuple[int, int]], problem: str) -> list[str] | None:
    """The answer the final sentence states (rule 4 of the module docstring)."""
    text = _without_remark(text)
    exprs = [m for m in _EXPR_RE.finditer(text)
             if any(c.isdigit() for c in m.group()) and not _MODULUS_BEFORE_RE.search(text, max(0, m.start() - 12), m.start())]
    if not exprs:
        return None
    last = exprs[-1]
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(text, max(0, last.start() - 2000), last.start())]
    begin = ends[-1] if ends else max(0, last.start() - 2000)
    end_m = _SENTENCE_END_RE.search(text, last.end())
    sentence = text[begin:end_m.start() if end_m else len(text)]
    skip = _main_clause(sentence)
    begin, sentence = begin + skip, sentence[skip:]
    listed = _assignments(sentence)
    if listed:
        return listed
    found = [_quantity(text, m, maths) for m in exprs if m.start() >= begin]
    quantities = {start: value for start, value, _ in found if value}
    equations = {start for start, _, equation in found if equation}
    if not quantities:
        return None
    stated = _after_copula(sentence, quantities, begin)
    if stated:
        return [stated]
    return [_not_given(quantities, equations, problem)]


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


def _not_given(quantities: dict[int, str], equations: set[int], problem: str) -> str:
    """The last quantity, unless it is a plain number given in the problem, not the right-hand
    side of an equation, and another plain number of the sentence is not given."""
    last_start, last = max(quantities.items())
    given = set(_NUMBER_RE.findall(problem.replace(",", "")))
    fresh = [v for v in quantities.values() if _NUMBER_RE.fullmatch(v) and v not in given]
    return fresh[-1] if last in given and last_start not in equations and fresh else last


def extract_answer(text: str, tail_chars: int = DEFAULT_TAIL_CHARS, problem: str = "") -> tuple[str | None, str]:
    """(prediction, how) with how in {"boxed", "hash", "answer_is", "last_expression", "none"};
    several boxes on the final line are joined by ", " (see `extract_answers`).

    Example:
        >>> extract_answer("so $x = \\\\boxed{\\\\frac{1}{2}}$.")
        ('\\\\frac{1}{2}', 'boxed')
        >>> extract_answer("She pays 3 * 4 = 12 dollars.\\n#### 12")
        ('12', 'hash')
        >>> extract_answer("Final Answer: The final answer is $8\\\\pi/5$. I hope it is correct.")
        ('8\\\\pi/5', 'answer_is')
        >>> extract_answer("so the distance is -2√3/3.")
        ('-2\\\\sqrt{3}/3', 'last_expression')
        >>> extract_answer("no digits here")
        (None, 'none')
    """
    parts, how = extract_answers(text, tail_chars, problem)
    return (", ".join(parts) if parts else None), how


def answer_for(parts: list[str], gold: str) -> str:
    """The prediction graded against `gold`: the boxes of the final line joined as a list, except
    when the reference is one item (no comma): then the last box, the usual final answer, since
    a list of several answers can never equal it (`price \\boxed{6.2}, quantity \\boxed{57}`).

    >>> answer_for(["6.2", "57"], "57"), answer_for(["1", "5"], "1, 5")
    ('57', '1, 5')
    """
    single = "," not in _THOUSANDS_COMMA_RE.sub("", gold)
    return parts[-1] if single else ", ".join(parts)


def extract_answers(text: str, tail_chars: int = DEFAULT_TAIL_CHARS, problem: str = "") -> tuple[list[str] | None, str]:
    """(answers, how): the rules of the module docstring; several answers for several boxes on
    the final line (rule 1) or several assignments in the final sentence (rule 4), else one.
    `problem` (optional) tells rule 4 which numbers are given."""
    text = clean_text(text, tail_chars)
    boxes, maths = _scan(text)
    if boxes:
        return _final_boxes(text, boxes), "boxed"
    found = [strip_wrappers(c) for c in _HASH_RE.findall(text)]
    if found and found[-1]:
        return [found[-1].replace(",", "") if _THOUSANDS_RE.match(found[-1]) else found[-1]], "hash"
    phrases = [m.end() for m in _PHRASE_RE.finditer(text)]
    answer = strip_wrappers(_after_phrase(text, phrases[-1], maths)) if phrases else ""
    if answer:
        return [answer.replace(",", "") if _THOUSANDS_RE.match(answer) else answer], "answer_is"
    found = _final_sentence_answer(text, maths, problem)
    return (found, "last_expression") if found else (None, "none")


def answer_sentences(text: str, tail_chars: int = DEFAULT_TAIL_CHARS, last: int = 3) -> list[str]:
    """Where a worded answer (yes/no) is stated, most telling first: the final box and its
    sentence; else what follows the last "the answer is" phrase; else the last `last` sentences,
    the final one first.

    >>> answer_sentences("It holds for n = 2. So yes, the series converges.\\n")
    ['So yes, the series converges', 'It holds for n = 2']
    """
    text = clean_text(text, tail_chars)
    boxes, maths = _scan(text)
    if boxes:
        s, e = max(boxes, key=lambda b: b[1])
        begin = max((m.end() for m in _SENTENCE_END_RE.finditer(text, max(0, s - 500), s)), default=max(0, s - 500))
        return [text[s:e], text[begin:e + 1]]
    phrases = [m.end() for m in _PHRASE_RE.finditer(text)]
    if phrases:
        return [_after_phrase(text, phrases[-1], maths)]
    sentences = [strip_wrappers(t) for t in re.split(r"(?<=[.!?])\s+|\n+", text[-2000:])]
    return [t for t in reversed(sentences) if t][:last]
