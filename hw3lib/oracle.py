"""PyTorch twins of hw3lib models, for tests and benchmarks (PyTorch is optional).

Nothing here is imported by ``import hw3lib``; ``import torch`` happens on first use.
"""
import numpy as np


def torch_available():
    """True when PyTorch can be imported (it is then imported), else False."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_lenet5(model):
    """A ``torch.nn.Sequential`` equal to the hw3lib ``model`` (a ``LeNet5`` or another
    ``Sequential``: same layers, same weights, same dtype); it outputs logits. Layer ``i`` of
    both models correspond."""
    import torch
    from torch import nn

    from .conv import Conv2D
    from .layers import AvgPool2D, Dense, Flatten, MaxPool2D, ReLU, Tanh

    def twin(layer):
        if isinstance(layer, Conv2D):
            return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                             layer.stride, layer.padding)
        if isinstance(layer, Dense):
            return nn.Linear(layer.in_features, layer.out_features)
        kinds = {MaxPool2D: nn.MaxPool2d, AvgPool2D: nn.AvgPool2d}
        if type(layer) in kinds:
            return kinds[type(layer)](layer.kernel_size, layer.stride)
        return {ReLU: nn.ReLU, Tanh: nn.Tanh, Flatten: nn.Flatten}[type(layer)]()

    net, params = nn.Sequential(*[twin(layer) for layer in model.layers]), model.get_params()
    if params:  # a model without weights computes in its input's dtype, as its twin does
        net.to(getattr(torch, params["W1"].dtype.name))
    load_into_torch(model, net)
    return net


def load_into_torch(model, net):
    """Copy the hw3lib model's weights into its torch twin ``net``."""
    import torch

    with torch.no_grad():
        for layer, module in zip(model.layers, net):
            if layer.params:
                module.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["W"])))
                module.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.params["b"])))
