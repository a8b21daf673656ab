"""Self-consistency of the grader (`sgpo_lib.grading`) on benchmark solutions: each worked
solution graded against its own reference answer should be correct, so each miss is a false
negative of the grader (or a solution that states its answer before a closing digression).
Data other than the acceptance holdout, for finding classes of misses.

Variants, from ../shared/data/benchmarks (see its README):
- `math_boxed`: the 4,500 MATH-test solutions against their last `\\boxed{}`;
- `math_unboxed`: the same with that box's content left in place of the box (the final-sentence
  extraction);
- `olympiad`: OlympiadBench's first solution against its final answer(s), joined by ", ";
- `minerva_unboxed`: Minerva solutions with their last box removed the same way;
- `gsm8k_nohash`: GSM8K rationales without the `####` line and the `<<...>>` marks.

    python -m bench.bench_selfconsistency [--workers 2] [--limit N] [--misses FILE]

Prints the share graded correct and the reasons per variant; writes
`outputs/bench/selfconsistency.json` (and, with `--misses`, every miss as JSON lines).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter
from pathlib import Path

from sgpo_lib.core.fileio import write_json
from sgpo_lib.core.paths import outputs_dir, shared_data_dir
from sgpo_lib.core.records import Problem
from sgpo_lib.grading.grader import Grader


def _last_box(s: str) -> tuple[int, int, int] | None:
    """(start of `\\boxed{`, content start, content end) of the last closed box, else None."""
    i = s.rfind("\\boxed{")
    if i < 0:
        return None
    depth, k = 1, i + len("\\boxed{")
    while k < len(s) and depth:
        depth += {"{": 1, "}": -1}.get(s[k], 0)
        k += 1
    return (i, i + len("\\boxed{"), k - 1) if depth == 0 else None


def _rows(name: str) -> list[dict]:
    path = shared_data_dir() / "benchmarks" / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _boxed_solutions(name: str, keep_box: bool) -> list[tuple[str, str, str]]:
    out = []
    for r in _rows(name):
        box = _last_box(r["solution"])
        if box:
            i, j, k = box
            text = r["solution"] if keep_box else r["solution"][:i] + r["solution"][j:k] + r["solution"][k + 1:]
            out.append((r["problem"], r["solution"][j:k], text))
    return out


def cases(variant: str) -> list[tuple[str, str, str]]:
    """(problem, reference, solution text) for one variant of the module docstring."""
    if variant in ("math_boxed", "math_unboxed"):
        return _boxed_solutions("math_train4500.jsonl", keep_box=variant == "math_boxed")
    if variant == "minerva_unboxed":
        return _boxed_solutions("minerva.jsonl", keep_box=False)
    if variant == "olympiad":
        return [(r["question"], ", ".join(a.strip().strip("$") for a in r["final_answer"]), r["solution"][0])
                for r in _rows("olympiadbench.jsonl")]
    if variant == "gsm8k_nohash":
        return [(r["question"], r["answer"].split("####")[1].strip().replace(",", ""),
                 re.sub(r"<<[^>]*>>", "", r["answer"].split("####")[0])) for r in _rows("gsm8k.jsonl")]
    raise ValueError(f"unknown variant {variant!r}")


VARIANTS = ("math_boxed", "math_unboxed", "olympiad", "minerva_unboxed", "gsm8k_nohash")


def run(workers: int = 2, limit: int | None = None, misses: Path | None = None) -> dict:
    """The share graded correct and the reasons for every variant."""
    result, missed = {}, []
    with Grader(workers=workers) as grader:
        for variant in VARIANTS:
            rows = cases(variant)[:limit]
            problems = [Problem(id=f"{variant}-{i}", problem=p, answer=ref, source=variant, split="test")
                        for i, (p, ref, _) in enumerate(rows)]
            grades = grader.grade_many([text for _, _, text in rows], problems)
            reasons = Counter(g.reason for g in grades)
            result[variant] = {"rows": len(rows), "correct": reasons["correct"] / len(rows), "reasons": dict(reasons)}
            missed += [{"variant": variant, "row": i, "reason": g.reason, "pred": g.pred, "reference": ref,
                        "tail": text[-300:]} for i, ((_, ref, text), g) in enumerate(zip(rows, grades)) if g.reward < 1]
    write_json(outputs_dir() / "bench" / "selfconsistency.json", result)
    if misses:
        misses.write_text("".join(json.dumps(m) + "\n" for m in missed))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="grading worker processes")
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows of each variant")
    parser.add_argument("--misses", type=Path, default=None, help="write every miss to this JSONL file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for variant, r in run(args.workers, args.limit, args.misses).items():
        print(f"{variant:<16} {r['rows']:>5} solutions  {r['correct']:7.2%} graded correct  {r['reasons']}")


if __name__ == "__main__":
    main()
