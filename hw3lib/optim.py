"""Optimizers with the report's interface: ``update_params(grads) -> params``.

``params`` is the model's dict of arrays (``{"W1": ..., "b1": ...}``); ``grads`` is keyed
``"d" + name``. Parameters are updated in place, so the arrays the model holds change too,
and the dict is returned for the report's ``model.set_params(params)``.
"""
import math

import numpy as np


def _check_positive(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_unit(name, value):
    if not (isinstance(value, (int, float, np.floating)) and 0 <= value < 1):
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


class Optimizer:
    """Base class: holds ``params`` and checks the ``grads`` dict against them."""

    def __init__(self, lr, params):
        _check_positive("lr", lr)
        self.lr, self.params, self.t = float(lr), params, 0

    def _grad(self, grads, key):
        try:
            g = grads["d" + key]
        except KeyError:
            raise KeyError(f"grads has no entry 'd{key}' for parameter '{key}'; "
                           f"got keys {sorted(grads)}") from None
        if g.shape != self.params[key].shape:
            raise ValueError(f"grad 'd{key}' has shape {g.shape}, parameter has {self.params[key].shape}")
        return g

    def state_dict(self):
        """Optimizer state as a flat dict of arrays (for ``.npz`` checkpoints)."""
        return {"t": np.array(self.t)}

    def load_state_dict(self, state):
        self.t = int(state["t"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD``:
    ``v = momentum * v + g``; ``p -= lr * v``."""

    def __init__(self, lr, params, momentum=0.0):
        super().__init__(lr, params)
        _check_unit("momentum", momentum)
        self.momentum = float(momentum)
        self.velocity = {k: np.zeros_like(p) for k, p in params.items()}

    def update_params(self, grads):
        self.t += 1
        for key, p in self.params.items():
            g = self._grad(grads, key)
            if self.momentum:
                v = self.velocity[key]
                v *= self.momentum
                v += g
                g = v
            p -= self.lr * g
        return self.params

    def state_dict(self):
        return {**super().state_dict(), **{f"velocity.{k}": v for k, v in self.velocity.items()}}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for k, v in self.velocity.items():
            v[...] = state[f"velocity.{k}"]


class AdamGD(Optimizer):
    """Adam. With the moments ``m = b1 m + (1 - b1) g`` and ``v = b2 v + (1 - b2) g^2``:

    - ``bias_correction=True`` (default, equal to ``torch.optim.Adam``):
      ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``, ``v_hat = v / (1 - b2^t)``;
    - ``bias_correction=False``: the report's formula ``p -= lr * m / (sqrt(v) + eps)``.
    """

    def __init__(self, lr, beta1, beta2, epsilon, params, bias_correction=True):
        super().__init__(lr, params)
        _check_unit("beta1", beta1)
        _check_unit("beta2", beta2)
        _check_positive("epsilon", epsilon)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.bias_correction = bool(bias_correction)
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}

    def update_params(self, grads):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step, root_v_scale = self.lr, 1.0
        if self.bias_correction:
            step = self.lr / (1 - b1**self.t)
            root_v_scale = 1.0 / math.sqrt(1 - b2**self.t)
        # step * m / (sqrt(v) * scale + eps) == (step / scale) * m / (sqrt(v) + eps / scale):
        # one whole-array operation fewer per parameter
        step, eps = step / root_v_scale, self.epsilon / root_v_scale
        for key, p in self.params.items():
            g, m, v = self._grad(grads, key), self.m[key], self.v[key]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            update = np.sqrt(v)
            update += eps
            np.divide(m, update, out=update)  # in place: no temporary arrays
            update *= step
            p -= update
        return self.params

    def state_dict(self):
        return {**super().state_dict(),
                **{f"m.{k}": a for k, a in self.m.items()},
                **{f"v.{k}": a for k, a in self.v.items()}}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for k in self.params:
            self.m[k][...] = state[f"m.{k}"]
            self.v[k][...] = state[f"v.{k}"]
