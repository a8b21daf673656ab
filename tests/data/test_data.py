"""Benchmark registry and loaders: local JSONL with each hub column mapping, the hub path
(with `datasets.load_dataset` replaced, nothing downloaded), malformed rows, and the real
RealCritic files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sgpo_lib.core.paths import shared_data_dir
from sgpo_lib.data import benchmarks
from sgpo_lib.data.benchmarks import BENCHMARKS, REALCRITIC_FILES, load_benchmark, load_realcritic, load_training_set

REALCRITIC = shared_data_dir() / "realcritic"
# rows and rows labelled correct, from ../shared/data/README.md
REALCRITIC_COUNTS = {"gsm8k": (273, 136), "math": (268, 134), "minerva_math": (261, 130), "olympiadbench": (267, 133)}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _hub_row(spec, i: int) -> dict:
    """A row with the spec's columns, in the format its hub data set uses (flat columns only)."""
    answer = {"gsm8k": f"work <<2*3=6>>\n#### 1,00{i}", "list": [f"${i}+1$"],
              "boxed": f"so it is $\\boxed{{{i}}}$."}.get(spec.answer_format, f"{i}")
    row = {spec.problem_field: f"Problem {i}: what is {i}+1?", spec.answer_field: answer}
    if spec.id_field:
        row[spec.id_field] = f"r{i}"
    if spec.type_field:
        row[spec.type_field] = "Algebra"
    if spec.response_field and spec.response_field != spec.answer_field:
        row[spec.response_field] = f"A strong solution: {i}+1 = {i + 1}."
    row.update({k: i for k in spec.meta_fields or ()})
    return row


def _fake_hub(monkeypatch, rows: list[dict]) -> list[tuple]:
    """Replace `datasets.load_dataset` (nothing downloaded): it returns `rows`; the calls are recorded."""
    import datasets

    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, config, split: calls.append((repo, config, split)) or rows)
    return calls


FLAT = sorted(n for n, s in BENCHMARKS.items() if "." not in s.problem_field + s.answer_field + str(s.response_field))


@pytest.mark.parametrize("name", FLAT)
def test_every_benchmark_loads_from_local_jsonl(tmp_path, name):
    spec = BENCHMARKS[name]
    path = _write_jsonl(tmp_path / f"{name}.jsonl", [_hub_row(spec, i) for i in range(3)])
    problems = load_benchmark(name, local_path=path)
    assert [p.split for p in problems] == ["test"] * 3 and {p.source for p in problems} == {name}
    assert problems[1].problem == "Problem 1: what is 1+1?"
    assert problems[1].id == (f"{name}/r1" if spec.id_field else f"{name}/1")
    expected = {"gsm8k": "1001", "list": "1+1"}.get(spec.answer_format, "1")
    assert problems[1].answer == expected
    if spec.type_field:
        assert problems[1].meta["problem_type"] == "Algebra"
    if spec.response_field:
        want = "so it is $\\boxed{1}$." if spec.answer_format == "boxed" else "A strong solution: 1+1 = 2."
        assert problems[1].strong_response == want
    assert load_benchmark(name, split="train", local_path=path, limit=2)[0].split == "train"
    assert len(load_benchmark(name, local_path=path, limit=2)) == 2


def test_hub_path_uses_the_registered_repo_and_split(monkeypatch):
    calls = _fake_hub(monkeypatch, [_hub_row(BENCHMARKS["gsm8k"], i) for i in range(4)])
    test = load_benchmark("gsm8k", limit=3)
    train = load_benchmark("gsm8k", split="train")
    assert calls == [("openai/gsm8k", "main", "test[:3]"), ("openai/gsm8k", "main", "train")]
    assert len(test) == 3 and len(train) == 4 and train[0].split == "train"
    with pytest.raises(ValueError, match="no training split"):
        load_benchmark("aime24", split="train")
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("nope")


def test_answer_formats():
    where = "f.jsonl:1"
    assert benchmarks._answer_text(27.0, "plain", where) == "27"
    assert benchmarks._answer_text(2.5, "plain", where) == "2.5"
    assert benchmarks._answer_text(["$3$", "$-3$"], "list", where) == "3, -3"
    assert benchmarks._answer_text(["$69$,$84$"], "list", where) == "69,84"
    assert benchmarks._answer_text(["$(-\\infty, 0) \\cup\\{1\\}$."], "list", where) == "(-\\infty, 0) \\cup\\{1\\}"
    assert benchmarks._answer_text(["$f(x)=a x+b$, where $b$ is an integer"], "list", where) == "f(x)=a x+b"
    assert benchmarks._answer_text("We get $\\boxed{\\frac{1}{2}}$,\nnot \\boxed{3}?\nNo: \\boxed{4}.", "boxed", where) == "4"
    # several boxes on the final line are one answer (a set), as the grader reads a response
    assert benchmarks._answer_text("So $x = \\boxed{2}$ or $x = \\boxed{5}$.", "boxed", where) == "2, 5"
    with pytest.raises(ValueError, match="no .boxed"):
        benchmarks._answer_text("The answer is 4.", "boxed", where)
    with pytest.raises(ValueError, match="####"):
        benchmarks._answer_text("no marker", "gsm8k", where)


