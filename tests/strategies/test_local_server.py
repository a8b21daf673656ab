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
import json, os, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, name = int(sys.argv[1]), sys.argv[2]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("child", child.pid, "server", os.getpid(), flush=True)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        key = os.environ.get("VLLM_API_KEY")  # as vLLM: /v1 needs the key when one is set, /health does not
        if self.path.startswith("/v1") and key and self.headers.get("Authorization") != "Bearer " + key:
            self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
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
        assert (tmp_path / "server.log.pid").exists()
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


def _wait_dead(*pids: int, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(_alive(p) for p in pids)


def test_the_server_needs_a_random_key_that_only_the_run_knows(stand_in, tmp_path):
    import httpx

    with LocalServer("m", "served", tmp_path / "a.log", poll_s=0.1, timeout_s=60) as a, \
            LocalServer("m", "served", tmp_path / "b.log", poll_s=0.1, timeout_s=60) as b:
        assert len(a.api_key) >= 40 and a.api_key != b.api_key
        assert httpx.get(a.base_url + "/models").status_code == 401
        assert httpx.get(a.base_url + "/models", headers={"Authorization": f"Bearer {b.api_key}"}).status_code == 401
        assert httpx.get(a.base_url + "/models", headers={"Authorization": f"Bearer {a.api_key}"}).status_code == 200
        server = int((tmp_path / "a.log").read_text().split()[3])
        with open(f"/proc/{server}/cmdline", "rb") as f:
            assert a.api_key.encode() not in f.read()  # not on the command line, which `ps` shows to everyone


STARTER = r"""
import sys, time
from sgpo_lib.strategies import local_server
from sgpo_lib.strategies.local_server import LocalServer
stand_in = sys.argv[2]
local_server.server_command = lambda model, name, port, extra=(): [sys.executable, "-c", stand_in, str(port), name]
with LocalServer("m", "served", sys.argv[1], poll_s=0.1, timeout_s=60) as server:
    print("ready", server.proc.pid, flush=True)
    time.sleep(600)
"""


def test_the_server_dies_with_a_starter_killed_without_cleanup(tmp_path):
    import signal
    import subprocess

    log = tmp_path / "server.log"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(log), STAND_IN], stdout=subprocess.PIPE, text=True)
    try:
        line = starter.stdout.readline().split()
        assert line[0] == "ready", line
        supervisor = int(line[1])
        child, server = (int(w) for w in log.read_text().split()[1:4:2])
        assert _alive(supervisor) and _alive(server) and _alive(child)
        starter.send_signal(signal.SIGKILL)  # a kernel killed: no `with` exit, no atexit
        starter.wait()
        assert _wait_dead(supervisor, server, child)
    finally:
        starter.kill()
        starter.wait()


def test_a_rerun_stops_a_stale_server_its_killed_starter_left(stand_in, tmp_path, caplog):
    import json
    import logging
    import subprocess

    from sgpo_lib.core.locks import process_start

    stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "server.log.pid").write_text(json.dumps({"pid": stale.pid, "start": process_start(stale.pid),
                                                         "starter": dead.pid, "starter_start": "1"}))
    try:
        with caplog.at_level(logging.WARNING, logger="sgpo_lib"):
            with LocalServer("m", "served", tmp_path / "server.log", poll_s=0.1, timeout_s=60):
                stale.wait(timeout=10)
        assert stale.returncode is not None and f"pid {stale.pid}" in caplog.text
        assert not (tmp_path / "server.log.pid").exists()
    finally:
        stale.kill()
