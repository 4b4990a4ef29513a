"""The report's training loop, LeNet5's behaviour, the loss and the optimizers' contracts."""
import json
import re

import numpy as np
import pytest

from hw3lib import (SGD, AdamGD, Conv2D, CrossEntropyLoss, Dense, Flatten, LeNet5, MaxPool2D,
                    ReLU, Sequential, Tanh, optim, softmax)
from hw3lib import model as model_module
from hw3lib.config import TrainConfig

RNG = np.random.default_rng


def report_loop(model, X, y, lr, steps, batch_size):
    """The report's loop, verbatim, over ``steps`` batches; returns the losses."""
    cost = CrossEntropyLoss()
    optimizer = AdamGD(lr=lr, beta1=0.9, beta2=0.999, epsilon=1e-8, params=model.get_params())
    losses = []
    for step in range(steps):
        i = (step * batch_size) % len(X)
        X_batch, y_batch = X[i:i + batch_size], y[i:i + batch_size]
        y_pred = model.forward(X_batch)
        loss = cost.get(y_pred, y_batch)
        grads = model.backward(y_pred, y_batch)
        params = optimizer.update_params(grads)
        model.set_params(params)
        losses.append(loss)
    return losses


def separable_data(n, channels=1, seed=0):
    """Random images whose class sets the mean brightness of one quadrant."""
    rng = RNG(seed)
    y = rng.integers(0, 3, n)
    X = rng.random((n, channels, 32, 32), dtype=np.float32) * 0.5
    for k in range(3):
        X[y == k, :, (k % 2) * 16:(k % 2) * 16 + 16, (k // 2) * 16:(k // 2) * 16 + 16] += 0.5
    return X, y


def test_report_loop_runs_and_the_loss_falls():
    X, y = separable_data(96)
    losses = report_loop(LeNet5(seed=0), X, y, lr=2e-3, steps=60, batch_size=32)
    assert np.mean(losses[-6:]) < 0.5 * np.mean(losses[:6])


def test_twenty_samples_are_overfitted_to_full_accuracy():
    X, y = RNG(1).random((20, 4, 32, 32), dtype=np.float32), np.arange(20) % 3
    model = LeNet5(in_channels=4, seed=1)
    report_loop(model, X, y, lr=2e-3, steps=150, batch_size=20)
    assert (model.predict(X) == y).mean() == 1.0


def test_fresh_model_loss_is_close_to_log_num_classes():
    X, y = RNG(2).random((64, 1, 32, 32), dtype=np.float32), RNG(3).integers(0, 3, 64)
    loss = CrossEntropyLoss().get(LeNet5(seed=4).forward(X), y)
    assert abs(loss - np.log(3)) < 0.05


def test_float32_stays_float32_and_float64_stays_float64():
    for dtype in (np.float32, np.float64):
        model = LeNet5(seed=0, dtype=dtype)
        X, y = RNG(0).random((4, 1, 32, 32)).astype(dtype), np.array([0, 1, 2, 0])
        p = model.forward(X)
        grads = model.backward(p, y)
        assert p.dtype == dtype and all(g.dtype == dtype for g in grads.values())
        params = AdamGD(1e-3, 0.9, 0.999, 1e-8, model.get_params()).update_params(grads)
        assert all(v.dtype == dtype for v in params.values())


def test_images_in_another_float_dtype_are_taken_in_the_models():
    """A float32 model ran float64 images' whole pass in float64 (the layers promote), about
    twice the time, and gave float64 probabilities and gradients."""
    X = RNG(0).random((4, 1, 32, 32), dtype=np.float32)  # the same numbers in either dtype
    y = np.array([0, 1, 2, 0])
    for dtype, other in ((np.float32, np.float64), (np.float64, np.float32)):
        model = LeNet5(seed=0, dtype=dtype)
        p = model.forward(X.astype(dtype))
        grads = model.backward(p, y)
        p_other = model.forward(X.astype(other))
        assert p_other.dtype == dtype and np.array_equal(p_other, p)
        assert all(np.array_equal(g, grads[k]) and g.dtype == dtype
                   for k, g in model.backward(p_other, y).items())


def test_a_sequential_of_float32_and_float64_layers_is_refused_naming_a_layer_of_each():
    """It ran in float64, the float32 layers' gradients float64, and its PyTorch twin (in the
    first weights' dtype) in float32."""
    conv, dense = Conv2D(1, 2, 3, rng=0), Dense(72, 2, rng=0, dtype=np.float64)
    with pytest.raises(ValueError, match=re.escape(
            f"the layers' weights mix float32 ({conv!r}) and float64 ({dense!r}): a model computes "
            "in one dtype. Fix: build every layer with the same dtype, e.g. dtype=np.float64 on each")):
        Sequential([conv, ReLU(), Flatten(), dense], (1, 8, 8))


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = LeNet5(seed=5).get_params(), LeNet5(seed=5).get_params(), LeNet5(seed=6).get_params()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])


def test_weights_are_drawn_uniformly_within_one_over_the_root_of_the_fan_in():
    """PyTorch's default initialisation, as LeNet5's docstring says: every weight and bias of
    a layer in U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C kh kw for a convolution (not kh
    kw), the input width for a dense layer; the weights fill that range."""
    model = LeNet5(in_channels=3, seed=0)
    for layer in model.param_layers:
        W, b = layer.params["W"], layer.params["b"]
        bound = 1 / np.sqrt(W[0].size)  # C * kh * kw, or in_features
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound, layer
        assert np.abs(W).max() > 0.95 * bound, layer  # 252 weights or more: the range is filled
        assert np.abs(W).mean() == pytest.approx(bound / 2, rel=0.1), layer


def test_lenet5_layout_and_summary():
    model = LeNet5(in_channels=4)
    shapes = {k: v.shape for k, v in model.get_params().items()}
    assert shapes == {"W1": (6, 4, 5, 5), "b1": (6,), "W2": (16, 6, 5, 5), "b2": (16,),
                      "W3": (120, 400), "b3": (120,), "W4": (84, 120), "b4": (84,),
                      "W5": (3, 84), "b5": (3,)}
    rows = model.summary()
    assert rows[-1][1] == (3,) and sum(r[2] for r in rows) == model.num_params() == 61_561


