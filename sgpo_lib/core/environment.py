"""What a run executed on: `env.json` (versions, device, CPU facts, git commit, the code
fingerprint) and `code.diff` (`git diff HEAD`), written by every execution (`record_code`), so
that they describe the last one (conventions.md, point 4; issue "runs that know their code")."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from . import fileio
from .code_fingerprint import ENV_FILE, fingerprint
from .code_fingerprint import KEY as CODE_KEY
from .machine import cpu_facts
from .paths import REPO_ROOT

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "vllm", "datasets", "math-verify", "papermill",
                      "tokenizers", "numpy")


def record_code(run_dir: Path) -> None:
    """`env.json` and `code.diff` of the code executing now: rewritten by every execution, so they
    describe the last one (the fingerprint that `check_folder` compares is in `env.json`)."""
    fileio.write_json(Path(run_dir) / ENV_FILE, environment())
    fileio.write_text(Path(run_dir) / "code.diff", _git("diff", "HEAD"))


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment() -> dict[str, Any]:
    """Versions, device, CPU facts (`machine.cpu_facts`) and git commit for `env.json`."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                versions[name] = metadata.version(name + "-cpu")
            except metadata.PackageNotFoundError:
                versions[name] = None

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "cuda_devices": torch.cuda.device_count(),
        "cpu": cpu_facts(),
        "git_commit": _git("rev-parse", "HEAD").strip(),
        "git_dirty": bool(_git("status", "--porcelain").strip()),
        CODE_KEY: fingerprint(),
    }
