"""Grader throughput against a bare math-verify loop, and worst-case latency (`sgpo_lib.grading.grader`).

Throughput, side by side in one run on the same inputs: the 1,069 real model responses of
../shared/data/realcritic (GSM8K, MATH, Minerva, OlympiadBench; mixed lengths and answer kinds)
graded against their references (a) by our `Grader` (warm workers, `--workers` of them) and
(b) by a bare in-process loop of `math_verify.parse(response)`, `parse("$reference$")`, `verify`
(math-verify's own extraction and signal timeouts). Each is timed `--repeats` times; medians
and their ratio are printed. Latency: adversarial inputs (giant exponents, deep nesting,
unclosed boxes, 5 MB responses, null bytes, lone surrogates, code payloads, and answers that
restate a question whose expression is itself adversarial) graded one at a time; the worst must
stay within the per-answer budget, and no restatement may be rewarded. Writes
`outputs/bench/grader.json`.

    python -m bench.bench_grader [--budget 2] [--workers 2] [--repeats 3] [--limit N]

`--labelled FILE` instead grades a labelled JSONL (fields `problem`, `answer`, `response`,
`label`; e.g. the shared holdout, `../shared/data/holdout/grader_holdout.jsonl`) once and prints
the agreement with its labels, overall and per `source`, to
`outputs/bench/grader_agreement.json`. It is a measurement, not a test: a set used for
acceptance must not be graded while rules are tuned.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections import defaultdict
from pathlib import Path

from sgpo_lib.grading.grader import DEFAULT_BUDGET_S, Grader
from sgpo_lib.core.fileio import write_json
from sgpo_lib.core.paths import outputs_dir, shared_data_dir
from sgpo_lib.core.records import Problem

logger = logging.getLogger(__name__)

ADVERSARIAL = {
    "power tower 9^9^9^9": "\\boxed{9^{9^{9^{9}}}}",
    "exponent tower x50": "\\boxed{" + "9^{" * 50 + "9" + "}" * 50 + "}",
    "giant power 123456789^987654321": "\\boxed{123456789^{987654321}}",
    "factorial (10^9)!": "\\boxed{(10^{9})!}",
    "nested parentheses x200": "\\boxed{" + "(" * 200 + "x+1" + ")" * 200 + "}",
    "nested braces x5000": "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "nested fractions x150": "\\boxed{" + "\\frac{1}{2+" * 150 + "1" + "}" * 150 + "}",
    "long sum (990 chars)": "\\boxed{" + "x^{2}+" * 165 + "1}",
    "1,000 unclosed boxes, 100 KB": "\\boxed{" * 1000 + "so we try again. " * 5500,
    "5 MB of prose, then a box": "we try again. " * 370_000 + "\\boxed{1}",
    "null bytes": "\x00" * 10_000 + "\\boxed{1\x00}",
    "lone surrogates": "\ud800\udfff" * 5000 + "\\boxed{\ud8001}",
    "integral": "\\boxed{\\int_0^1 e^{x^{x}} \\, dx}",
    "huge sum": "\\boxed{\\sum_{k=1}^{10^{12}} k^{k}}",
    "python payload": "\\boxed{(lambda: 0).__globals__['os'].system('echo pwned')}",
}
# name: (problem, response): the answer restates a question whose expression is costly to evaluate
RESTATED = {
    "restated huge sum": ("What is $\\sum_{k=1}^{10^{12}} k^{k}$ modulo 7?", "\\boxed{\\sum_{k=1}^{10^{12}} k^k}"),
    "restated power tower": ("Compute the last digit of $9^{9^{9^{9}}}$.", "The answer is $9^{9^{9^{9}}}$."),
    "restated integral": ("Evaluate $\\int_0^1 e^{x^{x}} \\, dx$.", "\\boxed{\\int_{0}^{1} e^{x^x}\\,dx}"),
    "restated binomial": ("Find $\\dbinom{10^{9}}{5 \\cdot 10^{8}}$.", "\\boxed{\\binom{10^9}{5\\cdot10^8}}"),
    "restated in plain text": ("Compute 123456789^987654321 mod 10.", "The final answer is 123456789^987654321"),
}


def _problem(answer: str, pid: str = "bench", problem: str = "?") -> Problem:
    return Problem(id=pid, problem=problem, answer=answer, source="bench", split="test")


def _realcritic(limit: int | None) -> tuple[list[str], list[Problem]]:
    from sgpo_lib.data.benchmarks import REALCRITIC_FILES, load_realcritic

    problems = [p for name in REALCRITIC_FILES for p in load_realcritic(name, correct_only=False)][:limit]
    return [p.strong_response for p in problems], problems


def _bare_math_verify(texts: list[str], problems: list[Problem], delimit: bool = True) -> list[bool]:
    """The baseline: math-verify alone, in this process, with its default extraction and timeouts;
    the reference in `$...$` as math-verify's README parses a gold answer (or bare, which often
    parses to nothing and so is fast and wrong)."""
    from math_verify import parse, verify

    return [bool(verify(parse(f"${p.answer}$" if delimit else p.answer), parse(t))) for t, p in zip(texts, problems)]


def _bare_undelimited(texts: list[str], problems: list[Problem]) -> list[bool]:
    return _bare_math_verify(texts, problems, delimit=False)


def _timed(fn, texts, problems, repeats: int) -> dict:
    seconds, correct = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(texts, problems)
        seconds.append(time.perf_counter() - start)
        correct = float(sum(getattr(x, "reward", x) for x in out))
    median = statistics.median(seconds)
    return {"answers": len(texts), "seconds": seconds, "median_s": median,
            "answers_per_s": len(texts) / median, "correct": correct}


def _adversarial(grader: Grader) -> list[dict]:
    """Each adversarial and restated case graded alone (one answer per call), timed."""
    cases = {name: ("?", text) for name, text in ADVERSARIAL.items()} | RESTATED
    rows = []
    for name, (problem, text) in cases.items():
        restarts = grader.restarts
        start = time.perf_counter()
        [grade] = grader.grade_many([text], [_problem("1", problem=problem)])
        rows.append({"case": name, "chars": len(text), "seconds": time.perf_counter() - start,
                     "reason": grade.reason, "reward": grade.reward, "restarted": grader.restarts > restarts})
    return rows


def run(budget_s: float = DEFAULT_BUDGET_S, workers: int = 2, repeats: int = 3, limit: int | None = None) -> dict:
    """Both measurements; throughput is skipped (with a message) without ../shared/data."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    result: dict = {"budget_s": budget_s, "workers": workers, "repeats": repeats}
    with Grader(budget_s=budget_s, workers=workers) as grader:
        grader.grade_many(["\\boxed{\\frac{1}{2}}"] * workers, [_problem("0.5")] * workers)  # warm start
        if (shared_data_dir() / "realcritic").exists():
            texts, problems = _realcritic(limit)
            ours = _timed(grader.grade_many, texts, problems, repeats)
            bare = _timed(_bare_math_verify, texts, problems, repeats)
            undelimited = _timed(_bare_undelimited, texts, problems, repeats)
            result["throughput"] = {"grader": ours, "bare_math_verify": bare, "bare_undelimited_reference": undelimited,
                                    "ratio": ours["answers_per_s"] / bare["answers_per_s"],
                                    "ratio_undelimited": ours["answers_per_s"] / undelimited["answers_per_s"]}
        else:
            result["throughput"] = "skipped: ../shared/data/realcritic not found"
        result["adversarial"] = _adversarial(grader)
    result["worst_case_s"] = max(r["seconds"] for r in result["adversarial"])
    result["restatements_rewarded"] = sum(r["reward"] for r in result["adversarial"] if r["case"] in RESTATED)
    write_json(outputs_dir() / "bench" / "grader.json", result)
    return result


