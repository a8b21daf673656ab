"""Answer extraction for the verifier (sgpo-method.md, Notation: the reward r(x, y) needs the
answer of a completion y). Standard library only: the grading worker imports this file by path.

`extract_answer(text)` looks only at the last `tail_chars` characters, cleans them (NFKC, so
full-width digits become ASCII; null bytes dropped; lone surrogates replaced; `√ π ≤ ∪ ...`
become LaTeX), and then takes, in this order:

1. the last `\\boxed{}` / `\\fbox{}` with balanced braces; when several outermost boxes share
   that box's line, all of them (graded as a set or tuple; or the last alone against a
   one-item reference: `answer_for`);
2. the last GSM8K `#### ...` line;
3. what follows the last "final answer" / "the answer is" phrase: the math segment (`$..$`,
   `\\(..\\)`, `\\[..\\]`) it starts with, else the text up to the end of the sentence;
4. the last math segment of the text, when it holds the last digit of the text (its right-hand
   side after a last `=`), else the last plain expression such as `-2\\sqrt3/3` or `8\\pi/5`
   (never a lone denominator).

Every step is linear in the tail's length: the braces and math delimiters are read in one
regex pass with a stack, and the other regexes have no nested quantifiers.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_TAIL_CHARS = 8192
_UNICODE_LATEX = {"−": "-", "√": "\\sqrt", "π": "\\pi", "≤": "\\le", "≥": "\\ge", "≠": "\\ne",
                  "∞": "\\infty", "∪": "\\cup", "∩": "\\cap", "×": "\\times", "·": "\\cdot",
                  "÷": "\\div", "⁄": "/", "°": "^\\circ", "±": "\\pm"}
_UNICODE_RE = re.compile("(" + "|".join(map(re.escape, _UNICODE_LATEX)) + ")([A-Za-z]?)")
# one token per match: a box opening, a math delimiter, an escaped character, a brace
_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\$\$?|\\[()\[\]]|\\.|[{}]", re.S)
_CLOSER = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_HASH_RE = re.compile(r"####[ \t]*([^\n]+)")
_PHRASE_RE = re.compile(r"(?i)(?:final answer|the answer)[ \t]*(?:is\b|:)[ \t]*:?[ \t]*")
_SENTENCE_RE = re.compile(r"[^\n]*?(?=\.\s|\.?[ \t]*(?:\n|$))")
_EXPR_RE = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\\(?:d?frac|sqrt|pi|cdot|times)|\\%|[0-9{}^/.()*%+\-])+")
_THOUSANDS_RE = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LAST_EQ_RE = re.compile(r"^.*(?:=|\\approx)", re.S)


def clean_text(text: str, tail_chars: int = DEFAULT_TAIL_CHARS) -> str:
    """The last `tail_chars` characters, NFKC-normalised, with unicode math written as LaTeX.

    >>> clean_text("x = \\uff14\\uff12\\x00 and \\ud800 \\u221a3")
    'x = 42 and ? \\\\sqrt3'
    """
    text = text[-tail_chars:].replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _UNICODE_RE.sub(_to_latex, unicodedata.normalize("NFKC", text))


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
        if tok in _CLOSER or tok in ("\\)", "\\]"):
            if math_open is None and tok in _CLOSER:
                math_open = (_CLOSER[tok], m.end())
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
    """Strip markdown bold, math delimiters and a final full stop around a one-line answer.

    >>> strip_wrappers("**$\\\\frac{3}{4}$**.")
    '\\\\frac{3}{4}'
    """
    s = s.strip().rstrip(".").strip().strip("*").strip()
    s = re.sub(r"^(\$+|\\\(|\\\[)|(\$+|\\\)|\\\])$", "", s).strip()
    return s.rstrip(".").strip()


def _after_phrase(text: str, start: int, maths: list[tuple[int, int]]) -> str:
    """The answer after a phrase ending at `start`: a math segment right there, else the sentence."""
    rest = text[start:start + 2]
    for s, e in maths:
        if s > start and s - start <= 2 and rest[:1] in "$\\":
            return text[s:e]
    m = _SENTENCE_RE.match(text, start)
    return m.group() if m else ""


def _last_expression(text: str, maths: list[tuple[int, int]]) -> str | None:
    """The last math segment if it holds the text's last digit, else the last plain expression."""
    exprs = [m for m in _EXPR_RE.finditer(text) if any(c.isdigit() for c in m.group())]
    if not exprs:
        return None
    last = exprs[-1]
    for s, e in reversed(maths):
        if s <= last.start() and last.end() <= e:
            return _LAST_EQ_RE.sub("", text[s:e]).strip() or None
        if e < last.start():
            break
    expr = last.group().strip(".").strip()
    for left, right in ("()", "{}"):
        while expr.endswith(right) and expr.count(right) > expr.count(left):
            expr = expr[:-1]
        while expr.startswith(left) and expr.count(left) > expr.count(right):
            expr = expr[1:]
    return expr.replace(",", "") if _THOUSANDS_RE.match(expr) else expr


def extract_answer(text: str, tail_chars: int = DEFAULT_TAIL_CHARS) -> tuple[str | None, str]:
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
        ('-2\\\\sqrt3/3', 'last_expression')
        >>> extract_answer("no digits here")
        (None, 'none')
    """
    parts, how = extract_answers(text, tail_chars)
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


def extract_answers(text: str, tail_chars: int = DEFAULT_TAIL_CHARS) -> tuple[list[str] | None, str]:
    """(answers, how): the rules of the module docstring; several answers only for several boxes
    on the final line (rule 1), else one."""
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
    expr = _last_expression(text, maths)
    return ([expr], "last_expression") if expr else (None, "none")
