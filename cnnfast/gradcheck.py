"""``cnnfast.gradcheck``: compare autograd's gradients with float64 central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .autograd.tensor import Tensor

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """Raised by :func:`gradcheck` when analytic and numerical gradients disagree."""


def _outputs(result: object) -> tuple[Tensor, ...] | list[Tensor]:
    from .autograd.tensor import Tensor

    outs = result if isinstance(result, (tuple, list)) else (result,)
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(
                f"gradcheck: fn must return a Tensor (or a tuple of Tensors) computed from the inputs; "
                f"output {i} is {type(o).__name__}"
            )
    return outs


def _objective(outs: Sequence[Tensor], cotangents: Sequence[NDArray[Any]]) -> float:
    """sum_k <v_k, y_k> as a Python float (float64)."""
    return float(sum(np.vdot(v, o.data.astype(np.float64)) for v, o in zip(cotangents, outs)))


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    *,
    seed: int = 0,
) -> bool:
    """Check the gradients autograd computes for ``fn(*inputs)`` against finite differences.

    For every input Tensor with ``requires_grad=True`` (which must be float64: float32 finite
    differences are too imprecise to mean anything), each element ``x_i`` is perturbed by
    ``+-eps`` and the central difference ``(L(x + eps e_i) - L(x - eps e_i)) / (2 eps)`` is compared
    with autograd's ``dL/dx_i``, where ``L = sum_k <v_k, y_k>`` over the outputs ``y_k`` of ``fn``
    and the ``v_k`` are fixed random cotangents (seeded with ``seed``), i.e. a vector-Jacobian
    product in a random direction, which exposes any wrong Jacobian entry with probability 1.
    An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.

    Returns True when every element passes. Otherwise raises :class:`GradcheckError` (or returns
    False with ``raise_exception=False``) with a report naming the input, the worst element's
    index, the analytic and numerical values and how many elements failed.

    ``inputs``: a Tensor or a tuple of Tensors/other arguments (passed through unchanged). The
    inputs' ``.data`` is perturbed in place and restored exactly; their ``.grad`` is left as it was.
    """
    from .autograd.tensor import Tensor
    from .autograd.grad_mode import no_grad

    if isinstance(inputs, Tensor) or not isinstance(inputs, (tuple, list)):
        inputs = (inputs,)
    inputs = tuple(inputs)
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input Tensor has requires_grad=True, so there is nothing to check")
    for i, t in checked:
        if t.data.dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {t.data.dtype}, but finite differences need float64 "
                f"precision; use Tensor(x.astype(np.float64), requires_grad=True)"
            )
    if not eps > 0:
        raise ValueError(f"gradcheck: eps must be positive, got {eps}")

    # Analytic: one backward pass of L = sum <v, y>.
    saved_grads = [t.grad for _, t in checked]
    for _, t in checked:
        t.grad = None
    try:
        outs = _outputs(fn(*inputs))
        rng = np.random.default_rng(seed)
        cotangents = [rng.standard_normal(o.shape) for o in outs]
        for o in outs:
            if o.data.dtype != np.float64:
                raise TypeError(
                    f"gradcheck: fn returned an output of dtype {o.data.dtype}; with float64 inputs the "
                    "outputs must be float64 too (a float32 step inside fn ruins the finite differences)"
                )
        live = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
        for k, (o, v) in enumerate(live):
            o.backward(v.astype(o.data.dtype), retain_graph=k + 1 < len(live))
        analytic = [np.zeros_like(t.data) if t.grad is None else np.array(t.grad, dtype=np.float64) for _, t in checked]
    finally:
        for (_, t), g in zip(checked, saved_grads):
            t.grad = g

    # Numerical: central differences, one element at a time, without recording a graph.
    failures = []
    worst: tuple[Any, int, tuple[int, ...], Any, Any] | None = (
        None  # (score, input index, element index, analytic, numeric)
    )
    with no_grad():
        for (i, t), ana in zip(checked, analytic):
            num = np.empty_like(ana)
            data = t.data
            for idx in np.ndindex(data.shape):
                orig = data[idx]
                data[idx] = orig + eps
                plus = _objective(_outputs(fn(*inputs)), cotangents)
                data[idx] = orig - eps
                minus = _objective(_outputs(fn(*inputs)), cotangents)
                data[idx] = orig
                num[idx] = (plus - minus) / (2 * eps)
            err = np.abs(ana - num)
            bound = atol + rtol * np.abs(num)
            bad = ~(err <= bound)  # NaN counts as a failure
            if bad.any():
                score = np.where(np.isnan(err), np.inf, err / bound)
                j = np.unravel_index(int(np.argmax(score)), score.shape)
                failures.append((i, int(bad.sum()), data.size))
                if worst is None or score[j] > worst[0]:
                    worst = (score[j], i, tuple(int(x) for x in j), ana[j], num[j])
    if not failures:
        return True
    _, i, j, a, n = worst  # type: ignore[misc, assignment]  # set when there are failures; j: the worst index
    summary = "; ".join(f"input {k}: {nb}/{tot} elements" for k, nb, tot in failures)
    msg = (
        f"gradcheck: analytic and numerical gradients disagree ({summary} outside atol={atol}, rtol={rtol}).\n"
        f"Worst mismatch: input {i} ({inputs[i].data.dtype}, shape {inputs[i].shape}) at index {j}: "
        f"analytic {a!r} vs numerical {n!r} (difference {abs(a - n):.3g}, eps={eps})."
    )
    if raise_exception:
        raise GradcheckError(msg)
    return False
