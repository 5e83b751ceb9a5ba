"""The library's layers (lsr_utils.LAYERS): a module imports only from its own layer and those below, and no
modules import each other in a cycle. Every import counts, a function's deferred ones included."""
import ast
from pathlib import Path

import lsr_utils

ROOT = Path(lsr_utils.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path) -> set:
    """The lsr_utils modules ``path`` imports (``from . import x`` counted as the module x where it is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lsr_utils")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("lsr_utils"):
                target = node.module
            else:
                continue
            known = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found |= set(known) if known else {target}
    return {m for m in found if m in MODULES}


GRAPH = {m: imports(p) for m, p in MODULES.items()}


def layer(module: str) -> int:
    """The index of the module's layer. The package's own file (it defines the version and the layers and imports
    nothing) stands below them all; ``python -m lsr_utils`` with the applications."""
    if module == "lsr_utils":
        return -1
    parts = module.split(".")
    return lsr_utils.LAYERS.index(parts[1] if parts[1] in lsr_utils.LAYERS else "apps")


def upward(graph: dict) -> list[str]:
    return sorted(f"{m} ({lsr_utils.LAYERS[layer(m)]}) imports {t} ({lsr_utils.LAYERS[layer(t)]})"
                  for m, targets in graph.items() for t in targets if layer(t) > layer(m))


def cycles(graph: dict) -> list[list[str]]:
    state, stack, found = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_every_module_lives_in_a_layer():
    outside = sorted(m for m in MODULES if m not in ("lsr_utils", "lsr_utils.__main__")
                     and m.split(".")[1] not in lsr_utils.LAYERS)
    assert not outside, f"modules outside the layer packages: {outside}"
    assert all((ROOT / name / "__init__.py").is_file() for name in lsr_utils.LAYERS)


def test_no_module_imports_from_a_higher_layer():
    bad = upward(GRAPH)
    assert not bad, "imports from a higher layer:\n  " + "\n  ".join(bad)


def test_no_import_cycle():
    found = cycles(GRAPH)
    assert not found, "import cycles:\n  " + "\n  ".join(" -> ".join(c) for c in found)


def test_the_checks_name_an_upward_import_and_a_cycle():
    """The checks themselves: storage importing the training loop is named, and so is the cycle it would close
    (the loop imports storage)."""
    graph = {m: set(t) for m, t in GRAPH.items()}
    graph["lsr_utils.storage.runs"].add("lsr_utils.training.loop")
    assert upward(graph) == ["lsr_utils.storage.runs (storage) imports lsr_utils.training.loop (training)"]
    assert any(c[0] == c[-1] and "lsr_utils.training.loop" in c and "lsr_utils.storage.runs" in c
               for c in cycles(graph))
