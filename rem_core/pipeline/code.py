"""Fingerprints of the engine's code: what enters a cache key in place of a version string.

A stage's code is the ``rem_core`` modules that compute it and every ``rem_core`` module they
import, at module level or inside a function (their import closure). Its fingerprint hashes
each of those modules' syntax tree without docstrings, so a change of logic anywhere in the
closure changes it, and comments, docstrings and formatting do not.

>>> len(code_fingerprint("detector"))
16
>>> code_fingerprint("detector") == code_fingerprint("detector")
True
"""

from __future__ import annotations

import ast
import hashlib
import threading
from functools import cache
from pathlib import Path

from rem_core.errors import InputError

__all__ = ["STAGE_CODE", "code_fingerprint", "code_fingerprints", "import_closure"]

#: The package's source folder, whose modules are fingerprinted.
_SOURCE = Path(__file__).resolve().parents[1]

#: One thread parses at a time: ``ast.parse`` in two threads at once (two sessions of the
#: app) fails in CPython 3.11 ("AST constructor recursion depth mismatch").
_PARSING = threading.Lock()

#: Each cached stage and the modules that compute it (their import closure is its code).
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "world": ("rem_core.world",),
    "detector": ("rem_core.detect",),
    "detections/detector": ("rem_core.pipeline.sources.detector",),
    "detections/boxes": ("rem_core.pipeline.sources.boxes",),
    "rareness": ("rem_core.pipeline.stages",),
    "experiment": ("rem_core.experiment.runs",),
}


def code_fingerprint(stage: str, source: Path | None = None) -> str:
    """The 16-hex-digit fingerprint of ``stage``'s code (a key of :data:`STAGE_CODE`).

    Args:
        stage: the stage.
        source: the folder of the ``rem_core`` package to read (default: this one; a test
            points it at a changed copy).
    """
    if stage not in STAGE_CODE:
        raise InputError(f"code: unknown stage {stage!r}; known: {', '.join(STAGE_CODE)}")
    return _fingerprint(STAGE_CODE[stage], Path(source or _SOURCE))


def code_fingerprints(source: Path | None = None) -> dict[str, str]:
    """Every stage's fingerprint, by stage (what a shipped artifact records)."""
    return {stage: code_fingerprint(stage, source) for stage in STAGE_CODE}


def import_closure(modules: tuple[str, ...], source: Path | None = None) -> list[str]:
    """``modules`` and every ``rem_core`` module they import, directly or not, sorted."""
    return sorted(_closure(tuple(modules), Path(source or _SOURCE)))


@cache
def _fingerprint(modules: tuple[str, ...], source: Path) -> str:
    digest = hashlib.sha256()
    trees = _trees(source)
    for name in sorted(_closure(modules, source)):
        digest.update(f"{name}\n{trees[name][1]}\n".encode())
    return digest.hexdigest()[:16]


@cache
def _closure(modules: tuple[str, ...], source: Path) -> frozenset[str]:
    trees = _trees(source)
    unknown = [m for m in modules if m not in trees]
    if unknown:
        raise InputError(f"code: no module {unknown[0]!r} in {source}")
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(trees[name][0])
    return frozenset(seen)


def _trees(source: Path) -> dict[str, tuple[frozenset[str], str]]:
    """Every module of the package under ``source``: the project modules it imports and its
    normalised syntax tree (``ast.dump`` without docstrings); read once."""
    with _PARSING:
        return _parsed(source)


@cache
def _parsed(source: Path) -> dict[str, tuple[frozenset[str], str]]:
    files = {_module_name(path, source): path for path in sorted(source.rglob("*.py"))}
    out = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        out[name] = (_imports(tree, name, files), ast.dump(_without_docstrings(tree)))
    return out


def _module_name(path: Path, source: Path) -> str:
    parts = [source.name, *path.relative_to(source).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, name: str, files: dict[str, Path]) -> frozenset[str]:
    """The package's modules ``tree`` imports (a package's ``__init__`` for its names, a
    module for itself)."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in files:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in files else resolve(node.module))
    found.discard(None)
    found.discard(name)
    return frozenset(found)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring of the module and of every class and function removed."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree
