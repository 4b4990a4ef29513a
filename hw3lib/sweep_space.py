"""What a sweep runs (:mod:`hw3lib.sweep`): the search space over :class:`TrainConfig` fields
as Optuna distributions, the seeds, and the checks that refuse a bad setting before any work."""
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, fields, replace

import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, IntDistribution,
                                  distribution_to_json, json_to_distribution)

from .checks import is_int
from .config import MODEL_KEYS, TrainConfig

PRUNERS = ("percentile", "median", "none")
DATA_SETTINGS = ("mode", "image_size")  # swept settings that change how the data loads
# settings that change the validation split itself, the images every setting is scored on: not swept
VALIDATION_SETTINGS = ("split", "val_fraction")
# LeNet5 arguments that take a list (two channel counts, two widths): fixed for every run, not swept
LIST_MODEL_KEYS = ("conv_channels", "hidden")
# settings whose field name says little to a reader of a figure
LABELS = {"lr": "learning rate", "hflip": "random flips", "eps": "epsilon",
          "val_fraction": "validation fraction", "split": "validation split", "mode": "channel mode"}


def setting_label(name):
    """A swept setting's name for people: ``lr`` is "learning rate", ``hflip`` "random flips",
    ``model.kernel_size`` "kernel size" (underscores as spaces)."""
    return LABELS.get(name, name.removeprefix("model.").replace("_", " "))


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _check_name(name):
    names = [f.name for f in fields(TrainConfig) if f.name not in ("seed", "model", *VALIDATION_SETTINGS)]
    if name == "seed":
        raise ValueError("seed: seeds repeat every setting; give them as seeds (--seeds), not as a "
                         "swept setting")
    if name in VALIDATION_SETTINGS:
        why = ("the random split's images are near-copies of training frames and score highest"
               if name == "split" else "a larger share leaves fewer images to train on, a smaller "
               "one fewer to score with, and a noisier score wins a max more often")
        raise ValueError(
            f"{name}: a sweep scores every setting on the validation split, which {name} changes: "
            f"its values would be scored on different images ({why}), so validation cannot choose "
            f"between them. Fix it for every run, e.g. TrainConfig({name}="
            f"{getattr(TrainConfig, name)!r}), and compare splits with hw3lib.leakage")
    if name == "model.input_size":  # the model is built for the data's size: it would not fit
        raise ValueError("model.input_size: the model takes the images' size; to try other sizes, "
                         "sweep image_size, which resizes the images as they load, e.g. "
                         "image_size=28,32")
    if name.startswith("model.") and name[6:] in LIST_MODEL_KEYS:
        example = json.dumps({name[6:]: [4, 8]})
        raise ValueError(f"{name}: a sweep varies single values, and {name[6:]} is a list; fix it "
                         f"for every run in the base settings' model, e.g. --set 'model={example}'")
    keys = [key for key in MODEL_KEYS if key not in ("input_size", *LIST_MODEL_KEYS)]
    if name.startswith("model.") and name[6:] in keys:
        return
    if name not in names:
        raise ValueError(f"unknown setting {name!r}: sweep one of {names} or model.KEY with KEY in "
                         f"{keys}")


def distributions(space):
    """``space`` (``{name: values}``) as Optuna distributions, in its order: a list, tuple or
    range of numbers, strings or booleans becomes a ``CategoricalDistribution`` (a grid axis);
    an Optuna distribution is kept. Names are TrainConfig fields or ``model.KEY``."""
    out = {}
    for name, values in dict(space).items():
        _check_name(name)
        if isinstance(values, BaseDistribution):
            out[name] = values
            continue
        if not isinstance(values, (list, tuple, range)) or not values:
            raise ValueError(f"{name}: give a non-empty list of values (a grid) or an Optuna "
                             f"distribution such as FloatDistribution(1e-4, 1e-2, log=True), got "
                             f"{values!r}")
        values = [_plain(v) for v in values]
        for value in values:
            if not isinstance(value, (bool, int, float, str)):
                raise ValueError(f"{name}={value!r}: a swept value must be a number, a string or "
                                 "True/False")
        if len({json.dumps(v) for v in values}) < len(values):
            raise ValueError(f"{name} lists a value twice: {values}")
        out[name] = CategoricalDistribution(values)
    return out


def config_for(base, params, seed=None):
    """``base`` with the swept ``params`` (``model.KEY`` goes into its ``model`` dict) and
    ``seed``; a ValueError names the settings that TrainConfig refuses, and why."""
    fields_ = {k: v for k, v in params.items() if not k.startswith("model.")}
    model = {**base.model, **{k[6:]: v for k, v in params.items() if k.startswith("model.")}}
    try:
        return replace(base, **fields_, model=model, **({} if seed is None else {"seed": seed}))
    except ValueError as err:
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or f"seed={seed!r}"
        raise ValueError(f"{shown}: {err}") from None


