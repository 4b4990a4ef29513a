"""Optimizers on small problems (notebook 04): a 2-D test function, the path an optimizer
takes on it, the step sizes it takes for a given sequence of gradients, and the check that
the report's AdamGD is Adam with a schedule.

An optimizer is given as ``make_optimizer(params) -> optimizer``, e.g.
``lambda p: AdamGD(0.1, 0.9, 0.999, 1e-8, p)``; it is run on ``params = {"p": array}``
with ``grads = {"dp": ...}``, the interface of :mod:`hw3lib.optim`.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .checks import integer
from .optim import AdamGD, Optimizer
from .tables import Table


@dataclass(frozen=True)
class Objective:
    """A 2-D test function: ``f(x, y)`` works on arrays (for contour grids), ``grad(p)`` maps a
    point ``(2,)`` to its gradient ``(2,)``; ``minimum`` is the minimiser ``(x, y)``."""

    name: str
    f: Callable
    grad: Callable
    minimum: tuple


def quadratic(condition=20.0):
    """``f = (x^2 + condition * y^2) / 2``, an elongated bowl whose Hessian has condition
    number ``condition``; minimum at the origin."""
    if not condition >= 1:
        raise ValueError(f"condition must be >= 1, got {condition!r}")
    return Objective(f"quadratic, condition number {condition:g}",
                     lambda x, y: 0.5 * (x * x + condition * y * y),
                     lambda p: np.array([p[0], condition * p[1]]),
                     (0.0, 0.0))


def run_optimizer(make_optimizer, grad, start, steps):
    """Run ``steps`` updates from ``start (d,)`` with gradients ``grad(p) (d,)``; returns the
    path ``(steps + 1, d)``, float64, starting at ``start``. ``make_optimizer(params)`` builds
    the optimizer over the dict ``{"p": ...}`` it is given, e.g. ``lambda p: SGD(0.05, p)``
    (ValueError for an optimizer itself or anything not callable)."""
    steps = integer("steps", steps, 0)
    if not callable(make_optimizer) or isinstance(make_optimizer, Optimizer):
        raise ValueError(f"make_optimizer must build the optimizer over the params dict it is "
                         f"given, e.g. lambda p: SGD(0.05, p), got {make_optimizer!r}")
    params = {"p": np.array(start, dtype=np.float64)}
    optimizer = make_optimizer(params)
    path = [params["p"].copy()]
    for _ in range(steps):
        params = optimizer.update_params({"dp": np.asarray(grad(params["p"]), dtype=np.float64)})
        path.append(params["p"].copy())
    return np.array(path)


def path_table(objective, paths):
    """The paths of :func:`run_optimizer` on ``objective``, one line each under its name (the
    keys of ``paths``, a dict of ``(steps + 1, d)`` arrays of the same length): the length of
    the first step and ``f`` at the last point, as a fixed-width text table."""
    lengths = {len(path) for path in paths.values()}
    if len(lengths) != 1 or min(lengths) < 2:
        raise ValueError(f"paths must be one or more paths of the same number of steps (at least "
                         f"1), got {({name: len(path) - 1 for name, path in paths.items()})} steps")
    steps, width = lengths.pop() - 1, max(map(len, ["optimizer", *paths])) + 2
    lines = [f"{'optimizer':<{width}} {'first step':>10} {f'f after {steps} steps':>17}"]
    for name, path in paths.items():
        path = np.asarray(path, dtype=np.float64)
        lines.append(f"{name:<{width}} {np.linalg.norm(path[1] - path[0]):>10.3f} "
                     f"{objective.f(*path[-1]):>17.2e}")
    return "\n".join(lines)


def step_sizes(make_optimizer, gradients):
    """The update ``p_{t-1} - p_t`` at each step when the optimizer that ``make_optimizer``
    builds (as for :func:`run_optimizer`) is fed ``gradients (T, d)`` in turn (whatever ``p``
    is); returns ``(T, d)``."""
    gradients = np.asarray(gradients, dtype=np.float64)
    if gradients.ndim != 2:
        raise ValueError(f"gradients must have shape (T, d), got {gradients.shape}")
    feed = iter(gradients)
    path = run_optimizer(make_optimizer, lambda p: next(feed), np.zeros(gradients.shape[1]),
                         len(gradients))
    return -np.diff(path, axis=0)


def correction_factor(t, beta1=0.9, beta2=0.999):
    """``(1 - beta1^t) / sqrt(1 - beta2^t)`` at steps ``t`` (from 1; an int or an array): the
    step of Adam without bias correction over Adam's, epsilon aside, whatever the gradients."""
    t = np.asarray(t, dtype=np.float64)
    return (1 - beta1**t) / np.sqrt(1 - beta2**t)


