"""The real-model path end to end on a CPU (CI): notebooks 00-07 under papermill on
`params/real-cpu.yaml`, from a cold cache: the project-built tiny Qwen2, the shipped benchmark
files, a local vLLM OpenAI server as the strategy extractor (started and stopped by the run),
vLLM rollouts with LoRA hot-loading. Checks that every sampling stage used the configured
backend on the configured device, the library is non-empty, the report has every benchmark,
and the extractor server is gone. Needs ../shared/data/benchmarks (skipped when absent).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sgpo_lib.core.paths import shared_data_dir

pytest.importorskip("vllm")

pytestmark = [pytest.mark.vllm, pytest.mark.integration,
              pytest.mark.skipif(not (shared_data_dir() / "benchmarks").exists(),
                                 reason="../shared/data/benchmarks absent")]

PARAMS = "params/real-cpu.yaml"
SAMPLING_STAGES = {"02_paired_rollouts", "03_guidance_shift/base student",
                   "03_guidance_shift/train.method=sgpo_seed=0", "train"}


def _servers_alive(marker: str) -> list[str]:
    """Command lines of live vLLM OpenAI servers whose command mentions `marker`."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "vllm.entrypoints.openai.api_server" in cmd and marker in cmd:
            alive.append(cmd)
    return alive


@pytest.mark.timeout(2400)  # 184 s on a quiet 2-core machine, 454 s at load 6; the project default is 900 s
def test_real_cpu_params_run_every_notebook(tmp_path, monkeypatch):
    from sgpo_lib.analysis.report import tables
    from sgpo_lib.config.run import load_config
    from sgpo_lib.core import fileio
    from sgpo_lib.train import backends
    from sgpo_lib.workflow.pipeline import run_pipeline

    monkeypatch.setenv("SGPO_OUTPUTS", str(tmp_path / "outputs"))  # nothing lands in the repository's outputs/
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    start = time.monotonic()
    # a cold cache (model, strategies, responses) under the run's own outputs root
    report = run_pipeline(PARAMS, {"output.root": str(tmp_path / "runs")}, run_id="real-cpu")
    elapsed = time.monotonic() - start
    run = report.parent
    cfg = load_config(run / "config.yaml")
    print(f"real-cpu pipeline: {elapsed:.0f} s; per notebook {fileio.read_json(run / 'timings.json')}")

    rows = [r for path in sorted(run.rglob("backends.jsonl")) for r in fileio.read_jsonl(path)]
    assert {r["stage"] for r in rows} == SAMPLING_STAGES
    assert {(r["generator"], r["device"]) for r in rows} == {("VLLMGenerator", backends.device())}

    strategies = fileio.read_jsonl(run / "strategies.jsonl")
    report_counts = fileio.read_json(run / "strategy_report.json")
    assert len(strategies) >= 1 and report_counts["accepted"] == len(strategies)
    assert {s["provenance"]["extractor"] for s in strategies} == {"openai"}

    [main] = [p for p in (run / "main").iterdir() if p.is_dir()]  # beside unfinished.json
    assert (main / "STATUS").read_text().startswith("done")
    final = json.loads((main / "results.json").read_text())["final_eval"]
    assert {r["source"] for r in final} >= set(cfg.data.eval_sets)
    html = report.read_text()
    assert all(name in html for name in cfg.data.eval_sets)
    shown = tables(cfg, run)
    assert "scaling_table" not in shown  # no toy-size scaling table for a real model
    assert shown["strategy_selection"]["count"].filter(like="select/").sum() == len(strategies)  # one choice each

    assert (tmp_path / "runs" / "cache" / "strategies").is_dir() and not (tmp_path / "outputs").exists()
    server_log = tmp_path / "runs" / "logs" / "extractor_server.log"
    assert "tiny-extractor" in server_log.read_text()
    assert _servers_alive(str(tmp_path)) == []
