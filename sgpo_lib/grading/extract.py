"""Answer extraction for the verifier (sgpo-method.md, Notation: the reward r(x, y) needs the
answer of a completion y). Standard library only: the grading worker imports this file by path.

`extract_answer(text)` looks only at the last `tail_chars` characters, cleans them (NFKC, so
full-width digits become ASCII; null bytes dropped; lone surrogates replaced; `√ π ≤ ∪ ...`
become LaTeX), drops `[asy]` diagram code, and then takes, in this order:

1. the last `\\boxed{}` / `\\fbox{}` with balanced braces; when several outermost boxes share
   that box's line, all of them (graded as a set or tuple; or the last alone against a
   one-item reference: `answer_for`);
2. the last GSM8K `#### ...` line (not a markdown heading such as `#### Final Answer`);
3. what follows the last "final answer" / "the (correct) answer is" / "the correct option is"
   phrase or "Answer:" label (`**Answer:** 42`): the math segment (`$..$`, `\\(..\\)`, `\\[..\\]`)
   it starts with (its value as in rule 4: `$7 \\cdot 6 = 42$` gives 42), else its sentence up to
   a clause that explains it (", which ...", " since ...", " because ..."); or before that the
   math alone under a last "# Answer" / "### Final Answer" / "**Final Answer**" heading after
   the phrase (`# Answer\\n\\n(1, 2)`, the way GPT-4's MATH solutions end);
4. the answer the final sentence states, as a person reads it (`sgpo_lib.grading.sentence`).

A stated answer (rules 3 and 4) loses the punctuation that ends it and the frame of a displayed
equation around it (`strip_wrappers`).

Every step is linear in the tail's length: the braces and math delimiters are read in one
regex pass with a stack, and the other regexes have no nested quantifiers.
"""

from __future__ import annotations

import re
import unicodedata

from .sentence import EXPLANATION_RE, SENTENCE_END_RE, THOUSANDS_RE, final_sentence_answer, stated_value, strip_wrappers
from .text import unicode_roots_to_latex, unicode_scripts_to_latex

DEFAULT_TAIL_CHARS = 8192
_UNICODE_LATEX = {"−": "-", "π": "\\pi", "≤": "\\le", "≥": "\\ge", "≠": "\\ne",
                  "∞": "\\infty", "∪": "\\cup", "∩": "\\cap", "×": "\\times", "·": "\\cdot",
                  "÷": "\\div", "⁄": "/", "°": "^\\circ", "±": "\\pm"}
_UNICODE_RE = re.compile("(" + "|".join(map(re.escape, _UNICODE_LATEX)) + ")([A-Za-z]?)")
# one token per match: a box opening, a math delimiter, an escaped character, a brace
_DISPLAY = r"\\(?:begin|end)\{(?:align|equation|gather|multline|eqnarray)\*?\}"  # a displayed equation without `$$`
_TOKEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{|\$\$?|\\[()\[\]]|" + _DISPLAY + r"|\\.|[{}]", re.S)
_CLOSER = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}
_HASH_RE = re.compile(r"####(?![ \t]*[A-Za-z]{3,}[ \t:])[ \t]*([^\n]+)")  # not a markdown heading: `#### Final Answer`
_PHRASE_RE = re.compile(r"(?i)(?:final answer|the (?:correct |right )?answer(?: choice)?|the correct (?:option|choice)"
                        r"|(?<![A-Za-z])answer(?=\**[ \t]*:))\**[ \t]*(?:is\b|:)[ \t]*:?[ \t]*")  # `**Answer:** 42`
# a markdown heading that announces the answer on the lines below it
_HEADING_RE = re.compile(r"(?im)^[ \t]*(?:#{1,6}[ \t]*|\*\*)(?:final[ \t]+)?answer[ \t]*:?[ \t]*(?:\*\*)?[ \t]*:?[ \t]*$")
_PROSE_RE = re.compile(r"(?<![A-Za-z])[A-Za-z]{3,}")
_SENTENCE_RE = re.compile(r"[^\n]*?(?=\.\s|\.?[ \t]*(?:\n|$))")
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def clean_text(text: str, tail_chars: int = DEFAULT_TAIL_CHARS) -> str:
    """The last `tail_chars` characters, NFKC-normalised, with unicode math (superscripts, roots,
    symbols) written as LaTeX.

    >>> clean_text("x = \\uff14\\uff12\\x00 and \\ud800 \\u221a30/12")
    'x = 42 and ? \\\\sqrt{30}/12'
    """
    text = text[-tail_chars:].replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _UNICODE_RE.sub(_to_latex, unicode_roots_to_latex(unicodedata.normalize("NFKC", unicode_scripts_to_latex(text))))


