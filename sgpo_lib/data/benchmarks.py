"""Real benchmarks and strong-response training sets as `Problem` records (architecture.md, `data`).

`BENCHMARKS` maps a short name to a `BenchmarkSpec`: the Hugging Face hub repository, config
and split that math-reasoning papers evaluate on, and how its columns map onto `Problem`.
`load_benchmark` reads one either from the hub (`datasets.load_dataset`, for real runs) or
from a local JSONL file with the same columns (offline runs and tests). `split` is the role
("test": the split papers evaluate on; "train": the benchmark's training split where the hub
has one, e.g. GSM8K) and becomes `Problem.split`; ids are stable: `<name>/<row id or index>`.

`load_realcritic` and `load_training_set` read training problems that carry a strong model's
solution in `Problem.strong_response`: the input of strategy extraction (sgpo-method.md §1)
and of the SFT baseline. RealCritic (../shared/data/realcritic, see its README) is read in
place by path, never copied.

Column layouts: a field name may be a dotted path into nested values (`reward_model.ground_truth`,
`target.0.content`; `role=user` picks the first chat message with that role), so LUFFY's
OpenR1-Math-46k (`prompt` chat list, `target[0].content` the R1 response) reads as it is. A
spec's `alt` is a second layout of the same data (Minerva Math: the public `problem/solution`
file and the hub's `question/answer` copy); each row is read with the layout whose problem
field it has. Answer formats: "plain" (the field as is), "gsm8k" (text after `####`), "list"
(OlympiadBench's list of answers), "boxed" (the last `\\boxed{}` of a worked solution: MATH's
and Minerva's own files). A hub load with a `limit` reads the slice `split[:limit]`.

Departures: GSM8K's reference answer is the text after `####` with thousands separators
removed; OlympiadBench's list of final answers is joined with ", " and stripped of every `$`
(outer and inner: `$69$,$84$` becomes "69,84"), of a final full stop, and of a trailing
"where ..." qualification (`_list_item`), so that math-verify parses every gold; an integral float
answer (some AMC mirrors store 27.0) becomes "27". A malformed row raises a `ValueError`
naming the file (or hub repository) and the line (or row index).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from ..core.paths import resolve, shared_data_dir
from ..core.records import Problem
from ..grading.grader import extract_answer

log = logging.getLogger(__name__)

AnswerFormat = Literal["plain", "gsm8k", "list", "boxed"]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a data set lives and how its columns map onto `Problem`.

    `hub` is a Hugging Face dataset id (None: local files only); `split` its evaluation split
    and `train_split` its training split (None: none on the hub). `type_field` is copied to
    `meta["problem_type"]` (used by strategy retrieval). `meta_fields` are copied to `meta`;
    None copies every column not otherwise used. Field names may be dotted paths (module
    docstring); `alt` is another column layout of the same data set.
    """

    name: str
    hub: str | None
    config: str | None
    split: str
    problem_field: str
    answer_field: str
    id_field: str | None = None
    answer_format: AnswerFormat = "plain"
    type_field: str | None = None
    response_field: str | None = None
    meta_fields: tuple[str, ...] | None = ()
    train_split: str | None = None
    alt: BenchmarkSpec | None = None

    def layout_for(self, row: Any) -> BenchmarkSpec:
        """This spec, or `alt` when the row has alt's problem field and not this one's."""
        if self.alt is None or not isinstance(row, dict):
            return self
        mine, other = self.problem_field.split(".")[0], self.alt.problem_field.split(".")[0]
        return self.alt if mine not in row and other in row else self


# Minerva Math as the hub copy has it (`math-ai/minervamath`: question, answer)
_MINERVA_QA = BenchmarkSpec("minerva", "math-ai/minervamath", None, "test", "question", "answer")


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", None, "test", "problem", "answer",
                      id_field="unique_id", type_field="subject", meta_fields=("level",)),
        BenchmarkSpec("aime24", "HuggingFaceH4/aime_2024", None, "train", "problem", "answer", id_field="id"),
        BenchmarkSpec("aime25", "math-ai/aime25", None, "test", "problem", "answer", id_field="id"),
        BenchmarkSpec("amc23", "math-ai/amc23", None, "test", "question", "answer"),
        # Minerva Math's public file (problem, solution, type, idx; the answer is the solution's last
        # \\boxed{}); rows in the hub's question/answer layout are read with `_MINERVA_QA`
        BenchmarkSpec("minerva", "math-ai/minervamath", None, "test", "problem", "solution", id_field="idx",
                      answer_format="boxed", type_field="type", alt=_MINERVA_QA),
        BenchmarkSpec("olympiadbench", "Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train", "question",
                      "final_answer", id_field="id", answer_format="list", type_field="subfield"),
        BenchmarkSpec("gsm8k", "openai/gsm8k", "main", "test", "question", "answer", answer_format="gsm8k",
                      train_split="train"),
        # training set with strong responses: NuminaMath-1.5 problems with their reference solutions
        # (`solution`, written by a strong model), answers and problem types, as curated by OpenR1
        BenchmarkSpec("openr1_math", "open-r1/OpenR1-Math-220k", "default", "train", "problem", "answer",
                      id_field="uuid", type_field="problem_type", response_field="solution", train_split="train"),
        # MATH in its own layout (problem, solution, level, type; answer = last \\boxed{} of the
        # solution, which is the strong response): the shipped 4,500-problem file, or the hub copy
        BenchmarkSpec("math", "DigitalLearningGmbH/MATH-lighteval", "default", "test", "problem", "solution",
                      answer_format="boxed", type_field="type", response_field="solution",
                      meta_fields=("level", "idx"), train_split="train"),
        # LUFFY's training set (the paper's): OpenR1-Math-46k, DeepSeek-R1 responses up to 8192 tokens
        BenchmarkSpec("openr1_46k", "Elliott/Openr1-Math-46k-8192", None, "train", "prompt.role=user.content",
                      "reward_model.ground_truth", response_field="target.0.content", meta_fields=("data_source",),
                      train_split="train"),
    )
}

