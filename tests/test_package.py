"""The package's metadata (its version is hw3lib.__version__, written in one place) and its
shape (imports that run downhill)."""
import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hw3lib

REPO = Path(__file__).parents[1]


def setuptools_version():
    try:
        return tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.mark.skipif((setuptools_version() or (0,)) < (68,), reason="needs setuptools 68 or newer, "
                    "as pyproject.toml's build-system")
def test_the_built_metadata_takes_its_version_from_hw3lib_version(tmp_path):
    """pyproject.toml wrote the version a second time: bumping one left the other behind."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / "README.md", tmp_path)
    shutil.copytree(REPO / "hw3lib", tmp_path / "hw3lib", ignore=shutil.ignore_patterns("__pycache__"))
    init = tmp_path / "hw3lib/__init__.py"
    init.write_text(re.sub(r'(?m)^__version__ = ".*"$', '__version__ = "9.8.7"', init.read_text()))
    (tmp_path / "meta").mkdir()
    build = ("from setuptools import build_meta; "
             "print(build_meta.prepare_metadata_for_build_wheel('meta'))")  # as pip does, offline
    out = subprocess.run([sys.executable, "-c", build], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    metadata = (tmp_path / "meta" / out.stdout.split()[-1] / "METADATA").read_text()
    assert re.search(r"(?m)^Version: 9\.8\.7$", metadata), metadata[:300]


@pytest.mark.parametrize("required, status", [("1", pytest.ExitCode.USAGE_ERROR), ("", pytest.ExitCode.OK)])
def test_tests_of_the_dataset_are_required_where_hw3_require_data_says_so(tmp_path, required, status):
    """The dataset's tests skipped wherever $HW3_DATA held none; CI, which sets
    HW3_REQUIRE_DATA=1, now stops at once instead (as for PyTorch, the PDF tools, PostgreSQL)."""
    env = {**os.environ, "HW3_DATA": str(tmp_path / "none"), "HW3_REQUIRE_DATA": required}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:nbval", "--co",
                           "tests/test_tables.py"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == status, proc.stdout + proc.stderr
    if required:
        assert f"HW3_REQUIRE_DATA=1 but the dataset is not at {tmp_path / 'none'}" in proc.stderr


def _imports(path, modules):
    """The hw3lib modules (of ``modules``, their names) that the module file ``path`` imports:
    relative imports, those inside functions too; ``from . import NAME`` of a name that is not a
    module imports the package's ``__init__``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module] if node.module else
                         [alias.name if alias.name in modules else "__init__" for alias in node.names])
    return names


def test_the_package_imports_run_downhill_without_a_cycle():
    """hw3lib is one flat folder whose modules import one another only downhill: a cycle (two
    modules importing each other, directly or through others) is a module with two ideas or a
    helper in the wrong place."""
    paths = sorted(Path(hw3lib.__file__).parent.glob("*.py"))
    graph = {path.stem: _imports(path, {p.stem for p in paths}) for path in paths}
    order, state = [], {}  # state: 1 while a module's imports are walked, 2 once done

    def walk(name, path):
        if state.get(name) == 1:
            raise AssertionError(f"an import cycle: {' -> '.join(path[path.index(name):] + [name])}")
        if not state.get(name):
            state[name] = 1
            for imported in sorted(graph.get(name, ())):
                walk(imported, path + [name])
            state[name] = 2
            order.append(name)
    for name in graph:
        walk(name, [])
    assert sorted(order) == sorted(graph)


def _defined(path):
    """The names that the module file ``path`` defines at its top level: functions, classes and
    assigned names."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_the_names_hw3lib_images_defines_are_imported_from_it():
    """DataError and MODES, defined in hw3lib.images, were imported through hw3lib.data too (which
    re-exported MODES without using it) by half the package and the tests: two places to look
    for one name. The package and its tests import them from images."""
    package = Path(hw3lib.__file__).parent
    names = _defined(package / "images.py")
    through = []
    for path in sorted(package.glob("*.py")) + sorted((REPO / "tests").glob("*.py")):
        own = _defined(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module if node.level == 1 else node.module.removeprefix("hw3lib.")
                if (node.level == 1 or node.module.startswith("hw3lib.")) and module != "images":
                    through += [f"{path.name}: from {'.' * node.level}{node.module} import {alias.name}"
                                for alias in node.names if alias.name in names - own]
    assert not through, f"import these from hw3lib.images, which defines them: {through}"


def test_only_the_commands_import_the_command_line_helpers():
    """sweep, sweep_study and playground_runs, library modules, imported hw3lib.cli (the commands'
    helpers) for its output-folder checks and its wording of settings: an import uphill. Only
    ``__main__`` and the modules that run its commands may import cli."""
    from hw3lib.__main__ import COMMANDS
    paths = sorted(Path(hw3lib.__file__).parent.glob("*.py"))
    modules = {path.stem for path in paths}
    commands = {"__main__"} | {module.removeprefix("hw3lib.") for module, _ in COMMANDS.values()}
    importers = {path.stem for path in paths if "cli" in _imports(path, modules)}
    assert importers <= commands, f"library modules import hw3lib.cli: {sorted(importers - commands)}"
