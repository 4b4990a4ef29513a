"""PyTorch as the oracle, in float64: layers, loss, optimizers, the whole LeNet5 (also with
its batch split over threads), and the report's training loop end to end."""
import numpy as np
import pytest
from conftest import (CONV_SPLITS, WINOGRAD_PADDING_PER_AXIS, anisotropic_config_id,
                      anisotropic_configs, assert_split, config_id, pool_config_id, pool_configs,
                      random_configs, split_conv, split_winograd, winograd_config_id,
                      winograd_configs)
from datasets import DATA, HAVE_DATA

from hw3lib import (SGD, AdamGD, AvgPool2D, Conv2D, CrossEntropyLoss, Dense, Flatten, LeNet5,
                    MaxPool2D, ReLU, Tanh, softmax)
from hw3lib import TrainConfig, fit, gradcheck, layers, parallel
from hw3lib.data import dataloader, normalize
from hw3lib.oracle import torch_lenet5
from hw3lib.parallel import SplitBatch

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng


def T(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=what)


def check_layer(layer, torch_fn, x, params=(), dout=None):
    """Forward, dx and parameter gradients of ``layer`` against ``torch_fn(x, *params)``, for
    the output gradient ``dout`` (None: a random one)."""
    out = layer.forward(x)
    dout = RNG(9).standard_normal(out.shape) if dout is None else dout
    dx = layer.backward(dout)
    xt = T(x, True)
    pt = [T(layer.params[k], True) for k in params]
    ref = torch_fn(xt, *pt)
    ref.backward(T(dout))
    assert_close(out, ref, "output")
    assert_close(dx, xt.grad, "input gradient")
    for k, p in zip(params, pt):
        assert_close(layer.grads[k], p.grad, f"gradient of {k}")


@pytest.mark.parametrize("split", ["whole", *CONV_SPLITS])
@pytest.mark.parametrize("cfg", random_configs(12, seed=7) + anisotropic_configs(10, seed=12),
                         ids=lambda cfg: (anisotropic_config_id if isinstance(cfg["stride"], tuple)
                                          else config_id)(cfg))
def test_conv2d(cfg, split, monkeypatch):
    layer = Conv2D(cfg["c"], cfg["f"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["padding"],
                   rng=0, dtype=np.float64)
    x = RNG(1).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    if split != "whole":
        split_conv(split, monkeypatch, layer, x.shape)
        assert_split(split, layer, layer.forward(x))
    check_layer(layer, lambda x, W, b: F.conv2d(x, W, b, cfg["stride"], cfg["padding"]), x, "Wb")


@pytest.mark.parametrize("split", ["whole", "one_tile_row_kept", "one_tile_row_rebuilt"])
@pytest.mark.parametrize("cfg", winograd_configs(10, seed=8) + WINOGRAD_PADDING_PER_AXIS,
                         ids=winograd_config_id)
def test_conv2d_winograd(cfg, split, monkeypatch):
    if split != "whole":
        split_winograd(split, monkeypatch)
    layer = Conv2D(cfg["c"], cfg["f"], cfg["r"], padding=cfg["padding"], rng=0, dtype=np.float64,
                   algorithm="winograd")
    x = RNG(1).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"]))
    check_layer(layer, lambda x, W, b: F.conv2d(x, W, b, 1, cfg["padding"]), x, "Wb")


def check_float32_conv(layer, x, stride, padding, bound):
    """A float32 ``layer``'s output and gradients against PyTorch's float64 on the same numbers
    (x, W, b and dout rounded to float32 once): float32 throughout, and each within ``bound``
    of the largest value of the exact one."""
    out = layer.forward(x)
    dout = RNG(9).standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    xt, Wt, bt = T(x, True), T(layer.params["W"], True), T(layer.params["b"], True)
    ref = F.conv2d(xt, Wt, bt, stride, padding)
    ref.backward(T(dout))
    for what, ours, theirs in (("output", out, ref), ("input gradient", dx, xt.grad),
                               ("gradient of W", layer.grads["W"], Wt.grad),
                               ("gradient of b", layer.grads["b"], bt.grad)):
        theirs = theirs.detach().numpy()
        assert ours.dtype == np.float32, what
        assert np.abs(ours - theirs).max() <= bound * np.abs(theirs).max(), what


@pytest.mark.parametrize("split", ["whole", *CONV_SPLITS])
@pytest.mark.parametrize("cfg", random_configs(5, seed=21) + anisotropic_configs(3, seed=22),
                         ids=lambda cfg: (anisotropic_config_id if isinstance(cfg["stride"], tuple)
                                          else config_id)(cfg))
def test_conv2d_in_float32(cfg, split, monkeypatch):
    """float32, the dtype training runs in, in every split (the bands' sizes come from the
    windows' itemsize), within 3e-6 of the largest value: float32 rounding of sums of up to a
    thousand terms (the bias gradient's) reached 6.4e-7 here, a wrong gradient is off by far more."""
    layer = Conv2D(cfg["c"], cfg["f"], (cfg["kh"], cfg["kw"]), cfg["stride"], cfg["padding"],
                   rng=0, algorithm="im2col")
    x = RNG(1).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).astype(np.float32)
    if split != "whole":
        split_conv(split, monkeypatch, layer, x.shape)
        assert_split(split, layer, layer.forward(x))
    check_float32_conv(layer, x, cfg["stride"], cfg["padding"], 3e-6)


