"""The engine's layout is its architecture, checked so that it stays so (docs/architecture.md).

Read from the source with ``ast``, nothing imported: the import graph of ``rem_core``, the
pages and the app (imports at module level and inside functions alike) has no cycle, and
every import between packages goes down the layers; a name has one public import path and
one meaning; no module or function is too long to read.
"""

from __future__ import annotations

import ast
import graphlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "rem_core"

#: The engine's packages and root modules, lowest layer first. An import between two of
#: them goes to a lower layer, never within a layer or up; the pages, then the app, sit on
#: top of them all.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {"errors"},
        {"config", "schema", "files", "memory", "provenance"},
        {"cluster", "dataset", "cache", "geometry"},
        {"evaluation", "io", "world", "density"},
        {"detect", "track", "mining"},
        {"pipeline", "analysis"},
        {"pool", "experiment"},
        {"jobs", "viz"},
        {"cli"},
    )
)

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_ROOT_MODULES = 8


@dataclass
class Module:
    """One source file: its dotted name, its tree, and the project modules it imports."""

    name: str
    path: Path
    tree: ast.Module
    imports: list[tuple[str, ast.stmt, bool]] = field(default_factory=list)  # (module, node, inner)

    @property
    def unit(self) -> str:
        """Its package or root module under ``rem_core`` (``pages`` and ``app`` for those)."""
        parts = self.name.split(".")
        return parts[1] if parts[0] == "rem_core" and len(parts) > 1 else parts[0]


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _read() -> dict[str, Module]:
    files = sorted(ENGINE.rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    modules = {_name(p): Module(_name(p), p, ast.parse(p.read_text())) for p in files}
    modules["app"] = Module("app", ROOT / "app.py", ast.parse((ROOT / "app.py").read_text()))
    for module in modules.values():
        _collect_imports(module, modules)
    return modules


def _collect_imports(module: Module, modules: dict[str, Module]) -> None:
    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    def visit(node: ast.AST, inner: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                targets = [resolve(alias.name) for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                targets = [
                    resolve(f"{child.module}.{alias.name}")
                    if f"{child.module}.{alias.name}" in modules
                    else resolve(child.module)
                    for alias in child.names
                ]
            else:
                visit(child, inner or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))
                continue
            for target in targets:
                if target and target != module.name:
                    module.imports.append((target, child, inner))

    visit(module.tree, False)


MODULES = _read()


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    return len(LAYERS) + (unit == "app")  # the pages, then the app that opens them


def test_every_package_and_root_module_has_a_layer():
    units = {m.unit for m in MODULES.values() if m.name.startswith("rem_core.")}
    declared = set().union(*LAYERS)
    assert units == declared, f"undeclared: {units - declared}; gone: {declared - units}"


def test_the_import_graph_has_no_cycle():
    graph = {m.name: {target for target, _, _ in m.imports} for m in MODULES.values()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_imports_between_packages_go_down_the_layers():
    wrong = []
    for module in MODULES.values():
        for target, node, _ in module.imports:
            a, b = module.unit, MODULES[target].unit
            if a != b and not _layer(b) < _layer(a):
                wrong.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {a} -> {b}")
    assert not wrong, "\n".join(wrong)


def test_imports_inside_functions_say_why():
    """An import of the project inside a function is a lazy load (of torch, say); a comment
    just above it (or above the imports it is one of) says why."""
    silent = []
    for module in MODULES.values():
        lines = module.path.read_text().splitlines()
        for _, node, inner in module.imports:
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                above -= 1
            if inner and not lines[above].strip().startswith("#"):
                silent.append(f"{module.path.relative_to(ROOT)}:{node.lineno}")
    assert not silent, "imports inside functions without a comment: " + ", ".join(silent)


def _all(module: Module) -> list[str] | None:
    for node in module.tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [ast.literal_eval(e) for e in node.value.elts]
    return None


def _defined(module: Module) -> dict[str, ast.stmt]:
    """The names a module defines at its top level (not those it imports)."""
    names = {}
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in target.elts if isinstance(target, ast.Tuple) else [target]:
                    if isinstance(name, ast.Name):
                        names[name.id] = node
    return names


def _public_places() -> dict[str, Module]:
    """The public import paths: every package of ``rem_core`` and every root module."""
    return {
        m.name: m
        for m in MODULES.values()
        if m.name.count(".") == 1 and m.name.startswith("rem_core.")
    }


def test_every_package_states_its_public_names():
    missing = [name for name, m in _public_places().items() if _all(m) is None]
    assert not missing, f"no __all__ in {missing}"


def test_a_package_exports_only_its_own_names():
    """A package's ``__all__`` names what its own modules define: nothing re-exports another
    package's names."""
    wrong = []
    for name, module in _public_places().items():
        if module.path.name != "__init__.py":
            defined = _defined(module)
            wrong += [f"{name}.{n}" for n in _all(module) or [] if n not in defined]
            continue
        owners = {}
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    owners[alias.asname or alias.name] = node.module
        defined = _defined(module)
        for exported in _all(module) or []:
            source = owners.get(exported)
            if exported not in defined and not (source and source.startswith(f"{name}.")):
                wrong.append(f"{name}.{exported} (from {source})")
    assert not wrong, "\n".join(wrong)


def test_a_name_has_one_public_import_path():
    places = defaultdict(list)
    for name, module in _public_places().items():
        for exported in _all(module) or []:
            places[exported].append(name)
    twice = {n: p for n, p in places.items() if len(p) > 1}
    assert not twice, twice


def test_other_packages_import_a_package_by_its_public_path():
    """Outside a package, its names come from the package (``rem_core.mining``), not from
    the module inside it that defines them."""
    packages = {n for n, m in _public_places().items() if m.path.name == "__init__.py"}
    wrong = []
    for module in MODULES.values():
        for target, node, _ in module.imports:
            owner = ".".join(target.split(".")[:2])
            if owner in packages and target != owner and module.unit != MODULES[target].unit:
                wrong.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {target}")
    assert not wrong, "\n".join(wrong)


def test_no_two_public_objects_share_a_name():
    """A public top-level name (a function, class or constant) means one thing in the whole
    engine: defined in one module only (loggers and type variables are not objects of it)."""
    where = defaultdict(list)
    for module in MODULES.values():
        if not module.name.startswith("rem_core"):
            continue
        for name, node in _defined(module).items():
            value = getattr(node, "value", None)
            call = value.func if isinstance(value, ast.Call) else None
            helper = isinstance(call, ast.Attribute | ast.Name) and (
                getattr(call, "attr", None) == "getLogger" or getattr(call, "id", None) == "TypeVar"
            )
            if not name.startswith("_") and name != "__all__" and not helper:
                where[name].append(module.name)
    shared = {n: m for n, m in where.items() if len(m) > 1}
    assert not shared, shared


#: Modules that unpickle (and so may run) whatever a file holds: nothing imports them.
PICKLERS = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve"}


def test_no_module_imports_pickle():
    """Settings travel as JSON (``config_to_dict`` / ``config_from_dict``), weights as
    ``torch.load(weights_only=True)``, arrays without ``allow_pickle``: no module of the
    engine, the pages or the app imports pickle, at the top or inside a function."""
    found = []
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] in PICKLERS for name in names):
                found.append(f"{module.path.relative_to(ROOT)}:{node.lineno}")
    assert "rem_core.jobs.runner" in MODULES and not found, found


def test_the_root_holds_at_most_a_few_modules():
    root = sorted(p.name for p in ENGINE.glob("*.py") if p.name != "__init__.py")
    assert len(root) <= MAX_ROOT_MODULES, root


def test_no_module_is_too_long():
    long = {
        str(m.path.relative_to(ROOT)): n
        for m in MODULES.values()
        if (n := len(m.path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_no_function_is_too_long():
    long = {}
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{module.path.relative_to(ROOT)}:{node.name}"] = n
    assert not long, long


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="in `make test`'s workers")
def test_each_suite_worker_runs_torch_on_one_thread():
    # tests/conftest.py sets OMP_NUM_THREADS=1 before torch loads; a conftest import that
    # loaded torch first gave each of the two workers two threads, and the FFJORD tests
    # took 4 to 12 times as long (2026-12-07)
    import torch

    assert torch.get_num_threads() == 1
