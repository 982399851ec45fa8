"""The autograd engine: Tensor basics, graph traversal, accumulation, grad modes, error messages,
and every Tensor op's gradient against float64 central finite differences (and torch if present)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import Tensor
from cnnfast.autograd import Function


def fd_check(fn, *arrays, eps=1e-6, atol=1e-7, rtol=1e-5, seed=0):
    """Autograd vs central finite differences of L = <v, fn(*inputs)> for a random cotangent v (float64)."""
    ts = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*ts)
    v = np.random.default_rng(seed).standard_normal(out.shape)
    (out * v).sum().backward()
    for t in ts:
        num = np.zeros_like(t.data)
        flat, nflat = t.data.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            with cnnfast.no_grad():
                hi = float((fn(*ts).data * v).sum())
            flat[i] = old - eps
            with cnnfast.no_grad():
                lo = float((fn(*ts).data * v).sum())
            flat[i] = old
            nflat[i] = (hi - lo) / (2 * eps)
        assert t.grad is not None and t.grad.shape == t.shape
        np.testing.assert_allclose(t.grad, num, atol=atol, rtol=rtol)


# ---------------------------------------------------------------------------- construction


def test_tensor_wraps_array_without_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = Tensor(a)
    assert t.data is a and t.numpy() is a and np.asarray(t) is a
    assert (t.shape, t.ndim, t.dtype, t.size, len(t)) == ((2, 3), 2, np.float32, 6, 2)
    a[0, 0] = 42
    assert t.data[0, 0] == 42
    assert t.grad is None and not t.requires_grad and t.is_leaf and t.grad_fn is None


def test_tensor_dtype_rules():
    assert Tensor([1.0, 2.0]).dtype == np.float32  # Python floats -> float32, as torch
    assert Tensor(np.zeros(2)).dtype == np.float64  # ndarrays keep float64
    assert Tensor(np.zeros(2, np.float32)).dtype == np.float32
    assert Tensor([1, 2]).dtype.kind == "i"  # ints stay ints without grad
    assert Tensor([1, 2], requires_grad=True).dtype == np.float32
    assert Tensor(np.array([1, 2], np.int64), requires_grad=True).dtype == np.float32
    with pytest.raises(TypeError, match="dtype"):
        Tensor(np.array(["a"]))
    with pytest.raises(TypeError, match="float32/float64"):
        Tensor([1, 2], requires_grad=True, dtype=np.int32)


def test_item_repr_T_iteration():
    t = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), requires_grad=True)
    assert "requires_grad=True" in repr(t) and repr(t).startswith("Tensor(")
    y = t * 2
    assert "grad_fn=<MulBackward>" in repr(y)
    assert "dtype=float64" in repr(Tensor(np.zeros(2)))
    assert Tensor(np.array([3.5])).item() == 3.5
    with pytest.raises(ValueError, match=r"one element.*\(2, 2\)"):
        t.item()
    np.testing.assert_array_equal(t.T.data, t.data.T)
    rows = list(t)
    assert len(rows) == 2 and isinstance(rows[0], Tensor) and rows[1].data.tolist() == [3.0, 4.0]


# ---------------------------------------------------------------------------- engine


def test_diamond_graph_topological_order_and_accumulation():
    # x feeds a and b, both feed y: x's grad must be the sum over both paths, computed once.
    calls = []

    class Tap(Function):
        @staticmethod
        def forward(ctx, a, tag):
            ctx.tag = tag
            return a.copy()

        @staticmethod
        def backward(ctx, g):
            calls.append(ctx.tag)
            return g, None

    x = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    top = Tap.apply(x, "top")
    a = Tap.apply(top * 3.0, "a")
    b = Tap.apply(top * top, "b")
    y = Tap.apply(a + b, "y").sum()
    y.backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)
    # y before its inputs a and b; the shared node "top" exactly once, after both
    assert calls[0] == "y" and sorted(calls[1:3]) == ["a", "b"] and calls[3:] == ["top"]


def test_deep_chain_no_recursion_limit():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_grad_accumulates_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3, 3])


def test_same_tensor_used_twice_in_one_op():
    x = Tensor(np.array([1.0, -3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_leaf_grad_is_private_copy():
    # add's backward hands the same array to both inputs; mutating one grad must not change the other
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.full(3, 2.0))
    a.grad += 100
    np.testing.assert_array_equal(b.grad, [2, 2, 2])


def test_only_leaves_keep_grad_unless_retained():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 2
    k = (x * 3).retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad, h.data)
    np.testing.assert_allclose(x.grad, 2 * 3 * x.data * 2)


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((5,), ())])
def test_broadcasting_reduces_gradients(shape_a, shape_b):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    fd_check(lambda x, y: x * y + y, a, b)
    fd_check(lambda x, y: x / (y * y + 1) - x, a, b)


def test_explicit_upstream_gradient():
    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    y = x * x
    y.backward(np.array([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad, 2 * x.data * [[1.0, 0.0], [0.5, 2.0]])


def test_backward_errors():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 2\)"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\).*\(2, 2\)"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).sum().backward()
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = (x * x).sum()
    z.backward(retain_graph=True)
    z.backward()  # allowed with retain_graph
    np.testing.assert_allclose(x.grad, 2 + 4 * x.data)


def test_wrong_gradient_shape_from_function_is_caught():
    class Bad(Function):
        @staticmethod
        def forward(ctx, a):
            return a.sum(axis=0)

        @staticmethod
        def backward(ctx, g):
            return g  # should be broadcast back to the input's shape

    x = Tensor(np.ones((3, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadBackward.*shape \(2,\).*shape \(3, 2\)"):
        Bad.apply(x).sum().backward()


def test_custom_function_needs_input_grad():
    seen = {}

    class MulConst(Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            seen["mask"] = ctx.needs_input_grad
            return g * b, g * a

    x = Tensor(np.array([2.0]), requires_grad=True)
    c = Tensor(np.array([5.0]))
    MulConst.apply(x, c).sum().backward()
    assert seen["mask"] == (True, False)
    np.testing.assert_allclose(x.grad, [5.0])
    assert c.grad is None


# ---------------------------------------------------------------------------- grad modes


def test_no_grad_context_and_decorator():
    x = Tensor(np.ones(2), requires_grad=True)
    with cnnfast.no_grad():
        assert not cnnfast.is_grad_enabled()
        y = x * 2
        with cnnfast.enable_grad():
            z = x * 2
    assert cnnfast.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @cnnfast.no_grad()
    def f(t):
        return t * 3

    @cnnfast.no_grad
    def g(t):
        return t * 3

    assert not f(x).requires_grad and not g(x).requires_grad
    assert cnnfast.is_grad_enabled()
    with cnnfast.set_grad_enabled(False):
        assert not (x * 1).requires_grad
    assert cnnfast.is_grad_enabled()


def test_no_grad_restores_on_exception():
    with pytest.raises(ZeroDivisionError):
        with cnnfast.no_grad():
            1 / 0
    assert cnnfast.is_grad_enabled()


def test_detach_and_requires_grad_():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(x.grad, d.data)
    w = Tensor(np.ones(2)).requires_grad_()
    assert w.requires_grad
    with pytest.raises(RuntimeError, match="only leaves"):
        (w * 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="floating point"):
        Tensor(np.array([1, 2])).requires_grad_()


def test_inplace_rules():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place operation on a leaf"):
        x += 1
    with pytest.raises(RuntimeError, match="no_grad"):
        x[0] = 5.0
    with cnnfast.no_grad():
        x -= 1
        x *= 2
        x[1] = 7.0
    np.testing.assert_array_equal(x.data, [0.0, 7.0])
    assert x.requires_grad  # in-place under no_grad keeps the identity, as torch parameter updates
    t = Tensor(np.zeros(3))
    t.copy_(np.array([1.0, 2.0, 3.0])).add_(1)
    np.testing.assert_array_equal(t.data, [2, 3, 4])
    with pytest.raises(ValueError, match=r"\(2,\) cannot be broadcast to \(3,\)"):
        t.copy_(np.ones(2))


def test_ndarray_mixing_and_reflected_ops():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = np.array([3.0, 4.0])
    for y in (c + x, x + c, c * x, c - x, c / x, 2**x, c @ x):
        assert isinstance(y, Tensor) and y.requires_grad
    y = (c - x) * (c / x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -c / x.data - (c - x.data) * c / x.data**2)


def test_comparisons_and_argmax_are_not_differentiable():
    x = Tensor(np.array([[1.0, 5.0], [7.0, 2.0]]), requires_grad=True)
    m = x > 2
    assert m.dtype == np.bool_ and not m.requires_grad
    assert x.argmax(1).tolist() == [1, 0]
    acc = (x.argmax(axis=1) == Tensor(np.array([1, 1]))).data.mean()
    assert acc == 0.5


# ---------------------------------------------------------------------------- op gradients (float64 FD)

RNG = np.random.default_rng(7)
A34 = RNG.standard_normal((3, 4))
P34 = RNG.random((3, 4)) + 0.5  # positive, for log/sqrt/pow


@pytest.mark.parametrize(
    "name, fn, inputs",
    [
        ("add_sub_neg", lambda a, b: -(a - b) + a, (A34, A34[::-1].copy())),
        ("mul_div", lambda a, b: a * b / (b + 3), (A34, P34)),
        ("pow_scalar", lambda a: a**3 - a**0.5, (P34,)),
        ("pow_tensor", lambda a, b: a**b, (P34, A34)),
        ("rpow", lambda a: 2.0**a, (A34,)),
        ("exp_log_sqrt", lambda a: a.exp() + a.log() * a.sqrt(), (P34,)),
        ("tanh_sigmoid_abs", lambda a: a.tanh() * a.sigmoid() + a.abs(), (A34,)),
        ("clip", lambda a: a.clip(-0.5, 0.7) * a, (A34,)),
        ("relu", lambda a: a.relu() * a, (A34,)),
        ("sum_axis", lambda a: a.sum(axis=1) * a.sum(0, keepdims=True).sum(), (A34,)),
        ("sum_dim_tuple", lambda a: a.sum(dim=(0, 2), keepdim=True), (RNG.standard_normal((2, 3, 4)),)),
        ("mean", lambda a: a.mean(axis=0) + a.mean(), (A34,)),
        ("max_min", lambda a: a.max(axis=1) - a.min(0).sum() + a.max(), (A34,)),
        ("reshape_view_flatten", lambda a: a.reshape(4, 3).view(2, 6).flatten() * np.arange(12), (A34,)),
        (
            "transpose_permute",
            lambda a: a.transpose(0, 2).permute(1, 0, 2) @ np.ones((2, 5)),
            (RNG.standard_normal((2, 3, 4)),),
        ),
        ("T", lambda a: a.T @ a, (A34,)),
        ("squeeze_unsqueeze", lambda a: a.unsqueeze(0).squeeze(0).unsqueeze(-1).squeeze(), (A34,)),
        ("matmul_2d", lambda a, b: a @ b, (A34, RNG.standard_normal((4, 2)))),
        ("matmul_vec", lambda a, b: (a @ b) * (b @ a.T), (A34, RNG.standard_normal(4))),
        ("matmul_batched", lambda a, b: a @ b, (RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 5)))),
        ("getitem_basic", lambda a: a[1:, ::2] * a[0, None, 1:3].sum(), (A34,)),
        ("getitem_fancy_repeated", lambda a: a[np.array([0, 2, 0, 0]), np.array([1, 1, 3, 1])], (A34,)),
        ("getitem_bool", lambda a: a[a.data > 0], (A34,)),
        ("softmax_logsoftmax", lambda a: a.softmax(1) * a.log_softmax(0), (A34,)),
    ],
)
def test_op_gradients_match_finite_differences(name, fn, inputs):
    fd_check(fn, *inputs)


def test_max_gradient_shared_between_ties():
    x = Tensor(np.array([1.0, 3.0, 3.0, 0.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5, 0])  # as torch.amax


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = (x * 2.5 + 1).exp().sum() / 3
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_mixed_dtype_grad_cast_to_leaf_dtype():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    (x * np.ones(3, np.float64)).sum().backward()  # the graph runs in float64
    assert x.grad.dtype == np.float32


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(5,\).*\(3, 4\)"):
        Tensor(np.ones((3, 4))).reshape(5)


# ---------------------------------------------------------------------------- vs torch


def test_ops_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)).astype(np.float32), rng.random((5,)).astype(np.float32) + 0.5

    def run(lib_a, lib_b):
        y = (lib_a * lib_b - lib_b / 2) ** 2
        y = y.exp().sum(1) if isinstance(y, Tensor) else y.exp().sum(1)
        return (y.log() + (lib_a @ lib_b).tanh()).mean()

    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ca, cb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    tl, cl = run(ta, tb), run(ca, cb)
    tl.backward()
    cl.backward()
    # float32 throughout: agree to float32 rounding (a handful of ulps through exp/log)
    np.testing.assert_allclose(cl.item(), tl.item(), rtol=1e-5)
    np.testing.assert_allclose(ca.grad, ta.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cb.grad, tb.grad.numpy(), rtol=1e-4, atol=1e-5)
