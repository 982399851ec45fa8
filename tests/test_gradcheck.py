"""cnnfast.gradcheck: passes correct gradients, catches a wrong backward, clear reports."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast.gradcheck import GradcheckError, gradcheck

from cnnfast.autograd.function import Function
from cnnfast.autograd.tensor import Tensor


class _Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class _WrongCube(_Cube):
    @staticmethod
    def backward(ctx, g):  # deliberately wrong: off by one in a single element
        (x,) = ctx.saved_tensors
        grad = 3 * x * x * g
        grad.reshape(-1)[5] += 1.0
        return grad


def _t(shape, seed=0, requires_grad=True):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


def test_passes_for_correct_gradients():
    a, b = _t((3, 4)), _t((4, 2), seed=1)
    assert gradcheck(lambda x, y: (x @ y).tanh(), (a, b))
    assert gradcheck(_Cube.apply, _t((2, 5)))  # a bare Tensor works as inputs


def test_catches_a_wrong_backward_and_names_input_and_index():
    x = _t((2, 5))
    with pytest.raises(
        GradcheckError,
        match=r"input 0: 1/10 elements[\s\S]*input 0 \(float64, shape \(2, 5\)\) " r"at index \(1, 0\): analytic",
    ):
        gradcheck(_WrongCube.apply, (x,))
    assert gradcheck(_WrongCube.apply, (x,), raise_exception=False) is False


def test_only_the_wrong_input_is_reported():
    a = _t((2, 5), seed=2)
    b = _t((2, 5), seed=3)
    with pytest.raises(GradcheckError, match=r"^gradcheck: .*\(input 1: 1/10 elements"):
        gradcheck(lambda x, y: x * 2.0 + _WrongCube.apply(y), (a, b))


def test_inputs_restored_and_grads_untouched():
    x = _t((3, 3))
    before = x.data.copy()
    x.grad = np.full((3, 3), 7.0)
    gradcheck(lambda t: (t * t).sum(), (x,))
    np.testing.assert_array_equal(x.data, before)
    np.testing.assert_array_equal(x.grad, np.full((3, 3), 7.0))


def test_non_differentiable_inputs_are_passed_through():
    x = _t((4,))
    const = _t((4,), seed=5, requires_grad=False)
    assert gradcheck(lambda t, c, k: t * c * k, (x, const, 3.0))


def test_rejects_float32_with_a_float64_hint():
    x = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="input 0 has dtype float32.*float64"):
        gradcheck(lambda t: t * 2.0, (x,))


def test_argument_errors():
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda t: t, (_t((2,), requires_grad=False),))
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda t: t.data * 2, (_t((2,)),))


def test_conv_pool_relu_pipeline():
    F = cnnfast.functional
    x = _t((1, 2, 6, 6), seed=6)
    w = Tensor(np.random.default_rng(7).standard_normal((3, 2, 3, 3)) * 0.5, requires_grad=True)
    b = _t((3,), seed=8)
    # max-pool is non-differentiable at ties; random data has none, and eps is far below the gaps
    assert gradcheck(lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2), (x, w, b), eps=1e-6)
