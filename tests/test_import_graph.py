"""The package's import graph: no cycles between modules, no private names across modules.

Every ``import`` statement counts, including those inside functions: a lazy import that closes
a cycle is still a cycle (it only moves the failure to run time). An edge goes to the module
named, or to the submodule when ``from package import submodule`` names one; importing a
submodule does not count as importing its package's ``__init__`` (that is how packages work).
"""
from __future__ import annotations

import ast
from pathlib import Path

import stemforge

ROOT = Path(stemforge.__file__).resolve().parent
PKG = "stemforge"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(mod: str, is_pkg: bool, level: int, name: str | None) -> str:
    """Absolute module named by ``from <level dots><name> import ...`` in module ``mod``."""
    if level == 0:
        return name or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imports(mods: dict[str, Path]):
    """``{module: [(target module, imported names, line)]}`` within the package."""
    out: dict[str, list] = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        edges = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == PKG and a.name in mods:
                        edges.append((a.name, [], node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node.level, node.module)
                if target.split(".")[0] != PKG:
                    continue
                names = [a.name for a in node.names]
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
                plain = [n for n in names if f"{target}.{n}" not in mods]
                for s in subs:
                    edges.append((s, [], node.lineno))
                if plain and target in mods:
                    edges.append((target, plain, node.lineno))
        out[mod] = edges
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
    return comps


def test_no_import_cycles_between_modules():
    mods = _modules()
    edges = _imports(mods)
    graph = {m: {t for t, _, _ in e if t != m} for m, e in edges.items()}
    cycles = _cycles(graph)
    detail = []
    for comp in cycles:
        inside = set(comp)
        detail.append(" <-> ".join(comp) + ": " + "; ".join(
            f"{m}:{line} imports {t}" for m in comp for t, _, line in edges[m] if t in inside))
    assert not cycles, "import cycles:\n" + "\n".join(detail)


def test_no_private_names_imported_across_modules():
    mods = _modules()
    bad = [f"{m}:{line} imports {n} from {t}"
           for m, e in _imports(mods).items() for t, names, line in e
           for n in names if n.startswith("_") and not n.startswith("__") and t != m]
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)


def test_the_graph_is_read():
    """The checks above see the package's real imports (they cannot pass on an empty graph)."""
    edges = _imports(_modules())
    assert any(t == "stemforge.mixing.reference" for t, _, _ in edges["stemforge.mixing.render"])
    assert any(t == "stemforge.mixing.render" and "_readonly" not in n
               for t, n, _ in edges["stemforge.mixing.mixer"])
    assert sum(len(e) for e in edges.values()) > 200
    cyc = _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cyc == [["a", "b", "c"]]
