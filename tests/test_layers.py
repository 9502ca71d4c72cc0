"""The layout is the architecture: read every import of the package and hold it to the layers.

Stages come in data-flow order; a module may import its own stage, the
foundation and any earlier stage, never a later one. Imports inside functions
count too (they are still dependencies). No two modules may import each other
(directly or round a longer loop), and no module imports another module's
``_private`` name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "inhouse"

# lowest first; names are the first part of the module path under inhouse/
LAYERS: list[set[str]] = [
    {"errors", "netguard", "progress", "version", "cache"},
    {"workspace"},
    {"data", "registry"},
    {"models"},
    {"topics", "classifiers"},
    {"training"},
    {"analysis", "exchange"},
    {"pipeline"},
    {"service"},
    {"server"},
    {"ui"},
    {"demo"},
    {"cli"},
    {"__init__", "__main__"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def stage(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def absolute(module: str, package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def read_imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file."""
    me = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("inhouse")]
        elif isinstance(node, ast.ImportFrom):
            target = absolute(me, is_package(path), node.level, node.module)
            if target.split(".")[0] != "inhouse":
                continue
            names = [a.name for a in node.names]
            modules = {f"{target}.{n}" for n in names if (PKG.parent / f"{target}.{n}".replace(".", "/")).exists()
                       or (PKG.parent / (f"{target}.{n}".replace(".", "/") + ".py")).exists()}
            out.append((target, [n for n in names if f"{target}.{n}" not in modules], node.lineno))
            out += [(m, [], node.lineno) for m in sorted(modules)]
    return out


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}
IMPORTS = {m: read_imports(p) for m, p in MODULES.items()}


