"""The package's metadata: its version is hw3lib.__version__, written in one place."""
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
