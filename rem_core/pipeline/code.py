"""Fingerprints of the engine's code: what enters a cache key in place of a version string.

A stage's code is the ``rem_core`` modules that compute it and every ``rem_core`` module they
import, at module level or inside a function (their import closure). Its fingerprint hashes
each of those modules' syntax tree without docstrings, so a change of logic anywhere in the
closure changes it, and comments, docstrings and formatting do not.

Parsing the package takes about two seconds, which every process that keys a cache entry
would pay (each `rem` command, each job). Each module's tree is kept beside its bytecode
(``__pycache__/<module>.<tag>.ast.json``, under the hash of the source it came from) and read
back while the source is unchanged; where that folder cannot be written, it is parsed each
time.

>>> len(code_fingerprint("detector"))
16
>>> code_fingerprint("detector") == code_fingerprint("detector")
True
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import tempfile
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
    # The weights are what training writes: its closure, not inference's (decoding, ROI
    # pooling), which is the detections' code. An inference change keeps the shipped weights.
    "detector": ("rem_core.detect.train",),
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
        statements, tree = _module(path)
        out[name] = (_imports(statements, name, files), tree)
    return out


def _module(path: Path) -> tuple[list[tuple[str, str | None]], str]:
    """A module's import statements (``_import_statements``) and its syntax tree without
    docstrings (``ast.dump``): as kept beside its bytecode when that was made from the same
    source, parsed (and kept) otherwise."""
    text = path.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    kept = _kept_path(path)
    if kept is not None:
        try:
            data = json.loads(kept.read_text())
            if data["source"] == digest:
                return [(m, a) for m, a in data["imports"]], data["tree"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none kept, or unreadable: parse it
    tree = ast.parse(text.decode("utf-8"), str(path))
    statements = _import_statements(tree)
    dump = ast.dump(_without_docstrings(tree))
    if kept is not None:
        _keep(kept, {"source": digest, "imports": statements, "tree": dump})
    return statements, dump


def _kept_path(path: Path) -> Path | None:
    """Where the parsed form of the module at ``path`` is kept: beside its bytecode
    (``None`` where this Python keeps no bytecode)."""
    try:
        return Path(importlib.util.cache_from_source(str(path))).with_suffix(".ast.json")
    except NotImplementedError:
        return None


def _keep(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` whole (a temporary file renamed), or not at all where
    the folder cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # a read-only install: parsed again next time


def _module_name(path: Path, source: Path) -> str:
    parts = [source.name, *path.relative_to(source).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_statements(tree: ast.Module) -> list[tuple[str, str | None]]:
    """Every absolute import in ``tree``, as ``(module, None)`` for ``import module`` and
    ``(module, name)`` for ``from module import name``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.module, alias.name) for alias in node.names)
    return found


def _imports(
    statements: list[tuple[str, str | None]], name: str, files: dict[str, Path]
) -> frozenset[str]:
    """The package's modules that module ``name`` imports by ``statements`` (a package's
    ``__init__`` for its names, a module for itself)."""

    def resolve(dotted: str) -> str | None:
        while dotted and dotted not in files:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found = set()
    for module, alias in statements:
        full = f"{module}.{alias}"
        found.add(full if alias is not None and full in files else resolve(module))
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
