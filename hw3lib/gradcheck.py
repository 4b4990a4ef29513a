"""Finite-difference gradient checks shared by the tests and the notebooks."""
import numpy as np


def _check_float64(name, x, eps):
    """ValueError naming ``name`` unless ``x`` is a float64 NumPy array: an integer one would
    take no perturbation at all (a gradient of 0), a float32 one drowns it in rounding."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64):
        got = x.dtype if isinstance(x, np.ndarray) else f"a {type(x).__name__}"
        raise ValueError(f"gradcheck needs float64 arrays: {name} is {got}, whose rounding "
                         f"drowns the perturbations of eps={eps:g} (errors of 1e-2 for a right "
                         "gradient, or none taken at all by integers); build the layer with "
                         "dtype=np.float64 and pass x.astype(np.float64)")


def numerical_gradient(f, x, eps=1e-6):
    """Central differences of the scalar ``f()`` w.r.t. the float64 array ``x`` (perturbed in
    place and restored; ValueError for another), shape of ``x``."""
    _check_float64("x", x, eps)
    grad = np.zeros(x.shape, dtype=np.float64)
    # by index, not through x.reshape(-1): that is a copy for an x that is not C-contiguous
    # (Fortran order, transposed, flipped), whose perturbations f() would never see
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = f()
        x[i] = old - eps
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    """``||a - b|| / (||a|| + ||b||)`` (0 when both are 0) of two arrays of one shape
    (ValueError otherwise: a broadcast would compare other numbers, a gradient of the wrong
    shape would pass)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error compares arrays of one shape, got {a.shape} and {b.shape}: "
                         "a gradient must have the shape of what it is the gradient of")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def gradcheck(f, arrays, analytic, eps=1e-6):
    """Relative error of each analytic gradient against finite differences.

    ``f()`` returns a scalar loss that reads the arrays in ``arrays`` (a dict name -> array);
    ``analytic`` maps the same names to their gradients. Returns ``{name: relative error}``.
    The arrays must be float64: in float32 rounding drowns the perturbations of ``eps``.
    """
    for name, x in arrays.items():  # all of them before any work
        _check_float64(name, x, eps)
    return {name: relative_error(analytic[name], numerical_gradient(f, x, eps))
            for name, x in arrays.items()}


def gradcheck_layer(layer, x, seed=0, eps=1e-6):
    """Check a layer's ``dx`` and parameter gradients on the loss ``sum(forward(x) * r)``
    for an input ``x`` as the layer takes it (``(N, C, H, W)`` for a convolution or a pool,
    ``(N, D)`` for ``Dense``), ``r`` a fixed random array of the output's shape, in float64
    (ValueError otherwise). Returns ``{"x": err}`` and an entry per parameter (``{"x": err,
    "W": err, "b": err}`` for ``Conv2D`` and ``Dense``, ``{"x": err}`` for a layer without
    parameters), without ``"x"`` for a layer that skips its input gradient
    (``needs_input_grad = False``)."""
    r = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)

    def loss():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    dx = layer.backward(r)
    inputs = {} if dx is None else {"x": x}
    return gradcheck(loss, {**inputs, **layer.params}, {"x": dx, **layer.grads}, eps)
