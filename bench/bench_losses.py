"""Benchmark of the distillation loss: chunked vs naive full logits (sgpo-method.md section 4).

Measures, side by side in one run, forward+backward time and peak memory of:
`naive_full` (materialised [N, V] logits, plain autograd: `distill_dense`), `chunked_full`,
`topk16` / `topk64` (chunked, teacher top-k given as by the rollout engine) and `sampled`
(chunked SFT on the guided rollout).
Time: the median of `repeats` rounds after a warm-up round, all variants timed round-robin in
one `spawn` child, so that the other processes' load (this machine is shared) hits them alike.
Peak memory: each variant's one step in its own fresh `spawn` child; on CPU the peak RSS during
the step minus the RSS after setup (the peak is reset after setup through /proc/self/clear_refs;
torch's CPU allocations are invisible to tracemalloc), on CUDA `max_memory_allocated` minus the
allocation after setup. Ratios are against `naive_full`.

On CPU the children run with glibc's `MALLOC_MMAP_THRESHOLD_` fixed at 1 MiB, so that every
tensor buffer is mmapped and returned to the OS when freed and RSS follows live tensor memory
(the CPU analogue of `max_memory_allocated`). With glibc's default dynamic threshold, freed
blocks up to 32 MiB stay in the heap, which adds a few hundred MiB of retained RSS to the
chunked variants; `--malloc-mmap-threshold 0` measures that instead.

Usage (from the repository root):
    python -m bench.bench_losses --tokens 4096 --vocab 32000 --hidden 512 --repeats 3
Writes outputs/bench/losses.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

from bench.common import publish

VARIANTS = ("naive_full", "chunked_full", "topk16", "topk64", "sampled")
TOPK = {"topk16": 16, "topk64": 64}
TARGET_MEM_RATIO = 1 / 8  # chunked_full peak memory vs naive_full, at most
TARGET_TIME_RATIO = 1.2  # chunked_full time vs naive_full, at most
SETUP_CHUNK = 256  # tokens per chunk when preparing teacher top-k and old log-probs
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
DEFAULT_MMAP_THRESHOLD = 2**20  # bytes; blocks above it are mmapped and given back to the OS when freed


def _setup(device: str, tokens: int, vocab: int, hidden: int, topks=(), seed: int = 0) -> dict:
    """Random inputs of realistic scale; each teacher top-k in `topks` is computed chunk by chunk."""
    import torch

    from sgpo_lib.method.distill_terms import TeacherDist
    from sgpo_lib.method.distill import DistillSpec, chunked_distill

    g = torch.Generator(device="cpu").manual_seed(seed)
    make = lambda *shape: (torch.randn(*shape, generator=g) / hidden**0.25).to(device)  # noqa: E731
    inputs = {"hidden": make(tokens, hidden).requires_grad_(), "weight": make(vocab, hidden).requires_grad_(),
              "teacher_hidden": make(tokens, hidden),
              "targets": torch.randint(0, vocab, (tokens,), generator=g).to(device),
              "coef": torch.full((tokens,), 1.0 / tokens, device=device), "topk": {}}
    with torch.no_grad():
        inputs["old"] = chunked_distill(inputs["hidden"], inputs["weight"], inputs["targets"], inputs["coef"],
                                        spec=DistillSpec("sampled", proximal="none")).student_logprobs_N
        for k in topks:
            teachers = [TeacherDist.from_logits(inputs["teacher_hidden"][s:s + SETUP_CHUNK] @ inputs["weight"].T, k)
                        for s in range(0, tokens, SETUP_CHUNK)]
            inputs["topk"][k] = {"teacher_topk_ids_N_K": torch.cat([t.topk_ids_N_K for t in teachers]),
                                 "teacher_topk_logprobs_N_K": torch.cat([t.topk_logprobs_N_K for t in teachers])}
    return inputs


def _step(variant: str, x: dict, chunk_size: int | None) -> None:
    """One forward+backward of `variant` (gradients reset first)."""
    from sgpo_lib.method.distill_terms import TeacherDist
    from sgpo_lib.method.distill import DistillSpec, chunked_distill, distill_dense

    x["hidden"].grad = x["weight"].grad = None
    if variant == "naive_full":
        teacher = TeacherDist.from_logits(x["teacher_hidden"] @ x["weight"].detach().T)
        logits_N_V = x["hidden"] @ x["weight"].T  # (N, V): the whole batch at once
        loss = distill_dense(logits_N_V, x["targets"], x["coef"], teacher, DistillSpec(), x["old"]).loss
    else:
        estimator = {"chunked_full": "full", "topk16": "topk", "topk64": "topk", "sampled": "sampled"}[variant]
        teacher = x["topk"].get(TOPK.get(variant), {})
        loss = chunked_distill(x["hidden"], x["weight"], x["targets"], x["coef"], spec=DistillSpec(estimator),
                               teacher_hidden_N_H=x["teacher_hidden"] if estimator == "full" else None,
                               old_logprobs_N=x["old"], chunk_size=chunk_size, **teacher).loss
    loss.backward()


def _rss_bytes(field: str) -> int:
    """`VmRSS` (current) or `VmHWM` (peak) of this process, from /proc/self/status."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0: clear_refs '5')."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_memory_mb(variant: str, device: str, tokens: int, vocab: int, hidden: int,
                    chunk_size: int | None, threads: int | None) -> float:
    """In a fresh child: set up, then the peak memory of one forward+backward above the setup's."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    x = _setup(device, tokens, vocab, hidden, [TOPK[variant]] if variant in TOPK else [])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(variant, x, chunk_size)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _reset_peak_rss()
    base = _rss_bytes("VmRSS")
    _step(variant, x, chunk_size)
    return (_rss_bytes("VmHWM") - base) / 2**20


def _median_times(variants, device: str, tokens: int, vocab: int, hidden: int, repeats: int,
                  chunk_size: int | None, threads: int | None) -> dict:
    """In one child, time the variants round-robin (a warm-up round, then `repeats` rounds): a
    change in background load then hits every variant alike. Returns the median seconds per variant."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    x = _setup(device, tokens, vocab, hidden, [TOPK[v] for v in variants if v in TOPK])
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    times = {v: [] for v in variants}
    for round_ in range(repeats + 1):
        for variant in variants:
            sync()
            start = time.perf_counter()
            _step(variant, x, chunk_size)
            sync()
            if round_:
                times[variant].append(time.perf_counter() - start)
    return {v: statistics.median(t) for v, t in times.items()}


