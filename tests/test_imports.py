"""The package's layers: each package of `sgpo_lib` imports only the packages below it, three
rules of the architecture hold by name, loading the config loads no torch, and no module is over
420 lines.

The import graph counts every `from . import x` / `from .x import y` / `import sgpo_lib.x`, at
module level or inside functions (a name imported from a package counts as its submodule when
there is one).
"""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sgpo_lib"
MAX_LINES = 420
# Bottom to top: a package may import the packages before it in this list, never one after it.
LAYERS = ["core", "grading", "data", "strategies", "model", "toy", "config", "method", "train", "analysis", "workflow"]
# Rules of the architecture, by name, on top of the order (package -> packages it must not import).
FORBIDDEN = {"core": set(LAYERS) - {"core"}, "method": {"config", "train", "workflow"},
             "analysis": {"train", "workflow"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The sgpo_lib modules that `path` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = sorted(PKG.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def package_of(module: str) -> str:
    """`sgpo_lib.method.losses` -> `method`; the top-level `sgpo_lib` and every `__main__` (a command
    line, which no module imports) -> ''."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return ""
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()) else ""


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that go up the layers or break a FORBIDDEN rule, as `a -> b` lines."""
    rank = {p: i for i, p in enumerate(LAYERS)}
    bad = []
    for module, deps in sorted(graph.items()):
        src = package_of(module)
        if not src:  # sgpo_lib/__init__ and the __main__ modules sit on top
            continue
        for dep in sorted(deps):
            dst = package_of(dep)
            if dst and dst != src and (rank[dst] > rank[src] or dst in FORBIDDEN.get(src, ())):
                bad.append(f"{module} -> {dep}")
    return bad


def test_layer_violations_are_found():
    graph = {"sgpo_lib.core.a": {"sgpo_lib.model.b"}, "sgpo_lib.model.b": {"sgpo_lib.core.a"},
             "sgpo_lib.method.c": {"sgpo_lib.config.d"}, "sgpo_lib.workflow.e": {"sgpo_lib.analysis.f"}}
    assert layer_violations(graph) == ["sgpo_lib.core.a -> sgpo_lib.model.b", "sgpo_lib.method.c -> sgpo_lib.config.d"]


def test_every_package_is_a_known_layer():
    packages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS), f"packages {sorted(packages)} vs layers {LAYERS}"
    assert not [p.name for p in PKG.glob("*.py") if p.name not in ("__init__.py", "__main__.py")], \
        "modules belong in a layer package"


def test_each_package_imports_only_the_layers_below_it():
    graph = import_graph()
    assert "sgpo_lib.core.fileio" in graph["sgpo_lib.analysis.results"]  # the graph is read at all
    assert not layer_violations(graph), "imports against the layers:\n" + "\n".join(layer_violations(graph))


def test_loading_the_config_and_the_results_loads_no_torch():
    code = ("import sys, sgpo_lib.config.run, sgpo_lib.analysis.results; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PKG.parent, check=True).stdout.strip()
    assert out == "[]", f"loading the config and the results imported {out}"


def test_the_reading_notebooks_load_no_model_libraries():
    """Notebooks 04-07 on finished runs only read: their imports and a sweep with nothing left to train
    load no transformers, peft, accelerate or vLLM (about 4 s of each notebook's start on 2 cores)."""
    code = ("import sys, sgpo_lib; from sgpo_lib.workflow import assets, stages; "
            "from sgpo_lib.analysis import paper, probes, report, report_summary, results; import bench.summary; "
            "assert assets.prepare_warmups('params/toy-smoke.yaml', []) == []; "
            "print(sorted(m for m in ('transformers', 'peft', 'accelerate', 'vllm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PKG.parent, check=True).stdout.strip()
    assert out == "[]", f"the reading notebooks' imports loaded {out}"


def test_the_grading_package_init_stays_empty():
    # the grading worker sandboxes itself after its own imports: nothing may load before it
    assert (PKG / "grading" / "__init__.py").read_text().strip() == ""


def test_no_module_is_over_the_line_limit():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
