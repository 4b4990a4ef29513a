"""The engine stamp: what a run is computed with, in one line (hw3lib's training code, NumPy,
Pillow, BLAS).

The code is named by a SHA-256 of the syntax trees of :data:`ENGINE_ROOT` and the hw3lib modules
it imports, transitively, as this process imported them; a file edited since is refused
(:class:`EngineChanged`), as the code that runs then is not the code on disk.
"""
import ast
import hashlib
from pathlib import Path

import numpy as np
import PIL
from threadpoolctl import threadpool_info

ENGINE_ROOT = "train"  # the module whose imports within hw3lib are everything a run computes with


def engine_modules():
    """The hw3lib modules that :data:`ENGINE_ROOT` imports (relative imports, also those inside
    functions), transitively, and it itself, as their files are now: their names, sorted."""
    return _closure(ENGINE_ROOT, lambda name: _parsed(name)[0])


def _closure(root, tree_of):
    """``root`` and the hw3lib modules it imports, transitively, ``tree_of(name)`` giving each
    module's syntax tree: their names, sorted."""
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            for node in ast.walk(tree_of(name)):
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    todo += [node.module] if node.module else [alias.name for alias in node.names]
    return sorted(seen)


def _module_path(name):
    return Path(__file__).parent / f"{name}.py"


def _read(path):
    """The bytes of the file ``path``, or None when it is gone."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _syntax(source):
    """``(tree, code)`` of a module's ``source`` bytes: its syntax tree and that tree as text (so
    that comments and blank lines do not count; docstrings do), or, for None (a file gone) or
    a file that does not parse, an empty tree and a line that says so."""
    try:
        if source is None:
            raise FileNotFoundError
        tree = ast.parse(source)
        return tree, ast.dump(tree)
    except (OSError, SyntaxError, ValueError) as err:
        return ast.Module(body=[], type_ignores=[]), f"unreadable: {type(err).__name__}"


def _parsed(name):
    """:func:`_syntax` of the hw3lib module ``name`` as its file is now; parsed again only once
    the file changed."""
    path = _module_path(name)
    stat = path.stat() if path.is_file() else None
    key = (stat.st_mtime_ns, stat.st_size) if stat else None
    if key is None or _PARSED.get(path, (None,))[0] != key:
        _PARSED[path] = (key, *_syntax(_read(path)))
    return _PARSED[path][1:]


_PARSED = {}  # path -> ((mtime, size) of the file, its tree, its code)


# The package's sources as this process imported them (importing hw3lib imports every module
# training runs), kept as bytes: parsing them, about 0.1 s, waits for the first engine_code().
_SOURCES = {path.stem: path.read_bytes() for path in Path(__file__).parent.glob("*.py")}
_IMPORTED = None  # {name: code} of the engine's modules in _SOURCES, once engine_code() asked


def _imported():
    """``{name: code}`` of the modules training runs (:func:`engine_modules`) as this process
    imported them, from ``_SOURCES``."""
    global _IMPORTED
    if _IMPORTED is None:
        syntax = {}

        def tree_of(name):
            syntax.setdefault(name, _syntax(_SOURCES.get(name)))
            return syntax[name][0]
        _IMPORTED = {name: syntax[name][1] for name in _closure(ENGINE_ROOT, tree_of)}
    return _IMPORTED


class EngineChanged(ValueError):
    """A module of the engine differs on disk from what this process imported and runs."""


def engine_code():
    """``hw3lib`` and 12 hex digits of a SHA-256 of the source of the modules that training
    runs (:func:`engine_modules`) as this process imported them.

    Raises :class:`EngineChanged` when one of those files has changed since the import (edited
    in an open kernel, or reloaded by ``%autoreload``): what runs then has no name."""
    imported = _imported()
    changed = [name for name, code in imported.items()  # bytes first: no parsing when unchanged
               if _read(_module_path(name)) != _SOURCES.get(name) and _parsed(name)[1] != code]
    if changed:
        files = ", ".join(f"hw3lib/{name}.py" for name in changed)
        raise EngineChanged(f"{files} changed since this Python process imported hw3lib, so the "
                            "code that runs is not the code on disk: restart the kernel (or the "
                            "process) to run the edited code")
    digest = hashlib.sha256()
    for name, code in sorted(imported.items()):
        digest.update(f"{name}\0{code}\0".encode())
    return f"hw3lib {digest.hexdigest()[:12]}"


def engine_stamp():
    """What a run is computed with, in one line: :func:`engine_code`, the versions of NumPy and
    of Pillow (which resizes images to a run's size) and the BLAS library's version and kernels.
    Training is the same bit for bit only where all of them are: a checkpoint cached under
    another stamp holds weights this code would not compute."""
    return f"{engine_code()}, numpy {np.__version__}, pillow {PIL.__version__}, {blas_description()}"


STAMP_PARTS = ("hw3lib's training code", "NumPy", "Pillow", "BLAS library")  # engine_stamp's


def stamp_differences(then, now):
    """What differs between the engine stamps ``then`` (None: a file written before stamps)
    and ``now``, in words, one phrase per part (:data:`STAMP_PARTS`) that differs:
    ``["another NumPy (numpy 2.3.1; now numpy 2.4.6)"]``."""
    old, new = ((stamp or "").split(", ", len(STAMP_PARTS) - 1) for stamp in (then, now))
    old += [""] * (len(STAMP_PARTS) - len(old))
    return [f"another {part} ({was or 'unknown'}; now {is_})" if part != STAMP_PARTS[0]
            else "other training code (hw3lib's modules that training runs differ)"
            for part, was, is_ in zip(STAMP_PARTS, old, new) if was != is_]


def blas_description(threads=False):
    """The BLAS libraries NumPy computes with, in words: ``"openblas 0.3.31 (Haswell)"``, or
    with ``threads`` ``"openblas 0.3.31, Haswell kernels, 2 threads by default"`` (the threads
    it has now); several joined by ``", "`` (``"; "`` with ``threads``), ``"no BLAS"`` for none."""
    described = []
    for lib in threadpool_info():
        if lib["user_api"] == "blas":
            name, kernels, n = (f"{lib['internal_api']} {lib['version']}",
                                lib.get("architecture") or "generic", lib["num_threads"])
            if threads:
                plural = "" if n == 1 else "s"
                described.append(f"{name}, {kernels} kernels, {n} thread{plural} by default")
            else:
                described.append(f"{name} ({kernels})")
    return ("; " if threads else ", ").join(described) or "no BLAS"