def _values(dist):
    """The values ``dist`` can take, in order; None for a continuous range."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return range(dist.low, dist.high + 1, dist.step)
    if dist.step is None:
        return None
    return [dist.low + i * dist.step for i in range(round((dist.high - dist.low) / dist.step) + 1)]


def _ends(dist):
    """The values that stand for ``dist`` when checking: its choices, or its two ends."""
    return list(dist.choices) if isinstance(dist, CategoricalDistribution) else [dist.low, dist.high]


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: ``base`` settings, the ``space`` (name -> Optuna distribution), the
    ``seeds`` of every setting, ``trials`` (the number of sampled settings; None for a grid)
    and the ``pruner`` (one of :data:`PRUNERS`). :meth:`define` checks all of it."""

    base: TrainConfig
    space: dict
    seeds: tuple
    trials: int | None
    pruner: str

    @classmethod
    def define(cls, space, base=None, seeds=(0,), trials=None, pruner="percentile"):
        """A checked :class:`Sweep`: every grid setting (or every combination of a sampled
        range's ends) and seed is built as a TrainConfig, so nothing can fail later for its
        settings. ValueError names what is refused."""
        base = base if base is not None else TrainConfig()
        if not isinstance(base, TrainConfig):
            raise ValueError(f"base must be a TrainConfig, got {type(base).__name__}")
        space = distributions(space)
        if is_int(seeds) or isinstance(seeds, str):
            raise ValueError(f"seeds must be a list of seeds, e.g. range(3) or [0, 1, 2], got "
                             f"{seeds!r}" + (f": {seeds} seeds are range({seeds})" if is_int(seeds) else ""))
        seeds = tuple(_plain(s) for s in seeds)
        if not seeds or len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds must be a non-empty list of different seeds, got {list(seeds)}")
        for seed in seeds:
            config_for(base, {}, seed)
        grid = all(isinstance(d, CategoricalDistribution) for d in space.values())
        if grid and trials is not None:
            raise ValueError("trials: a grid runs each of its settings once; trials counts the "
                             "settings of a sampled search (give a range, e.g. lr=1e-4:1e-2:log)")
        if not grid and not (is_int(trials) and trials >= 1):
            given = "none given" if trials is None else f"got {trials!r}"
            raise ValueError(f"trials: a sampled search needs the number of settings to try "
                             f"(an integer >= 1), {given}")
        values = [_values(d) for d in space.values()]
        if not grid and None not in values and math.prod(map(len, values)) < trials:
            raise ValueError(f"trials: the space holds {math.prod(map(len, values))} settings in all, "
                             f"fewer than the {trials} trials asked for; try fewer, or list the values as a grid, "
                             "which runs each setting once")
        if pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {list(PRUNERS)}, got {pruner!r}")
        sweep = cls(base, space, seeds, trials, pruner)
        sweep.corners()  # TrainConfig checks each as it builds it
        return sweep

    def corners(self):
        """``[(setting, config), ...]`` for each setting that stands for the space when
        checking (a grid's every setting, a range at its two ends), each ``config`` built, and so
        checked, by :class:`TrainConfig`."""
        settings = (dict(zip(self.space, values))
                    for values in itertools.product(*map(_ends, self.space.values())))
        return [(setting, config_for(self.base, setting)) for setting in settings]

    @property
    def grid(self):
        """True for a grid (no ``trials``), False for a sampled search."""
        return self.trials is None

    def settings(self):
        """The grid's settings (dicts name -> value) in order; a sampled search has none up front."""
        if not self.grid:
            return []
        return [dict(zip(self.space, values))
                for values in itertools.product(*(d.choices for d in self.space.values()))]

    def every_setting(self):
        """Every setting the space holds (dicts name -> value), lazily, in order; None when a
        range is continuous."""
        values = [_values(d) for d in self.space.values()]
        if None in values:
            return None
        return (dict(zip(self.space, combination)) for combination in itertools.product(*values))

    def data_config(self):
        """The settings to check the data with before a sweep: ``base``, with each swept
        setting that changes how the data loads (:data:`DATA_SETTINGS`) at its first value:
        images of mixed sizes load when ``image_size`` is swept, though ``base`` has none."""
        return config_for(self.base, {name: _ends(dist)[0] for name, dist in self.space.items()
                                      if name in DATA_SETTINGS})

    @property
    def total(self):
        """How many runs the sweep trains: settings times seeds."""
        return (len(self.settings()) if self.grid else self.trials) * len(self.seeds)

    def to_json(self):
        """The definition as a JSON-ready dict (stored with the study)."""
        return dict(base=self.base.to_dict(), seeds=list(self.seeds), trials=self.trials,
                    pruner=self.pruner,
                    space={name: json.loads(distribution_to_json(d)) for name, d in self.space.items()})

    @classmethod
    def from_json(cls, d):
        """The sweep that :meth:`to_json` gave ``d`` of."""
        space = {name: json_to_distribution(json.dumps(j)) for name, j in d["space"].items()}
        return cls(TrainConfig(**d["base"]), space, tuple(d["seeds"]), d["trials"], d["pruner"])

    @property
    def name(self):
        """The default study name: ``sweep-`` and 12 hex digits of a hash of the definition but
        its ``trials``, so that more trials go on with the same study
        (:func:`~hw3lib.sweep_study.open_study`); a grid's, None, hashed as ever."""
        text = json.dumps({**self.to_json(), "trials": None}, sort_keys=True)
        return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def pruner_for_study(self):
        """The Optuna pruner: ``"percentile"`` stops a run whose best so far is in the bottom
        quarter of the done (COMPLETE) runs at the same epoch (Optuna's ``PercentilePruner(75)``,
        which keeps the top three quarters), ``"median"`` one in the bottom half, after 4 done
        runs (pruned and failed ones do not count) and a quarter of the epochs (and never at a
        run's last epoch, see :func:`run_trial`); none with a single setting (its seeds would
        only prune each other)."""
        settings = len(self.settings()) if self.grid else self.trials
        if self.pruner == "none" or settings < 2:
            return optuna.pruners.NopPruner()
        warmup = -(-self.base.epochs // 4)  # Optuna prunes from this epoch on: a quarter done
        percentile = 75.0 if self.pruner == "percentile" else 50.0  # the share of runs kept
        return optuna.pruners.PercentilePruner(percentile, n_startup_trials=4, n_warmup_steps=warmup)