def test_lenet5_variants_and_bad_configurations():
    assert LeNet5(activation="tanh", pooling="avg", input_size=(28, 36)).forward(
        np.zeros((2, 1, 28, 36), np.float32)).shape == (2, 3)
    with pytest.raises(ValueError, match="does not fit 16x16 inputs: it needs at least 28 pixels a side"):
        LeNet5(kernel_size=9, input_size=16)
    LeNet5(kernel_size=9, input_size=28)
    for side in (15, (15, 40), (40, 15)):  # the second pool's input is 1 pixel high or wide
        with pytest.raises(ValueError, match=r"it needs at least 16 pixels a side.*TrainConfig\(image_size=16\)"):
            LeNet5(input_size=side)
    LeNet5(input_size=16)
    with pytest.raises(ValueError, match="activation"):
        LeNet5(activation="gelu")
    with pytest.raises(ValueError, match="expects input"):
        LeNet5(in_channels=1).forward(np.zeros((2, 4, 32, 32), np.float32))


def test_backward_refuses_probabilities_of_another_pass_and_takes_a_copy_of_the_last():
    """The layers keep only the last pass's activations: after a forward, predict or logits on
    other images, the first pass's probabilities would give silently wrong gradients."""
    model, y = LeNet5(seed=0, dtype=np.float64), np.array([0, 1, 2, 0])
    Xa, Xb = RNG(0).standard_normal((2, 4, 1, 32, 32))
    expected = {k: g.copy() for k, g in model.backward(model.forward(Xa), y).items()}
    for other in (model.predict, model.forward, model.logits):
        p = model.forward(Xa)
        other(Xb)
        with pytest.raises(ValueError, match="forward, predict or logits ran on other images "
                                             "since.*Fix: run forward on this batch right before"):
            model.backward(p, y)
    grads = model.backward(model.forward(Xa).copy(), y)
    assert all(np.array_equal(grads[k], expected[k]) for k in expected)


def test_backward_before_any_pass_says_what_to_run_first():
    from hw3lib import Dense
    from hw3lib.model import Sequential
    with pytest.raises(ValueError, match="LeNet5.backward called before forward: run forward"):
        LeNet5().backward(np.full((1, 3), 1 / 3, np.float32), [0])
    with pytest.raises(ValueError, match="Sequential.backward_logits called before logits: run "
                                         "logits"):
        Sequential([Dense(3, 2, rng=0)], (3,)).backward_logits(np.zeros((1, 2)))


def test_set_params_rejects_other_shapes_and_names():
    model = LeNet5()
    params = {k: v.copy() for k, v in model.get_params().items()}
    params["W3"] = np.zeros((120, 401), np.float32)
    with pytest.raises(ValueError, match=r"W3: expected \(120, 400\)"):
        model.set_params(params)
    with pytest.raises(ValueError, match="names differ"):
        model.set_params({"W1": params["W1"]})
    with pytest.raises(ValueError, match=r"params must be a dict of arrays keyed W1, b1, ..., as "
                                         r"get_params returns it, got a NoneType"):
        model.set_params(None)  # failed in set(None)


def test_set_params_given_a_checkpoints_arrays_names_the_loader(tmp_path):
    """set_params(dict(np.load(checkpoint))) listed the names that differ, and no way to load it."""
    model = LeNet5()
    own = model.get_params()
    arrays = {"meta": np.array("{}"), "mean": np.zeros(1), **{f"{group}.{k}": v for k, v in own.items()
                                                             for group in ("params", "best")}}
    with pytest.raises(ValueError, match=r"names differ: .*: these are a checkpoint's arrays. Fix: "
                                         r"hw3lib.checkpoint.load_checkpoint\(path, model\) loads"):
        model.set_params(arrays)
    with pytest.raises(ValueError) as err:
        model.set_params({"W1": own["W1"]})
    assert "checkpoint" not in str(err.value)


def test_set_params_takes_the_npz_file_that_np_savez_of_get_params_wrote(tmp_path):
    """A model of one's own, which fit's checkpoints do not take, saved by hand: set_params
    refused np.load's file ('got a NpzFile')."""
    model, other = (Sequential([Flatten(), Dense(16, 3, rng=seed)], (1, 4, 4)) for seed in (0, 1))
    np.savez(tmp_path / "weights.npz", **model.get_params())
    with np.load(tmp_path / "weights.npz") as saved:
        other.set_params(saved)
    for key, value in model.get_params().items():
        np.testing.assert_array_equal(other.get_params()[key], value)


def test_loss_finite_for_underflowing_probabilities_and_one_hot_labels():
    cost = CrossEntropyLoss()
    for dtype in (np.float32, np.float64):
        p = softmax(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype))
        assert np.isfinite(p).all()
        loss = cost.get(p, np.array([1, 0]))
        assert loss == pytest.approx(-np.log(np.finfo(dtype).tiny))  # the bound; PyTorch: 1e4
        assert cost.get(p, np.eye(3, dtype=dtype)[[1, 0]]) == loss
    with pytest.raises(ValueError, match=r"lie in \[0, 2\]"):
        cost.get(softmax(np.zeros((2, 3))), np.array([0, 3]))


def test_labels_of_more_classes_than_the_model_gives_scores_name_its_last_layer():
    model = Sequential([Flatten(), Dense(16, 2, rng=0)], (1, 4, 4))
    X, y = RNG(0).random((4, 1, 4, 4)).astype(np.float32), np.array([0, 1, 2, 0])
    probs = model.forward(X)
    words = ("labels must lie in [0, 1], got min 0 max 2: the model gives 2 class scores. Fix: one "
             "output per class, its last layer e.g. Dense(..., 3)")
    for call in (CrossEntropyLoss().get, model.backward):
        with pytest.raises(ValueError, match=re.escape(words)):
            call(probs, y)
    with pytest.raises(ValueError, match=r"got min -1 max 1$"):  # no model to fix for these
        CrossEntropyLoss().get(probs, y - 1)


def test_loss_refuses_n_by_k_labels_that_are_no_one_hot_rows():
    """They gave a loss and a gradient of other numbers without a word (5.0s: 18.6)."""
    p = softmax(np.zeros((2, 3)))
    for labels, words in ((np.full((2, 3), 5.0), "summing from 15 to 15"),
                          (np.array([[1, 1, 0], [0, 1, 0]]), "summing from 1 to 2"),
                          (np.array([[2.0, -1.0, 0.0], [0, 1, 0]]), "values from -1")):
        for method in (CrossEntropyLoss().get, CrossEntropyLoss().backward):
            with pytest.raises(ValueError, match=r"one-hot labels \(N, 3\) must be rows of 0s and "
                                                 rf"a 1 .*{words}"):
                method(p, labels)
    smoothed = np.full((2, 3), 0.05) + np.eye(3)[[0, 1]] * 0.85  # label smoothing: rows sum to 1
    assert np.isfinite(CrossEntropyLoss().get(p, smoothed))