@dataclass(frozen=True)
class CorrectionCheck:
    """:func:`check_bias_correction`'s result: the steps over ``lr`` of ``AdamGD`` without and
    with bias correction under a constant gradient, ``uncorrected (T,)`` and ``corrected
    (T,)``; the largest difference between ``uncorrected`` and :func:`correction_factor`
    (``constant_deviation``), and on random gradients, the largest relative difference
    between the ratio of the two optimizers' steps and that factor (``random_deviation``)."""

    uncorrected: np.ndarray
    corrected: np.ndarray
    constant_deviation: float
    random_deviation: float

    def table(self, steps):
        """The two step sizes at the steps ``steps`` (counted from 1), a :class:`Table`."""
        outside = [t for t in steps if not 1 <= t <= len(self.corrected)]
        if outside:
            raise ValueError(f"step(s) {outside} lie outside the {len(self.corrected)} steps checked "
                             f"(1 to {len(self.corrected)}): ask for those, or check more steps")
        return Table(["step / lr at step t", *map(str, steps)],
                     [(name, *(values[t - 1] for t in steps))
                      for name, values in (("AdamGD (report)", self.uncorrected),
                                           ("Adam", self.corrected))], digits=2)


def check_bias_correction(lr, beta1, beta2, epsilon, steps, rng, dims=5):
    """``AdamGD(..., bias_correction=False)`` (the report's formula) against ``AdamGD`` fed the
    same gradients for ``steps`` steps: a constant gradient, then ``(steps, dims)`` standard
    normal ones drawn from ``rng``; a :class:`CorrectionCheck`."""
    integer("steps", steps, 1)

    def make(bias_correction):
        return lambda params: AdamGD(lr, beta1, beta2, epsilon, params, bias_correction=bias_correction)

    constant = np.ones((steps, 1))
    uncorrected = step_sizes(make(False), constant)[:, 0] / lr  # AdamGD checks the settings first
    corrected = step_sizes(make(True), constant)[:, 0] / lr
    factor = correction_factor(np.arange(1, steps + 1), beta1, beta2)
    noisy = rng.standard_normal((steps, dims))
    ratio = step_sizes(make(False), noisy) / step_sizes(make(True), noisy)
    return CorrectionCheck(uncorrected, corrected, float(np.abs(uncorrected - factor).max()),
                           float(np.abs(ratio / factor[:, None] - 1).max()))


def torch_path(grad, start, steps, make_torch_optimizer):
    """:func:`run_optimizer` for a PyTorch optimizer, ``make_torch_optimizer([tensor])``, e.g.
    ``lambda ps: torch.optim.Adam(ps, lr=0.1)``: the path ``(steps + 1, d)`` in float64 with the
    same ``grad``. Needs PyTorch."""
    import torch

    p = torch.tensor(np.array(start, dtype=np.float64), requires_grad=True)
    optimizer = make_torch_optimizer([p])
    path = [p.detach().numpy().copy()]
    for _ in range(steps):
        p.grad = torch.from_numpy(np.asarray(grad(p.detach().numpy()), dtype=np.float64))
        optimizer.step()
        path.append(p.detach().numpy().copy())
    return np.array(path)