@pytest.mark.parametrize("split", ["whole", "one_tile_row_kept", "one_tile_row_rebuilt"])
@pytest.mark.parametrize("cfg", winograd_configs(6, seed=23) + WINOGRAD_PADDING_PER_AXIS,
                         ids=winograd_config_id)
def test_conv2d_winograd_in_float32(cfg, split, monkeypatch):
    """float32 Winograd (its transforms cast to float32) for every kernel and tile block, within
    the README's 2e-5 of the largest value."""
    if split != "whole":
        split_winograd(split, monkeypatch)
    layer = Conv2D(cfg["c"], cfg["f"], cfg["r"], padding=cfg["padding"], rng=0, algorithm="winograd")
    x = RNG(1).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).astype(np.float32)
    check_float32_conv(layer, x, 1, cfg["padding"], 2e-5)


@pytest.mark.parametrize("kernel,stride,shape", [(2, None, (3, 4, 8, 10)), (3, 2, (2, 3, 9, 7)),
                                                 ((2, 3), (1, 2), (2, 2, 6, 9)), (2, 1, (1, 2, 5, 5)),
                                                 (2, None, (2, 2, 7, 9)), (2, 3, (1, 2, 8, 8)),
                                                 ((16, 17), (1, 16), (1, 2, 17, 33))])
def test_pools(kernel, stride, shape):
    x = RNG(2).standard_normal(shape)
    check_layer(MaxPool2D(kernel, stride), lambda x: F.max_pool2d(x, kernel, stride), x)
    check_layer(AvgPool2D(kernel, stride), lambda x: F.avg_pool2d(x, kernel, stride), x)


@pytest.mark.parametrize("cfg", pool_configs(12, seed=31), ids=pool_config_id)
def test_pools_on_random_geometries(cfg):
    """Random kernels and strides per axis (gaps, overlaps, uncovered edges), ties included."""
    x = RNG(2).standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).round(1)
    kernel, stride = cfg["kernel"], cfg["stride"]
    check_layer(MaxPool2D(kernel, stride), lambda x: F.max_pool2d(x, kernel, stride), x)
    check_layer(AvgPool2D(kernel, stride), lambda x: F.avg_pool2d(x, kernel, stride), x)


@pytest.mark.parametrize("kernel,stride,shape", [(2, None, (3, 4, 8, 10)), (3, 2, (2, 3, 9, 7)),
                                                 ((2, 3), (1, 2), (2, 2, 6, 9))])
