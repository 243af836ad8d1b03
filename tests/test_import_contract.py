"""The import contract: stages import only lower stages, and no module imports itself back.

Every ``import`` statement counts, the ones inside functions too (a lazy import is still a
dependency). Run this file alone to print the graph's violations:
``python tests/test_import_contract.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lightcompress"

# Lowest first. A module may import modules of its own stage and of lower ones, never higher.
# The base modules (errors, defaults, validation, private Keras, log quieting) import nothing above.
STAGES = [
    ("base", {"errors", "defaults", "validation", "_keras_private", "_quiet", "_version", "_interrupts", "_user_code",
              "_deferred"}),
    ("linalg", {"linalg"}),
    ("layers", {"layers"}),
    ("io", {"io"}),
    ("data", {"data"}),
    ("factorization", {"factorization"}),
    ("training", {"training"}),
    ("planning", {"planning"}),
    ("deploy", {"deploy"}),
    ("report", {"report"}),
    ("flows", {"flows", "baseline"}),
    ("cli", {"cli"}),
    ("api", {"", "__main__", "_registration", "api"}),  # _registration imports layers by name, once Keras loads  # lightcompress/__init__.py: the Python verbs
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known) -> set[str]:
    """Modules of the package that ``name`` imports, anywhere in its file."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if name else []
    package = here if is_package else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                base = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "lightcompress" or node.module.startswith("lightcompress.")):
                base = node.module[len("lightcompress"):].lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                out.add(sub if sub in known else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lightcompress."):
                    out.add(alias.name[len("lightcompress."):])
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "deferred" and node.args
              and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("lightcompress.")):
            out.add(node.args[0].value[len("lightcompress."):])  # a deferred module is a dependency too
    out.discard(name)
    return {m for m in out if m in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def stage_of(module: str) -> int:
    top = module.split(".")[0] if module else ""
    for rank, (_, members) in enumerate(STAGES):
        if top in members:
            return rank
    raise AssertionError(f"module lightcompress.{module} belongs to no stage; add its package to STAGES")


def _is_package_init(module: str) -> bool:
    return modules()[module].name == "__init__.py" if module in modules() else False


def upward_imports(g) -> list[str]:
    bad = []
    for module, targets in sorted(g.items()):
        for target in sorted(targets):
            if stage_of(target) > stage_of(module):
                bad.append(f"{module or 'lightcompress'} ({STAGES[stage_of(module)][0]}) imports "
                           f"{target} ({STAGES[stage_of(target)][0]})")
    return bad


def cycles(g) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(g):
    """A package's ``__init__`` re-exporting its modules is not a dependency of those modules on
    the package: drop edges into an ``__init__`` from modules inside that same package."""
    inits = {m for m, p in modules().items() if p.name == "__init__.py"}
    return {m: {t for t in ts if not (t in inits and m.startswith(t + ".") if t else False)} for m, ts in g.items()}


def test_every_module_belongs_to_a_stage():
    for module in modules():
        stage_of(module)


def test_no_stage_imports_a_higher_one():
    bad = upward_imports(graph())
    assert not bad, "imports against the flow of data:\n" + "\n".join(bad)


def test_no_import_cycle_even_inside_functions():
    found = cycles(_without_package_inits(graph()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The contract must be able to fail: a lazy upward import and a lazy cycle are both found."""
    g = {"linalg": {"flows.files"}, "flows.files": {"linalg"}}
    assert upward_imports(g) == ["linalg (linalg) imports flows.files (flows)"]
    assert cycles(g) == [["flows.files", "linalg"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from .flows import files\n")
    assert imports("linalg", source, {"flows.files", "flows", "linalg"}) == {"flows.files"}


if __name__ == "__main__":
    g = graph()
    print("\n".join(upward_imports(g)) or "no upward imports")
    print("\n".join(" <-> ".join(c) for c in cycles(_without_package_inits(g))) or "no cycles")


# Imports inside functions stand only where the start-up needs them; every other module imports at
# its top, and defers what may be absent (or must not start yet) through ``lightcompress._deferred``.
BOUNDARY = {
    "_quiet.py": "Keras's first import, while TensorFlow's start-up lines are held back",
    "cli/__init__.py": "the command's own start-up, inside its error boundary (a broken install is one line)",
    "baseline/worker.py": "a child process: tf_keras and tfmot after TF_USE_LEGACY_KERAS is set",
    "io/tf_keras_weights.py": "a child process: tf_keras after TF_USE_LEGACY_KERAS is set",
}


def imports_inside_functions(path: Path) -> list[str]:
    found = []

    def visit(node, inside):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and inside:
                found.append(f"{path.name}:{child.lineno}: {ast.unparse(child)}")
            visit(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return found


def test_imports_sit_at_the_top_of_their_module():
    offenders = [line for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).as_posix() not in BOUNDARY
                 for line in imports_inside_functions(path)]
    assert not offenders, "import at the top, or defer through lightcompress._deferred:\n" + "\n".join(offenders)
    assert all((PACKAGE / name).exists() for name in BOUNDARY)


def test_the_top_import_check_sees_an_import_in_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\n\ndef f():\n    import json\n    return json\n")
    assert imports_inside_functions(module) == ["m.py:5: import json"]
