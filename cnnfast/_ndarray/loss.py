"""The array math of cnnfast.functional.loss: ndarray in, ndarray out, no Tensor (see _ndarray/__init__.py)."""

from __future__ import annotations

import numbers

import numpy as np

from .misc import _log_softmax

_REDUCTIONS = ("mean", "sum", "none")


def _reduce_classes(loss, reduction, unbatched, denom, dtype):
    """Per-sample class losses reduced as ``reduction`` says ('none', 'sum', or the mean over denom)."""
    if reduction == "none":
        return loss[0] if unbatched else loss
    if reduction == "sum":
        return np.asarray(loss.sum())
    return np.asarray(loss.sum() / dtype.type(denom))


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _float(x, like=None):
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(like.dtype if like is not None else np.float32)
    return x


def _reduce(loss, reduction):
    if reduction == "mean":
        return np.asarray(loss.mean())
    if reduction == "sum":
        return np.asarray(loss.sum())
    return loss


def _reduce_backward(g, shape, reduction):
    if reduction == "mean":
        n = int(np.prod(shape))
        return np.broadcast_to(g / g.dtype.type(max(n, 1)), shape)
    if reduction == "sum":
        return np.broadcast_to(g, shape)
    return g


def _class_input(op, x, target):
    """Batch an unbatched (C,) input; returns (x (N, C, *d), target, unbatched)."""
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dimension (C,) or (N, C, ...), got a scalar")
    if x.ndim == 1:
        return x[None], target[None] if target.ndim == x.ndim - 1 or target.shape == x.shape else target, True
    return x, target, False


def _check_weight(op, weight, c, dtype):
    if weight is None:
        return None
    w = np.asarray(weight, dtype=dtype)
    if w.shape != (c,):
        raise ValueError(f"{op}: weight of size {w.shape} does not match the {c} classes of input: expected ({c},)")
    return w


def _index_coeffs(op, x, t, w, ignore_index, label_smoothing):
    """Coefficients A (N, C, *d) with loss_i = -sum_c A_ic logp_ic for class-index targets, and the
    'mean' divisor (sum of the target weights over non-ignored samples, as PyTorch)."""
    n, c = x.shape[:2]
    expected = (n,) + x.shape[2:]
    if t.shape != expected:
        raise ValueError(
            f"{op}: target of size {t.shape} does not match input of size {x.shape}: expected class "
            f"indices of size {expected}"
            + (" or class probabilities of the input's size" if op == "cross_entropy" else "")
        )
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: class-index targets must be integers, got dtype {t.dtype}"
            + (" (probability targets must have the input's shape)" if op == "cross_entropy" else "")
        )
    valid = t != ignore_index
    tv = t[valid]
    if tv.size and (tv.min() < 0 or tv.max() >= c):
        bad = tv.min() if tv.min() < 0 else tv.max()
        raise ValueError(
            f"{op}: target {bad} is out of bounds for {c} classes (expected 0 <= target < {c}, "
            f"or ignore_index={ignore_index})"
        )
    ts = np.where(valid, t, 0)
    wt = valid.astype(x.dtype) if w is None else w[ts] * valid
    a = np.zeros(x.shape, dtype=x.dtype)
    np.put_along_axis(a, ts[:, None], (wt * x.dtype.type(1 - label_smoothing))[:, None], axis=1)
    if label_smoothing:
        wc = np.ones(c, dtype=x.dtype) if w is None else w
        shape = (1, c) + (1,) * (x.ndim - 2)
        a += (x.dtype.type(label_smoothing / c) * wc.reshape(shape)) * valid[:, None]
    return a, wt.sum()


def _cross_entropy_forward(x, target, weight, ignore_index, reduction, label_smoothing):
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}")
    x = _float(x)
    t = np.asarray(target)
    x, t, unbatched = _class_input(op, x, t)
    c = x.shape[1]
    w = _check_weight(op, weight, c, x.dtype)
    logp = _log_softmax(x, 1)
    is_prob = t.shape == x.shape and t.dtype.kind == "f"
    if is_prob:
        p = t.astype(x.dtype, copy=False)
        if label_smoothing:
            p = p * x.dtype.type(1 - label_smoothing) + x.dtype.type(label_smoothing / c)
        a = p if w is None else p * w.reshape((1, c) + (1,) * (x.ndim - 2))
        denom = x.shape[0] * int(np.prod(x.shape[2:]))
    else:
        a, denom = _index_coeffs(op, x, t, w, ignore_index, label_smoothing)
    loss = -(a * logp).sum(axis=1)
    out = _reduce_classes(loss, reduction, unbatched, denom, x.dtype)
    saved = (logp, a, denom, unbatched, is_prob, w, label_smoothing)
    return out, saved


