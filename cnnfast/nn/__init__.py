"""cnnfast.nn: layers, containers and losses (``torch.nn`` names and defaults).

Layers take NumPy arrays and return NumPy arrays; given a ``cnnfast.Tensor`` they record for
backward. ``cnnfast.nn.functional`` is ``cnnfast.functional``.
"""

import sys as _sys

from .. import functional

# ``import cnnfast.nn.functional as F`` works as in torch, and is the same module as cnnfast.functional.
_sys.modules[__name__ + ".functional"] = functional
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
from .normalization import BatchNorm2d, LocalResponseNorm
from .pointwise import GELU, Hardsigmoid, Hardswish, PReLU, ReLU6, SiLU
from .adaptive import AdaptiveAvgPool2d
from .fusion import fold_batchnorm, fuse_conv_bn_eval, fuse_conv_bn_weights

__all__ = [
    "functional",
    "init",
    "Module",
    "Parameter",
    "Sequential",
    "ModuleList",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Linear",
    "Flatten",
    "Identity",
    "Dropout",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "CrossEntropyLoss",
    "NLLLoss",
    "MSELoss",
    "BCEWithLogitsLoss",
    "summary",
    "ModelSummary",
    # transfer learning (issue 10)
    "BatchNorm2d",
    "LocalResponseNorm",
    "ReLU6",
    "Hardsigmoid",
    "Hardswish",
    "SiLU",
    "GELU",
    "PReLU",
    "AdaptiveAvgPool2d",
    "fuse_conv_bn_eval",
    "fuse_conv_bn_weights",
    "fold_batchnorm",
]
