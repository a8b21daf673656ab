"""Strategy candidates and the choice of one per problem (sgpo-method.md §1: 5 candidates, rank-select).

`extract_strategies` sends each usable problem's extraction prompt to the extractor, takes
`n_candidates` raw answers per problem (`sample(messages_list, n)`; with one candidate the
plain `complete`, v1's single shot), validates each with `strategies.parse_strategy`, and keeps
one per problem:
- `select="first"`: the first valid candidate;
- `select="rank"`: with two or more valid candidates a second prompt (`rank_messages`) asks the
  extractor (`rank`, default `complete`) to rank the valid ones on four criteria [notes: the
  paper's criteria are unknown; ours: no instance numbers or answer, correct for the problem,
  general enough to reuse, executable by a weaker model]. `parse_ranking` reads the answer; an
  unusable one (no JSON, no ranking, not a candidate number, a refused request) falls back to
  the first valid candidate, counted with its reason.

Counts, never silently dropped: the returned Counter has one outcome per problem ("accepted",
or, when no candidate is valid, the commonest rejection reason among the candidates the
extractor returned, ties to the earliest: with one candidate exactly v1's counts), so `strategies.yield_check` reads it as before.
`stats` (a Counter, optional) receives `candidate/valid` and `candidate/<reason>` per
candidate, and per problem with a valid candidate one `select/<how>`: `only_valid`, `first`,
`ranked_first` / `ranked_other` (the ranking chose the first valid / another one) or
`fallback_<reason>`. The chosen strategy's provenance records its candidate index, the number
of candidates and of valid ones, and how it was selected.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from typing import Any, Callable, Iterable, Iterator

from ..core.records import Problem, Strategy
from .library import (CompleteFn, Messages, Rejection, StrategyLibrary, extraction_messages, make_limits,
                      parse_strategy, repair_json)

log = logging.getLogger(__name__)

SampleFn = Callable[[list[Messages], int], list[list]]
SELECT = ("rank", "first")
RANK_SYSTEM = "You judge problem-solving strategies. Answer with one JSON object and nothing else."
RANK_TEMPLATE = """Below is a problem and {n} candidate strategies for it, each as JSON. Rank the candidates
from best to worst on four criteria:
1. it states neither the final answer nor numbers of this particular problem;
2. it is correct for this problem;
3. it is general enough to reuse on other problems of the same type;
4. a weaker solver could execute its steps.

Return exactly this JSON schema: {{"ranking": [the candidate numbers, best first]}}

Problem:
{problem}

{candidates}"""
CANDIDATE_LINE = "Candidate {i}: {fields}"


def rank_messages(problem: Problem, candidates: list[Strategy]) -> Messages:
    """Chat messages asking the extractor to rank `candidates` (numbered from 1) for `problem`."""
    lines = "\n".join(CANDIDATE_LINE.format(i=i, fields=json.dumps(s.fields())) for i, s in enumerate(candidates, 1))
    user = RANK_TEMPLATE.format(n=len(candidates), problem=problem.problem, candidates=lines)
    return [{"role": "system", "content": RANK_SYSTEM}, {"role": "user", "content": user}]


def parse_ranking(raw: Any, n: int) -> int | Rejection:
    """The 0-based index of the best of `n` candidates in a rank answer, or why there is none.

    Reads `{"ranking": [3, 1, 2]}` (numbers or digit strings; only the first entry matters)
    or `{"best": 3}`, after the same JSON repair as strategies.

    >>> parse_ranking('Sure: {"ranking": ["2", 1]}', 2), parse_ranking('{"ranking": [4]}', 3).reason
    (1, 'rank_out_of_range')
    """
    if isinstance(raw, Exception):
        return Rejection(f"rank_{getattr(raw, 'reason', 'request_failed')}", str(raw))
    try:
        obj, _ = repair_json(raw or "")
    except ValueError as e:
        return Rejection("rank_invalid_json", str(e))
    ranking = obj.get("ranking", obj.get("best"))
    ranking = ranking if isinstance(ranking, list) else [ranking]
    first = ranking[0] if ranking else None
    if isinstance(first, bool) or not (isinstance(first, int) or (isinstance(first, str) and first.strip().isdigit())):
        return Rejection("rank_no_ranking", f"no candidate number first in 'ranking': {str(obj)[:160]}")
    if not 1 <= int(first) <= n:
        return Rejection("rank_out_of_range", f"candidate {first} of {n}")
    return int(first) - 1


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _usable(problems: Iterable[Problem], grader, counts: Counter) -> list[Problem]:
    """Problems with a strong response (that `grader`, if given, marks correct)."""
    usable = []
    for p in problems:
        if p.strong_response:
            usable.append(p)
        else:
            counts["no_strong_response"] += 1
            log.info("strategy extraction: %s has no strong response", p.id)
    if grader is None or not usable:
        return usable
    grades = grader.grade_many([p.strong_response for p in usable], usable)
    for p, g in zip(usable, grades):
        if g.reward < 1.0:
            counts["strong_response_wrong"] += 1
            log.info("strategy extraction: strong response of %s graded %s (%s)", p.id, g.reason, g.pred)
    return [p for p, g in zip(usable, grades) if g.reward == 1.0]


def _raw_candidates(batch: list[Problem], complete: CompleteFn, sample: SampleFn | None, n: int,
                    limits: dict) -> list[list]:
    """`n` raw answers (or exceptions) per problem of `batch`; a refused request counts for all `n`."""
    messages = [extraction_messages(p, **limits) for p in batch]
    raws = [[raw] for raw in complete(messages)] if n == 1 else sample(messages, n)
    if len(raws) != len(batch):
        raise ValueError(f"extract_strategies: the extractor returned {len(raws)} answers for {len(batch)} prompts")
    return [[raw] * n if isinstance(raw, Exception) else raw for raw in raws]


def _validate(problem: Problem, raws: list, n: int, extractor: str, stats: Counter, limits: dict) -> list:
    """A `Strategy` or `Rejection` per candidate; missing candidates are counted."""
    results = []
    for raw in raws:
        if isinstance(raw, Exception):
            results.append(Rejection(getattr(raw, "reason", "request_failed"), str(raw)))
        else:
            results.append(parse_strategy(raw, problem, extractor=extractor, **limits))
    results += [Rejection("missing_candidate", f"the extractor returned {len(raws)} of {n} candidates")] * (n - len(raws))
    for i, r in enumerate(results):
        stats["candidate/" + (r.reason if isinstance(r, Rejection) else "valid")] += 1
        if isinstance(r, Rejection):
            log.debug("candidate %d for %s rejected: %s (%s)", i, problem.id, r.reason, r.detail)
    return results


def _choose(valid: list[tuple[int, Strategy]], rank_raw: Any) -> tuple[int, str]:
    """(position in `valid`, how) from the rank answer (None: no rank prompt was sent)."""
    if rank_raw is None:
        return 0, "only_valid" if len(valid) == 1 else "first"
    best = parse_ranking(rank_raw, len(valid))
    if isinstance(best, Rejection):
        log.info("rank answer unusable (%s: %s): first valid candidate kept", best.reason, best.detail)
        return 0, "fallback_" + best.reason
    return best, "ranked_first" if best == 0 else "ranked_other"


def _outcome(problem: Problem, results: list, rank_raw: Any) -> Strategy | Rejection:
    """The selected candidate (provenance completed), or the problem's commonest rejection."""
    valid = [(i, r) for i, r in enumerate(results) if isinstance(r, Strategy)]
    if not valid:
        returned = [r for r in results if r.reason != "missing_candidate"] or results
        reason = Counter(r.reason for r in returned).most_common(1)[0][0]
        return next(r for r in returned if r.reason == reason)
    pos, how = _choose(valid, rank_raw)
    index, chosen = valid[pos]
    provenance = {**chosen.provenance, "candidate": index, "n_candidates": len(results), "n_valid": len(valid),
                  "selected": how}
    return dataclasses.replace(chosen, provenance=provenance)


