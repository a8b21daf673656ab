"""Child process that checks answer equivalence with math-verify (architecture.md, `grading`).

Started by `sgpo_lib.grading_pool` as `python -P grading_worker.py --memory-mb N` (by path, so
importing it pulls in nothing from `sgpo_lib`). Protocol, one JSON object per line:
parent -> child `{"pred": str, "gold": str}`; child -> parent first `{"ready": true}` (or
`{"error": "..."}` if start-up failed), then one `{"ok": bool, "status": str, "blocked": [...]}`
per request, where `status` is "ok", "parse_error" (math-verify found no expression in the
prediction), "gold_parse_error" or "error".

Model text is data, never code. No path of math-verify we use evaluates text as Python:
`latex2sympy` parses with an ANTLR grammar, and math-verify's only `parse_expr` call sees a
regex match of digits and operators. As defence in depth this process (i) installs an audit
hook, after its imports and a warm-up, that refuses every process spawn, file write, file-system
change, socket and `ctypes` load, and (ii) caps its own address space. The parent enforces the
wall-clock limit by killing the process, so math-verify's own `signal.alarm` timeouts are off.

Departure from math-verify: two plain numbers must also agree to a relative `NUMERIC_REL_TOL`
(math-verify's 6-decimal rounding makes all numbers below 5e-7 equal; Minerva has many).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys

# Event prefixes refused once the hook is on; `os.listdir`/`os.scandir` stay allowed (imports).
_BLOCKED_PREFIXES = (
    "os.", "subprocess.", "shutil.", "socket.", "ctypes.", "pty.", "webbrowser.", "urllib.",
    "http.", "ftplib.", "smtplib.", "poplib.", "imaplib.", "telnetlib.", "nntplib.",
)
_ALLOWED_EVENTS = frozenset({"os.listdir", "os.scandir"})
NUMERIC_REL_TOL = 1e-4
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_blocked: list[str] = []


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
    refuse = refuse or (event.startswith(_BLOCKED_PREFIXES) and event not in _ALLOWED_EVENTS)
    if refuse:
        _blocked.append(event)
        raise PermissionError(f"grading worker: '{event}' is not allowed")


def _has_expression(parsed: list) -> bool:
    """math-verify returns [sympy_expr, str] on success and only [str] when parsing failed."""
    return any(not isinstance(x, str) for x in parsed)


def _relatively_close(gold_parsed: list, pred_parsed: list) -> bool:
    """False for two numbers whose relative difference exceeds `NUMERIC_REL_TOL`.

    math-verify compares numbers after rounding to 6 decimals, so 2.88e-19 and 2.89e-19 (any
    two numbers below 5e-7) look equal; this test removes such false positives and nothing else.
    """
    gold, pred = gold_parsed[0], pred_parsed[0]
    if not (getattr(gold, "is_number", False) and getattr(pred, "is_number", False)):
        return True
    try:
        g, p = complex(gold.evalf()), complex(pred.evalf())
    except (TypeError, ValueError):
        return True
    scale = max(abs(g), abs(p))
    return scale == 0 or abs(g - p) <= NUMERIC_REL_TOL * scale


def check(pred: str, gold: str) -> dict:
    """Equivalence of two LaTeX answers, each wrapped in `\\boxed{}` as math-verify expects."""
    from math_verify import parse, verify

    gold_parsed = parse("\\boxed{" + gold + "}", parsing_timeout=None)
    pred_parsed = parse("\\boxed{" + pred + "}", parsing_timeout=None)
    if (gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=None)
            and _relatively_close(gold_parsed, pred_parsed)):
        return {"ok": True, "status": "ok"}
    if not _has_expression(gold_parsed):
        return {"ok": False, "status": "gold_parse_error"}
    if not _has_expression(pred_parsed):
        return {"ok": False, "status": "parse_error"}
    return {"ok": False, "status": "ok"}


def _handle(line: str) -> dict:
    del _blocked[:]
    try:
        request = json.loads(line)
        result = check(str(request["pred"]), str(request["gold"]))
    except Exception as e:  # noqa: BLE001 - any failure is a graded "error", never a crash
        result = {"ok": False, "status": "error", "detail": type(e).__name__}
    result["blocked"] = list(_blocked)
    return result


def _start(memory_mb: int) -> None:
    """Imports and warm-up (which may write caches), then the memory cap and the audit hook."""
    sys.dont_write_bytecode = True
    logging.disable(logging.CRITICAL)  # math-verify logs every failed parse
    check("\\frac{1}{2}", "0.5")
    check("(1,2)", "x^2+\\sqrt{3}")
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.addaudithook(_audit_hook)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-mb", type=int, default=2048)
    opts = parser.parse_args()
    try:
        _start(opts.memory_mb)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
        sys.stdout.write(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        sys.stdout.flush()
        return
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(_handle(line)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
