"""Benchmark results as one table: `load_summary(outputs_dir) -> pandas.DataFrame`.

Reads `<outputs_dir>/bench/*.json` (written by the `bench.bench_*` modules and
`bench.run_all`) and turns each into rows of `bench, metric, value, ratio, target, met`:
the headline figures, their ratios against the reference of that benchmark, and the issue-7
targets where one exists. Benchmarks that `run_all` recorded as missing, failed or skipped
appear as one row with the reason in `metric`. The library never imports this module; the
report calls it (an empty frame when nothing was measured).
"""

from __future__ import annotations

import json
from pathlib import Path

COLUMNS = ("bench", "metric", "value", "ratio", "target", "met")
SUMMARY_FILE = "summary.json"
PHASES = ("generate_s", "grade_s", "teacher_s", "train_s")


def row(bench: str, metric: str, value=None, ratio=None, target: str = "", met=None) -> dict:
    return dict(zip(COLUMNS, (bench, metric, value, ratio, target, met)))


def losses_rows(d: dict, bench: str = "losses") -> list[dict]:
    """Time and peak memory per variant; ratios against the naive full-logits loss."""
    cfg, rows = d.get("config", {}), []
    size = f"{cfg.get('tokens')}x{cfg.get('vocab')}x{cfg.get('hidden')} {cfg.get('device')}"
    targets = d.get("targets", {})
    for name, r in d.get("results", {}).items():
        chunked = name == "chunked_full" and targets
        t_met = r.get("time_ratio_vs_naive", 0) <= targets["time_ratio_max"] if chunked else None
        m_met = r.get("mem_ratio_vs_naive", 0) <= targets["mem_ratio_max"] if chunked else None
        rows.append(row(bench, f"{name} time_s ({size})", r.get("time_s"), r.get("time_ratio_vs_naive"),
                        f"<= {targets['time_ratio_max']} x naive" if chunked else "", t_met))
        rows.append(row(bench, f"{name} peak_mem_mb", r.get("peak_mem_mb"), r.get("mem_ratio_vs_naive"),
                        f"<= {targets['mem_ratio_max']:.3g} x naive" if chunked else "", m_met))
    return rows


def rollouts_rows(d: dict, bench: str = "rollouts") -> list[dict]:
    """Tokens/s of both backends; vLLM's as a ratio of transformers'."""
    hf, vl = d.get("transformers", {}), d.get("vllm", {})
    where = f"{d.get('device')}, n={d.get('n')}, {d.get('max_new_tokens')} tok"
    rows = [row(bench, f"transformers tokens/s ({where})", hf.get("tokens_per_s"))]
    if "skipped" in vl:
        return rows + [row(bench, f"vllm: {vl['skipped']}")]
    ratio = vl["tokens_per_s"] / hf["tokens_per_s"] if vl.get("tokens_per_s") and hf.get("tokens_per_s") else None
    return rows + [row(bench, "vllm tokens/s", vl.get("tokens_per_s"), ratio, "(vs transformers)"),
                   row(bench, "vllm engine_start_s", vl.get("engine_start_s"))]


def grader_rows(d: dict, bench: str = "grader") -> list[dict]:
    """Answers/s of the grader vs a bare math-verify loop on realcritic, and the adversarial worst case."""
    rows, tp = [], d.get("throughput")
    if isinstance(tp, dict):
        rows.append(row(bench, "answers/s (realcritic)", tp["grader"].get("answers_per_s"), tp.get("ratio"),
                        "(vs bare math-verify)"))
    elif tp:
        rows.append(row(bench, str(tp)))
    if "worst_case_s" in d:
        budget = d.get("budget_s")
        rows.append(row(bench, "adversarial worst_case_s", d["worst_case_s"],
                        d["worst_case_s"] / budget if budget else None, f"budget {budget} s"))
    return rows


def _split(r: dict) -> str:
    return " / ".join(f"{k[:-2]} {r.get(k, 0.0):.3f}" for k in PHASES + ("other_s",))


