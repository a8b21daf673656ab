"""Notebooks are thin (no def/class, short cells), have one literal `parameters` cell,
start with a papermill description, and are committed clean (conventions.md 1, 2, 10)."""

import ast
import re

import nbformat
import pytest

from sgpo_lib.core.paths import NOTEBOOKS_DIR
from sgpo_lib.workflow.nbclean import is_clean

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
MAX_CELL_LINES = 12
EXPECTED = ["00_prepare", "01_extract_strategies", "02_paired_rollouts", "03_train_sgpo", "04_ablate", "05_scaling", "06_unknowns",
            "07_report"]


def test_the_numbered_sequence_exists():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert is_clean(nb), f"{path.name}: committed with outputs or extra metadata; run python -m sgpo_lib.workflow.nbclean notebooks/"
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    tree = ast.parse(params[0].source)
    names = [t.id for node in tree.body for t in node.targets]
    assert names == ["params_file", "overrides", "run_id"], f"{path.name}: parameters cell must set params_file, overrides, run_id"
    assert all(isinstance(node.value, (ast.Constant, ast.Dict)) for node in tree.body), "parameters are literals only"
    assert code[0].source.startswith("#papermill_description="), f"{path.name}: first code cell must start with #papermill_description="
    follower = code[code.index(params[0]) + 1].source
    assert "start_run(params_file, overrides, run_id)" in follower, f"{path.name}: the cell after parameters calls start_run"
    for i, cell in enumerate(code):
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), \
                f"{path.name} cell {i}: defines a function/class; move it to sgpo_lib"
            assert not isinstance(node, (ast.For, ast.While)), f"{path.name} cell {i}: loops belong in sgpo_lib"
        assert len(cell.source.splitlines()) <= MAX_CELL_LINES, f"{path.name} cell {i}: over {MAX_CELL_LINES} lines"


READ_SIDE = [p for p in NOTEBOOKS if p.stem[:2] in ("02", "03", "04", "05", "06", "07")]


@pytest.mark.parametrize("path", READ_SIDE, ids=[p.name for p in READ_SIDE])
def test_stage_notebooks_say_what_they_answer_and_how_to_read_each_result(path):
    """02-07 open with a markdown cell of a title and a few sentences on the question; every code
    cell after `start_run` that shows something is followed by a markdown line on how to read it;
    02-04 have a probe cell (the stage's core function on a hand-made input, `sgpo_lib.analysis.probes`)."""
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ") and len(re.findall(r"[.?!](\s|$)", first.source)) >= 2, \
        f"{path.name}: open with a title and 2-3 sentences on what the notebook answers"
    start = next(i for i, c in enumerate(nb.cells) if "start_run(" in c.source)
    for i, cell in enumerate(nb.cells[start + 1 :], start + 1):
        shows = cell.cell_type == "code" and isinstance(ast.parse(cell.source).body[-1], ast.Expr)
        hidden = "report-hide" in cell.metadata.get("tags", [])
        if shows and not hidden:
            after = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
            assert after is not None and after.cell_type == "markdown", \
                f"{path.name} cell {i} ({cell.source.splitlines()[-1]!r}): follow it with a markdown line on how to read it"
    if path.stem[:2] in ("02", "03", "04"):
        assert any(c.cell_type == "code" and "probes." in c.source for c in nb.cells), f"{path.name}: needs a probe cell"


STAGE_OF = {"00_prepare": "prepare", "01_extract_strategies": "extract", "02_paired_rollouts": "rollouts",
            "03_train_sgpo": "train_main", "04_ablate": "ablate", "05_scaling": "scaling", "06_unknowns": "study",
            "07_report": None}


def computing_calls(source: str) -> list[str]:
    """The `stages.f(...)` and `assets.f(...)` calls of a cell (the modules that compute), as `module.f`."""
    return [f"{node.func.value.id}.{node.func.attr}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("stages", "assets")]


def test_computing_calls_are_found():
    assert computing_calls("x = stages.rollouts(cfg, d)\nassets.problems(cfg)['train']\nplots.f(x)") == [
        "stages.rollouts", "assets.problems"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_computes_through_one_stage_function_the_cli_shares(path):
    """Each of 00-06 computes with exactly one call, its stage function (the one `python -m sgpo_lib`
    runs for it); everything else it shows comes from readers. 07 only reads."""
    from sgpo_lib.workflow import stages

    nb = nbformat.read(path, as_version=4)
    calls = [c for cell in nb.cells if cell.cell_type == "code" for c in computing_calls(cell.source)]
    expected = STAGE_OF[path.stem]
    assert calls == ([f"stages.{expected}"] if expected else []), f"{path.name}: computes through {calls}"
    if expected:
        assert getattr(stages, expected) in stages.STAGES.values(), f"{path.name}: the CLI does not run stages.{expected}"
