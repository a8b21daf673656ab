"""Answers given in words: yes/no and true/false, and multiple-choice letters with their label
(sgpo-method.md, Notation: the verifier). Standard library only; runs in the grading worker.

Polarity. Yes and True are one answer, No and False the other. A reference that is one of these
words (`polarity`) is graded on the polarity the answer states (`stated_polarity`): the leading
polarity word of the answer sentence, before any number in it ("Yes, y = 0 is a singular
solution"); else a polarity word standing alone in it ("the statement is false"); else a negation
("it does not converge", "No, it is not complete", or "unstable" where the question says
"stable") is No; else a sentence that repeats the question's predicate ("the equilibrium at 0 is
stable" for "Is the equilibrium at 0 stable?") is Yes. Anything else states no polarity.

Multiple choice. `(E) Hyperbola`, `E) Hyperbola`, `\\textbf{(E)} Hyperbola`, `option E`: a letter
A-H with an optional label. Against a reference letter the letters are compared; against a
reference in words (`Hyperbola`), the labels (`choice_match`).
"""

from __future__ import annotations

import re

_POLARITY_WORDS = {"yes": True, "true": True, "no": False, "false": False}
_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|textit|mathbf)\s*\{([^{}]*)\}")
_PUNCT_RE = re.compile(r"[\s$*.,;:!()\[\]{}\"'`]+")
_LEADING_RE = re.compile(r"^\W*(yes|no|true|false)\b", re.I)
_ALONE_RE = re.compile(r"(?<![\w-])(yes|true|false)(?![\w-])", re.I)
_NEGATION_RE = re.compile(r"\b(?:not|never|cannot|neither|nor|none|no)\b|n't\b", re.I)
_WORD_RE = re.compile(r"[A-Za-z]{4,}")
_NEGATING_PREFIXES = ("un", "non", "in", "im", "ir", "il", "dis")
_STOP_WORDS = frozenset("""that this there their these those with from have what which when where whether does
                           will would could should must than then them they also only such each every into
                           about true false answer question statement following given show prove determine""".split())
_CHOICE_RE = re.compile(r"^(?:\\text(?:bf)?\s*\{\s*)?\(\s*([A-Ha-h])\s*\)\}?\s*(.*)$|^([A-H])\)\s*(.*)$"
                        r"|^(?:option|choice)\s*\(?([A-Ha-h])\)?\s*[:.]?\s*(.*)$", re.I | re.S)


def _plain(s: str) -> str:
    return _PUNCT_RE.sub(" ", _WRAPPER_RE.sub(r" \1 ", s)).strip().lower()


def polarity(answer: str) -> bool | None:
    """True / False for a reference that is one polarity word (Yes/True, No/False), else None.

    >>> polarity("\\\\text{Yes}"), polarity("FALSE."), polarity("Yes, 2"), polarity("0")
    (True, False, None, None)
    """
    return _POLARITY_WORDS.get(_plain(answer))


def _question_words(problem: str) -> set[str]:
    """Content words of the question: its last sentence that asks (a `?`, else all of it)."""
    asks = [q for q in re.split(r"(?<=[.?!])\s+", problem) if "?" in q]
    return {w.lower() for w in _WORD_RE.findall(asks[-1] if asks else problem)} - _STOP_WORDS


def stated_polarity(sentence: str, problem: str = "") -> bool | None:
    """The polarity one answer sentence states (the rules of the module docstring), else None.

    >>> q = "Is the equilibrium at 0 stable?"
    >>> [stated_polarity(s, q) for s in ("Yes, y = 0 is a singular solution", "The answer is: False",
    ...  "the equilibrium at 0 is stable", "It is unstable", "No, it is not complete", "x = 4")]
    [True, False, True, False, False, None]
    """
    text = _WRAPPER_RE.sub(r" \1 ", sentence)
    lead = _LEADING_RE.match(text)
    if lead:
        return _POLARITY_WORDS[lead.group(1).lower()]
    alone = _ALONE_RE.findall(text)
    if alone:
        return _POLARITY_WORDS[alone[-1].lower()]
    if _NEGATION_RE.search(text):
        return False
    words = {w.lower() for w in _WORD_RE.findall(text)}
    predicate = _question_words(problem)
    if any(w[len(p):] in predicate for w in words for p in _NEGATING_PREFIXES if w.startswith(p)):
        return False
    return True if words & predicate else None


def choice(answer: str) -> tuple[str, str] | None:
    """(letter, label) of a multiple-choice answer, the letter upper-case, the label plain
    lower-case text ("" when none), else None.

    >>> choice("(E) Hyperbola"), choice("\\\\textbf{(b)} Gamma"), choice("option C"), choice("(1, 2)")
    (('E', 'hyperbola'), ('B', 'gamma'), ('C', ''), None)
    """
    m = _CHOICE_RE.match(answer.strip().strip("$*").strip())
    if not m:
        return None
    letter, label = next((m.group(i), m.group(i + 1)) for i in (1, 3, 5) if m.group(i))
    return letter.upper(), _plain(label)


def choice_match(pred: str, gold: str) -> bool | None:
    """Whether a multiple-choice answer matches the reference; None when neither side is one.

    >>> choice_match("(E) Hyperbola", "E"), choice_match("(b) Gamma", "(b)"), choice_match("(E) Hyperbola", "hyperbola")
    (True, True, True)
    >>> choice_match("(D) Ellipse", "(E)"), choice_match("(D) Ellipse", "Hyperbola"), choice_match("12", "12")
    (False, False, None)
    """
    p, g = choice(pred), choice(gold)
    if p is None and g is None:
        return None
    if p is None:
        p = (pred.strip().strip("$").upper(), "") if re.fullmatch(r"\s*\$?[A-Ha-h]\$?\s*", pred) else None
        return None if p is None else p[0] == g[0]
    if g is not None:
        return p[0] == g[0]
    if re.fullmatch(r"\s*\$?[A-Ha-h]\$?\s*", gold):
        return p[0] == gold.strip().strip("$").upper()
    return bool(p[1]) and p[1] == _plain(gold)