@pytest.mark.parametrize("row, message", [
    ({"problem": "p"}, "missing field 'answer'"),
    ({"answer": "1"}, "missing field 'problem'"),
    ({"problem": "", "answer": "1"}, "non-empty string"),
    ({"problem": "p", "answer": None}, "string or number"),
    ({"problem": "p", "answer": "  "}, "empty answer"),
])
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"problem": "ok", "answer": "1"}, row])
    spec = benchmarks.BenchmarkSpec("t", None, None, "test", "problem", "answer")
    with pytest.raises(ValueError, match=message) as err:
        benchmarks.load_jsonl_problems(path, spec)
    assert f"{path}:2" in str(err.value)


def test_malformed_json_and_duplicate_ids(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "p", "answer": "1", "id": 1}\n\n{"problem": oops\n')
    with pytest.raises(ValueError, match=f"{bad}:3: malformed JSON"):
        load_benchmark("aime24", local_path=bad)
    dup = _write_jsonl(tmp_path / "dup.jsonl", [{"problem": "p", "answer": "1", "id": 7}] * 2)
    with pytest.raises(ValueError, match="duplicate id 'aime24/7'"):
        load_benchmark("aime24", local_path=dup)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_benchmark("aime24", local_path=tmp_path / "missing.jsonl")


def test_training_set_with_strong_responses(tmp_path):
    rows = [{"id": "a", "problem": "1+1?", "answer": "2", "response": "1+1 = \\boxed{2}", "problem_type": "sum",
             "teacher": "big"},
            {"id": "b", "problem": "2+2?", "answer": "4", "response": ""}]
    path = _write_jsonl(tmp_path / "train.jsonl", rows[:1])
    [p] = load_training_set(path, name="mine")
    assert (p.id, p.split, p.strong_response) == ("mine/a", "train", "1+1 = \\boxed{2}")
    assert p.meta == {"teacher": "big", "problem_type": "sum"}
    with pytest.raises(ValueError, match="'response' must be a non-empty string"):
        load_training_set(_write_jsonl(tmp_path / "t2.jsonl", rows), name="mine")


needs_realcritic = pytest.mark.skipif(not REALCRITIC.exists(), reason="../shared/data/realcritic absent")


@needs_realcritic
@pytest.mark.parametrize("name", REALCRITIC_FILES)
def test_realcritic_every_row_loads(name):
    rows, correct = REALCRITIC_COUNTS[name]
    everything = load_realcritic(name, correct_only=False)
    assert len(everything) == rows and len({p.id for p in everything}) == rows
    assert all(p.strong_response and p.answer and p.source == f"realcritic/{name}" for p in everything)
    assert everything[0].id == f"realcritic/{name}/{name}-0"
    assert len(load_realcritic(name)) == correct


@needs_realcritic
def test_realcritic_model_filter():
    problems = load_realcritic("minerva_math", correct_only=False, models=["Qwen2.5-Math-72B-Instruct"])
    assert len(problems) == 119
    assert Counter(p.meta["response_model"] for p in problems) == {"Qwen2.5-Math-72B-Instruct": 119}
    assert problems[0].meta["problem_type"]  # orig_type becomes the problem type
    with pytest.raises(ValueError, match="no responses from models"):
        load_realcritic("math", models=["GPT-7"])


def test_hub_limit_reads_a_slice(monkeypatch):
    calls = _fake_hub(monkeypatch, [_hub_row(BENCHMARKS["math"], i) for i in range(3)])
    assert len(load_benchmark("math", split="train", limit=3)) == 3
    assert calls == [("DigitalLearningGmbH/MATH-lighteval", "default", "train[:3]")]


def _luffy_row(i: int) -> dict:
    """A row in the layout of LUFFY's Elliott/Openr1-Math-46k-8192 (as its training scripts read it)."""
    return {"data_source": "openr1", "prompt": [{"role": "system", "content": "Think, then answer."},
                                                {"role": "user", "content": f"Find {i}+1."}],
            "target": [{"role": "assistant", "content": f"<think>{i} plus one</think>\nSo $\\boxed{{{i + 1}}}$."}],
            "reward_model": {"ground_truth": str(i + 1), "style": "rule"}, "ability": "math"}


def test_luffy_openr1_46k_layout(tmp_path, monkeypatch):
    path = _write_jsonl(tmp_path / "openr1_46k.jsonl", [_luffy_row(i) for i in range(3)])
    problems = load_benchmark("openr1_46k", split="train", local_path=path)
    p = problems[2]
    assert (p.id, p.problem, p.answer, p.split) == ("openr1_46k/2", "Find 2+1.", "3", "train")
    assert p.strong_response.startswith("<think>2 plus one</think>") and p.meta == {"data_source": "openr1"}
    bad = _luffy_row(0)
    del bad["reward_model"]["ground_truth"]
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing field 'reward_model.ground_truth'"):
        load_benchmark("openr1_46k", local_path=_write_jsonl(tmp_path / "bad.jsonl", [bad]))
    calls = _fake_hub(monkeypatch, [_luffy_row(0)])
    assert load_benchmark("openr1_46k", split="train", limit=1)[0].answer == "1"
    assert calls == [("Elliott/Openr1-Math-46k-8192", None, "train[:1]")]


def test_local_files_map_a_name_to_a_file(tmp_path, monkeypatch):
    from sgpo_lib.config.run import ConfigError, DataConfig, ModelConfig, RunConfig
    from sgpo_lib.workflow import assets

    _write_jsonl(tmp_path / "mine.jsonl", [_hub_row(BENCHMARKS["math"], i) for i in range(2)])
    _write_jsonl(tmp_path / "aime24.jsonl", [_hub_row(BENCHMARKS["aime24"], i) for i in range(3)])
    data_cfg = DataConfig(source="jsonl", train_sets=("math",), eval_sets=("aime24",), local_dir=str(tmp_path),
                          local_files=("math=mine.jsonl",))
    by_split = assets.problems(RunConfig(data=data_cfg, model=ModelConfig(source="tiny")))
    assert (len(by_split["train"]), len(by_split["test"])) == (2, 3)
    for bad in ("gsm8k=x.jsonl", "math"):
        with pytest.raises(ConfigError, match="data.local_files"):
            DataConfig(source="jsonl", train_sets=("math",), eval_sets=("aime24",), local_dir="d", local_files=(bad,))


BENCH_DIR = shared_data_dir() / "benchmarks"
needs_benchmarks = pytest.mark.skipif(not BENCH_DIR.exists(), reason="../shared/data/benchmarks absent")
# file -> (registered name, rows, field holding the reference solution text or None); from its README
SHIPPED = {"math500": ("math500", 500, "solution"), "aime24": ("aime24", 30, None), "aime25": ("aime25", 30, None),
           "amc23": ("amc23", 40, None), "minerva": ("minerva", 272, "solution"),
           "minerva_question_answer": ("minerva", 272, None), "olympiadbench": ("olympiadbench", 675, None),
           "gsm8k": ("gsm8k", 1319, "answer"), "math_train4500": ("math", 4500, "solution")}


@pytest.fixture(scope="module")
def grader():
    from sgpo_lib.grading.grader import Grader

    with Grader() as g:
        yield g


@needs_benchmarks
@pytest.mark.parametrize("stem", sorted(SHIPPED))
def test_shipped_benchmark_grades_its_own_reference(stem, grader):
    """Every shipped file loads as it is; its reference answer, boxed, and its reference solution
    text (where the file has one) both grade correct: 100%."""
    name, rows, solution_field = SHIPPED[stem]
    path = BENCH_DIR / f"{stem}.jsonl"
    problems = load_benchmark(name, split="train" if name == "math" else "test", local_path=path)
    assert len(problems) == rows and len({p.id for p in problems}) == rows
    grades = grader.grade_many([f"\\boxed{{{p.answer}}}" for p in problems], problems)
    assert [(p.id, g.reason) for p, g in zip(problems, grades) if g.reward != 1.0] == []
    if solution_field:
        texts = [json.loads(line)[solution_field] for line in path.read_text().splitlines() if line.strip()]
        grades = grader.grade_many(texts, problems)
        assert [(p.id, g.reason, g.pred) for p, g in zip(problems, grades) if g.reward != 1.0] == []


@needs_benchmarks
def test_minerva_layouts_agree_and_olympiad_golds_parse():
    """The public Minerva file and the hub's question/answer copy give the same problems; every
    OlympiadBench gold (inner `$`, prose qualifications included) is parsed by math-verify itself."""
    from math_verify import parse

    public = load_benchmark("minerva", local_path=BENCH_DIR / "minerva.jsonl")
    hub = load_benchmark("minerva", local_path=BENCH_DIR / "minerva_question_answer.jsonl")
    assert [(p.id, p.problem, p.answer) for p in public] == [(p.id, p.problem, p.answer) for p in hub]
    assert public[0].meta["problem_type"] and public[0].answer == "1.6"
    olympiad = load_benchmark("olympiadbench", local_path=BENCH_DIR / "olympiadbench.jsonl")
    assert [p.id for p in olympiad if not parse(f"\\boxed{{{p.answer}}}")] == []
    assert not any("$" in p.answer for p in olympiad)
