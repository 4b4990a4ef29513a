"""The package's metadata: its version is hw3lib.__version__, written in one place."""
import importlib.metadata
import os
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
