"""How messages name a setting: the library's ``TrainConfig(NAME=VALUE)`` put as a command gives
it (``--image-size 64``), and the option of the train command that gives each setting.
"""
import re

from .model import KERNEL_ADVICE

# how the library's messages name a setting to change: TrainConfig(image_size=64), TrainConfig(mode='LA')
SETTING = re.compile(r"TrainConfig\((\w+)=([^)]*)\)")
# the option of the train command (and of audit, which shares some) that gives each setting
TRAIN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "seed": "--seed",
                 "split": "--split", "val_fraction": "--val-fraction", "mode": "--channels",
                 "image_size": "--image-size", "dtype": "--dtype"}


def phrase_settings(message, option):
    """``message`` with each setting it names as the library does, ``TrainConfig(NAME=VALUE)``,
    put as a command gives it: ``option(NAME, VALUE)`` (e.g. ``--image-size 64``), or as it
    was where ``option`` gives None (a setting the command has no option for)."""
    return SETTING.sub(lambda m: option(m[1], m[2].strip("'")) or m[0], message)


def phrased(message):
    """``message`` with the settings it names put as train's options (others as they are):
    ``TrainConfig(NAME=VALUE)`` as ``--option VALUE``, and a leading ``NAME must ...``
    (TrainConfig's check of a value) as ``--option must ...``; advice of a smaller kernel, which
    train has no option for (the model's settings are the sweep's and Python's), left out."""
    message = re.sub(r"^(\w+)(?= must )", lambda m: TRAIN_OPTIONS.get(m[1], m[1]), message)
    message = message.replace(KERNEL_ADVICE, "")
    return phrase_settings(message, lambda name, value: name in TRAIN_OPTIONS
                           and f"{TRAIN_OPTIONS[name]} {value}" or None)