def without_diagrams(text: str) -> str:
    """The text without its `[asy] ... [/asy]` diagram code, which often follows the answer.

    >>> without_diagrams("so the area is $12.$ [asy] draw((0,0)--(3,4)); [/asy]")
    'so the area is $12.$ '
    """
    start = text.find("[asy]")
    while start >= 0:
        end = text.find("[/asy]", start)
        if end < 0:
            return text
        text = text[:start] + text[end + len("[/asy]"):]
        start = text.find("[asy]", start)
    return text


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


def _math_right_after(text: str, start: int, maths: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The math segment that starts right at `start` (after its delimiter), else None."""
    return next(((s, e) for s, e in maths if s > start and s - start <= 2 and text[start:start + 1] in "$\\"), None)


def _under_heading(text: str, after: int) -> str | None:
    """The answer under the last "# Answer" / "### Final Answer" / "**Final Answer**" heading
    after `after`, when it is math alone (`# Answer\\n\\n(1, 2)`), else None."""
    headings = [m.end() for m in _HEADING_RE.finditer(text, after)]
    block = text[headings[-1]:].strip().split("\n\n")[0].strip() if headings else ""
    answer = strip_wrappers(block)
    prose = _PROSE_RE.search(re.sub(r"\\[A-Za-z]+", " ", answer))
    return answer if answer and not prose and len(answer) <= 200 else None


def _after_phrase(text: str, start: int, maths: list[tuple[int, int]]) -> str:
    """The answer after a phrase ending at `start`: a math segment right there, else the
    sentence up to an explaining clause."""
    segment = _math_right_after(text, start, maths)
    if segment:
        return text[segment[0]:segment[1]]
    m = _SENTENCE_RE.match(text, start)
    sentence = m.group() if m else ""
    cut = EXPLANATION_RE.search(sentence)
    return sentence[:cut.start()] if cut and any(c.isdigit() or c.isalpha() for c in sentence[:cut.start()]) else sentence


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


def extract_answers(text: str, tail_chars: int = DEFAULT_TAIL_CHARS, problem: str = "",
                    keep_relation: bool = False) -> tuple[list[str] | None, str]:
    """(answers, how): the rules of the module docstring; several answers for several boxes on
    the final line (rule 1) or several assignments in the final sentence (rule 4), else one.
    `problem` (optional) tells rule 4 which numbers are given; `keep_relation` makes it read a
    math segment's last equation whole (for an equation reference: `sentence.equation_reference`)."""
    text = without_diagrams(clean_text(text, tail_chars))
    boxes, maths = _scan(text)
    if boxes:
        return _final_boxes(text, boxes), "boxed"
    found = [strip_wrappers(c) for c in _HASH_RE.findall(text)]
    if found and found[-1]:
        return [found[-1].replace(",", "") if THOUSANDS_RE.match(found[-1]) else found[-1]], "hash"
    phrases = [m.end() for m in _PHRASE_RE.finditer(text)]
    headed = _under_heading(text, phrases[-1] if phrases else 0)
    if headed:
        return [headed], "answer_is"
    segment = _math_right_after(text, phrases[-1], maths) if phrases else None
    answer = stated_value(text[segment[0]:segment[1]], keep_relation) if segment else ""  # `is $7 \cdot 6 = 42$`: 42
    answer = answer or (strip_wrappers(_after_phrase(text, phrases[-1], maths)) if phrases else "")
    if answer:
        return [answer.replace(",", "") if THOUSANDS_RE.match(answer) else answer], "answer_is"
    found = final_sentence_answer(text, maths, problem, keep_relation)
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
        begin = max((m.end() for m in SENTENCE_END_RE.finditer(text, max(0, s - 500), s)), default=max(0, s - 500))
        return [text[s:e], text[begin:e + 1]]
    phrases = [m.end() for m in _PHRASE_RE.finditer(text)]
    if phrases:
        return [_after_phrase(text, phrases[-1], maths)]
    sentences = [strip_wrappers(t) for t in re.split(r"(?<=[.!?])\s+|\n+", text[-2000:])]
    return [t for t in reversed(sentences) if t][:last]
