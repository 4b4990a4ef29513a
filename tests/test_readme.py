"""The README's Python examples run as written (the one that trains many runs: compiled only)."""
import importlib
import inspect
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train import HAVE_DATA, tiny_config, tiny_data

from hw3lib import download, sweep_cli, sweep_results
from hw3lib.__main__ import COMMANDS
from hw3lib.__main__ import main as hw3lib_main
from hw3lib.config import TrainConfig
from hw3lib.folders import DEFAULT_ROOT, REPO_ROOT
from hw3lib.sweep_space import _check_name
from hw3lib.train import fit

REPO = Path(__file__).parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
DOCS = ("README.md", "docs/performance.md", "data/README.md", "report/README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def block(words):
    """The one Python block of the README that contains ``words``."""
    [found] = [b for b in BLOCKS if words in b]
    return found


def test_every_python_block_compiles():
    assert len(BLOCKS) >= 3
    for code in BLOCKS:
        compile(code, "README.md", "exec")
    assert "from hw3lib import TrainConfig" in block("run_sweep(")


@pytest.mark.skipif(not HAVE_DATA, reason="needs the fruit data ($HW3_DATA)")
def test_the_report_loop_example_trains_an_epoch():
    scope = {}
    exec(block("optimizer.update_params(grads)"), scope)
    assert np.isfinite(scope["loss"]) and scope["loss"] < np.log(3)  # below chance after an epoch


def test_the_prediction_example_names_a_class_per_file(tmp_path, monkeypatch, capsys):
    data, config = tiny_data(), tiny_config(epochs=2)
    fit(config.build_model(3), data, config, checkpoint_path=tmp_path / "runs/lenet5/checkpoint.npz",
        progress=False)
    grey = np.round(data.X_val[0, 0] * 255).astype(np.uint8)
    Image.fromarray(np.kron(grey, np.ones((4, 4), np.uint8)), "L").save(tmp_path / "my_pear.png")
    Image.fromarray(grey, "L").convert("RGB").save(tmp_path / "my_lychee.jpg")
    monkeypatch.chdir(tmp_path)
    exec(block("FitResult.load("), {})
    names = eval(capsys.readouterr().out)
    assert len(names) == 2 and set(names) <= {"a", "b", "c"}


@pytest.mark.parametrize("command, positional", [("predict", "RUN IMAGE"), ("download", "[DEST]")])
def test_the_helps_name_positional_arguments_as_the_command_line_block_does(command, positional, capsys):
    """The helps said ``run`` and ``dest`` where the README writes RUN and DEST."""
    block = README[README.index(f"python -m hw3lib {command} "):]
    assert positional.split()[0] in block.split("\n", 1)[0]
    with pytest.raises(SystemExit):
        hw3lib_main([command, "--help"])
    assert positional in capsys.readouterr().out.split("\n\n", 1)[0]


def test_the_sweep_help_says_when_trials_is_needed_and_when_refused(capsys):
    """--trials said only "a sampled search: how many settings to try", not that a range needs it
    and a grid of lists refuses it, as the command then says in an error."""
    with pytest.raises(SystemExit):
        sweep_cli.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    trials = usage[usage.index("--trials N how"):usage.index("--workers N worker")]
    assert "range" in trials and "refused for a grid" in trials, trials


def test_the_sweep_section_and_help_name_every_setting_a_sweep_does_not_vary(capsys):
    refused = []
    for field in fields(TrainConfig):
        try:
            _check_name(field.name)
        except ValueError:
            refused.append(field.name)
    refused.remove("model")  # swept as model.KEY
    assert {"seed", "split", "val_fraction"} <= set(refused)
    bullet = README[README.index("- `--param NAME=V1,V2,...`"):]
    bullet = bullet[:bullet.index("\n- ")]
    with pytest.raises(SystemExit):
        sweep_cli.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    param = usage[usage.index("--param NAME=VALUES a swept"):usage.index("--set NAME=VALUE a fixed")]
    for name in refused:
        assert f"`{name}`" in bullet and name in param, name


def test_the_sweep_section_gives_the_default_seeds_the_help_gives(capsys):
    """The command-line block shows ``--seeds 0-4`` as an example, and the section named no
    default: a sweep runs one seed, 0, unless told."""
    with pytest.raises(SystemExit):
        sweep_cli.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    seeds = usage[usage.index("--seeds SEEDS the"):usage.index("--trials N how")]
    default = re.search(r"default (\S+)", seeds).group(1)
    bullet = README[README.index("- `--param NAME=V1,V2,...`"):]
    bullet = " ".join(bullet[:bullet.index("\n- ")].split())
    assert f"(`--seeds`, default {default}," in bullet, seeds


def test_the_sweep_section_lists_the_run_states_in_the_tables_order():
    """README listed the states up to "waiting", then quoted "2 not queued" as one of them."""
    states = ", ".join(sweep_results.STATES.values())
    assert f"always in the order {states}, then the seeds not queued yet:" in " ".join(README.split())
    runs = [sweep_results.Run(n, {}, n, state, None, None, 0, 0, 0.0, [], None)
            for n, state in enumerate(reversed(sweep_results.STATES.values()))]
    status = sweep_results.Setting({}, runs, TrainConfig()).status(len(runs) + 2)
    assert status == f"{', '.join(f'1 {state}' for state in sweep_results.STATES.values())}, 2 not queued"


@pytest.mark.parametrize("doc", DOCS)
def test_every_dotted_hw3lib_name_the_docs_give_exists(doc):
    names = set(re.findall(r"\b(hw3lib(?:\.[A-Za-z_]\w*)+)", (REPO / doc).read_text(encoding="utf-8")))
    for name in names:
        parts, obj = name.split("."), None
        for i in range(len(parts), 0, -1):  # the longest module, then its attributes
            try:
                obj, rest = importlib.import_module(".".join(parts[:i])), parts[i:]
                break
            except ImportError:
                continue
        for part in rest:
            assert hasattr(obj, part), f"{doc} names {name}, which does not exist"
            obj = getattr(obj, part)


def test_the_data_readme_counts_the_manifests_files_and_says_how_they_are_fetched():
    text = " ".join((REPO / "data/README.md").read_text(encoding="utf-8").split())
    manifest = download.read_manifest()
    per_class = {split: {path.split("/")[1] for path in manifest if path.startswith(split)}
                 for split in ("Data_train", "Data_test")}
    for split, first in (("Data_train", 490), ("Data_test", 166)):
        counts = {sum(path.startswith(f"{split}/{c}/") for path in manifest) for c in per_class[split]}
        assert counts == {first} and f"{first} per class, i = 0..{first - 1}" in text
    assert f"the {len(manifest)} files" in text and len(per_class["Data_train"]) == 3
    workers = inspect.signature(download.download).parameters["workers"].default
    assert f"one request each and {dict(enumerate(NUMBERS))[workers]} at a time" in text


def test_the_readme_names_the_commands_that_download_absent_data():
    """Only those: `train` without data stops with an error (it said "the commands download")."""
    text = " ".join(README.split())
    sentence = text[text.index("The dataset is read from"):]
    sentence = sentence[:sentence.index(". ")]
    named = set(re.findall(r"`python -m hw3lib (\w+)`", sentence)) - {"download"}
    fetching = {name for name, (target, _) in COMMANDS.items() if name != "download" and re.search(
        r"\bdownload\(", inspect.getsource(importlib.import_module(target)))}
    assert named == fetching == {"report"}, sentence
    assert "`make report`, `make test`" in sentence


@pytest.mark.parametrize("empty, told", [(False, "check the path"), (True, "a dataset folder holds")])
def test_the_readme_says_what_a_hw3_data_of_a_missing_or_empty_folder_is_told(
        tmp_path, monkeypatch, capsys, empty, told):
    """README said every command but report says how to get absent data (`python -m hw3lib
    download`); one whose HW3_DATA names a missing or empty folder, which may be meant for one's
    own images, is told to check the path or what a dataset folder holds."""
    if empty:
        (tmp_path / "fruits").mkdir()
    monkeypatch.setenv("HW3_DATA", str(tmp_path / "fruits"))
    assert hw3lib_main(["audit", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert told in err and "download" not in err, err
    text = " ".join(README.split())
    assert "where `$HW3_DATA` names a missing or empty folder" in text and told in text


def test_the_commands_that_pip_install_alone_gives_are_every_command_but_report():
    text = " ".join(README.split())
    sentence = text[text.index("`pip install -e .` alone gives"):]
    sentence = sentence[:sentence.index(";")]
    named = re.findall(r"`(\w+)`", sentence)
    assert sorted(named) == sorted(set(COMMANDS) - {"report"}), sentence


def test_training_and_the_commands_never_import_pytorch():
    """README: hw3lib imports PyTorch only to compare with it, never to train."""
    code = ("import sys; import hw3lib, hw3lib.__main__, hw3lib.runs, hw3lib.results, hw3lib.sweep, "
            "hw3lib.widgets, hw3lib.bench; "
            "from hw3lib.__main__ import COMMANDS; import importlib; "
            "[importlib.import_module(m) for m, _ in COMMANDS.values()]; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "`hw3lib` imports it only to compare with it" in " ".join(README.split())


def command_help(command, capsys):
    """What ``python -m hw3lib COMMAND --help`` prints."""
    with pytest.raises(SystemExit):
        importlib.import_module(COMMANDS[command][0]).main(["--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_fits_an_80_column_terminal(command, capsys, monkeypatch):
    """argparse wraps the options to the terminal; the descriptions, notes and examples that
    a command gives as they are must fit too, or the terminal breaks them mid-word."""
    monkeypatch.setenv("COLUMNS", "80")
    for line in command_help(command, capsys).splitlines():
        assert len(line) <= 80, f"{command} --help: {line}"


@pytest.mark.parametrize("command, folders", [
    *((command, [DEFAULT_ROOT]) for command in ("train", "audit", "sweep", "download")),
    ("report", [REPO_ROOT / "notebooks", REPO_ROOT / "report"])])
def test_a_default_folder_of_the_repository_is_named_by_its_path(command, folders, capsys):
    """Not as data/ or report/, which read as folders of the one the command runs in, as
    train's --out runs/lenet5 is: run elsewhere, the command reads and writes the repository's."""
    text = "".join(command_help(command, capsys).split())  # a path may break where a line does
    for folder in folders:
        assert str(folder) in text, f"{command} --help does not name its default {folder}"


def option_values(text):
    """``{option: the value it is shown with}`` in usage lines, for each option shown with one:
    ``--lr LR`` gives "LR", ``[--split {blocked,random}]`` and ``--split blocked|random`` both
    "blocked|random"."""
    tokens = text.split()
    values = {}
    for token, following in zip(tokens, [*tokens[1:], ""]):
        option = token.lstrip("[")
        if re.fullmatch(r"--[a-z][\w-]*", option) and following and not following.startswith(
                ("-", "[-", "|", "...")):
            values[option] = following.strip("[]{}").replace(",", "|")
    return values


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_command_line_block_names_every_option_of_each_command(command, capsys):
    """README's "Command line" lists each command with every option its --help lists, each
    value by the name its --help gives it (``--threads N`` in both, not ``--threads THREADS``
    in one), or by an example (``--seeds 0-4``)."""
    usage = command_help(command, capsys)
    usage = usage[:usage.index("\n\n")]  # the usage lines, before the description
    options = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", usage)) - {"--help"}
    text = README[README.index("## Command line"):]
    text = text[:text.index("\n```\n", text.index("```sh"))]
    lines, own = [], False
    for line in text.splitlines():  # the command's lines and the indented lines that go on with them
        own = line.startswith(f"python -m hw3lib {command} ") or own and line.startswith(" ")
        if own:
            lines.append(line.partition("#")[0])
    assert lines, f"README's command-line block has no line for {command}"
    named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", "\n".join(lines)))
    assert options <= named, f"{command}: README's command-line block lacks {sorted(options - named)}"
    shown = option_values("\n".join(lines))
    for option, value in option_values(usage).items():
        readme = shown.get(option, "")
        assert readme[:1].isdigit() or readme == value, f"{command}: README {option} {readme}, --help {value}"