def _cross_entropy_backward(g, saved, reduction, need_target_grad):
    logp, a, denom, unbatched, is_prob, w, ls = saved
    g = np.asarray(g, dtype=logp.dtype)
    if reduction == "none":
        gl = (g[None] if unbatched else g)[:, None]
    elif reduction == "mean":
        gl = g / logp.dtype.type(denom)
    else:
        gl = g
    gx = (np.exp(logp) * a.sum(axis=1, keepdims=True) - a) * gl
    gt = None
    if need_target_grad and is_prob:
        c = logp.shape[1]
        coef = -logp * logp.dtype.type(1 - ls)
        if w is not None:
            coef = coef * w.reshape((1, c) + (1,) * (logp.ndim - 2))
        gt = coef * gl
        gt = gt[0] if unbatched else gt
    return (gx[0] if unbatched else gx), gt


def _nll_forward(x, target, weight, ignore_index, reduction):
    op = "nll_loss"
    _check_reduction(op, reduction)
    x = _float(x)
    t = np.asarray(target)
    x, t, unbatched = _class_input(op, x, t)
    w = _check_weight(op, weight, x.shape[1], x.dtype)
    a, denom = _index_coeffs(op, x, t, w, ignore_index, 0.0)
    loss = -(a * x).sum(axis=1)
    out = _reduce_classes(loss, reduction, unbatched, denom, x.dtype)
    return out, (a, denom, unbatched)


def _nll_backward(g, saved, reduction):
    a, denom, unbatched = saved
    g = np.asarray(g, dtype=a.dtype)
    if reduction == "none":
        gl = (g[None] if unbatched else g)[:, None]
    elif reduction == "mean":
        gl = g / a.dtype.type(denom)
    else:
        gl = g
    gx = -a * gl
    return gx[0] if unbatched else gx


def _same_shape(op, x, t):
    if np.shape(x) != np.shape(t):
        raise ValueError(
            f"{op}: input of size {np.shape(x)} and target of size {np.shape(t)} must have the same "
            f"size (no implicit broadcasting, which usually hides a bug)"
        )


def _softplus_neg(x):
    """log(1 + exp(-x)), stable for any x."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)


def _bce_logits_forward(x, target, weight, pos_weight, reduction):
    op = "binary_cross_entropy_with_logits"
    _check_reduction(op, reduction)
    x = _float(x)
    y = _float(target, x).astype(x.dtype, copy=False)
    _same_shape(op, x, y)
    sp = _softplus_neg(x)  # -log(sigmoid(x))
    if pos_weight is not None:
        pw = np.asarray(pos_weight, dtype=x.dtype)
        try:
            np.broadcast_shapes(pw.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"{op}: pos_weight of size {pw.shape} cannot broadcast to input of size {x.shape}"
            ) from None
        lw = 1 + (pw - 1) * y
        loss = (1 - y) * x + lw * sp
    else:
        pw = None
        loss = (1 - y) * x + sp
    if weight is not None:
        w = np.asarray(weight, dtype=x.dtype)
        try:
            np.broadcast_shapes(w.shape, x.shape)
        except ValueError:
            raise ValueError(f"{op}: weight of size {w.shape} cannot broadcast to input of size {x.shape}") from None
        loss = loss * w
    else:
        w = None
    return _reduce(loss, reduction), (x, y, sp, pw, w)


def _bce_logits_backward(g, saved, reduction, need_target_grad):
    x, y, sp, pw, w = saved
    gl = _reduce_backward(np.asarray(g, dtype=x.dtype), x.shape, reduction)
    if w is not None:
        gl = gl * w
    sig = np.exp(-sp)  # sigmoid(x)
    if pw is None:
        gx = (sig - y) * gl
    else:
        gx = (sig * (1 + (pw - 1) * y) - pw * y) * gl
    gt = None
    if need_target_grad:
        # d/dy = pw * softplus(-x) - softplus(x), and softplus(x) = softplus(-x) + x
        gt = (((1 if pw is None else pw) - 1) * sp - x) * gl
        gt = np.broadcast_to(gt, x.shape)
    return gx.reshape(x.shape) if gx.shape != x.shape else gx, gt