def test_maxpool_in_blocks_of_one_output_row(kernel, stride, shape, monkeypatch):
    monkeypatch.setattr(layers, "POOL_BLOCK_BYTES", 1)
    x = RNG(2).standard_normal(shape).round(1)  # rounded: ties within windows
    check_layer(MaxPool2D(kernel, stride), lambda x: F.max_pool2d(x, kernel, stride), x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel,stride,shape", [(3, 1, (2, 3, 9, 8)), ((4, 3), (1, 2), (1, 2, 10, 11)),
                                                 ((2, 5), (2, 1), (3, 1, 7, 12))])
def test_overlapping_maxpool_gradients_equal_torchs_bit_for_bit(kernel, stride, shape, dtype):
    """A pixel that is the maximum of several windows adds their gradients in the order of the
    outputs, as PyTorch does; added offset by offset from the first, sums of three or more
    differed in the last bit."""
    rng = RNG(4)
    x = rng.integers(-1, 2, shape).astype(dtype)  # few values: a pixel is the maximum of many windows
    layer = MaxPool2D(kernel, stride)
    dout = rng.standard_normal(layer.forward(x).shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    F.max_pool2d(xt, kernel, stride).backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(layer.backward(dout), xt.grad.numpy())


def test_maxpool_ties_route_to_the_first_maximum_like_torch():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[3, 3], [3, 1]]
    check_layer(MaxPool2D(2), lambda x: F.max_pool2d(x, 2), x)


@pytest.mark.parametrize("make, shape, torch_fn, params", [
    (lambda: Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64), (2, 3, 6, 5),
     lambda x, W, b: F.conv2d(x, W, b, 1, 1), "Wb"),
    (lambda: Conv2D(3, 4, 3, padding=1, rng=0, dtype=np.float64, algorithm="winograd"), (2, 3, 6, 5),
     lambda x, W, b: F.conv2d(x, W, b, 1, 1), "Wb"),
    (lambda: MaxPool2D(3, 1), (2, 3, 6, 5), lambda x: F.max_pool2d(x, 3, 1), ""),
    (lambda: AvgPool2D(3, 1), (2, 3, 6, 5), lambda x: F.avg_pool2d(x, 3, 1), ""),
    (lambda: Dense(7, 5, rng=0, dtype=np.float64), (6, 7), F.linear, "Wb"),
], ids=["conv", "conv_winograd", "maxpool_overlapping", "avgpool_overlapping", "dense"])
def test_a_float32_gradient_into_a_float64_layer_is_taken_in_float64_like_torch(
        make, shape, torch_fn, params):
    """PyTorch casts a gradient to its output's dtype; the layers did part of their backward
    pass in the gradient's float32 (dx and the bias gradient float32, rounded to ~1e-7)."""
    layer, x = make(), RNG(1).standard_normal(shape)
    dout32 = RNG(2).standard_normal(layer.forward(x).shape).astype(np.float32)
    check_layer(layer, torch_fn, x, params, dout=dout32)
    layer.forward(x)
    analytic = {"x": layer.backward(dout32), **layer.grads}
    assert all(g.dtype == np.float64 for g in analytic.values())
    errors = gradcheck(lambda: float(np.sum(layer.forward(x) * dout32)), {"x": x, **layer.params},
                       analytic)
    assert max(errors.values()) < 1e-8, errors


def test_activations_flatten_dense():
    x = RNG(3).standard_normal((4, 3, 5, 5))
    check_layer(ReLU(), torch.relu, x)
    check_layer(Tanh(), torch.tanh, x)
    check_layer(Flatten(), lambda x: x.flatten(1), x)
    check_layer(Dense(7, 5, rng=0, dtype=np.float64), F.linear, RNG(4).standard_normal((6, 7)), "Wb")


