"""Grader throughput and worst-case latency (`sgpo_lib.grading`).

Throughput: the MATH reference solutions of ../shared/data/realcritic/math.jsonl graded
against their own answers (most hit the string fast path) and against another problem's
answer (every one goes through math-verify), with warm workers. Latency: adversarial answers
(giant exponents, huge nested expressions, deep braces, long strings, code payloads) graded
one at a time; each must end within the timeout plus a worker restart. Writes
`outputs/bench/grader.json`.

    python -m bench.bench_grader [--timeout 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import time

from sgpo_lib.grading import DEFAULT_TIMEOUT_S, Grader
from sgpo_lib.io import write_json
from sgpo_lib.paths import outputs_dir, shared_data_dir
from sgpo_lib.records import Problem

logger = logging.getLogger(__name__)

ADVERSARIAL = {
    "power tower 9^9^9^9": "\\boxed{9^{9^{9^{9}}}}",
    "giant power 123456789^987654321": "\\boxed{123456789^{987654321}}",
    "factorial (10^9)!": "\\boxed{(10^{9})!}",
    "nested parentheses x200": "\\boxed{" + "(" * 200 + "x+1" + ")" * 200 + "}",
    "nested braces x400": "\\boxed{" + "{" * 400 + "1" + "}" * 400 + "}",
    "nested braces x5000": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "nested fractions x60": "\\boxed{" + "\\frac{1}{2+" * 60 + "1" + "}" * 60 + "}",
    "nested fractions x150": "\\boxed{" + "\\frac{1}{2+" * 150 + "1" + "}" * 150 + "}",
    "long sum (990 chars)": "\\boxed{" + "x^{2}+" * 165 + "1}",
    "too long (100k chars)": "\\boxed{" + "1+" * 50_000 + "1}",
    "1 MB of prose, no box": "we try again. " * 75_000,
    "integral": "\\boxed{\\int_0^1 e^{x^{x}} \\, dx}",
    "huge sum": "\\boxed{\\sum_{k=1}^{10^{12}} k^{k}}",
    "python payload": "\\boxed{__import__('os').system('echo pwned')}",
}


def _problem(answer: str, pid: str = "bench") -> Problem:
    return Problem(id=pid, problem="?", answer=answer, source="bench", split="test")


def _throughput(grader: Grader, texts: list[str], problems: list[Problem]) -> dict:
    start = time.perf_counter()
    grades = grader.grade_many(texts, problems)
    seconds = time.perf_counter() - start
    return {"answers": len(texts), "seconds": seconds, "answers_per_s": len(texts) / seconds,
            "correct": sum(g.reward for g in grades)}


def _math_reference(grader: Grader) -> dict:
    """Own-answer and cross-answer throughput on the MATH reference solutions."""
    from sgpo_lib.data import load_realcritic

    problems = load_realcritic("math", correct_only=False)
    solutions = [p.meta["orig_solution"] for p in problems]
    others = [next(q for q in problems[i + 1:] + problems if q.answer != p.answer) for i, p in enumerate(problems)]
    return {"own_answer": _throughput(grader, solutions, problems),
            "other_answer": _throughput(grader, solutions, others)}


def _adversarial(grader: Grader) -> list[dict]:
    rows = []
    for name, text in ADVERSARIAL.items():
        restarts = grader.restarts
        start = time.perf_counter()
        [grade] = grader.grade_many([text], [_problem("1")])
        rows.append({"case": name, "chars": len(text), "seconds": time.perf_counter() - start,
                     "reason": grade.reason, "restarted": grader.restarts > restarts})
    return rows


def run(timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 2) -> dict:
    """Both measurements; the MATH one is skipped (with a message) without ../shared/data."""
    result: dict = {"timeout_s": timeout_s, "workers": workers}
    with Grader(timeout_s=timeout_s, workers=workers) as grader:
        grader.grade_many(["\\boxed{\\frac{1}{2}}"] * workers, [_problem("0.5")] * workers)  # warm start
        if (shared_data_dir() / "realcritic" / "math.jsonl").exists():
            result["math_reference"] = _math_reference(grader)
        else:
            result["math_reference"] = "skipped: ../shared/data/realcritic/math.jsonl not found"
        result["adversarial"] = _adversarial(grader)
    result["worst_case_s"] = max(r["seconds"] for r in result["adversarial"])
    write_json(outputs_dir() / "bench" / "grader.json", result)
    return result


def _print_table(result: dict) -> None:
    ref = result["math_reference"]
    if isinstance(ref, str):
        print(ref)
    else:
        for key, r in ref.items():
            print(f"MATH reference solutions vs {key:<13} {r['answers']:>4} answers  {r['seconds']:6.2f} s  "
                  f"{r['answers_per_s']:7.1f} answers/s  ({r['correct']:.0f} graded correct)")
    print(f"\n{'adversarial case':<34} {'chars':>9} {'seconds':>8}  reason")
    for r in result["adversarial"]:
        print(f"{r['case']:<34} {r['chars']:>9} {r['seconds']:8.2f}  {r['reason']}{' (restart)' if r['restarted'] else ''}")
    print(f"\nworst case {result['worst_case_s']:.2f} s with timeout {result['timeout_s']} s; "
          f"written to {outputs_dir() / 'bench' / 'grader.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per answer")
    parser.add_argument("--workers", type=int, default=2, help="grading worker processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    _print_table(run(args.timeout, args.workers))


if __name__ == "__main__":
    main()
