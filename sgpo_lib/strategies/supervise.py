"""Run a command that dies with whoever started it, on Linux and macOS.

    python -m sgpo_lib.strategies.supervise -- COMMAND ...

A server a run starts for itself (`local_server`) must not outlive the run: a SIGKILLed kernel
runs no cleanup, and the server, in its own session, would keep its memory and keep answering.
This supervisor leads the server's process group, starts COMMAND in it and watches its own
parent (the starter): when the starter is gone (`getppid` changes; on Linux also at once through
`PR_SET_PDEATHSIG`) or sends SIGTERM, it sends SIGTERM to the group, gives it `GRACE_S` seconds
and SIGKILLs what is left, itself included. Its exit code is COMMAND's.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

GRACE_S = 20.0
POLL_S = 0.5


def _die_with_parent() -> None:
    """Linux: SIGTERM to this process as soon as its parent dies (no-op elsewhere)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _take_down(child: subprocess.Popen) -> None:
    """SIGTERM the group (the command and its workers), then SIGKILL whatever is left after GRACE_S."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    try:
        child.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    """Run `argv` (after `--`) under supervision; returns its exit code."""
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    starter = os.getppid()
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # lead a group of our own, so that killpg(0) reaches only the command and us
    _die_with_parent()
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: _take_down(child))
    while child.poll() is None:
        if os.getppid() != starter:  # the starter died: we were handed to another parent
            _take_down(child)
        time.sleep(POLL_S)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