def _run_children(args: tuple, repeats: int, variants, malloc_mmap_threshold: int) -> dict:
    """Peak memory of each variant in its own spawned child, then all times in one more child."""
    device, tokens, vocab, hidden, chunk_size, threads = args
    ctx = multiprocessing.get_context("spawn")
    saved = os.environ.get(MMAP_ENV)
    if malloc_mmap_threshold > 0:
        os.environ[MMAP_ENV] = str(malloc_mmap_threshold)  # read by the child's glibc at start-up
    try:
        results = {}
        for variant in variants:
            with ctx.Pool(1) as pool:
                results[variant] = {"peak_mem_mb": pool.apply(_peak_memory_mb, (variant, *args))}
        with ctx.Pool(1) as pool:
            times = pool.apply(_median_times, (variants, device, tokens, vocab, hidden, repeats, chunk_size, threads))
    finally:
        os.environ.pop(MMAP_ENV, None) if saved is None else os.environ.__setitem__(MMAP_ENV, saved)
    for variant, t in times.items():
        results[variant]["time_s"] = t
    return results


def run(device: str = "cpu", tokens: int = 4096, vocab: int = 32000, hidden: int = 512, repeats: int = 3,
        chunk_size: int | None = None, threads: int | None = None, variants=VARIANTS,
        malloc_mmap_threshold: int = DEFAULT_MMAP_THRESHOLD) -> dict:
    """Measure every variant in its own spawned process; return the results with ratios vs naive."""
    from sgpo_lib.model.policy import default_chunk_size

    results = _run_children((device, tokens, vocab, hidden, chunk_size, threads), repeats, variants,
                            malloc_mmap_threshold)
    if "naive_full" in results:
        naive = results["naive_full"]
        for r in results.values():
            r["time_ratio_vs_naive"] = r["time_s"] / naive["time_s"]
            r["mem_ratio_vs_naive"] = r["peak_mem_mb"] / naive["peak_mem_mb"]
    config = {"device": device, "tokens": tokens, "vocab": vocab, "hidden": hidden, "repeats": repeats,
              "chunk_size": chunk_size or default_chunk_size(vocab, device), "threads": threads,
              "malloc_mmap_threshold": malloc_mmap_threshold}
    out = {"config": config, "results": results}
    if {"naive_full", "chunked_full"} <= set(results):
        chunked = results["chunked_full"]
        out["targets"] = {"mem_ratio_max": TARGET_MEM_RATIO, "time_ratio_max": TARGET_TIME_RATIO,
                          "met": chunked["mem_ratio_vs_naive"] <= TARGET_MEM_RATIO
                          and chunked["time_ratio_vs_naive"] <= TARGET_TIME_RATIO}
    return out


def _table(out: dict) -> str:
    lines = [f"{'variant':<14}{'time_s':>10}{'peak_MB':>11}{'time/naive':>12}{'mem/naive':>11}"]
    for name, r in out["results"].items():
        time_ratio, mem_ratio = r.get("time_ratio_vs_naive", float("nan")), r.get("mem_ratio_vs_naive", float("nan"))
        lines.append(f"{name:<14}{r['time_s']:>10.3f}{r['peak_mem_mb']:>11.1f}{time_ratio:>12.3f}{mem_ratio:>11.3f}")
    return "\n".join(lines)


def main(argv=None) -> dict:

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chunk-size", type=int, default=None, help="tokens per chunk (default: from the vocab size)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in each child")
    p.add_argument("--malloc-mmap-threshold", type=int, default=DEFAULT_MMAP_THRESHOLD,
                   help="glibc MALLOC_MMAP_THRESHOLD_ for the children, bytes (0: glibc's dynamic default)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", default=None, help="JSON path (default outputs/bench/losses.json)")
    a = p.parse_args(argv)
    out = run(a.device, a.tokens, a.vocab, a.hidden, a.repeats, a.chunk_size, a.threads, tuple(a.variants),
              a.malloc_mmap_threshold)
    print(f"targets: {out.get('targets')}")
    publish(out, "losses", _table(out), a.out)
    return out


if __name__ == "__main__":
    main()