def test_report_adamgd_formula_without_bias_correction():
    p0, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    params = {"W": p0.copy()}
    AdamGD(0.1, 0.9, 0.999, 1e-8, params, bias_correction=False).update_params({"dW": g})
    m, v = 0.1 * g, 0.001 * g * g
    np.testing.assert_allclose(params["W"], p0 - 0.1 * m / (np.sqrt(v) + 1e-8), rtol=1e-14)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_adamgd_follows_the_textbook_formula_with_an_epsilon_that_matters(bias_correction):
    """Ten steps against Adam written out (Kingma and Ba; the report's formula without bias
    correction), without PyTorch: with eps = 1e-8 against gradients of about 1, eps added to
    sqrt(v) or to sqrt(v_hat) gave the same numbers, so only the PyTorch oracle saw which."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 0.05
    rng = np.random.default_rng(0)
    p, grads = rng.standard_normal(5), rng.standard_normal((10, 5)) * 0.1
    params = {"W": p.copy()}
    adam = AdamGD(lr, b1, b2, eps, params, bias_correction=bias_correction)
    m = v = np.zeros(5)
    for t, g in enumerate(grads, start=1):
        adam.update_params({"dW": g.copy()})
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        if bias_correction:
            p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        else:
            p = p - lr * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(params["W"], p, rtol=1e-12, atol=0, err_msg=f"step {t}")


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr=-1), "lr"),
    (dict(beta1=1.0), "beta1"), (dict(beta2=-0.1), "beta2"), (dict(epsilon=0), "epsilon"),
    (dict(lr=True), "lr must be a positive finite number, got True"),
    (dict(beta1=False), r"beta1 must be a number in \[0, 1\), got False"),
    (dict(epsilon="1e-8"), "epsilon must be a positive finite number, got '1e-8'"),
    (dict(bias_correction="no"), "bias_correction must be True or False, got 'no'"),
    (dict(bias_correction=1), "bias_correction must be True or False, got 1")])
def test_adamgd_hyperparameters_out_of_range_are_refused(kwargs, match):
    args = dict(lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, params={"W": np.zeros(2)}) | kwargs
    with pytest.raises(ValueError, match=match):
        AdamGD(**args)


def test_optimizers_take_numpy_numbers_as_the_numbers_they_are():
    adam = AdamGD(np.int64(1), np.float32(0.5), np.float64(0.999), np.float32(1e-8),
                  {"W": np.zeros(2)}, bias_correction=np.True_)
    assert (adam.lr, adam.beta1, adam.bias_correction) == (1.0, 0.5, True)
    assert type(adam.lr) is float and SGD(np.int32(2), {"W": np.zeros(2)}, np.float32(0.5)).momentum == 0.5


@pytest.mark.parametrize("momentum", [True, False, 1, 1.5, -0.1, float("nan"), "0.9", None])
def test_sgd_momentum_outside_0_to_1_or_not_a_number_is_refused(momentum):
    with pytest.raises(ValueError, match=rf"momentum must be a number in \[0, 1\), got {momentum!r}"):
        SGD(0.1, {"W": np.zeros(2)}, momentum=momentum)
    SGD(0.1, {"W": np.zeros(2)}, momentum=0)


def stepped(make):
    """An optimizer made by ``make(params)`` over two parameters, after two steps."""
    params = {"W": np.ones((3, 4)), "b": np.ones(3)}
    optimizer = make(params)
    for _ in range(2):
        optimizer.update_params({"dW": np.full((3, 4), 0.5), "db": np.full(3, -0.25)})
    return optimizer


def adam(params):
    return AdamGD(0.1, 0.9, 0.999, 1e-8, params)


def momentum_sgd(params):
    return SGD(0.1, params, momentum=0.9)


def test_a_state_dict_loads_into_a_fresh_optimizer_as_it_was():
    for make in (adam, momentum_sgd):
        state = {k: np.copy(v) for k, v in stepped(make).state_dict().items()}
        fresh = make({"W": np.ones((3, 4)), "b": np.ones(3)})
        fresh.load_state_dict(state)
        assert fresh.t == 2 and all(np.array_equal(fresh.state_dict()[k], v) for k, v in state.items())


BAD_STATES = {  # the change to an AdamGD's state -> words of the message
    "a name missing": (lambda s: s.pop("m.W"), "it lacks m.W"),
    "a name more": (lambda s: s.update({"m.X": np.zeros(3)}), "it has the unexpected m.X"),
    "another shape": (lambda s: s.update({"v.W": np.zeros((2, 2))}),
                      r"v.W has shape \(2, 2\), where the parameters need \(3, 4\)"),
    "a shape that broadcasts": (lambda s: s.update({"m.W": np.zeros(4)}),
                                r"m.W has shape \(4,\), where the parameters need \(3, 4\)"),
    "letters": (lambda s: s.update({"m.b": np.array(["a", "b", "c"])}), "m.b holds <U1 values, not numbers"),
    "t below 0": (lambda s: s.update({"t": np.array(-5)}), "step count t must be an integer >= 0, got -5"),
    "t a fraction": (lambda s: s.update({"t": np.array(2.7)}), "integer >= 0, got 2.7"),
    "t a bool": (lambda s: s.update({"t": True}), "integer >= 0, got True"),
    "t an array": (lambda s: s.update({"t": np.array([1, 2])}), r"integer >= 0, got \[1, 2\]"),
}


@pytest.mark.parametrize("case", BAD_STATES)
def test_a_state_that_does_not_fit_is_refused_naming_what_and_nothing_changes(case):
    change, words = BAD_STATES[case]
    optimizer = stepped(adam)
    before = {k: np.copy(v) for k, v in optimizer.state_dict().items()}
    state = {k: np.zeros_like(v) for k, v in before.items()}
    change(state)
    with pytest.raises(ValueError, match=f"does not fit this AdamGD: .*{words}.*Load the state_dict"):
        optimizer.load_state_dict(state)
    assert optimizer.t == 2 and all(np.array_equal(optimizer.state_dict()[k], v)
                                    for k, v in before.items())


@pytest.mark.parametrize("state, got", [("state.npz", "a str"), (None, "a NoneType"),
                                        ([("t", np.array(2))], "a list")])
def test_a_state_that_is_no_dict_is_refused_naming_what_it_is(state, got):
    """A path was read as a state whose names were its letters ('it has the unexpected /, m,
    p'), None and a list failed inside with a TypeError."""
    optimizer = stepped(adam)
    with pytest.raises(ValueError, match=rf"state must be the dict of arrays that AdamGD.state_dict\(\) "
                                         rf"returns \(or np.load of an .npz of it\), got {got}$"):
        optimizer.load_state_dict(state)
    assert optimizer.t == 2


def test_a_state_loads_from_an_npz_file_of_it(tmp_path):
    state = stepped(adam).state_dict()
    np.savez(tmp_path / "state.npz", **state)
    fresh = adam({"W": np.ones((3, 4)), "b": np.ones(3)})
    with np.load(tmp_path / "state.npz") as saved:
        fresh.load_state_dict(saved)
    assert fresh.t == 2 and all(np.array_equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_another_optimizers_state_is_refused_naming_the_names():
    with pytest.raises(ValueError, match="does not fit this SGD: it lacks velocity.W, velocity.b; "
                                         "it has the unexpected m.W, m.b, v.W and 1 more"):
        stepped(momentum_sgd).load_state_dict(stepped(adam).state_dict())


def test_optimizers_name_a_missing_misshaped_or_non_array_gradient():
    params = {"W": np.zeros(2)}
    with pytest.raises(KeyError, match="'dW'"):
        SGD(0.1, params).update_params({"W": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        SGD(0.1, params).update_params({"dW": np.zeros(3)})
    with pytest.raises(ValueError, match="grad 'dW' must be a NumPy array, as model.backward "
                                         "returns, got a list; convert it with np.asarray"):
        AdamGD(1e-3, 0.9, 0.999, 1e-8, params).update_params({"dW": [0.0, 0.0]})
    for grads in ([np.zeros(2)], None):  # failed on subscripting a list or None by a name
        with pytest.raises(ValueError, match=r"grads must be the dict of gradients that "
                                             rf"model.backward returns.*got a {type(grads).__name__}"):
            SGD(0.1, params).update_params(grads)


def test_only_layers_that_declare_they_commute_with_max_pooling_run_after_it():
    from hw3lib import AvgPool2D, MaxPool2D, ReLU, Tanh
    from hw3lib.model import run_order

    class Edited(ReLU):  # e.g. a student's SiLU, which does not commute
        commutes_with_max_pool = False

    layers = [ReLU(), MaxPool2D(), Tanh(), MaxPool2D(), Edited(), MaxPool2D(), ReLU(), AvgPool2D()]
    assert [type(layer).__name__ for layer in run_order(layers)] == [
        "MaxPool2D", "ReLU", "Tanh", "MaxPool2D", "Edited", "MaxPool2D", "ReLU", "AvgPool2D"]


@pytest.mark.parametrize("pools", [[(2, None)], [(3, 2)], [(2, None), (2, 1)]])
def test_relu_runs_after_the_max_pools_that_follow_it_with_the_same_outputs_and_gradients(pools):
    """Sequential runs ReLU after the MaxPool2D layers that directly follow it (a quarter of the
    work for 2x2 pools); outputs and gradients equal running the layers as listed, exactly,
    with ties within windows, windows of zeros and negatives only, and overlapping windows."""
    from hw3lib import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from hw3lib.model import Sequential, run_order

    def build():  # the same weights every time
        rng = RNG(3)
        features = [Conv2D(2, 3, 3, rng=rng, dtype=np.float64), ReLU(),
                    *[MaxPool2D(k, s) for k, s in pools], Flatten()]
        size = Sequential(features, (2, 12, 12)).shapes[-1][0]
        return features + [Dense(size, 3, rng=rng, dtype=np.float64)]

    x = RNG(0).standard_normal((4, 2, 12, 12)).round(0)  # integers: ties, all-negative windows
    model, listed = Sequential(build(), (2, 12, 12)), build()
    out = model.logits(x)
    assert [type(layer) for layer in model.ran] == [Conv2D, *[MaxPool2D] * len(pools), ReLU,
                                                   Flatten, Dense]
    assert run_order(model.layers) == model.ran
    assert model.layers[1].out.shape == model.layers[1 + len(pools)].out.shape  # ReLU on pooled
    ref = x
    for layer in listed:
        ref = layer.forward(ref)
    assert (listed[1].out == 0).mean() > 0.3  # the ReLU did cut: windows of zeros tie
    assert np.array_equal(out, ref)
    dlogits = RNG(2).standard_normal(out.shape)
    grads, d = model.backward_logits(dlogits), dlogits
    for layer in reversed(listed):
        d = layer.backward(d)
    for i in (0, -1):
        for key in ("W", "b"):
            assert np.array_equal(model.layers[i].grads[key], listed[i].grads[key])
    assert set(grads) == {"dW1", "db1", "dW2", "db2"}


def in_thirds_backwards(work, arrays):
    """A ``spread`` that updates every array in three pieces, the last first."""
    for key, a in arrays.items():
        for part in reversed([slice(0, a.size // 3), slice(a.size // 3, 2 * a.size // 3),
                              slice(2 * a.size // 3, a.size)]):
            work(key, part)


@pytest.mark.parametrize("make", [lambda p: AdamGD(1e-2, 0.9, 0.999, 1e-8, p),
                                  lambda p: SGD(0.1, p, momentum=0.9), lambda p: SGD(0.1, p)])
def test_an_update_in_pieces_is_the_update_whole_bit_for_bit(make):
    rng = np.random.default_rng(0)
    shapes = {"W": (4, 3, 5), "b": (7,)}
    whole, pieces = ({k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
                     for _ in range(2))
    for k in pieces:
        pieces[k][...] = whole[k]
    start = whole["W"].copy()
    one, cut = make(whole), make(pieces)
    for opt in (one, cut):  # a dead unit's state, decaying into subnormal numbers, then flushed
        for a in opt.state_dict().values():
            if a.ndim:
                a.reshape(-1)[:5] = 2e-38
    for _ in range(optim.FLUSH_EVERY):
        grads = {f"d{k}": rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        grads["dW"].reshape(-1)[:5] = 0
        one.update_params(grads)
        assert cut.update_params(grads, in_thirds_backwards) is pieces
    assert all(whole[k].tobytes() == pieces[k].tobytes() for k in whole)
    states = one.state_dict(), cut.state_dict()
    assert all(states[0][k].tobytes() == states[1][k].tobytes() for k in states[0])
    tiny = np.finfo(np.float32).tiny
    assert not any(((a != 0) & (np.abs(a) < tiny)).any() for a in states[1].values())
    assert not np.array_equal(whole["W"], start)  # the steps moved the weights


def test_the_default_update_goes_in_cache_sized_pieces(monkeypatch):
    monkeypatch.setattr(optim, "PIECE", 8)
    done = []
    optim.in_turn(lambda key, part: done.append((key, part)),
                  {"W": np.zeros((4, 5)), "b": np.zeros(8), "T": np.zeros((5, 4)).T})
    assert done == [("W", slice(0, 8)), ("W", slice(8, 16)), ("W", slice(16, 20)),
                    ("b", None), ("T", None)]  # small or not contiguous: whole
    assert optim.pieces(np.zeros(20), slice(3, 19)) == [slice(3, 11), slice(11, 19)]


@pytest.mark.parametrize("make", [lambda p: AdamGD(1e-2, 0.9, 0.999, 1e-8, p),
                                  lambda p: SGD(0.1, p, momentum=0.9)])
def test_the_default_update_in_pieces_is_the_update_whole_bit_for_bit(make, monkeypatch):
    rng = np.random.default_rng(1)
    start = rng.standard_normal((6, 7)).astype(np.float32)
    runs = []
    for piece in (10**9, 5):
        monkeypatch.setattr(optim, "PIECE", piece)
        params = {"W": start.copy()}
        opt, grads = make(params), np.random.default_rng(2)
        for _ in range(3):  # a gradient that is not contiguous is read as one that is
            opt.update_params({"dW": grads.standard_normal((7, 6)).astype(np.float32).T})
        runs.append(params["W"])
    assert runs[0].tobytes() == runs[1].tobytes() and not np.array_equal(runs[0], start)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_subnormal_optimizer_state_is_flushed_and_the_weights_do_not_notice(kind, monkeypatch):
    tiny = np.finfo(np.float32).tiny
    start = np.array([0.5, -0.25, 0.125, 1.0], dtype=np.float32)

    def run(flush_every):
        monkeypatch.setattr(optim, "FLUSH_EVERY", flush_every)
        params = {"W": start.copy()}
        if kind == "adam":
            opt = AdamGD(1e-3, 0.9, 0.999, 1e-8, params)
            state = [opt.m["W"], opt.v["W"]]
            state[1][...] = [tiny / 4, tiny, 1e-6, 0]
        else:
            opt = SGD(1e-3, params, momentum=0.9)
            state = [opt.velocity["W"]]
        state[0][...] = [tiny * 3, -tiny / 2, 1e-3, 0]  # dead units' moments decaying
        for _ in range(16):
            opt.update_params({"dW": np.zeros(4, dtype=np.float32)})
        return params["W"], state

    kept_w, kept = run(10**9)
    flushed_w, flushed = run(16)
    subnormal = [(a != 0) & (np.abs(a) < tiny) for a in kept]
    assert subnormal[0][:2].all()  # without flushing, the decay leaves subnormal numbers
    for a, b, sub in zip(flushed, kept, subnormal):
        assert not ((a != 0) & (np.abs(a) < tiny)).any()
        np.testing.assert_array_equal(a[~sub], b[~sub])  # the normal numbers are untouched
    assert flushed_w.tobytes() == kept_w.tobytes()
    assert not np.array_equal(flushed_w[:3], start[:3])


def test_a_piece_of_an_array_that_cannot_be_flattened_in_place_is_refused():
    params = {"W": np.zeros((3, 4)).T}  # flattened, a copy: an update of a piece would be lost
    with pytest.raises(ValueError):
        AdamGD(0.1, 0.9, 0.999, 1e-8, params).update_params({"dW": np.ones((4, 3))},
                                                           in_thirds_backwards)
    AdamGD(0.1, 0.9, 0.999, 1e-8, params).update_params({"dW": np.ones((4, 3))})  # whole: fine
    assert (params["W"] < 0).all()


def test_lenet5_refuses_a_first_dense_layer_over_the_limit_before_building_it(monkeypatch):
    monkeypatch.setattr(model_module, "MAX_WEIGHT_BYTES", 16 * 29 * 29 * 120 * 4)
    assert LeNet5(input_size=128).get_params()["W3"].shape == (120, 16 * 29 * 29)
    with pytest.raises(ValueError, match=r"on 132x128 inputs would have 1,670,400 weights .* TrainConfig\(image_size=64\)"):
        LeNet5(input_size=(132, 128))
    monkeypatch.undo()
    built = []
    monkeypatch.setattr(model_module, "Dense", lambda *args, **kwargs: built.append(args))
    with pytest.raises(ValueError, match=r"would have 1,908,497,280 weights in its first dense layer, 7.11 GiB \(at most 2 GiB\)"):
        LeNet5(input_size=4000)  # 7.1 GiB, and twice that for the float64 draw: never allocated
    assert built == []


BAD_ARGUMENTS = [  # LeNet5 arguments -> words of the message
    (dict(hidden=(120,)), r"hidden must be two integers >= 1 \(the widths of the two hidden dense "
                          r"layers\), e.g. \(120, 84\); got \(120,\)"),
    (dict(hidden=(0, 84)), r"hidden must be two integers >= 1 .*got \(0, 84\)"),
    (dict(hidden="ab"), "hidden must be two integers >= 1 .*got 'ab'"),
    (dict(hidden=None), "hidden must be two integers >= 1 .*got None"),
    (dict(conv_channels=(6,)), r"conv_channels must be two integers >= 1 .*got \(6,\)"),
    (dict(conv_channels=[6.5, 16]), r"conv_channels must be two integers >= 1 .*got \[6.5, 16\]"),
    (dict(conv_channels=6), "conv_channels must be two integers >= 1 .*got 6"),
    (dict(input_size="32"), "input_size must be an integer or a pair of integers >= 1 .*e.g. 32 "
                            r"or \(28, 36\); got '32'"),
    (dict(input_size=(32, True)), r"input_size must be .*got \(32, True\)"),
    (dict(input_size=(32, 32, 32)), r"input_size must be .*got \(32, 32, 32\)"),
    (dict(kernel_size=True), "kernel_size must be an integer or a pair of integers >= 1 .*got True"),
    (dict(kernel_size=2.5), "kernel_size must be .*got 2.5"),
    (dict(kernel_size=0), "kernel_size must be .*got 0"),
    (dict(num_classes="3"), "num_classes must be an integer >= 2 .*got '3'"),
    (dict(num_classes=1), "num_classes must be an integer >= 2 .*got 1"),
    (dict(in_channels=0), "in_channels must be an integer >= 1 .*got 0"),
    (dict(activation=["relu"]), r"activation must be one of \['relu', 'tanh'\], got \['relu'\]"),
    (dict(dtype=np.int32), "dtype must be float32 or float64 .*got <class 'numpy.int32'>"),
    (dict(dtype="float16"), "dtype must be float32 or float64 .*got 'float16'"),
    (dict(dtype="no type"), "dtype must be float32 or float64 .*got 'no type'"),
    # NumPy's words, not naming seed; a Generator was taken, and failed at the first checkpoint
    (dict(seed=1.5), r"seed must be an integer >= 0 \(draws the initial weights\), got 1.5"),
    (dict(seed=-1), r"seed must be an integer >= 0 .*got -1"),
    (dict(seed=np.random.default_rng(0)), r"seed must be an integer >= 0 .*got Generator"),
]


@pytest.mark.parametrize("kwargs,words", BAD_ARGUMENTS)
def test_lenet5_refuses_an_argument_naming_it_the_value_and_what_it_must_be(kwargs, words):
    with pytest.raises(ValueError, match=words):
        LeNet5(**kwargs)


def test_train_config_refuses_a_model_argument_up_front():
    with pytest.raises(ValueError, match=r"hidden must be two integers >= 1 .*got \[120\]"):
        TrainConfig(model={"hidden": [120]})


def test_lenet5_takes_numpy_integers_and_keeps_its_arguments_in_one_form():
    plain = LeNet5(input_size=(12, 12), conv_channels=(2, 4), kernel_size=(3, 3), hidden=(8, 8),
                   seed=3, dtype="float64")
    numpy = LeNet5(input_size=np.int64(12), conv_channels=np.array([2, 4]), kernel_size=3,
                   hidden=[8, np.int32(8)], seed=3, dtype=np.float64)
    assert numpy.config == plain.config == dict(
        in_channels=1, num_classes=3, input_size=(12, 12), conv_channels=(2, 4), kernel_size=(3, 3),
        hidden=(8, 8), activation="relu", pooling="max", seed=3)
    assert json.loads(json.dumps(numpy.config))["hidden"] == [8, 8]  # checkpoints store it
    assert all(np.array_equal(plain.get_params()[k], v) for k, v in numpy.get_params().items())
    assert numpy.get_params()["W1"].dtype == np.float64


@pytest.mark.parametrize("kwargs", [
    dict(input_size=15), dict(kernel_size=40), dict(activation="gelu"), dict(pooling="min"),
    dict(num_classes=1), dict(input_size=4000), dict(conv_channels=(0, 16)), dict(kernel_size=0),
    *(kwargs for kwargs, _ in BAD_ARGUMENTS),
])
def test_lenet5_check_raises_what_building_raises(kwargs):
    with pytest.raises(ValueError) as building:
        LeNet5(**kwargs)
    with pytest.raises(ValueError) as checking:
        LeNet5.check(**kwargs)
    assert str(checking.value) == str(building.value)
    LeNet5.check(input_size=(28, 36), activation="tanh", pooling="avg", in_channels=4)
    with pytest.raises(TypeError, match="unexpected keyword"):
        LeNet5.check(channels=3)


def test_sequential_refuses_a_layer_listed_twice_whose_second_pass_spoils_the_first():
    shared = Dense(4, 4, rng=0)
    with pytest.raises(ValueError, match=r"Dense\(4, 4\) is listed twice.*Fix: a new layer"):
        Sequential([shared, Tanh(), shared], (4,))
    tanh = Tanh()
    with pytest.raises(ValueError, match=r"Tanh\(\) is listed twice"):
        Sequential([Dense(4, 4, rng=0), tanh, Dense(4, 4, rng=1), tanh], (4,))


@pytest.mark.parametrize("layers, shape, words", [
    (lambda: [Conv2D(3, 4, 3)], (32, 32),
     r"Conv2D\(3, 4, .*\) expects input \(N, 3, H, W\), but gets \(N, 32, 32\)"),
    (lambda: [Flatten(), MaxPool2D(2)], (3, 8, 8),
     r"MaxPool2D\(.*\) expects input \(N, C, H, W\), but gets \(N, 192\)"),
    (lambda: [Dense(192, 3)], (3, 8, 8),
     r"Dense\(192, 3\) expects input \(N, 192\), but gets \(N, 3, 8, 8\)"),
])
def test_sequential_names_a_layer_given_input_with_other_axes_and_where_flatten_goes(layers, shape,
                                                                                       words):
    with pytest.raises(ValueError, match=words + r".*Flatten\(\)"):
        Sequential(layers(), shape)


@pytest.mark.parametrize("layers, shape, words", [
    (lambda: [Flatten(), Dense(48, 1)], (3, 4, 4),
     r"outputs \(N, 1\): a softmax over one score is always 1.*Fix: one output per class"),
    (lambda: [Conv2D(3, 2, 3)], (3, 4, 4),
     r"outputs \(N, 2, 2, 2\): end with Flatten\(\) and Dense\(features, num_classes\)"),
    (lambda: [], (3, 4, 4), r"outputs \(N, 3, 4, 4\)"),
])
def test_sequential_refuses_a_last_layer_that_gives_no_class_scores(layers, shape, words):
    """Built, such a model trained silently on zero gradients (one output) or failed only in
    backward, in the loss's words, and predicted (N, H, W) arrays of channel indices."""
    with pytest.raises(ValueError, match=r"the last layer must give K >= 2 class scores, \(N, "
                                         r"K\), but the model " + words):
        Sequential(layers(), shape)


@pytest.mark.parametrize("layers, words", [
    (lambda: [Conv2D(3, 4, 3), Flatten(), Dense(100, 3)],
     r"Dense\(100, 3\) expects 100 input features, got \(784,\): the layers before it give "
     r"784. Fix: Dense\(784, 3\)"),
    (lambda: [Conv2D(1, 4, 3), Flatten(), Dense(4 * 14 * 14, 3)],
     r"expects 1 input channels, got 3: the input \(or the layer before it\) gives 3. Fix: "
     r"Conv2D\(3, 4, ...\), or check the input_shape"),
    # a window too large for what the layers before it leave: which layer, and a fix it takes
    (lambda: [Conv2D(3, 4, 3), MaxPool2D(2), Conv2D(4, 4, 3), MaxPool2D(2), MaxPool2D(2), MaxPool2D(2),
              Flatten(), Dense(4, 3)],
     r"^MaxPool2D\(kernel_size=\(2, 2\), stride=\(2, 2\)\) does not fit its 1x1 input \(a pool has "
     r"no padding\). Fix: a smaller kernel_size, or a larger input \(fewer pools and convolutions "
     r"before it\)$"),
    (lambda: [Conv2D(3, 4, 5, stride=2), Conv2D(4, 4, 3), Conv2D(4, 4, 5), Flatten(), Dense(4, 3)],
     r"^Conv2D\(4, 4, kernel_size=\(5, 5\), stride=\(1, 1\), padding=\(0, 0\)\): a 5x5 kernel does "
     r"not fit a 4x4 input with padding \(0, 0\): use a smaller kernel, more padding or a larger input$"),
])
def test_sequential_names_the_size_a_layer_should_take(layers, words):
    with pytest.raises(ValueError, match=words):
        Sequential(layers(), (3, 16, 16))


@pytest.mark.parametrize("layers, shape", [
    (lambda: [Conv2D(1, 4, 3), Tanh(), Flatten(), Dense(4 * 6 * 6, 3)], (8, 1, 8, 8)),
    (lambda: [Flatten(), Dense(64, 3)], (8, 1, 8, 8)),
    (lambda: [Dense(64, 3)], (8, 64)),
])
def test_sequential_says_when_the_input_shape_holds_the_batch_axis(layers, shape):
    """A batch's shape was told to change the first Dense layer (``Fix: Dense(512, 3)``) or to
    add a Flatten(), not to drop the batch axis."""
    with pytest.raises(ValueError, match=re.escape(
            f"input_shape {shape} looks like a batch's shape: it is one sample's shape, without "
            f"the batch axis, and the layers fit {shape[1:]}. Fix: input_shape={shape[1:]}")):
        Sequential(layers(), shape)
    assert Sequential(layers(), shape[1:]).shapes[-1] == (3,)


def test_input_of_another_shape_with_the_numbers_of_a_sample_names_the_reshape():
    """Images for a model of Dense layers only (or flat images for one of images) were told to
    'check the data's channel mode and image size'."""
    X = RNG(0).random((4, 1, 8, 8)).astype(np.float32)
    flat, images = (Sequential([Dense(64, 3)], (64,)),
                    Sequential([Flatten(), Dense(64, 3)], (1, 8, 8)))
    for model, x, fixed, fix in (
            (flat, X, X.reshape(len(X), -1), "images for a model of flat inputs? Fix: "
             "x.reshape(len(x), -1), or begin the model with Flatten() and input_shape=(1, 8, 8)"),
            (images, X.reshape(4, -1), X, "flat images? Fix: x.reshape(len(x), 1, 8, 8)")):
        with pytest.raises(ValueError, match=re.escape(f"got {x.shape}; {fix}")):
            model.forward(x)
        assert model.forward(fixed).shape == (4, 3)  # the fix


@pytest.mark.parametrize("thing", [np.tanh, "relu", None])
def test_sequential_refuses_what_is_no_layer(thing):
    with pytest.raises(ValueError, match=f"Sequential takes layers such as ReLU\\(\\), got {thing!r}"):
        Sequential([thing, Dense(3, 2)], (3,))


def test_sequential_names_what_a_layer_of_another_kind_is_and_the_fix_for_a_layer_class():
    """PyTorch's ReLU() printed as ours: 'takes layers such as ReLU(), got ReLU()'."""
    class TorchLike:  # as torch.nn.ReLU prints
        def __repr__(self):
            return "ReLU()"

    for thing, words in ((TorchLike(), f"got ReLU(), a test_model.{TorchLike.__qualname__}: hw3lib's "
                          "own layers only (hw3lib.ReLU, hw3lib.Conv2D, ...)"),
                         (Tanh, f"got {Tanh!r}. Fix: Tanh(), an instance")):
        with pytest.raises(ValueError, match=re.escape(f"Sequential takes layers such as ReLU(), {words}")):
            Sequential([Flatten(), Dense(3, 2), thing], (3,))


@pytest.mark.parametrize("layers, shape, words", [
    (lambda: [Flatten(), Dense(64, 3)], 64, r"input_shape must be .*got 64. Fix: \(64,\)"),
    (lambda: [Flatten(), Dense(64, 3)], "1x8x8", r"input_shape must be .*got '1x8x8'"),
    (lambda: [Flatten(), Dense(64, 3)], (1.0, 8, 8), r"input_shape must be .*got \(1.0, 8, 8\)"),
    (lambda: [Tanh(), Flatten(), Dense(3, 3)], (-1, 3), r"input_shape must be .*got \(-1, 3\)"),
    (lambda: Dense(64, 3), (64,), r"Sequential takes a list of layers.*got Dense\(64, 3\)"),
])
def test_sequential_refuses_an_input_shape_or_layers_of_another_form(layers, shape, words):
    """Each failed inside (an int not iterable, a ufunc on strings), or was built with
    negative sizes."""
    with pytest.raises(ValueError, match=words):
        Sequential(layers(), shape)


def test_softmax_takes_a_list_as_numpy_functions_do():
    """It failed on list.max, where the loss names a list it refuses."""
    np.testing.assert_allclose(softmax([[0.0, np.log(3.0)]]), [[0.25, 0.75]])


@pytest.mark.parametrize("y_pred, got", [(np.array([[1, 0]]), "dtype int64 shape (1, 2)"),
                                         (np.array([0.5, 0.5]), "dtype float64 shape (2,)"),
                                         ([[0.5, 0.5]], "a list")])
def test_loss_refuses_predictions_that_are_no_float_n_by_k_array(y_pred, got):
    for method in (CrossEntropyLoss().get, CrossEntropyLoss().backward):
        with pytest.raises(ValueError, match=r"predictions must be probabilities \(N, K\) in a "
                                             rf"float NumPy array.*got {re.escape(got)}"):
            method(y_pred, [0])


def test_predict_refuses_images_whose_class_scores_are_not_finite():
    """A NaN image was predicted as class 0 (argmax of NaN scores), silently."""
    model, X = LeNet5(), RNG(0).random((4, 1, 32, 32), dtype=np.float32)
    assert model.predict(X).shape == (4,)
    X[2, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"class scores for 1 image\(s\) are not finite \(the "
                                         r"first at index 2\): their input holds NaN"):
        model.predict(X)


def test_loss_refuses_logits_for_probabilities_but_lets_nan_through_to_the_caller():
    """Given logits, get returned a loss of hundreds (log of values clipped at the smallest
    normal number) and backward a wrong gradient, silently. NaN stays a NaN loss, which fit
    reports as divergence with its batch."""
    logits = np.array([[2.5, -1.0, 0.3], [-0.2, 0.1, 4.0]])
    for method in (CrossEntropyLoss().get, CrossEntropyLoss().backward):
        with pytest.raises(ValueError, match=r"predictions must be probabilities in \[0, 1\], "
                                             r"as model.forward returns them, got values from -1 to "
                                             r"4: logits.*Fix: .* softmax\(logits\)"):
            method(logits, np.array([0, 2]))
    assert np.isnan(CrossEntropyLoss().get(np.full((2, 3), np.nan), np.array([0, 2])))


@pytest.mark.parametrize("make", [lambda p: SGD(0.1, p), lambda p: AdamGD(0.1, 0.9, 0.999, 1e-8, p)])
def test_optimizers_refuse_params_that_are_no_dict_of_arrays(make):
    params = LeNet5().get_params()
    with pytest.raises(ValueError, match=r"params must be the model's dict of arrays, "
                                         r"model.get_params\(\), got a list"):
        make(list(params.values()))
    with pytest.raises(ValueError, match=r"params\['W1'\] must be a NumPy array, the model's "
                                         r"own, got a list"):
        make({**params, "W1": params["W1"].tolist()})
    with pytest.raises(ValueError, match=r"params\['b1'\] must be an array of floats, the model's "
                                         r"own, got int64 values; convert it with np.asarray"):
        make({**params, "b1": np.zeros(6, np.int64)})
    read_only = np.zeros(6, np.float32)
    read_only.setflags(write=False)  # failed in NumPy mid-step, the first parameters' state updated
    with pytest.raises(ValueError, match=r"params\['b1'\] is read-only, but the optimizer updates "
                                         r"the arrays in place: pass the model's own"):
        make({**params, "b1": read_only})


@pytest.mark.parametrize("value, got", [("abc", "a str"), (np.zeros((6, 1, 5, 5), complex),
                                                            "complex128 values")])
def test_set_params_names_a_value_that_is_no_array_of_real_numbers(value, got):
    model = LeNet5()
    with pytest.raises(ValueError, match=rf"W1 must be an array of real numbers, got {got}"):
        model.set_params({**model.get_params(), "W1": value})


def test_set_params_copies_nested_lists_and_integers_as_numpy_does():
    model, W1 = LeNet5(), np.arange(6 * 25).reshape(6, 1, 5, 5)
    model.set_params({**model.get_params(), "W1": W1.tolist()})
    np.testing.assert_array_equal(model.get_params()["W1"], W1)
    model.set_params({**model.get_params(), "W1": -W1})
    np.testing.assert_array_equal(model.get_params()["W1"], -W1)


def test_a_sequential_of_ones_own_trains_in_the_reports_loop_with_the_gradients_of_its_logits():
    """forward, backward and predict are Sequential's, so the README's loop trains any model
    whose last layer gives class scores; the gradients are those of the logits' route."""
    def custom(seed):
        rng = RNG(seed)
        return Sequential([Conv2D(1, 4, 3, stride=2, padding=1, rng=rng), Tanh(), MaxPool2D(2),
                           Flatten(), Dense(4 * 8 * 8, 3, rng=rng)], (1, 32, 32))

    X, y = separable_data(96)
    model, twin = custom(0), custom(0)
    probs = model.forward(X[:8])
    grads = model.backward(probs, y[:8])
    twin_grads = twin.backward_logits(CrossEntropyLoss().backward(softmax(twin.logits(X[:8])), y[:8]))
    assert grads.keys() == twin_grads.keys() == {"dW1", "db1", "dW2", "db2"}
    for key in grads:
        np.testing.assert_array_equal(grads[key], twin_grads[key])
    losses = report_loop(model, X, y, lr=5e-3, steps=40, batch_size=24)
    assert np.mean(losses[-4:]) < 0.5 * losses[0]
    assert (model.predict(X) == y).mean() > 0.9
    with pytest.raises(ValueError, match=r"^Sequential.backward called before forward"):
        custom(1).backward(probs, y[:8])


def test_backward_refuses_a_layer_that_ran_another_pass_since_the_models_forward():
    """A layer shared with another model, or called directly, keeps that pass's activations:
    the gradients came out silently wrong."""
    conv = Conv2D(1, 2, 3, rng=RNG(0), dtype=np.float64)
    model = Sequential([conv, ReLU(), Flatten(), Dense(72, 3, rng=RNG(1), dtype=np.float64)], (1, 8, 8))
    other = Sequential([conv, Tanh(), Flatten(), Dense(72, 2, rng=RNG(2), dtype=np.float64)], (1, 8, 8))
    X, X_other = RNG(3).standard_normal((4, 1, 8, 8)), RNG(4).standard_normal((4, 1, 8, 8))
    y = np.array([0, 1, 2, 0])
    right = model.backward(model.forward(X), y)["dW1"].copy()
    words = re.escape(f"{conv!r} ran another forward pass since this model's last one (a layer shared "
                      "with another model, or called directly)")
    for peek in (other.forward, conv.forward):
        probs = model.forward(X)
        peek(X_other)
        with pytest.raises(ValueError, match=words):
            model.backward(probs, y)
    probs = model.forward(X)  # forward again: its own pass
    np.testing.assert_array_equal(model.backward(probs, y)["dW1"], right)


def test_a_layer_skipping_its_input_gradient_after_layers_with_parameters_is_refused():
    """Their gradients need it: the backward pass stopped there and returned the last pass's
    gradients for the layers before it, silently."""
    first, second = Conv2D(1, 2, 3, rng=RNG(0)), Conv2D(2, 2, 3, rng=RNG(1))
    model = Sequential([MaxPool2D(2), first, ReLU(), second, Flatten(), Dense(2 * 4 * 4, 3)], (1, 16, 16))
    X, y = RNG(2).standard_normal((4, 1, 16, 16)).astype(np.float32), np.array([0, 1, 2, 0])
    model.backward(model.forward(X), y)
    first.needs_input_grad = False  # the first layer with parameters may skip it
    assert set(model.backward(model.forward(X), y)) == {"dW1", "db1", "dW2", "db2", "dW3", "db3"}
    first.needs_input_grad, second.needs_input_grad = True, False
    probs = model.forward(X[::-1].copy())
    with pytest.raises(ValueError, match=re.escape(
            f"{second!r} skips its input gradient (needs_input_grad = False), but {first!r} before "
            "it has parameters, whose gradients need it. Fix: needs_input_grad = False only on the "
            "first layer with parameters; set it True on this one")):
        model.backward(probs, y)


def test_an_update_in_pieces_runs_on_numpy_2_0_whose_reshape_has_no_copy_argument(monkeypatch):
    """pyproject allows numpy>=2.0; np.reshape took ``copy`` from 2.1 on, so a step over a
    parameter of more than optim.PIECE elements failed there with a TypeError."""
    def reshape_of_numpy_2_0(a, newshape, order="C"):
        return np.asarray(a).reshape(newshape, order=order)
    monkeypatch.setattr(np, "reshape", reshape_of_numpy_2_0)
    monkeypatch.setattr(optim, "PIECE", 5)
    params = {"W": np.zeros((4, 6), dtype=np.float32)}
    AdamGD(0.1, 0.9, 0.999, 1e-8, params).update_params({"dW": np.ones((4, 6), dtype=np.float32)})
    np.testing.assert_allclose(params["W"], -0.1, rtol=1e-5)
    with pytest.raises(ValueError, match="flattens only into a copy"):
        optim.piece(np.zeros((3, 4)).T, slice(0, 5))
