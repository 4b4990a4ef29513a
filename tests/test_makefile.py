"""The Makefile, read by make itself: the data folder its commands, the tests and the notebooks
are given (HW3_DATA, made absolute) and when it makes .venv afresh."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
# Without the make that runs these tests (make test): its command line's HW3_DATA=... reaches a
# make started here through MAKEFLAGS and would stand in for the values tested.
ENV = {name: value for name, value in os.environ.items()
       if name not in ("MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL")}
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make_sees(*args, cwd=REPO, **env):
    """``$HW3_DATA`` as make's commands see it, for ``make -C REPO ARGS`` run in ``cwd`` with
    ``env`` over this environment (a value None: unset)."""
    env = {**ENV, **env}
    env = {name: value for name, value in env.items() if value is not None}
    out = subprocess.run(["make", "-s", "-C", str(REPO), "--eval", 'show-data: ; @echo "$$HW3_DATA"',
                          "show-data", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.rstrip("\n")


def test_without_hw3_data_make_reads_data_in_the_repository(tmp_path):
    assert make_sees(cwd=tmp_path, HW3_DATA=None) == str(REPO.resolve() / "data")
    assert make_sees("HW3_DATA=", HW3_DATA=None) == str(REPO.resolve() / "data")


@pytest.mark.parametrize("given", ["my data/fruits", "my data/fruits/", "./my data/../my data/fruits"])
def test_a_relative_hw3_data_is_made_absolute_from_the_repository(given, tmp_path):
    """nbval runs each notebook in notebooks/: a relative path verified by `make data` was then
    "no dataset at ...: the folder does not exist" in notebook 01. Under make -C too."""
    want = str(REPO.resolve() / "my data/fruits")
    assert make_sees(f"HW3_DATA={given}", cwd=tmp_path) == want  # on make's command line
    assert make_sees(HW3_DATA=given) == want  # from the environment


def test_a_leading_tilde_is_the_home_folder(tmp_path):
    """A quoted ~ (no shell expanded it): the tests read HW3_DATA as given and skipped."""
    home = tmp_path.resolve() / "a home"
    assert make_sees("HW3_DATA=~/fruits/", HOME=str(home)) == str(home / "fruits")
    assert make_sees(HW3_DATA="~", HOME=str(home)) == str(home)


def test_an_absolute_hw3_data_with_spaces_and_quotes_stays_whole(tmp_path):
    given = tmp_path.resolve() / "it's a" / "fruit folder"
    assert make_sees(f"HW3_DATA={given}/") == str(given)
    assert make_sees(HW3_DATA=str(given)) == str(given)


def copy_makefile(folder):
    """Copy the Makefile and the files its rules depend on into ``folder``."""
    (folder / "hw3lib").mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "pyproject.toml",
                 "hw3lib/__init__.py"):
        shutil.copy(REPO / name, folder / name)


def venv_with(tmp_path, python):
    """A copy of the Makefile and its requirements whose .venv is installed (both stamps newer
    than the requirements) and whose .venv/bin/python is the shell script ``python`` (None:
    removed); make -n's commands for ``make install-dev`` there."""
    copy_makefile(tmp_path)
    (tmp_path / ".venv/bin").mkdir(parents=True)
    if python is not None:
        (tmp_path / ".venv/bin/python").write_text(f"#!/bin/sh\n{python}\n")
        (tmp_path / ".venv/bin/python").chmod(0o755)
    for stamp in (".main", ".dev"):
        (tmp_path / ".venv" / stamp).touch()
        os.utime(tmp_path / ".venv" / stamp, (2e9, 2e9))  # newer than the copies
    return make_n(tmp_path, "install-dev")


def make_n(folder, goal):
    """The commands ``make -n GOAL`` gives in ``folder``."""
    return subprocess.run(["make", "-n", goal], cwd=folder, env=ENV, capture_output=True, text=True,
                          check=True).stdout


def test_an_installed_venv_is_left_alone(tmp_path):
    assert "venv" not in venv_with(tmp_path, "echo True")


def test_a_new_version_in_hw3lib_init_reinstalls_hw3lib(tmp_path):
    """pyproject.toml reads the version from hw3lib/__init__.py and pip install -e . copies it
    into .venv's metadata: bumping it there alone left the old one installed."""
    venv_with(tmp_path, "echo True")
    os.utime(tmp_path / "hw3lib/__init__.py", (3e9, 3e9))  # edited after the install
    assert "pip install --quiet --no-deps -e ." in make_n(tmp_path, "install")


@pytest.mark.parametrize("python", [None, "echo False", "exit 1"], ids=["removed", "too old", "broken"])
def test_a_venv_whose_python_is_gone_or_too_old_is_made_afresh(tmp_path, python):
    """Its stamps made make skip the install: every command then failed with ".venv/bin/python:
    not found" (or pip found no numpy==2.4.6 for Python 3.10)."""
    commands = venv_with(tmp_path, python)
    assert "its Python does not run or is older than 3.11; making it afresh" in commands
    assert "-m venv --clear .venv" in commands and "pip install --quiet -r requirements-dev.txt" in commands


def test_a_python_older_than_3_11_is_refused_naming_the_fix(tmp_path):
    """It stopped with an AssertionError's traceback that named the version found, not the fix."""
    copy_makefile(tmp_path)
    old = tmp_path / "python 3.10"  # python3 there: this Python, reporting 3.10, running -c only
    old.mkdir()
    (old / "sitecustomize.py").write_text("import sys\nsys.version_info = (3, 10, 12, 'final', 0)\n"
                                          "sys.version = '3.10.12 (reported)'\n")
    (old / "python3").write_text(f'#!/bin/sh\n[ "$1" = -c ] || exit 3\n'
                                 f'PYTHONPATH="{old}" exec "{sys.executable}" "$@"\n')
    (old / "python3").chmod(0o755)
    env = {name: value for name, value in ENV.items() if name != "PYTHON"}
    out = subprocess.run(["make", "install"], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "PATH": f"{old}{os.pathsep}{env['PATH']}"})
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert "hw3lib needs Python 3.11 or newer, found 3.10.12 (" in out.stderr
    assert "e.g. make install PYTHON=python3.11 (any python3.11 or newer on PATH)" in out.stderr
    assert not (tmp_path / ".venv").exists()
