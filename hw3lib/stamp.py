"""The reproducibility stamp: what made a report or a run, as rows of a table (hw3lib's version
and commit, Python, NumPy, the platform, the data's SHA-256; a run's settings, classes, input,
model, BLAS and weights).
"""
import datetime
import hashlib
import os
import platform
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import __version__
from .download import dataset_sha256
from .engine import blas_description
from .folders import resolve_root
from .images import DataError
from .tables import Table


def _git(*args):
    """``git ARGS`` run in hw3lib's folder (in the checkout it comes from): its output."""
    return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def _git_commit():
    """The checkout's commit, and whether files differ from it."""
    try:
        changed = " with uncommitted changes" if _git("status", "--porcelain") else ""
        return _git("rev-parse", "--short=12", "HEAD") + changed
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def stamp_rows(executed, data_root=None, data_sha256=None):
    """``(what, value)`` rows of the export's own stamp: versions, commit, the SHA-256 of the
    data at ``data_root`` (no row when None; "not found" when no data is there) or, as given,
    ``data_sha256`` (the data the stored outputs were computed from), whether the notebooks were
    ``executed`` or their stored outputs used, time."""
    rows = [("hw3lib", f"{__version__}, commit {_git_commit()}"),
            ("Python, NumPy", f"{platform.python_version()}, {np.__version__}"),
            ("Platform", f"{platform.system()} {platform.machine()}")]
    if data_sha256 is not None:
        rows.append(("Dataset SHA-256", data_sha256))
    elif data_root is not None:
        try:
            rows.append(("Dataset SHA-256", dataset_sha256(data_root)))
        except DataError:
            rows.append(("Dataset SHA-256", "not found"))
    rows.append(("Notebooks", "executed from scratch by python -m hw3lib report" if executed
                 else "stored outputs (python -m hw3lib report --no-execute)"))
    rows.append(("Built", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return rows


def weights_sha256(model):
    """A SHA-256 over ``model``'s parameter arrays (names sorted, raw bytes): equal hashes,
    equal weights bit for bit."""
    digest = hashlib.sha256()
    for name, value in sorted(model.get_params().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _optimizer(config):
    """The optimizer of ``config`` in words: ``(which, its settings)``, two rows of the stamp, so
    that the table stays narrow enough to print at full size."""
    if config.optimizer == "sgd":
        return "SGD", f"learning rate {config.lr:g}, momentum {config.momentum:g}"
    which = ("Adam with bias correction (AdamGD, as torch.optim.Adam)" if config.bias_correction
             else "the report's AdamGD (no bias correction)")
    return which, f"learning rate {config.lr:g}, betas {config.beta1:g}/{config.beta2:g}, eps {config.eps:g}"


def _setting(key, value):
    """A model setting ``key`` as the stamp writes its ``value``: a size ``5x5``, another pair
    ``6/16``, else as it is."""
    if not isinstance(value, tuple):
        return str(value)
    return ("x" if key.endswith("size") else "/").join(map(str, value))


def model_text(model, config):
    """``model`` (a run's :class:`~hw3lib.model.LeNet5`, trained with ``config``) in words:
    ``"LeNet-5"``, or ``"LeNet-5 but conv_channels 8/32 (LeNet-5: 6/16)"`` naming each setting in
    which it differs from the LeNet5 that the defaults build for its channels, classes and size."""
    differences = replace(config, model={}).architecture_differences(model.config)
    changed = ", ".join(f"{key} {_setting(key, have)} (LeNet-5: {_setting(key, default)})"
                        for key, have, default in differences)
    return f"LeNet-5 but {changed}" if changed else "LeNet-5"


def _count(n, noun):
    """``"1 thread"``, ``"2 threads"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def stamp_table(result=None, config=None, *, environment=True, data_root=None):
    """The reproducibility stamp as a two-column :class:`Table`.

    With ``environment``: the rows the report's export writes itself (:func:`stamp_rows`:
    hw3lib version and git commit, Python and NumPy, platform, the SHA-256 of the data at
    ``data_root``, default ``$HW3_DATA``, then ``data/``). With a ``result`` of :func:`~hw3lib.train.fit` and its
    ``config``: the run's own rows, its seed, settings, classes, the input its model takes (size,
    mode) and the model (:func:`model_text`), BLAS library and threads, and the SHA-256 of its
    kept weights (:func:`weights_sha256`). The report's introduction quotes the ``Classes``,
    ``Images`` and ``Model`` rows of the run it stamps (:func:`hw3lib.report.introduction`)."""
    if (result is None) != (config is None) or (result is None and not environment):
        raise ValueError("stamp_table needs a result together with its config, or environment=True")
    rows = []
    if environment:
        rows += [row for row in stamp_rows(True, resolve_root(data_root))
                 if row[0] not in ("Notebooks", "Built")]
    if result is not None:
        rows += [("Seed", str(config.seed)),
                 *zip(("Optimizer", "Its settings"), _optimizer(config)),
                 ("Schedule", f"{config.epochs} epochs, batch {config.batch_size}, validation "
                              f"{config.val_fraction:g} ({config.split} split)"),
                 ("Classes", f"{len(result.classes)}: {', '.join(result.classes)}"),
                 ("Images", "{}x{}, mode {}, flips {}".format(
                     *result.model.config["input_size"], config.mode, "on" if config.hflip else "off")),
                 ("Model", model_text(result.model, config)),
                 ("BLAS", blas_description(threads=True)),
                 ("Threads", f"1 BLAS thread while training; {_count(os.cpu_count(), 'CPU core')}"),
                 ("Weights SHA-256", weights_sha256(result.model))]
    return Table(["item", "value"], rows)
