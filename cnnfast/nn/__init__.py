"""cnnfast.nn: layers, containers and losses (``torch.nn`` names and defaults).

Layers take NumPy arrays and return NumPy arrays; given a ``cnnfast.Tensor`` they record for
backward. ``cnnfast.nn.functional`` is ``cnnfast.functional``.
"""
from .. import functional
from . import init
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, Parameter
from .pooling import AvgPool2d, MaxPool2d
from .summary import ModelSummary, summary

__all__ = [
    "functional", "init", "Module", "Parameter", "Sequential", "ModuleList",
    "Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "Flatten", "Identity", "Dropout",
    "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss", "summary", "ModelSummary",
]
