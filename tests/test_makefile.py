"""The Makefile, read by make itself: the data folder its commands, the tests and the notebooks
are given (HW3_DATA, made absolute) and when it makes .venv afresh."""
import os
import shutil
import subprocess
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
