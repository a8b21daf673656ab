"""Child process that extracts and grades answers (architecture.md, `grading`; sgpo-method.md,
Notation: the reward r(x, y)).

Started by `sgpo_lib.grading.pool` as `python -P -m sgpo_lib.grading.worker --memory-mb N`
(the package's `__init__` imports nothing). This process imports and warms everything up once,
then forks the grading child that does the work, and forks a new one in milliseconds whenever
the parent kills the child for a timeout: the replacement is always pre-spawned and warm.
Protocol, one JSON object per line (blank lines ignored): parent -> child a batch
`{"items": [{"text": str, "gold": str, "kind": "math"|"exact", "problem": str, "policy": str}, ...],
"tail_chars": int}` (`problem`: the problem statement; `policy`: `grading.numeric_policy`);
child -> parent first `{"ready": true, "pid": int}` (or `{"error": "..."}` if start-up
failed), then one `{"reward": float, "reason": str, "pred": str, "blocked": [...]}` per item,
in order, with the item's `id`, as soon as that item is graded (the parent's per-answer clock
restarts at each reply); `{"exited": pid}` when a child crashed. Everything a
completion goes through (extraction in `sgpo_lib.grading.extract`; a yes/no reference graded on
the stated polarity, `sgpo_lib.grading.words`; a restated question refused,
`sgpo_lib.grading.restate`; equivalence in `sgpo_lib.grading.check`) runs here, so the parent's
kill bounds it all.

Model text is data, never code. No path of math-verify we use evaluates text as Python:
`latex2sympy` parses with an ANTLR grammar, and math-verify's only `parse_expr` call sees a
regex match of digits and operators. As defence in depth this process (i) installs an audit
hook, after its imports and a warm-up, that refuses every process spawn, file write, file-system
change, socket and `ctypes` load, and (ii) caps its own address space. The parent enforces the
wall-clock limit by killing the process, so math-verify's own `signal.alarm` timeouts are off.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys

from .check import DEFAULT_NUMERIC_POLICY, MAX_ANSWER_CHARS, check
from .extract import answer_for, answer_sentences, extract_answers
from .restate import restates
from .sentence import equation_reference
from .words import polarity, stated_polarity

# Event prefixes refused once the hook is on; `os.listdir`/`os.scandir` stay allowed (imports).
_BLOCKED_PREFIXES = (
    "os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.", "webbrowser.", "urllib.",
    "http.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "telnetlib.", "nntplib.",
)
_ALLOWED_EVENTS = frozenset({"os.listdir", "os.scandir"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_blocked: list[str] = []
_state = {"child": False}  # True in a grading child: it may not fork


def _is_write_open(args: tuple) -> bool:
    """True for an `open` audit event that would create or modify a file."""
    mode = args[1] if len(args) > 1 else None
    flags = args[2] if len(args) > 2 else 0
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def _audit_hook(event: str, args: tuple) -> None:
    """Refuse side effects; PermissionError so callers that tolerate OSError stay quiet."""
    refuse = event == "open" and _is_write_open(args)
    allowed = event in _ALLOWED_EVENTS or (event == "os.fork" and not _state["child"])
    refuse = refuse or (event.startswith(_BLOCKED_PREFIXES) and not allowed)
    if refuse:
        _blocked.append(event)
        raise PermissionError(f"grading worker: '{event}' is not allowed")


def grade_item(item: dict, tail_chars: int) -> dict:
    """Extract the prediction of one completion and grade it: reward, reason, pred."""
    text, gold, kind = str(item["text"]), str(item["gold"]), str(item.get("kind", "math"))
    problem = str(item.get("problem", ""))
    if kind == "math" and polarity(gold) is not None:
        return _grade_polarity(text, polarity(gold), problem, tail_chars)
    parts, _how = extract_answers(text, tail_chars, problem, keep_relation=equation_reference(gold))
    if not parts:
        return {"reward": 0.0, "reason": "no_answer", "pred": ""}
    pred = answer_for(parts, gold)
    if kind == "math" and restates(pred[:MAX_ANSWER_CHARS], problem, gold):
        return {"reward": 0.0, "reason": "restated", "pred": pred[:MAX_ANSWER_CHARS]}
    reward, reason = check(pred, gold, kind, problem, str(item.get("policy", DEFAULT_NUMERIC_POLICY)))
    return {"reward": reward, "reason": reason, "pred": pred[:MAX_ANSWER_CHARS]}


def _grade_polarity(text: str, gold: bool, problem: str, tail_chars: int) -> dict:
    """A yes/no or true/false reference: the polarity of the answer sentence (the final box, the
    sentence after "the answer is", else the last sentences), "polarity" when it is the other
    one or none."""
    stated = next((p for s in answer_sentences(text, tail_chars) if (p := stated_polarity(s, problem)) is not None), None)
    pred = "" if stated is None else ("Yes" if stated else "No")
    return {"reward": float(stated is gold), "reason": "correct" if stated is gold else "polarity", "pred": pred}


def _handle(item: dict, tail_chars: int) -> dict:
    del _blocked[:]
    try:
        result = grade_item(item, tail_chars)
    except Exception as e:  # noqa: BLE001 - any failure is a graded "error", never a crash
        result = {"reward": 0.0, "reason": "error", "pred": "", "detail": type(e).__name__}
    result["blocked"] = list(_blocked)
    result["id"] = item.get("id")
    return result


def _start(memory_mb: int) -> None:
    """Imports and warm-up (which may write caches), then the memory cap and the audit hook."""
    sys.dont_write_bytecode = True
    logging.disable(logging.CRITICAL)  # math-verify logs every failed parse
    for text, gold in (("\\boxed{\\frac{1}{2}}", "0.5"), ("so (1,2)", "x^2+\\sqrt{3}"),
                       ("\\boxed{x<1}", "(-\\infty,1)"), ("\\boxed{\\frac{\\pi}{4}+k\\pi}", "-\\frac{3\\pi}{4}+n\\pi")):
        grade_item({"text": text, "gold": gold}, 1000)
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.addaudithook(_audit_hook)


def _send(message: dict) -> None:
    """One reply line; it starts with a newline so that a line cut short by a kill stays apart."""
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()


def _serve() -> None:
    """The grading child: batches from stdin, one reply per item, until stdin closes."""
    _state["child"] = True
    _send({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if line.strip():
            batch = json.loads(line)
            for item in batch["items"]:
                _send(_handle(item, int(batch["tail_chars"])))


def _fork_children() -> None:
    """This warm process forks one grading child at a time and forks the next when it ends:
    killed by the parent (timeout), crashed (reported as `{"exited": pid}`), or done (EOF)."""
    while True:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _serve()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status == 0:
            return
        _send({"exited": pid})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, default=2048)
    opts = parser.parse_args()
    try:
        _start(opts.memory_mb)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        _send({"error": f"{type(e).__name__}: {e}"})
        return
    _fork_children()


if __name__ == "__main__":
    main()