def _rank_answers(batch: list[Problem], results: list[list], select: str, rank: CompleteFn) -> list:
    """The rank answer per problem (None where no rank prompt is needed)."""
    need = [i for i, rs in enumerate(results) if select == "rank" and sum(isinstance(r, Strategy) for r in rs) > 1]
    answers: list = [None] * len(batch)
    if need:
        prompts = [rank_messages(batch[i], [r for r in results[i] if isinstance(r, Strategy)]) for i in need]
        for i, raw in zip(need, rank(prompts)):
            answers[i] = raw
    return answers


def extract_strategies(problems: Iterable[Problem], complete: CompleteFn, *, sample: SampleFn | None = None,
                       rank: CompleteFn | None = None, n_candidates: int = 1, select: str = "first",
                       extractor: str = "extractor", batch_size: int = 64, grader=None,
                       examples: dict[str, str] | None = None, stats: Counter | None = None,
                       **limits: Any) -> tuple[StrategyLibrary, Counter]:
    """Extract, validate and select one strategy per problem (see the module docstring).

    `complete` maps chat-message lists to raw completions (an exception in place of one, e.g.
    `openai_client.RequestFailed`, is a rejection with its `reason`, default "request_failed");
    `sample(messages_list, n)` gives `n` per chat (needed when `n_candidates > 1`); `rank`
    answers rank prompts (default `complete`). `grader` optionally re-checks each strong
    response. `limits` are `StrategyLimits` fields. Returns the library and the per-problem
    Counter; `examples` receives the first detail of each reason, `stats` the candidate counts.
    (The config's defaults are 5 candidates and rank; these defaults are v1's single shot.)
    """
    make_limits(**limits)
    if select not in SELECT or n_candidates < 1 or (n_candidates > 1 and sample is None):
        raise ValueError(f"extract_strategies: need select in {SELECT}, n_candidates >= 1 and a sample function "
                         f"for n_candidates > 1 (got {select!r}, {n_candidates}, sample={sample})")
    counts, stats = Counter(), stats if stats is not None else Counter()
    library = StrategyLibrary()
    for batch in _batches(_usable(problems, grader, counts), batch_size):
        raws = _raw_candidates(batch, complete, sample, n_candidates, limits)
        results = [_validate(p, r, n_candidates, extractor, stats, limits) for p, r in zip(batch, raws)]
        for problem, rs, rank_raw in zip(batch, results, _rank_answers(batch, results, select, rank or complete)):
            result = _outcome(problem, rs, rank_raw)
            if isinstance(result, Strategy) and result.id in library:
                result = Rejection("duplicate", f"strategy {result.id} already extracted")
            if isinstance(result, Rejection):
                counts[result.reason] += 1
                if examples is not None:
                    examples.setdefault(result.reason, f"{problem.id}: {result.detail}")
                log.info("strategy for %s rejected: %s (%s)", problem.id, result.reason, result.detail)
            else:
                stats["select/" + result.provenance["selected"]] += 1
                library.add(result)
                counts["accepted"] += 1
    log.info("strategy extraction by %s: %s; candidates and selection: %s", extractor, dict(counts), dict(stats))
    return library, counts