def agreement(path: Path, budget_s: float = DEFAULT_BUDGET_S, workers: int = 2) -> dict:
    """Agreement of the grader with the labels of a labelled JSONL, overall and per source."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    problems = [Problem(id=str(r.get("id", i)), problem=r["problem"], answer=str(r["answer"]), source=str(r.get("source", "")),
                        split="test") for i, r in enumerate(rows)]
    with Grader(budget_s=budget_s, workers=workers) as grader:
        grades = grader.grade_many([r["response"] for r in rows], problems)
    by_source: dict[str, list[bool]] = defaultdict(list)
    for r, g in zip(rows, grades):
        by_source[str(r.get("source", ""))].append((g.reward == 1.0) == bool(r["label"]))
    agree = [a for v in by_source.values() for a in v]
    result = {"file": str(path), "rows": len(rows), "agreement": sum(agree) / len(agree),
              "by_source": {k: {"rows": len(v), "agreement": sum(v) / len(v)} for k, v in sorted(by_source.items())},
              "reasons": dict(grader.reasons)}
    write_json(outputs_dir() / "bench" / "grader_agreement.json", result)
    return result


def _print_table(result: dict) -> None:
    tp = result["throughput"]
    if isinstance(tp, str):
        print(tp)
    else:
        for key in ("grader", "bare_math_verify", "bare_undelimited_reference"):
            r = tp[key]
            print(f"{key:<27} {r['answers']:>5} realcritic answers  median {r['median_s']:7.2f} s  "
                  f"{r['answers_per_s']:7.1f} answers/s  ({r['correct']:.0f} graded correct)")
        print(f"throughput ratio grader / bare math-verify: {tp['ratio']:.2f}x (goal >= 0.8x); "
              f"/ bare with an undelimited reference: {tp['ratio_undelimited']:.2f}x")
    print(f"\n{'adversarial case':<34} {'chars':>9} {'seconds':>8}  reason")
    for r in result["adversarial"]:
        print(f"{r['case']:<34} {r['chars']:>9} {r['seconds']:8.2f}  {r['reason']}{' (restart)' if r['restarted'] else ''}")
    print(f"\nrestatements rewarded: {result['restatements_rewarded']:.0f} of {len(RESTATED)}")
    print(f"worst case {result['worst_case_s']:.2f} s per answer, budget {result['budget_s']} s; "
          f"written to {outputs_dir() / 'bench' / 'grader.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds per answer, all included")
    parser.add_argument("--workers", type=int, default=2, help="grading worker processes")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each throughput measurement")
    parser.add_argument("--limit", type=int, default=None, help="grade only the first N realcritic responses")
    parser.add_argument("--labelled", type=Path, default=None, help="only the agreement with a labelled JSONL's labels")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    if args.labelled:
        result = agreement(args.labelled, args.budget, args.workers)
        print(json.dumps({k: v for k, v in result.items() if k != "file"}, indent=1))
    else:
        _print_table(run(args.budget, args.workers, args.repeats, args.limit))


if __name__ == "__main__":
    main()