@pytest.mark.parametrize("make, shape, torch_fn, params", [
    (lambda: MaxPool2D(2), (3, 4, 8, 10), lambda x: F.max_pool2d(x, 2), ""),
    (lambda: MaxPool2D(3, 2), (2, 3, 9, 7), lambda x: F.max_pool2d(x, 3, 2), ""),
    (lambda: AvgPool2D(2), (3, 4, 8, 10), lambda x: F.avg_pool2d(x, 2), ""),
    (lambda: AvgPool2D((2, 3), (1, 2)), (2, 2, 6, 9), lambda x: F.avg_pool2d(x, (2, 3), (1, 2)), ""),
    (lambda: ReLU(), (4, 3, 5, 5), torch.relu, ""),
    (lambda: Tanh(), (4, 3, 5, 5), torch.tanh, ""),
    (lambda: Flatten(), (4, 3, 5, 5), lambda x: x.flatten(1), ""),
    (lambda: Dense(400, 120, rng=0), (32, 400), F.linear, "Wb"),
], ids=["maxpool", "maxpool_overlapping", "avgpool", "avgpool_rect", "relu", "tanh", "flatten",
        "dense"])
def test_the_other_layers_in_float32(make, shape, torch_fn, params):
    """float32, the dtype training runs in, for every layer but Conv2D (test_conv2d_in_float32):
    against PyTorch's float64 on the same (float32) numbers, float32 throughout and within 2e-6
    of the largest value (float32 rounding reached 3.8e-7 here, Dense's 400-term sums; a wrong
    gradient is off by far more); the finite differences (float64 only) cannot see this dtype."""
    layer, x = make(), RNG(1).standard_normal(shape).astype(np.float32)
    out = layer.forward(x)
    dout = RNG(9).standard_normal(out.shape).astype(np.float32)
    dx = layer.backward(dout)
    xt = T(x, True)
    pt = [T(layer.params[k], True) for k in params]
    ref = torch_fn(xt, *pt)
    ref.backward(T(dout))
    pairs = [("output", out, ref), ("input gradient", dx, xt.grad)]
    pairs += [(f"gradient of {k}", layer.grads[k], p.grad) for k, p in zip(params, pt)]
    for what, ours, theirs in pairs:
        theirs = theirs.detach().numpy()
        assert ours.dtype == np.float32, what
        assert np.abs(ours - theirs).max() <= 2e-6 * np.abs(theirs).max(), what


@pytest.mark.parametrize("activation,pooling", [("relu", "max"), ("tanh", "avg")])
def test_whole_lenet5_in_float32(activation, pooling):
    """The model as training runs it (float32) against its PyTorch twin in float64 on the same
    weights and images: probabilities and every parameter gradient within 5e-5 of the largest
    value (float32 rounding through eight layers reached 8e-6 here, db2; a gradient 1% wrong is
    off by 1e-2), float32 throughout."""
    model = LeNet5(in_channels=4, activation=activation, pooling=pooling, seed=3)
    assert model.get_params()["W1"].dtype == np.float32
    net = torch_lenet5(model).double()
    X, y = RNG(7).random((6, 4, 32, 32), dtype=np.float32), np.array([0, 1, 2, 2, 1, 0])
    p = model.forward(X)
    grads = model.backward(p, y)
    logits = net(T(X))
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    pairs = [("probabilities", p, torch.softmax(logits, 1))]
    for i, module in enumerate([m for m in net if hasattr(m, "weight")], start=1):
        pairs += [(f"dW{i}", grads[f"dW{i}"], module.weight.grad),
                  (f"db{i}", grads[f"db{i}"], module.bias.grad)]
    assert len(pairs) == 1 + 2 * 5
    for what, ours, theirs in pairs:
        theirs = theirs.detach().numpy()
        assert ours.dtype == np.float32, what
        assert np.abs(ours - theirs).max() <= 5e-5 * np.abs(theirs).max(), what


@pytest.mark.parametrize("labels", ["int", "onehot"])
def test_softmax_cross_entropy_and_its_gradient(labels):
    logits, y = RNG(5).standard_normal((8, 3)) * 4, RNG(6).integers(0, 3, 8)
    target = y if labels == "int" else np.eye(3)[y]
    lt = T(logits, True)
    ref = F.cross_entropy(lt, torch.from_numpy(y))
    ref.backward()
    cost, p = CrossEntropyLoss(), softmax(logits)
    assert_close(p, torch.softmax(lt, 1), "softmax")
    assert cost.get(p, target) == pytest.approx(ref.item(), rel=1e-12)
    assert_close(cost.backward(p, target), lt.grad, "gradient w.r.t. logits")


