"""cnnfast: fast convolutional neural networks on the CPU.

Hand-written C++ kernels (SIMD, on cnnfast's own thread pool) for conv2d, max_pool2d and ReLU, a NumPy functional API
with PyTorch's names, and a small autograd for training.
"""

import os as _os
from typing import Any as _Any

from ._version import __version__


def _load_core() -> _Any:
    """Import the compiled kernels (importing them reads CNNFAST_ISA).

    The extension sits next to this file in an installed copy (``pip install .`` or a wheel), in
    scikit-build-core's build folder for an editable install (``pip install -e .``: its import hook
    finds it), or in ``cnnfast/`` after a manual CMake build that copies it there.
    """
    import importlib

    try:
        core = importlib.import_module(__name__ + "._core")
    except ModuleNotFoundError as e:
        if e.name != __name__ + "._core":
            raise
        here = _os.path.dirname(_os.path.abspath(__file__))
        raise ImportError(
            f"cnnfast: the compiled kernels (cnnfast._core) are not in {here}. This is a source checkout "
            "that was not built: install it editable (`pip install -e .`, see the README's Development "
            "section) so that it imports from here with its compiled module, or run Python outside the "
            "checkout to use an installed cnnfast"
        ) from None
    except ImportError as e:
        # The module was found but refused to load: a bad CNNFAST_* setting (the message names the
        # variable, its value and the valid values) -- say exactly that and nothing else.
        raise ValueError(str(e)) from None
    return core


_core = _load_core()
from ._runtime import (  # noqa: E402
    autotune_cache,
    available_isas,
    cache_info,
    clear_autotune_cache,
    empty_cache,
    get_autotune,
    get_isa,
    get_num_threads,
    get_winograd,
    runtime_info,
    set_autotune,
    set_cache_limit,
    set_isa,
    set_num_threads,
    set_winograd,
    show_runtime,
)
from .functional import (  # noqa: E402
    conv2d,
    conv2d_backward,
    conv2d_input,
    conv2d_output_shape,
    conv2d_relu,
    conv2d_weight,
    max_pool2d,
    max_pool2d_backward,
    max_pool2d_output_shape,
    relu,
    relu_,
    relu_backward,
)
from . import functional  # noqa: E402
from .functional import (  # noqa: E402
    avg_pool2d,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    flatten,
    leaky_relu,
    linear,
    log_softmax,
    mse_loss,
    nll_loss,
    one_hot,
    sigmoid,
    softmax,
    tanh,
)
from .functional import (  # noqa: E402
    adaptive_avg_pool2d,
    batch_norm,
    cat,
    gelu,
    global_avg_pool2d,
    hardsigmoid,
    hardswish,
    local_response_norm,
    pad,
    prelu,
    relu6,
    silu,
)
from .autograd import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled  # noqa: E402
from ._random import manual_seed  # noqa: E402

__all__ = [
    "__version__",
    "functional",
    "show_runtime",
    "runtime_info",
    "get_num_threads",
    "set_num_threads",
    "get_isa",
    "set_isa",
    "available_isas",
    "empty_cache",
    "set_cache_limit",
    "cache_info",
    "get_winograd",
    "set_winograd",
    "get_autotune",
    "set_autotune",
    "autotune_cache",
    "clear_autotune_cache",
    "conv2d",
    "conv2d_relu",
    "conv2d_backward",
    "conv2d_input",
    "conv2d_weight",
    "conv2d_output_shape",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_output_shape",
    "relu",
    "relu_",
    "relu_backward",
]
# autograd, nn and the functional ops beyond the kernels
__all__ += [
    "Tensor",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "manual_seed",
    "linear",
    "avg_pool2d",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "dropout",
    "flatten",
    "one_hot",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy_with_logits",
    "cat",
    "pad",
    "batch_norm",
    "adaptive_avg_pool2d",
    "global_avg_pool2d",
    "hardswish",
    "hardsigmoid",
    "silu",
    "relu6",
    "gelu",
    "prelu",
    "local_response_norm",
]

# optim, data, datasets, save/load, training helpers and gradcheck: imported on first use
# (PEP 562), so ``import cnnfast`` stays fast; ``cnnfast.optim.SGD`` etc. work as attributes.
_LAZY = {
    "optim": ("cnnfast.optim", None),
    "data": ("cnnfast.data", None),
    "datasets": ("cnnfast.datasets", None),
    "save": ("cnnfast.serialization", "save"),
    "load": ("cnnfast.serialization", "load"),
    "fit": ("cnnfast.training", "fit"),
    "evaluate": ("cnnfast.training", "evaluate"),
    "predict": ("cnnfast.training", "predict"),
    "History": ("cnnfast.training", "History"),
    "filters": ("cnnfast.filters", None),
    "viz": ("cnnfast.viz", None),
    "nn": ("cnnfast.nn", None),
    "models": ("cnnfast.models", None),
    "load_torch": ("cnnfast.torch_load", "load_torch"),
}
# Imported eagerly (NumPy only, microseconds): the function must shadow the submodule of the same
# name, which would otherwise win if someone imported ``cnnfast.gradcheck`` as a module first.
from .gradcheck import GradcheckError, gradcheck  # noqa: E402

__all__ += list(_LAZY) + ["gradcheck", "GradcheckError"]


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnfast' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
