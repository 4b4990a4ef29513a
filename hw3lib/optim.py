"""Optimizers with the report's interface: ``update_params(grads) -> params``.

``params`` is the model's dict of arrays (``{"W1": ..., "b1": ...}``); ``grads`` is keyed
``"d" + name``. Parameters are updated in place, so the arrays the model holds change too,
and the dict is returned for the report's ``model.set_params(params)``.
"""
import math
from collections.abc import Mapping

import numpy as np

from .checks import is_number

FLUSH_EVERY = 16  # steps between flushes of the optimizers' subnormal state (flush_subnormals)
PIECE = 1 << 16  # elements of a parameter that a step updates at a time (pieces)


def _check_positive(name, value):
    if not (is_number(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_unit(name, value):
    if not (is_number(value) and 0 <= value < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _listed(names):
    """``names`` joined by commas, the first three of them."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def _state_problem(state, own):
    """What keeps ``state`` from loading into an optimizer whose :meth:`Optimizer.state_dict`
    is ``own``, in words, or None: names missing or unexpected, another shape (arrays are
    copied as they are, never broadcast), arrays not of numbers, a step count ``t`` that is
    no integer >= 0."""
    missing = [key for key in own if key not in state]
    extra = [key for key in state if key not in own]
    if missing or extra:
        return "; ".join(f"{words} {_listed(keys)}" for words, keys in
                         (("it lacks", missing), ("it has the unexpected", extra)) if keys)
    t = np.asarray(state["t"])
    if not (t.shape == () and t.dtype.kind in "iu" and t >= 0):
        return f"its step count t must be an integer >= 0, got {t.tolist()!r}"
    for key, want in own.items():
        got = np.asarray(state[key])
        if got.shape != want.shape:
            return f"{key} has shape {got.shape}, where the parameters need {want.shape}"
        if got.dtype.kind not in "iuf":
            return f"{key} holds {got.dtype} values, not numbers"
    return None


class Optimizer:
    """Base class: holds ``params``, checks the ``grads`` dict against them and runs a step.

    A step updates each parameter from its gradient elementwise, so it can be done in pieces:
    :meth:`update_params` takes an optional ``spread(work, arrays)`` that calls ``work(key,
    part)`` for parts covering every array of ``arrays`` (``part`` a slice of its flattened
    elements, or None for all of it), in any order or side by side, as
    :meth:`hw3lib.parallel.SplitBatch.spread` does over threads; the result is the same, bit
    for bit."""

    def __init__(self, lr, params):
        _check_positive("lr", lr)
        if not isinstance(params, dict):
            raise ValueError(f"params must be the model's dict of arrays, model.get_params(), got "
                             f"a {type(params).__name__}")
        for key, p in params.items():
            if not isinstance(p, np.ndarray):
                raise ValueError(f"params[{key!r}] must be a NumPy array, the model's own, got a "
                                 f"{type(p).__name__}: the optimizer updates the arrays in place")
            if p.dtype.kind != "f":  # a step's fractions do not fit: NumPy refuses deep inside it
                raise ValueError(f"params[{key!r}] must be an array of floats, the model's own, got "
                                 f"{p.dtype} values; convert it with np.asarray(..., dtype=np.float32)")
            if not p.flags.writeable:  # else the first step failed halfway, its state updated
                raise ValueError(f"params[{key!r}] is read-only, but the optimizer updates the arrays "
                                 "in place: pass the model's own, model.get_params(), or a copy, np.array(...)")
        self.lr, self.params, self.t = float(lr), params, 0

    def _grad(self, grads, key):
        try:
            g = grads["d" + key]
        except KeyError:
            raise KeyError(f"grads has no entry 'd{key}' for parameter '{key}'; "
                           f"got keys {sorted(grads)}") from None
        if not isinstance(g, np.ndarray):
            raise ValueError(f"grad 'd{key}' must be a NumPy array, as model.backward returns, got "
                             f"a {type(g).__name__}; convert it with np.asarray")
        if g.shape != self.params[key].shape:
            raise ValueError(f"grad 'd{key}' has shape {g.shape}, parameter has {self.params[key].shape}")
        return np.ascontiguousarray(g)  # read in pieces of its flattened elements

    def update_params(self, grads, spread=None):
        """One step: every parameter updated in place from ``grads`` (keyed ``"d" + name``),
        in the pieces that ``spread`` gives (see the class docstring; default: :func:`in_turn`);
        returns ``params``. ValueError for ``grads`` that is not a dict or holds a gradient that
        is not an array of its parameter's shape, KeyError for one missing."""
        if not isinstance(grads, dict):
            raise ValueError(f"grads must be the dict of gradients that model.backward returns, "
                             f"keyed 'd' + each parameter's name, got a {type(grads).__name__}")
        grads = {key: self._grad(grads, key) for key in self.params}
        self.t += 1
        constants = self._constants()
        (spread or in_turn)(lambda key, part: self._update(key, grads[key], part, *constants),
                            self.params)
        return self.params

    def _constants(self):
        """This step's scalars, passed to every :meth:`_update` call."""
        return ()

    def _update(self, key, g, part, *constants):
        """Update ``params[key]`` (the elements ``part`` of it) from its gradient ``g``."""
        raise NotImplementedError

    def state_dict(self):
        """Optimizer state as a flat dict of arrays (for ``.npz`` checkpoints): the step count
        ``t`` and the optimizer's own state arrays themselves, not copies."""
        return {"t": np.array(self.t)}

    def load_state_dict(self, state):
        """Copy ``state``, a :meth:`state_dict` of the same kind of optimizer over parameters
        of the same names and shapes, into this one; ValueError naming what does not fit, with
        nothing changed."""
        own, kind = self.state_dict(), type(self).__name__
        if not isinstance(state, Mapping):  # a path's letters were named as unexpected arrays
            raise ValueError(f"state must be the dict of arrays that {kind}.state_dict() returns (or "
                             f"np.load of an .npz of it), got a {type(state).__name__}")
        problem = _state_problem(state, own)
        if problem:
            raise ValueError(f"the optimizer state does not fit this {kind}: {problem}. Load the "
                             f"state_dict() of another {kind} over the same parameters")
        self.t = int(state["t"])
        for key, array in own.items():
            if key != "t":
                np.copyto(array, state[key])


def in_turn(work, arrays):
    """The default ``spread`` of :meth:`Optimizer.update_params`: ``work(key, part)`` for
    every key of ``arrays``, in turn, each array in the :func:`pieces` of its elements."""
    for key, a in arrays.items():
        for part in pieces(a):
            work(key, part)


def pieces(a, part=None):
    """The elements ``part`` of ``a`` flattened (a slice; None: all of them) as consecutive
    slices of at most ``PIECE`` elements; ``[None]`` (whole) for all of a small array or of
    one that is not C-contiguous. A step runs a dozen elementwise passes over each piece of a
    parameter, its gradient and its state, which in pieces of this size stay in the cache
    from one pass to the next: Adam's step on the 1.6 million weights of the first dense layer
    at 3x128x128 took 4.9-5.0 ms in pieces of 2^15 or 2^16 elements, 7.1 ms whole, and 5.3 and
    6.4 ms in pieces of 2^14 and 2^13 (medians of 22 steps, inside the training loop, on an
    Intel Xeon); at 3x32x32, where every array is smaller, the same."""
    if part is None:
        if a.size <= PIECE or not a.flags.c_contiguous:
            return [None]
        part = slice(0, a.size)
    return [slice(i, min(part.stop, i + PIECE)) for i in range(part.start, part.stop, PIECE)]


def piece(a, part):
    """The elements ``part`` (a slice; None: all) of ``a`` flattened, as a view: a ValueError
    for a slice of an array that flattens only into a copy (one not C-contiguous), whose
    update would be lost. (Not ``np.reshape(a, -1, copy=False)``: NumPy 2.0, which the
    package allows, has no ``copy`` there.)"""
    if part is None:
        return a
    if not a.flags.c_contiguous:
        raise ValueError(f"a piece of an array of shape {a.shape} and strides {a.strides}: it "
                         "flattens only into a copy, whose update would be lost; pass it whole (None)")
    return a.reshape(-1)[part]


def flush_subnormals(*arrays):
    """Set the subnormal numbers of ``arrays`` (below ``np.finfo(dtype).tiny``) to zero, in
    place, with no arithmetic on them. A moment whose gradients stay zero (a dead ReLU's
    weights) decays by a constant factor each step, through 150 steps of subnormal numbers
    at Adam's ``b1 = 0.9``, and Intel CPUs compute with subnormal numbers many times slower:
    after the report's 24 epochs 18% of ``m["W3"]`` was subnormal, and Adam's step took 0.82
    ms instead of 0.36. The optimizers flush their state every ``FLUSH_EVERY`` steps; the
    weights move by less than ``lr * tiny / eps`` either way, far below their float32 ulp."""
    for a in arrays:
        np.copyto(a, 0, where=np.abs(a) < np.finfo(a.dtype).tiny)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``:
    ``v = momentum * v + g``; ``p -= lr * v``.

    ``params``: the model's dict of arrays (``model.get_params()``), which
    :meth:`update_params` updates in place. ValueError for an ``lr`` that is not a positive
    number, a ``momentum`` outside [0, 1), or ``params`` other than a dict of writable float
    NumPy arrays."""

    def __init__(self, lr, params, momentum=0.0):
        super().__init__(lr, params)
        _check_unit("momentum", momentum)
        self.momentum = float(momentum)
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()}

    def _update(self, key, g, part):
        p, g = piece(self.params[key], part), piece(g, part)
        if self.momentum:
            v = piece(self.velocity[key], part)
            v *= self.momentum
            v += g
            g = v
        p -= self.lr * g
        if self.momentum and self.t % FLUSH_EVERY == 0:
            flush_subnormals(g)  # the velocity

    def state_dict(self):
        return {**super().state_dict(), **{f"velocity.{k}": v for k, v in self.velocity.items()}}


class AdamGD(Optimizer):
    """Adam. With the moments ``m = b1 m + (1 - b1) g`` and ``v = b2 v + (1 - b2) g^2``:

    - ``bias_correction=True`` (default, equal to ``torch.optim.Adam``):
      ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``;
    - ``bias_correction=False``: the report's formula ``p -= lr * m / (sqrt(v) + eps)``.

    ``b1, b2, eps`` are ``beta1, beta2, epsilon``; ``params``: the model's dict of arrays
    (``model.get_params()``), which :meth:`update_params` updates in place. ValueError for an
    ``lr`` or ``epsilon`` that is not a positive number, betas outside [0, 1), or ``params``
    other than a dict of writable float NumPy arrays.
    """

    def __init__(self, lr, beta1, beta2, epsilon, params, bias_correction=True):
        super().__init__(lr, params)
        _check_unit("beta1", beta1)
        _check_unit("beta2", beta2)
        _check_positive("epsilon", epsilon)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        if not isinstance(bias_correction, (bool, np.bool_)):
            raise ValueError(f"bias_correction must be True or False, got {bias_correction!r}")
        self.bias_correction = bool(bias_correction)
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def _constants(self):
        step, root_v_scale = self.lr, 1.0
        if self.bias_correction:
            step = self.lr / (1 - self.beta1**self.t)
            root_v_scale = 1.0 / math.sqrt(1 - self.beta2**self.t)
        # step * m / (sqrt(v) * scale + eps) == (step / scale) * m / (sqrt(v) + eps / scale):
        # one whole-array operation fewer per parameter
        return step / root_v_scale, self.epsilon / root_v_scale

    def _update(self, key, g, part, step, eps):
        b1, b2 = self.beta1, self.beta2
        p, m, v, g = (piece(a, part) for a in (self.params[key], self.m[key], self.v[key], g))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        update = np.sqrt(v)
        update += eps
        np.divide(m, update, out=update)  # in place: no temporary arrays
        update *= step
        p -= update
        if self.t % FLUSH_EVERY == 0:
            flush_subnormals(m, v)

    def state_dict(self):
        return {**super().state_dict(),
                **{f"m.{k}": a for k, a in self.m.items()},
                **{f"v.{k}": a for k, a in self.v.items()}}