@pytest.mark.parametrize("widths,threads,activation,pooling", [
    ((6, 16), 1, "relu", "max"), ((64, 128), 1, "relu", "max"), ((6, 16), 3, "relu", "max"),
    ((6, 16), 1, "tanh", "avg"), ((6, 16), 1, "relu", "avg"), ((6, 16), 1, "tanh", "max")],
    ids=["im2col", "winograd_conv2", "split_over_threads", "tanh_avgpool", "relu_avgpool",
         "tanh_maxpool"])
def test_whole_lenet5_forward_and_parameter_gradients(widths, threads, activation, pooling,
                                                      monkeypatch):
    """Also the options that only finite differences checked whole: Tanh and AvgPool2D."""
    monkeypatch.setattr(parallel, "MIN_PART_FLOPS", 1)  # split even this small batch
    model = LeNet5(in_channels=4, conv_channels=widths, activation=activation, pooling=pooling,
                   seed=3, dtype=np.float64)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Tanh" if activation == "tanh" else "ReLU",
            "AvgPool2D" if pooling == "avg" else "MaxPool2D"} <= kinds
    assert [layer.algorithm for layer in model.layers[::3][:2]] == (
        ["im2col", "winograd"] if widths == (64, 128) else ["im2col", "im2col"])
    net = torch_lenet5(model)
    X, y = RNG(7).random((6, 4, 32, 32)), np.array([0, 1, 2, 2, 1, 0])
    with SplitBatch(model, threads) as split:
        assert len(split.parts(len(X))) == threads
        p = split.forward(X)
        grads = split.backward(p, y)
    logits = net(T(X))
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    assert_close(p, torch.softmax(logits, 1), "probabilities")
    params = [m for m in net if hasattr(m, "weight")]
    for i, module in enumerate(params, start=1):
        assert_close(grads[f"dW{i}"], module.weight.grad, f"dW{i}")
        assert_close(grads[f"db{i}"], module.bias.grad, f"db{i}")


TIED_IMAGES = {"binary": lambda rng, shape: rng.integers(0, 2, shape).astype(float),
               "constant": lambda rng, shape: np.full(shape, 0.7),
               "rounded": lambda rng, shape: rng.standard_normal(shape).round()}


@pytest.mark.parametrize("channels,size,kernel,widths,activation,pooling,images,batch,threads", [
    (1, (13, 29), 3, (6, 16), "relu", "max", "binary", 7, 1),
    (3, (16, 19), 5, (64, 128), "tanh", "max", "constant", 2, 3),
    (2, (10, 22), (3, 7), (40, 64), "relu", "avg", "rounded", 33, 3),
    (4, (7, 7), 2, (6, 16), "relu", "max", "binary", 1, 1),
    (2, (17, 16), 4, (40, 64), "relu", "max", "rounded", 33, 1)],
    ids=["13x29_binary", "smallest_rows_winograd_constant", "smallest_rect_kernel",
         "smallest_7x7_batch_of_one", "odd_rows_winograd_ties"])