def train_step_rows(d: dict, bench: str = "train_step") -> list[dict]:
    """Median step time per variant with where it goes; the two targeted ratios."""
    results, ratios = d.get("results", {}), d.get("ratios", {})
    ratio_of = {"sgpo": "sgpo_over_grpo", "grpo_g_plus_s": None, "trl_grpo": "grpo_over_trl"}
    rows = []
    for name, r in results.items():
        if "step_s" not in r:
            rows.append(row(bench, f"{name}: {r.get('skipped', 'not measured')}"))
            continue
        rat = ratios.get(ratio_of.get(name) or "", {})
        target = f"{'sgpo/grpo' if name == 'sgpo' else 'grpo/trl'} <= {rat['target_max']}" if rat else ""
        rows.append(row(bench, f"{name} step_s ({_split(r)})", r["step_s"], rat.get("value"), target, rat.get("met")))
    same = ratios.get("sgpo_over_grpo_g_plus_s", {})
    if same.get("value") is not None:
        rows.append(row(bench, "sgpo / grpo with G+S rollouts (same rollout budget)", None, same["value"]))
    return rows


def teacher_rows(d: dict, bench: str = "teacher") -> list[dict]:
    """SGPO step and teacher time with the teacher from a forward pass vs from the engine."""
    results, ratios, k = d.get("results", {}), d.get("ratios", {}), d.get("config", {}).get("topk")
    rows = []
    for name, r in results.items():
        rat = ratios.get("step_engine_over_forward") if name == "engine" else None
        rows.append(row(bench, f"{name} (top-{k}) step_s ({_split(r)})", r.get("step_s"), rat,
                        "engine/forward" if rat else ""))
    return rows


def demo_rows(d: dict, bench: str = "demo") -> list[dict]:
    """Wall time per notebook of the newest demo run, and the total."""
    if "missing" in d:
        return [row(bench, f"missing: {d['missing']}")]
    rows = [row(bench, f"{nb} s", s) for nb, s in d.get("timings_s", {}).items()]
    return rows + [row(bench, "total s", d.get("total_s"))]


def generic_rows(d, bench: str) -> list[dict]:
    """Top-level numbers of a benchmark this module does not know."""
    return [row(bench, k, v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)] \
        if isinstance(d, dict) else []


EXTRACTORS = {"losses": losses_rows, "losses_gpu": losses_rows, "rollouts": rollouts_rows,
              "rollouts_gpu": rollouts_rows, "grader": grader_rows, "train_step": train_step_rows,
              "teacher": teacher_rows, "demo": demo_rows}


def rows_for(name: str, data) -> list[dict]:
    """The summary rows of benchmark file `<name>.json` with content `data`."""
    return EXTRACTORS.get(name, generic_rows)(data, bench=name)


def status_row(name: str, job: dict) -> dict:
    """The row of a benchmark that did not run to the end (missing, failed, skipped)."""
    return row(name, f"{job['status']}: {job.get('reason', '')}".rstrip(": "))


def _status_rows(bench_dir: Path) -> list[dict]:
    """One row per benchmark that the last `run_all` recorded as not ok (older results of
    that benchmark, if any, are still listed)."""
    path = bench_dir / SUMMARY_FILE
    if not path.exists():
        return []
    jobs = json.loads(path.read_text(encoding="utf-8")).get("jobs", {})
    return [status_row(name, job) for name, job in jobs.items() if job.get("status") != "ok"]


def load_summary(outputs_dir: str | Path):
    """All benchmark results under `<outputs_dir>/bench/` as a DataFrame with `COLUMNS`
    (an empty frame with those columns when there are none); a file that is not JSON is one row
    `unreadable: <path>: <why>`, and the others are still read."""
    import pandas as pd

    bench_dir = Path(outputs_dir) / "bench"
    rows = []
    for path in sorted(bench_dir.glob("*.json")) if bench_dir.is_dir() else []:
        if path.name != SUMMARY_FILE:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:  # shown as a row, naming the file
                rows.append(row(path.stem, f"unreadable: {path}: {e}"))
                continue
            rows += rows_for(path.stem, data)
    rows += _status_rows(bench_dir) if bench_dir.is_dir() else []
    return pd.DataFrame(rows, columns=list(COLUMNS))