def test_every_stage_is_placed_in_a_layer():
    unknown = sorted({stage(m) for m in MODULES} - set(LEVEL))
    assert not unknown, f"place these in LAYERS (tests/test_layers.py): {unknown}"


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for m, imports in IMPORTS.items():
        for target, _, line in imports:
            if target == "inhouse":
                continue
            if LEVEL[stage(target)] > LEVEL[stage(m)]:
                bad.append(f"{MODULES[m].relative_to(PKG.parent)}:{line} {stage(m)} imports {target}")
    assert not bad, "a lower layer imports a higher one:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports if t in MODULES and t != m} for m, imports in IMPORTS.items()}
    # a package's __init__ importing its own modules is how packages work, not a cycle
    graph = {m: {t for t in ts if not (is_package(MODULES[m]) and t.startswith(m + "."))} for m, ts in graph.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def private_uses(path: Path) -> list[str]:
    """``from X import _name`` and ``module._name`` where X / module is another inhouse module."""
    me = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, bound = [], set()
    for target, names, line in read_imports(path):
        if target != me:
            found += [f"{line}: from {target} import {n}" for n in names
                      if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = absolute(me, is_package(path), node.level, node.module)
            for a in node.names:
                full = f"{target}.{a.name}"
                if full in MODULES and full != me:
                    bound.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("inhouse") and a.asname:
                    bound.add(a.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    bad = [f"{MODULES[m].relative_to(PKG.parent)}:{u}" for m in MODULES for u in private_uses(MODULES[m])]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_under_800_lines(module):
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= 800, f"{MODULES[module].relative_to(PKG.parent)} has {lines} lines: split it by what it does"


METRIC_FUNCTIONS = {"f1_score", "precision_recall_fscore_support", "accuracy_score", "precision_score",
                    "recall_score", "classification_report"}


def test_scores_are_computed_in_one_module():
    """Accuracy and F1 come from inhouse/training/metrics.py only, so they mean one thing everywhere."""
    bad = []
    for m, path in MODULES.items():
        if m == "inhouse.training.metrics":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn.metrics"):
                bad += [f"{path.relative_to(PKG.parent)}:{node.lineno} {a.name}" for a in node.names
                        if a.name in METRIC_FUNCTIONS]
            if isinstance(node, ast.FunctionDef) and node.name in ("_class_metrics", "_summary"):
                bad.append(f"{path.relative_to(PKG.parent)}:{node.lineno} hand-written metrics {node.name}")
    assert not bad, "compute scores with inhouse.training.metrics instead:\n" + "\n".join(bad)


# ------------------------------------------------------------------ doors ----
# The doors (cli/, server/) are thin: they reach the library through its public API (the names in
# inhouse.__all__, imported from ``inhouse`` or from the module that defines them) and the service
# layer (inhouse.service), plus their own package and this small allow-list of what is truly
# door-specific:
DOORS = {"cli", "server"}
DOOR_ALLOWED = {
    "inhouse.errors": "the one exception tree, which the doors translate into exit codes and 4xx bodies",
    "inhouse.version": "the version the CLI and the API report",
    "inhouse.progress": "progress sinks: the CLI draws bars, a job worker writes its row",
    "inhouse.netguard": "turning the network guard on is the entry points' job",
    "inhouse.workspace.store": "opening the workspace and naming the acting user (inhouse.Workspace)",
    "inhouse.server": "the CLI starts the server (inhouse serve) and manages its tokens",
    "inhouse.ui": "the web UI's files, served by inhouse serve",
    "inhouse.demo": "inhouse demo",
}
# Imports that are still to move behind the service layer (issue 16 §2), as (door module, imported
# module), both under inhouse. It may only shrink: a new door import outside the rule fails, and so does an entry here that
# is no longer needed (delete it).
PENDING: set[tuple[str, str]] = {
    ("cli.data", "data.datasets"), ("cli.registry", "analysis.diff"), ("cli.registry", "classifiers.predict"),
    ("cli.registry", "pipeline.onnxcache"), ("server.batching", "cache"),
    ("server.batching", "classifiers.onnx"), ("server.batching", "models.catalog"),
    ("server.jobs", "workspace.files"), ("server.openai", "models.catalog"),
    ("server.routes_data", "data.datasets"),
    ("server.routes_data", "data.search"), ("server.routes_documents", "data.csvspans"), ("server.routes_documents", "data.preview"),
    ("server.routes_documents", "data.readers"), ("server.routes_documents", "topics.membership"),
    # merged in the same stop as this test (issue 16/17/18 work done in parallel); next to move behind the service
    ("cli.topics", "analysis.trends"), ("server.routes_downloads", "data.datasets"),
    ("server.routes_downloads", "topics.runs"), ("server.routes_downloads", "workspace.tables"),
}


def _public_homes() -> dict[str, str]:
    """public name -> the module that defines it (from inhouse/__init__.py's tables)."""
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    homes: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and \
                any(isinstance(t, ast.Name) and t.id in ("_LAZY", "_STAGE_MODULES") for t in node.targets):
            for k, v in zip(node.value.keys, node.value.values):
                homes[k.value] = f"inhouse.{v.value}"
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for a in node.names:
                homes[a.name] = f"inhouse.{node.module}"
    return homes


def door_violations() -> set[tuple[str, str]]:
    homes = _public_homes()
    public_modules = set(homes.values())
    bad = set()
    for m, imports in IMPORTS.items():
        door = stage(m)
        if door not in DOORS:
            continue
        for target, names, _ in imports:
            if target == "inhouse" or target.startswith(("inhouse.service", f"inhouse.{door}")):
                continue
            if not names and (PKG.parent / target.replace(".", "/")).is_dir():
                continue  # ``from ..data import labels``: the submodule is checked as its own import
            if any(target == a or target.startswith(a + ".") for a in DOOR_ALLOWED):
                continue
            if names and all(homes.get(n) == target for n in names):
                continue  # public names, imported from where they are defined
            if not names and target in public_modules and target.rsplit(".", 1)[-1] in homes:
                continue  # a stage module that is itself public (inhouse.ingest, inhouse.registry, ...)
            bad.add((m, target))
    return bad


def test_doors_import_only_the_public_api_and_the_service_layer():
    found = {(m[len("inhouse."):], t[len("inhouse."):]) for m, t in door_violations()}
    new = sorted(found - PENDING)
    assert not new, ("cli/ and server/ import only inhouse's public API and inhouse.service (see DOOR_ALLOWED); "
                     "move these behind a service function:\n" + "\n".join(f"{m} imports {t}" for m, t in new))
    done = sorted(PENDING - found)
    assert not done, "these no longer happen: delete them from PENDING:\n" + "\n".join(map(str, done))
