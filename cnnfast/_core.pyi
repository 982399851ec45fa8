"""Type stub for cnnfast._core, the compiled kernels (private: use the cnnfast package).

Every function the extension exports is here (tests/test_typing.py compares this file with
``dir(cnnfast._core)``). Arrays are C-contiguous float32 or float64 unless said otherwise.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
Pair = tuple[int, int]

# ---------------------------------------------------------------------------- conv2d
def conv2d_forward(
    input: Array,
    weight: Array,
    bias: Array | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    relu: bool = False,
) -> Array: ...
def conv2d_backward_input(
    input_size: Sequence[int],
    grad_output: Array,
    weight: Array,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> Array: ...
def conv2d_backward_weight(
    input: Array,
    weight_size: Sequence[int],
    grad_output: Array,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    bias: bool,
) -> tuple[Array, Array | None]: ...
def conv2d_output_size(
    input_size: Sequence[int],
    weight_size: Sequence[int],
    bias_len: int,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> list[int]: ...

# ---------------------------------------------------------------------------- max_pool2d
def max_pool2d_forward(
    input: Array,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    ceil_mode: bool,
    return_indices: bool,
) -> Any: ...  # the output, or (output, int64 indices) with return_indices
def max_pool2d_backward(
    grad_output: Array,
    input_size: Sequence[int],
    indices: npt.NDArray[np.int64],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    ceil_mode: bool,
) -> Array: ...
def max_pool2d_output_size(
    input_size: Sequence[int],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    ceil_mode: bool,
) -> list[int]: ...

# ---------------------------------------------------------------------------- relu
def relu_forward(input: Array, out: Array | None = None) -> Array: ...
def relu_backward(grad_output: Array, input: Array, out: Array | None = None) -> Array: ...

# ---------------------------------------------------------------------------- pointwise / linear / fused eval step
def pointwise_forward(
    input: Array,
    kind: str,
    a: float | None = None,
    b: float | None = None,
    lo: float = ...,
    hi: float = ...,
    out: Array | None = None,
) -> Array: ...
def linear_forward(input: Array, weight: Array, bias: Array | None = None, out: Array | None = None) -> Array: ...
def conv_bn_act_forward(
    input: Array,
    weight: Array,
    bias: Array | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    relu: bool,
    bn: tuple[Array, Array, Array | None, Array | None, float] | None,
    act: str,
    a: float | None = None,
    b: float | None = None,
    lo: float = ...,
    hi: float = ...,
    residual: Array | None = None,
) -> Array: ...
def se_scale_forward(
    input: Array,
    fc1_weight: Array,
    fc1_bias: Array | None,
    fc2_weight: Array,
    fc2_bias: Array | None,
    activation: str = "relu",
    scale_activation: str = "hardsigmoid",
    alpha: float = ...,
    beta: float = 0.5,
    out: Array | None = None,
) -> Array: ...
def global_avg_pool_forward(input: Array) -> Array: ...

# a dw_chain_forward stage: (weight, bias, bn, act, a, b, lo, hi)
_ChainStage = tuple[
    Array, Array | None, tuple[Array, Array, Array | None, Array | None, float] | None, str, float, float, float, float
]

def dw_chain_forward(
    input: Array,
    expand: _ChainStage | None,
    dw: _ChainStage,
    project: _ChainStage | None,
    stride: Pair,
    padding: Pair,
    force: bool = False,
) -> Array | None: ...

# ---------------------------------------------------------------------------- runtime
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def set_isa(name: str) -> None: ...
def get_isa() -> str: ...
def set_winograd(enabled: bool) -> None: ...
def get_winograd() -> bool: ...
def set_autotune(enabled: bool) -> None: ...
def get_autotune() -> bool: ...
def autotune_cache() -> list[dict[str, Any]]: ...
def clear_autotune_cache() -> None: ...
def runtime_info() -> dict[str, Any]: ...
def empty_cache() -> int: ...
def set_cache_limit(bytes: int) -> int: ...
def cache_info() -> dict[str, int]: ...

# ---------------------------------------------------------------------------- for tests and benchmarks
def _autotune_counters() -> dict[str, int]: ...
def _pin_conv2d_kernel(name: str | None) -> None: ...
def _kernel_list() -> list[tuple[str, str, str, str, str]]: ...
def _get_pool_spin_us() -> int: ...
def _set_pool_spin_us(us: int) -> None: ...
def _bench_fma_peak(isa: str, threads: int, seconds: float = 0.5) -> float: ...
def _bench_bandwidth(threads: int, megabytes: float = 128.0, repeats: int = 5) -> dict[str, Any]: ...