_QUALIFIER_RE = re.compile(r"\$?,?\s+where\s.*$", re.S)
REALCRITIC_FILES = ("gsm8k", "math", "minerva_math", "olympiadbench")
_REALCRITIC_TYPE_FIELDS = {"minerva_math": "orig_type", "olympiadbench": "orig_subfield"}


def realcritic_spec(name: str) -> BenchmarkSpec:
    """Column mapping of one RealCritic file (every other column goes to `meta`)."""
    if name not in REALCRITIC_FILES:
        raise ValueError(f"unknown RealCritic file {name!r}; expected one of {REALCRITIC_FILES}")
    return BenchmarkSpec(f"realcritic/{name}", None, None, "train", "problem", "answer", id_field="id",
                         type_field=_REALCRITIC_TYPE_FIELDS.get(name), response_field="response",
                         meta_fields=None)


def _list_item(text: str) -> str:
    """One OlympiadBench answer as plain LaTeX: every `$` and a final full stop dropped, and a
    trailing "where ..." qualification cut (`$f(x)=ax+b$, where $b$ is ...` -> `f(x)=ax+b`)."""
    return _QUALIFIER_RE.sub("", text).replace("$", "").strip().rstrip(".").strip()


def _answer_text(value: Any, fmt: AnswerFormat, where: str) -> str:
    """The reference answer as a string, following the spec's answer format."""
    if fmt == "boxed":
        answer, how = extract_answer(value) if isinstance(value, str) else (None, "none")
        if how not in ("boxed", "fbox") or not answer:
            raise ValueError(f"{where}: answer_format 'boxed' but the solution has no \\boxed{{}}: {str(value)[-80:]!r}")
        return answer
    if fmt == "gsm8k":
        if not isinstance(value, str) or "####" not in value:
            raise ValueError(f"{where}: GSM8K answer has no '####' line: {str(value)[:80]!r}")
        return value.rsplit("####", 1)[1].strip().replace(",", "")
    if fmt == "list" and isinstance(value, list):
        return ", ".join(_list_item(_answer_text(v, "plain", where)) for v in value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{where}: answer must be a string or number, got {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if not text:
        raise ValueError(f"{where}: empty answer")
    return text


_MISSING = object()


def _step(node: Any, part: str) -> Any:
    """One step of a dotted field path: a key, a list index, or `role=<r>` in a chat list."""
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list) and part.isdigit():
        return node[int(part)] if int(part) < len(node) else _MISSING
    if isinstance(node, list) and part.startswith("role="):
        return next((m for m in node if isinstance(m, dict) and m.get("role") == part[5:]), _MISSING)
    return _MISSING


def _field(row: dict, path: str, where: str) -> Any:
    """The value at `path` (a column name or a dotted path); a missing one raises naming it."""
    node = row
    for part in path.split("."):
        node = _step(node, part)
        if node is _MISSING:
            raise ValueError(f"{where}: missing field {path!r} (row has {sorted(row)})")
    return node


def _require_str(row: dict, key: str, where: str) -> str:
    value = _field(row, key, where)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {str(value)[:60]!r}")
    return value


def row_to_problem(row: dict, spec: BenchmarkSpec, index: int, where: str, split: str) -> Problem:
    """One data-set row as a `Problem`; `where` names the file/line for errors."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    name, spec = spec.name, spec.layout_for(row)
    problem = _require_str(row, spec.problem_field, where)
    answer = _answer_text(_field(row, spec.answer_field, where), spec.answer_format, where)
    response = _require_str(row, spec.response_field, where) if spec.response_field else None
    if spec.id_field and spec.id_field not in row:
        raise ValueError(f"{where}: missing id field {spec.id_field!r}")
    row_id = row[spec.id_field] if spec.id_field else index
    used = {spec.problem_field, spec.answer_field, spec.id_field, spec.response_field, spec.type_field}
    used |= {f.split(".")[0] for f in used if f}
    keys = [k for k in row if k not in used] if spec.meta_fields is None else spec.meta_fields
    meta = {k: row[k] for k in keys if k in row}
    if spec.type_field and row.get(spec.type_field):
        meta["problem_type"] = str(row[spec.type_field])
    return Problem(id=f"{name}/{row_id}", problem=problem, answer=answer, source=name,
                   split=split, answer_kind="math", strong_response=response, meta=meta)


def _read_jsonl_rows(path: Path) -> Iterable[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line; a bad line raises with file:line."""
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: malformed JSON ({e.msg})") from e


def _problems(rows: Iterable[tuple[Any, str, Any]], spec: BenchmarkSpec, split: str,
              limit: int | None) -> list[Problem]:
    """Convert (index, where, row) triples, stop at `limit`, and check that ids are unique."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for index, where, row in rows:
        if limit is not None and len(problems) >= limit:
            break
        p = row_to_problem(row, spec, index, where, split)
        if p.id in seen:
            raise ValueError(f"{where}: duplicate id {p.id!r} (first at {seen[p.id]})")
        seen[p.id] = where
        problems.append(p)
    return problems


def load_jsonl_problems(path: str | os.PathLike, spec: BenchmarkSpec, split: str = "test",
                        limit: int | None = None) -> list[Problem]:
    """Problems from a local JSONL file whose columns follow `spec`."""
    path = resolve(path)
    rows = ((i, f"{path}:{lineno}", row) for i, (lineno, row) in enumerate(_read_jsonl_rows(path)))
    return _problems(rows, spec, split, limit)


def load_benchmark(name: str, split: str = "test", limit: int | None = None,
                   local_path: str | os.PathLike | None = None) -> list[Problem]:
    """A registered benchmark (`BENCHMARKS`) as problems with `Problem.split == split`.

    From `local_path` (JSONL with the hub's columns) if given, else from the hub: `split`
    "test" reads the spec's evaluation split, "train" its `train_split`.
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    if split not in ("train", "test"):
        raise ValueError(f"load_benchmark({name!r}): split must be 'train' or 'test', got {split!r}")
    spec = BENCHMARKS[name]
    if local_path is not None:
        return load_jsonl_problems(local_path, spec, split, limit)
    hub_split = spec.split if split == "test" else spec.train_split
    if hub_split is None:
        raise ValueError(f"benchmark {name!r} ({spec.hub}) has no training split on the hub; "
                         f"give a local JSONL file (local_path) to train on it")
    from datasets import load_dataset

    if limit is not None and "[" not in hub_split:
        hub_split = f"{hub_split}[:{limit}]"  # read only the rows used
    log.info("loading %s from the hub: %s (config %s, split %s)", name, spec.hub, spec.config, hub_split)
    dataset = load_dataset(spec.hub, spec.config, split=hub_split)
    rows = ((i, f"{spec.hub}[{hub_split}] row {i}", row) for i, row in enumerate(dataset))
    return _problems(rows, spec, split, limit)


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def load_realcritic(name: str, correct_only: bool = True, models: Iterable[str] | None = None,
                    path: str | os.PathLike | None = None) -> list[Problem]:
    """Problems of one RealCritic file with the model response as `strong_response`.

    `correct_only` keeps the responses the source labels correct (`response_correct`);
    `models` keeps those of the named `response_model`s. Default path:
    `shared_data_dir()/realcritic/<name>.jsonl`.
    """
    spec = realcritic_spec(name)
    path = Path(path) if path is not None else shared_data_dir() / "realcritic" / f"{name}.jsonl"
    problems = load_jsonl_problems(path, spec, split="train")
    if models is not None:
        models = set(models)
        unknown = models - {p.meta.get("response_model") for p in problems}
        if unknown:
            raise ValueError(f"{path}: no responses from models {sorted(unknown)}")
        problems = [p for p in problems if p.meta.get("response_model") in models]
    if correct_only:
        problems = [p for p in problems if _is_true(p.meta.get("response_correct"))]
    return problems


def load_training_set(path: str | os.PathLike, name: str, problem_field: str = "problem",
                      answer_field: str = "answer", response_field: str = "response",
                      id_field: str | None = "id", type_field: str | None = "problem_type",
                      limit: int | None = None) -> list[Problem]:
    """Training problems with strong responses from any JSONL file (every other column to `meta`)."""
    spec = BenchmarkSpec(name, None, None, "train", problem_field, answer_field, id_field=id_field,
                         type_field=type_field, response_field=response_field, meta_fields=None)
    return load_jsonl_problems(path, spec, split="train", limit=limit)