def test_whole_lenet5_on_odd_non_square_and_smallest_inputs_with_ties_and_three_adam_steps(
        channels, size, kernel, widths, activation, pooling, images, batch, threads, monkeypatch):
    """Inputs of other sizes than 32x32 (odd, non-square, the smallest a kernel allows: a
    pooling that drops an edge row or column), images with ties in every max-pool window,
    batches of 1 and 33: logits, loss, every gradient and the weights after three Adam steps
    against the twin, in float64."""
    monkeypatch.setattr(parallel, "MIN_PART_FLOPS", 1)  # split even these small batches
    model = LeNet5(in_channels=channels, input_size=size, kernel_size=kernel, conv_channels=widths,
                   activation=activation, pooling=pooling, seed=5, dtype=np.float64)
    if size[0] == 3 * np.atleast_1d(kernel)[0] + 1:  # the smallest: a row fewer is refused
        with pytest.raises(ValueError, match="does not fit"):
            LeNet5(in_channels=channels, input_size=(size[0] - 1, size[1]), kernel_size=kernel)
    net = torch_lenet5(model)
    rng = RNG(11)
    opt = AdamGD(0.01, 0.9, 0.999, 1e-8, model.get_params())
    topt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    with SplitBatch(model, threads) as split:
        for _ in range(3):
            X, y = TIED_IMAGES[images](rng, (batch, channels, *size)), rng.integers(0, 3, batch)
            p = split.forward(X)
            grads = split.backward(p, y)
            topt.zero_grad()
            logits = net(T(X))
            loss = F.cross_entropy(logits, torch.from_numpy(y))
            loss.backward()
            assert_close(p, torch.softmax(logits, 1), "probabilities")
            assert CrossEntropyLoss().get(p, y) == pytest.approx(loss.item(), rel=1e-12)
            modules = [m for m in net if hasattr(m, "weight")]
            for i, module in enumerate(modules, start=1):
                assert_close(grads[f"dW{i}"], module.weight.grad, f"dW{i}")
                assert_close(grads[f"db{i}"], module.bias.grad, f"db{i}")
            opt.update_params(grads, split.spread)
            topt.step()
    params = model.get_params()
    for i, module in enumerate(modules, start=1):  # 1e-8: a millionth of a step of lr 0.01
        for name, theirs in ((f"W{i}", module.weight), (f"b{i}", module.bias)):
            np.testing.assert_allclose(params[name], theirs.detach().numpy(), rtol=0, atol=1e-8,
                                       err_msg=name)


def run_steps(make_ours, make_theirs, steps=50):
    """``steps`` updates of a small model's parameters by our optimizer and by torch's on the
    same quadratic-ish loss gradients; returns both parameter sets."""
    rng = RNG(8)
    ours = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(3)}
    theirs = {k: T(v.copy(), True) for k, v in ours.items()}
    opt, topt = make_ours(ours), make_theirs(list(theirs.values()))
    targets = {k: rng.standard_normal(v.shape) for k, v in ours.items()}
    for step in range(steps):
        loss = sum(((theirs[k] - T(targets[k])) ** 4).sum() + (step % 3) * theirs[k].sum()
                   for k in theirs)
        topt.zero_grad()
        loss.backward()
        grads = {"d" + k: 4 * (ours[k] - targets[k]) ** 3 + (step % 3) for k in ours}
        ours = opt.update_params(grads)
        topt.step()
    return ours, theirs


def test_adamgd_equals_torch_adam_for_50_steps():
    ours, theirs = run_steps(lambda p: AdamGD(0.01, 0.9, 0.999, 1e-8, p),
                             lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8))
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("momentum", [0.9, 0.0], ids=["momentum", "plain"])
def test_sgd_with_momentum_equals_torch_sgd_for_50_steps(momentum):
    """Plain SGD (no velocity kept) is a path of its own: it had only its closed form on a
    quadratic (test_trajectories), not PyTorch's."""
    ours, theirs = run_steps(lambda p: SGD(0.001, p, momentum=momentum),
                             lambda p: torch.optim.SGD(p, lr=0.001, momentum=momentum))
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k].detach().numpy(), rtol=0, atol=1e-10)


def test_report_adamgd_without_bias_correction_differs_from_torch():
    ours, theirs = run_steps(lambda p: AdamGD(0.01, 0.9, 0.999, 1e-8, p, bias_correction=False),
                             lambda p: torch.optim.Adam(p, lr=0.01), steps=5)
    assert np.abs(ours["W1"] - theirs["W1"].detach().numpy()).max() > 1e-3


