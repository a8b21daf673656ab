"""`LocalServer`'s life cycle with a stand-in server process (a few lines of Python serving
/health and /v1/models, with a child process like vLLM's engine): free port, health check,
served-name check, the log tail in errors, and the whole process group killed on exit."""

from __future__ import annotations

import os
import sys
import time

import pytest

from sgpo_lib.strategies import local_server
from sgpo_lib.strategies.local_server import LocalServer

STAND_IN = r"""
import json, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, name = int(sys.argv[1]), sys.argv[2]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, flush=True)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": [{"id": name}]} if self.path == "/v1/models" else {}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


@pytest.fixture
def stand_in(monkeypatch):
    def command(model, served_name, port, extra_args=()):
        served = "other-name" if model == "wrong" else served_name
        return [sys.executable, "-c", STAND_IN if model != "crash" else "raise SystemExit('no GPU here')",
                str(port), served]

    monkeypatch.setattr(local_server, "server_command", command)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_starts_checks_and_kills_the_process_group(stand_in, tmp_path):
    with LocalServer("m", "served", tmp_path / "server.log", poll_s=0.1, timeout_s=60) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        pid = server.proc.pid
        child = int((tmp_path / "server.log").read_text().split()[1])
        assert _alive(pid) and _alive(child)
    deadline = time.monotonic() + 10  # SIGKILL is delivered asynchronously
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.proc.returncode is not None and not _alive(child)


def test_wrong_served_name_and_crash_name_the_cause(stand_in, tmp_path):
    with pytest.raises(RuntimeError, match=r"serves \['other-name'\], not strategy.extractor_model 'served'"):
        with LocalServer("wrong", "served", tmp_path / "a.log", poll_s=0.1, timeout_s=60):
            pass
    with pytest.raises(RuntimeError, match=r"exited with code 1:\nno GPU here"):
        with LocalServer("crash", "served", tmp_path / "b.log", poll_s=0.1, timeout_s=60):
            pass


def test_command_uses_the_module_entry_point():
    cmd = local_server.server_command("/models/m", "name", 8123, ("--enforce-eager",))
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--served-model-name") + 1] == "name" and cmd[-1] == "--enforce-eager"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
