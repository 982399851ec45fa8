"""Bad input gets a clear Python exception naming the op and the shapes -- never a crash."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnfast

f32 = np.float32


def z(*shape):
    return np.zeros(shape, f32)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (
            lambda: cnnfast.conv2d(z(1, 4, 5, 5), z(8, 3, 3, 3), groups=2),
            ValueError,
            r"conv2d: Given groups=2, weight of size \(8, 3, 3, 3\), expected input \(1, 4, 5, 5\) to have 6 channels, but got 4 channels instead",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(8, 3, 3, 3), groups=2),
            ValueError,
            r"expected input \(1, 3, 5, 5\) to have 6 channels",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 6, 5, 5), z(7, 3, 3, 3), groups=2),
            ValueError,
            r"Given groups=2, expected weight to be divisible by 2 at dimension 0, but got weight of size \(7, 3, 3, 3\)",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 7, 7)),
            ValueError,
            r"Calculated padded input size per channel: \(5 x 5\)\. Kernel size: \(7 x 7\)\. Kernel size can't be greater than actual input size",
        ),
        (lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), dilation=3), ValueError, r"Kernel size: \(7 x 7\)"),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), stride=0),
            ValueError,
            r"non-positive stride is not supported",
        ),
        (lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), stride=(1, -2)), ValueError, r"non-positive stride"),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), padding=-1),
            ValueError,
            r"negative padding is not supported",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), dilation=0),
            ValueError,
            r"dilation should be greater than zero",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), groups=0),
            ValueError,
            r"non-positive groups is not supported",
        ),
        (
            lambda: cnnfast.conv2d(z(3, 5, 5), z(2, 3, 3, 3), z(3)),
            ValueError,
            r"Given weight of size \(2, 3, 3, 3\), expected bias to be 1-dimensional with 2 elements, but got bias of size \(3,\) instead",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), z(2, 1)),
            ValueError,
            r"expected bias to be 1-dimensional",
        ),
        (
            lambda: cnnfast.conv2d(z(5, 5), z(2, 1, 3, 3)),
            ValueError,
            r"conv2d: Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size \(5, 5\)",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 1, 1, 5, 5), z(2, 1, 3, 3)),
            ValueError,
            r"but got input of size \(1, 1, 1, 5, 5\)",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3)),
            ValueError,
            r"weight should have 4 dimensions.*\(2, 3, 3\)",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), padding="full"),
            ValueError,
            r"invalid padding string 'full'",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), stride=2, padding="same"),
            ValueError,
            r"padding='same' is not supported for strided convolutions",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), stride=1.5),
            TypeError,
            r"stride must be an int or a pair of ints",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5), z(2, 3, 3, 3), stride=(1, 2, 3)),
            ValueError,
            r"stride must be an int or a pair",
        ),
        (
            lambda: cnnfast.conv2d(np.array([["a"]]), z(2, 3, 3, 3)),
            TypeError,
            r"conv2d: expected a real numeric array for input, got dtype <U1",
        ),
        (
            lambda: cnnfast.conv2d(z(1, 3, 5, 5).astype(complex), z(2, 3, 3, 3)),
            TypeError,
            r"real numeric array for input, got dtype complex128",
        ),
        (lambda: cnnfast.conv2d(z(1, 3, 5, 5), None), TypeError, r"real numeric array for weight, got dtype object"),
        (
            lambda: cnnfast.conv2d([[1, 2], [3]], z(2, 3, 3, 3)),
            TypeError,
            r"conv2d: input could not be converted to an array",
        ),
        # backward passes share the forward's checks
        (
            lambda: cnnfast.conv2d_backward(z(1, 2, 4, 4), z(1, 3, 5, 5), z(2, 3, 3, 3)),
            ValueError,
            r"expected grad_output of size \(1, 2, 3, 3\) .*but got grad_output of size \(1, 2, 4, 4\)",
        ),
        (
            lambda: cnnfast.conv2d_input((1, 4, 5, 5), z(8, 3, 3, 3), z(1, 8, 3, 3), groups=2),
            ValueError,
            r"to have 6 channels, but got 4",
        ),
        (
            lambda: cnnfast.conv2d_weight(z(1, 3, 5, 5), (2, 3, 9, 9), z(1, 2, 3, 3)),
            ValueError,
            r"Kernel size can't be greater",
        ),
        # max_pool2d
        (
            lambda: cnnfast.max_pool2d(z(1, 1, 4, 4), 0),
            ValueError,
            r"max_pool2d: kernel_size must be greater than zero, but got kH: 0 kW: 0",
        ),
        (
            lambda: cnnfast.max_pool2d(z(1, 1, 4, 4), 2, stride=0),
            ValueError,
            r"stride should be greater than zero, but got dH: 0 dW: 0",
        ),
        (lambda: cnnfast.max_pool2d(z(1, 1, 4, 4), 2, dilation=0), ValueError, r"dilation should be greater than zero"),
        (lambda: cnnfast.max_pool2d(z(1, 1, 4, 4), 2, padding=-1), ValueError, r"pad must be non-negative"),
        (
            lambda: cnnfast.max_pool2d(z(1, 1, 4, 4), 2, padding=2),
            ValueError,
            r"pad should be at most half of effective kernel size, but got pad=\(2, 2\), kernel_size=\(2, 2\) and dilation=\(1, 1\)",
        ),
        (
            lambda: cnnfast.max_pool2d(z(1, 6, 4, 4), 5),
            ValueError,
            r"Given input size: \(6x4x4\)\. Calculated output size: \(6x0x0\)\. Output size is too small",
        ),
        (
            lambda: cnnfast.max_pool2d(z(4, 4), 2),
            ValueError,
            r"max_pool2d: Expected 3D or 4D \(batch mode\) input, but got input of size \(4, 4\)",
        ),
        (lambda: cnnfast.max_pool2d(z(1, 0, 4, 4), 2), ValueError, r"non-zero channel and spatial dimensions"),
        (
            lambda: cnnfast.max_pool2d_backward(z(1, 1, 2, 2), (1, 1, 4, 4), np.full((1, 1, 2, 2), 16), 2),
            ValueError,
            r"indices must lie in \[0, H\*W\) = \[0, 16\)",
        ),
        (
            lambda: cnnfast.max_pool2d_backward(z(1, 1, 2, 2), (1, 1, 4, 4), np.full((1, 1, 2, 2), -1), 2),
            ValueError,
            r"indices must lie in",
        ),
        (
            lambda: cnnfast.max_pool2d_backward(z(1, 1, 3, 3), (1, 1, 4, 4), np.zeros((1, 1, 2, 2), np.int64), 2),
            ValueError,
            r"expected grad_output of size \(1, 1, 2, 2\)",
        ),
        (
            lambda: cnnfast.max_pool2d_backward(z(1, 1, 2, 2), (1, 1, 4, 4), np.zeros((1, 1, 2, 2)), 2),
            ValueError,
            r"indices must be an integer array",
        ),
        # relu
        (
            lambda: cnnfast.relu_backward(z(3), z(4)),
            ValueError,
            r"grad_output of size \(3,\) does not match input of size \(4,\)",
        ),
        (
            lambda: cnnfast.relu(z(3), out=np.zeros(3, np.float64)),
            ValueError,
            r"relu: out has dtype float64 but the result has dtype float32",
        ),
        (lambda: cnnfast.relu(z(3), out=z(4)), ValueError, r"out has size \(4,\) but the result has size \(3,\)"),
        (lambda: cnnfast.relu(z(6), out=z(12)[::2]), ValueError, r"out must be C-contiguous"),
        (
            lambda: cnnfast.relu(np.zeros(3, np.int32), inplace=True),
            ValueError,
            r"inplace=True needs a writeable C-contiguous float32/float64",
        ),
        # runtime
        (
            lambda: cnnfast.set_num_threads(0),
            ValueError,
            r"set_num_threads: the number of threads must be a positive integer, got 0",
        ),
        (lambda: cnnfast.set_num_threads(2.5), TypeError, r"expected a positive int"),
        (lambda: cnnfast.set_isa("sse9"), ValueError, r"unknown ISA 'sse9'; valid values are ref, avx2, avx512"),
    ],
)
def test_bad_input_raises_clear_error(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_sizes_whose_products_overflow_are_rejected():
    with pytest.raises(
        ValueError, match=r"conv2d: output of size \(1, 1099511627776, 1048576, 1048576\) has too many elements"
    ):
        cnnfast.conv2d_output_shape((1, 1, 2**20, 2**20), (2**40, 1, 1, 1))
    with pytest.raises(ValueError, match=r"input of size .* has too many elements|too large"):
        cnnfast.max_pool2d_output_shape((2**31, 2**31, 2**31, 2**31), 2)
    with pytest.raises(ValueError, match=re.escape("too large")):
        cnnfast.conv2d_output_shape((1, 1, 4, 4), (1, 1, 1, 1), stride=2**40)


def test_errors_leave_no_partial_state(rng):
    """After a failed call, the same inputs still work (no corrupted global state)."""
    x = rng.standard_normal((1, 3, 5, 5)).astype(f32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(f32)
    before = cnnfast.conv2d(x, w)
    with pytest.raises(ValueError):
        cnnfast.conv2d(x, w, groups=2)
    np.testing.assert_array_equal(cnnfast.conv2d(x, w), before)