def torch_report_loop(net, data, config):
    """The report's loop in PyTorch: ``config``'s epochs of Adam on the batches ``fit`` draws
    (:func:`hw3lib.data.dataloader`, same seed and epochs), float64, no flips."""
    X = T(normalize(data.X_train, data.mean, data.std))
    y = torch.as_tensor(np.asarray(data.y_train))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                           eps=config.eps)
    for epoch in range(1, config.epochs + 1):
        order = [i for _, batch in dataloader(np.arange(len(y))[:, None, None, None],
                                              np.arange(len(y)), config.batch_size,
                                              seed=config.seed, epoch=epoch) for i in batch]
        for start in range(0, len(order), config.batch_size):
            index = order[start:start + config.batch_size]
            opt.zero_grad()
            F.cross_entropy(net(X[index]), y[index]).backward()
            opt.step()


@pytest.mark.skipif(not HAVE_DATA, reason=f"real dataset not found at {DATA}: set HW3_DATA")
def test_the_report_loop_trained_by_pytorch_ends_at_the_same_weights_and_test_predictions():
    """README's "Results": the report's loop (random split, no flips, 24 epochs, seed 0) in
    hw3lib and in PyTorch, from the same initial weights on the same batches, in float64."""
    config = TrainConfig(split="random", hflip=False, dtype="float64")
    data = config.load_data(DATA)
    model = config.build_model()
    net = torch_lenet5(model)
    result = fit(model, data, config, progress=False, restore_best=False)
    torch_report_loop(net, data, config)
    compared = 0
    for layer, module in zip(model.layers, net):
        if layer.params:  # the biases too: "the same weights" had left them unchecked
            for name, theirs in (("W", module.weight), ("b", module.bias)):
                np.testing.assert_allclose(layer.params[name], theirs.detach().numpy(),
                                           rtol=1e-8, atol=1e-10, err_msg=name)
                compared += 1
    assert compared == 10  # five layers with weights and biases
    X_test = normalize(data.X_test, data.mean, data.std)
    theirs = net(T(X_test)).argmax(axis=1).numpy()
    np.testing.assert_array_equal(result.predict(data.X_test).argmax(axis=1), theirs)


def test_a_sequential_of_ones_own_takes_one_adam_step_as_its_twin_and_one_without_weights_has_one():
    """Networks of one's own (README: The engine) against the twin torch_lenet5 builds: Tanh,
    AvgPool2D, strides, padding, 1x1 and Winograd convolutions, a ReLU that runs after the
    max-pools that follow it; a model without weights had no twin (KeyError 'W1')."""
    from hw3lib import Sequential
    rng = RNG(0)
    model = Sequential([
        Conv2D(2, 40, 3, padding=1, rng=rng, dtype=np.float64, algorithm="winograd"), ReLU(),
        MaxPool2D(3, stride=2), Conv2D(40, 6, 1, rng=rng, dtype=np.float64), Tanh(), AvgPool2D(2),
        Conv2D(6, 4, 2, stride=2, padding=1, rng=rng, dtype=np.float64), Flatten(),
        Dense(4 * 2 * 2, 3, rng=rng, dtype=np.float64)], (2, 10, 10))
    X, y = RNG(1).standard_normal((5, 2, 10, 10)), np.array([0, 1, 2, 2, 0])
    net = torch_lenet5(model)
    probs = model.forward(X)
    grads = model.backward(probs, y)
    logits = net(T(X))
    F.cross_entropy(logits, torch.tensor(y)).backward()
    assert_close(probs, torch.softmax(logits, 1), "probabilities")
    optimizer = AdamGD(1e-2, 0.9, 0.999, 1e-8, model.get_params())
    model.set_params(optimizer.update_params(grads))
    torch.optim.Adam(net.parameters(), lr=1e-2).step()
    theirs = [p for module in net if hasattr(module, "weight") for p in (module.weight, module.bias)]
    for (key, ours), param in zip(model.get_params().items(), theirs):
        np.testing.assert_allclose(ours, param.detach().numpy(), rtol=1e-7, atol=1e-9, err_msg=key)
    pools = Sequential([ReLU(), MaxPool2D(2), Flatten()], (3, 2, 2))
    X = RNG(2).standard_normal((5, 3, 2, 2))
    assert_close(pools.logits(X), torch_lenet5(pools)(T(X)), "without weights")
