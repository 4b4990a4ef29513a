"""hw3lib: a LeNet-style CNN written from scratch in NumPy (the HW3 course report)."""
from .gradcheck import gradcheck, gradcheck_layer, numerical_gradient, relative_error
from .im2col import col2im, conv2d_naive, conv2d_naive_backward, conv_output_size, im2col
from .layers import AvgPool2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from .conv import Conv2D
from .losses import CrossEntropyLoss, softmax
from .model import LeNet5, Sequential
from .optim import SGD, AdamGD
from .tables import Table
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .train import fit
from .evaluation import evaluate

__version__ = "0.1.0"
__all__ = [
    "AdamGD", "AvgPool2D", "Conv2D", "CrossEntropyLoss", "Dense", "Flatten", "LeNet5", "MaxPool2D",
    "ReLU", "SGD", "Sequential", "Table", "Tanh", "TrainConfig", "col2im", "conv2d_naive",
    "conv2d_naive_backward", "conv_output_size", "evaluate", "fit", "gradcheck", "gradcheck_layer",
    "im2col", "load_checkpoint", "numerical_gradient", "relative_error", "save_checkpoint", "softmax",
]
