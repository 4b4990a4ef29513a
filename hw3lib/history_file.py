"""The ``history.json`` that ``train`` writes beside a run's checkpoint: the epochs' columns,
the latest test record, and where the run diverged the error; whether it says the run diverged,
and what to do then (not ``--resume``, which diverges again)."""
import json

from .atomic import atomic_write


def write_history(path, history, evaluations=0, test=None, diverged=None):
    """Write ``history`` (fit's columns) to the JSON file ``path``, with the run's latest test
    record ``test`` (a :class:`~hw3lib.checkpoint.TestRecord`, or None: none yet) and its count
    of test evaluations as ``"test"``, kept while a --resume trains on; and where the run
    diverged after these epochs, the error's message ``diverged`` as ``"diverged"``
    (:func:`diverged` reads it back)."""
    obj = history if test is None else {**history, "test": dict(
        epoch=test.epoch, loss=test.loss, accuracy=test.accuracy, evaluations=evaluations)}
    if diverged is not None:
        obj = {**obj, "diverged": diverged}
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=1, allow_nan=False) + "\n").encode()))


def diverged(checkpoint, epochs):
    """The error that the ``history.json`` that ``train`` wrote beside ``checkpoint`` records
    of the run diverging after its ``epochs`` (the checkpoint's count: a later ``--resume``
    rewrote it otherwise); None where it records none, or cannot be read."""
    try:
        history = json.loads(checkpoint.with_name("history.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(history, dict) and len(history.get("epoch", ())) == epochs:
        return history.get("diverged")
    return None


def diverged_advice(lr):
    """What to do with a run that diverged at the learning rate ``lr``, as ``train`` and
    ``predict`` say it: not ``--resume``, which diverges again."""
    return ("`train --resume` would diverge again (the same batches from the same weights): train "
            f"afresh into another --out with a smaller --lr, e.g. --lr {lr / 10:g}")
