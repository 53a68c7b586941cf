"""The package's shape (docs/ARCHITECTURE.md): no import circle anywhere in stylegan2_tf (imports
inside functions included), the training package in files of one job, and one place for each
training option."""

import ast

from conftest import ROOT

PACKAGE = ROOT / "stylegan2_tf"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name, path, modules):
    """The package's modules that `name` imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in modules else base)
    return {m for m in out if m in modules and m != name}


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_import_circle_in_the_package():
    graph = _graph()
    assert graph["stylegan2_tf.training.options"] >= {"stylegan2_tf.training.phases"}  # the walk sees imports
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_training_files_and_classes_stay_small():
    for path in (PACKAGE / "training").glob("*.py"):
        lines = path.read_text().splitlines()
        assert len(lines) <= 350, f"{path.name}: {len(lines)} lines"
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                assert size <= 250, f"{path.name}: class {node.name} is {size} lines"


def test_every_flag_of_run_training_is_an_option_field():
    """run_training.py defines its option flags from TrainingOptions' fields alone."""
    from stylegan2_tf.training.options import OPTION_FIELDS, RESUME_INVARIANTS, WORKER_LOCAL
    source = (ROOT / "run_training.py").read_text()
    defined = [node for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Call) and getattr(node.func, "attr", "").startswith("DEFINE_")
               and node.args and isinstance(node.args[0], ast.Constant)]
    # Only the command's own flags are written out; the options' flags come from the fields.
    assert sorted(n.args[0].value for n in defined) == ["resume", "task-index", "worker-hosts"]
    flags = {f.metadata["flag"]: name for name, f in OPTION_FIELDS.items() if f.metadata["flag"]}
    assert flags["gamma"] == "r1_gamma" and flags["num-gpus"] == "num_gpus"
    assert {"data_dir", "result_dir", "embed_module_src", "collective_timeout", "resume_pkl"} == set(WORKER_LOCAL)
    assert {"config", "batch", "seed", "fp16_res", "dataset"} <= set(RESUME_INVARIANTS)
    assert not set(WORKER_LOCAL) & set(RESUME_INVARIANTS)
