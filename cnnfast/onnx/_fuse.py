"""The eval-mode ndarray path of :class:`~cnnfast.onnx._graph.GraphModule` (inference only).

A GraphModule called on ndarrays in eval mode records nothing, so it runs a compiled list of
steps instead of one dispatch per graph node:

- ``Conv -> BatchNormalization -> activation`` (Relu, HardSwish, HardSigmoid, Clip, or the
  ``Add(3) -> Clip(0, 6) -> Mul -> Div(6)`` hardswish that PaddlePaddle exports) is one step: the
  BatchNorm is folded into the conv's weights when they are no larger than the output (else
  applied in place to the conv's output), ReLU runs in the conv kernel's epilogue, the other
  activations in place on the conv's output. A Conv without BatchNorm fuses its activation too.
  The whole step is one C++ call (``_core.conv_bn_act_forward``, with the padding and the
  activation's constants worked out once); a 1x1 conv on a 1x1 plane (an SE block's) runs there
  as matrix-vector products.
- Every other node runs its ordinary operator function.

Nothing derived from the weights is cached: each call reads the modules' current parameters and
running statistics, so weights changed in place (an optimizer step, ``load_state_dict``) are
used. A step whose modules were replaced, put in training mode, given forward hooks or a
different dtype than the input falls back to running its nodes one by one, the path a Tensor
input takes. Results equal the node-by-node path's up to float rounding (the folding).
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..autograd.tensor import Tensor
from ..nn.normalization import BatchNorm2d

__all__ = ["compile_eval"]

# ops whose output may share memory with an input (views): their inputs are never overwritten
_VIEW_OPS = {
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Slice",
    "Identity",
    "Dropout",
    "Gather",
    "Cast",
    "Concat",
}


def _const(gm, name):
    """The current ndarray of the graph constant ``name`` (a Parameter's data or a buffer)."""
    v = gm.__dict__[gm._names[name]]
    return v.data if isinstance(v, Tensor) else v


def _scalar_or_none(a):
    return None if a is None else a.item()


class _Fallback(Exception):
    pass


def compile_eval(gm, OPS, OnnxConv2d, auto_pads):
    """Compile ``gm``'s plan into ``(consts, steps)`` for :meth:`GraphModule._forward_eval`.

    ``consts``: ``[(tensor name, attribute)]`` read into the value table each call; ``steps``:
    ``[(fn, nodes, free)]`` where ``fn(gm, values)`` stores its outputs in ``values``, ``nodes`` are the
    plan nodes it computes (for error messages) and ``free`` the values dropped after it. ``OPS``,
    ``OnnxConv2d`` and ``auto_pads`` come from :mod:`._graph`, which calls this (so this module
    does not import it back).
    """

    plan = gm._plan
    outputs = set(gm.output_names)
    consumers = {}
    for nd in plan:
        for x in nd.inputs:
            if x:
                consumers.setdefault(x, []).append(nd)

    def only(t):
        c = consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in outputs else None

    def is_const(x):
        return x in gm._names and x not in gm.input_names

    def small_const(x, dtype_kind="f"):
        if not is_const(x):
            return False
        a = np.asarray(_const(gm, x))
        return a.size == 1 and a.dtype.kind == dtype_kind

    used = set()
    steps = []
    metas = {}  # conv steps: what _chains needs to merge them
    for nd in plan:
        if id(nd) in used:
            continue
        if nd.op == "GlobalAveragePool":
            steps.append(_gap(gm, nd, OPS))
            continue
        if nd.op != "Conv" or type(gm._modules.get(nd.attrs.get("_module"))) is not OnnxConv2d:
            steps.append(_generic(gm, nd, OPS))
            continue
        group = [nd]
        y = nd.outputs[0]
        bn_node = None
        c = only(y)
        if (
            c is not None
            and c.op == "BatchNormalization"
            and type(gm._modules.get(c.attrs.get("_module"))) is BatchNorm2d
        ):
            bn_node = c
            group.append(c)
            y = c.outputs[0]
        act, act_args = None, ()
        c = only(y)
        if c is not None and c.op in ("Relu", "HardSwish") and not (c.op == "Relu" and bn_node is None):
            act = c.op
        elif c is not None and c.op == "HardSigmoid":
            act, act_args = "HardSigmoid", (float(c.attrs.get("alpha", 0.2)), float(c.attrs.get("beta", 0.5)))
        elif (
            c is not None
            and c.op == "Clip"
            and gm._opset >= 11
            and all((not x) or small_const(x) for x in c.inputs[1:3])
        ):
            act, act_args = "Clip", tuple(c.inputs[1:3]) + (None,) * (3 - len(c.inputs))
        else:  # y -> Add(y, a) -> Clip(., lo, hi) -> Mul(y, .) -> Div(., d): hardswish as PaddlePaddle exports it
            cs = consumers.get(y, [])
            if len(cs) == 2 and y not in outputs and gm._opset >= 11:
                add = next((n for n in cs if n.op == "Add"), None)
                mul = next((n for n in cs if n.op == "Mul"), None)
                clip = only(add.outputs[0]) if add is not None else None
                div = only(mul.outputs[0]) if mul is not None else None
                if (
                    add is not None
                    and mul is not None
                    and clip is not None
                    and clip.op == "Clip"
                    and only(clip.outputs[0]) is mul
                    and div is not None
                    and div.op == "Div"
                    and add.inputs[0] == y
                    and small_const(add.inputs[1])
                    and len(clip.inputs) == 3
                    and all(small_const(x) for x in clip.inputs[1:3])
                    and set(mul.inputs) == {y, clip.outputs[0]}
                    and div.inputs[0] == mul.outputs[0]
                    and small_const(div.inputs[1])
                ):
                    act, act_args = "hardswish4", (add.inputs[1], clip.inputs[1], clip.inputs[2], div.inputs[1])
                    group += [add, clip, mul, div]
                    c = None
        if c is not None and act is not None:
            group.append(c)
        used.update(id(n) for n in group)
        steps.append(_conv_step(gm, group, bn_node, act, act_args, OPS, OnnxConv2d, auto_pads, metas))
    steps = _chains(steps, metas, only)
    # values computed by a step that returns fresh memory, never viewed by another node, may be
    # overwritten by their last consumer
    read = {x for s in steps for x in s[3]} | outputs
    consts = [(n, a) for n, a in gm._names.items() if n in read]
    last = {}
    for i, (_, _nodes, _free, ins) in enumerate(steps):
        for x in ins:
            last[x] = i
    keep = outputs | set(gm._names)
    final = []
    for i, (fn, nodes, _free, ins) in enumerate(steps):
        final.append((fn, nodes, [x for x in set(ins) if last.get(x) == i and x not in keep]))
    return consts, final


def _run_nodes(gm, nodes, values, OPS):
    """The node-by-node path for ``nodes`` (intermediates stay in ``values``)."""
    for nd in nodes:
        args = [values[x] if x else None for x in nd.inputs]
        res = OPS[nd.op](gm, nd, args)
        if isinstance(res, tuple):
            for o, r in zip(nd.outputs, res):
                if o:
                    values[o] = r
        else:
            values[nd.outputs[0]] = res


def _generic(gm, nd, OPS):
    op, ins, outs = OPS[nd.op], nd.inputs, nd.outputs
    if len(outs) == 1:
        out = outs[0]

        def fn(gm, values):
            values[out] = op(gm, nd, [values[x] if x else None for x in ins])
    else:

        def fn(gm, values):
            _run_nodes(gm, (nd,), values, OPS)

    return fn, [nd], None, [x for x in ins if x]


def _gap(gm, nd, OPS):
    """GlobalAveragePool of a 4-D float ndarray as one reduction and one scaling."""
    xin, out = nd.inputs[0], nd.outputs[0]

    def fn(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray or x.ndim != 4 or x.dtype.kind != "f" or x.size == 0:
            return _run_nodes(gm, (nd,), values, OPS)
        n, c, h, w = x.shape
        y = np.add.reduce(x.reshape(n, c, h * w), axis=2)
        np.multiply(y, x.dtype.type(1 / (h * w)), out=y)
        values[out] = y.reshape(n, c, 1, 1)
        return None

    return fn, [nd], None, [xin]


def _conv_step(gm, group, bn_node, act, act_args, OPS, OnnxConv2d, auto_pads, metas=None):
    conv_node = group[0]
    cname = conv_node.attrs["_module"]
    bname = bn_node.attrs["_module"] if bn_node is not None else None
    conv0 = gm._modules[cname]
    geom = (conv0.stride, conv0.padding, conv0.dilation, conv0.groups, conv0.auto_pad, conv0.fused_relu)
    stride, dil, groups = conv0.stride, conv0.dilation, conv0.groups
    pads = conv0.padding
    extra, sym = None, None
    if conv0.auto_pad is None:
        t, b, l, r = (pads[0], pads[0], pads[1], pads[1]) if len(pads) == 2 else pads
        st, sl = min(t, b), min(l, r)
        extra = None if (t, b, l, r) == (st, st, sl, sl) else ((0, 0), (0, 0), (t - st, b - st), (l - sl, r - sl))
        sym = (st, sl)
    xin = conv_node.inputs[0]
    out = group[-1].outputs[0]
    inner = [o for n in group[:-1] for o in n.outputs if o]
    ext_inputs = [xin] + [x for n in group[1:] for x in n.inputs if x and x not in inner and x != xin]
    conv_relu = conv0.fused_relu
    fused = _core.conv_bn_act_forward
    # the activation as conv_bn_act_forward's (kind, a, b, lo, hi); kind None: read at run time
    kind, params = None, ()
    if act is None:
        kind = "none"
    elif act == "Relu":
        kind = "relu"
    elif act == "HardSwish":
        kind, params = "hardswish", (1 / 6, 0.5, 0.0, 1.0)
    elif act == "HardSigmoid":
        alpha, beta = act_args
        if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:  # a float32 attribute meaning 1/6, as _op_hardsigmoid
            alpha = 1 / 6
        kind, params = "clamp", (alpha, beta, 0.0, 1.0)
    full_act = (kind, *params, *(1.0, 0.0, -np.inf, np.inf)[len(params) :]) if kind is not None else None

    def slow(gm, values):
        _run_nodes(gm, group, values, OPS)
        for o in inner:
            values.pop(o, None)

    def spec(gm, values, x):
        """``(x, w, bias, padding, bn, act)`` for the fused call from the current modules and
        constants (act: ``(kind, a, b, lo, hi)``, or None for a hardswish whose constants the
        fused call cannot take), or None where the nodes must run one by one. ``x`` None: the
        input is not known yet (a chain's later stage); its checks are left to the chain kernel."""
        mods = gm._modules
        conv = mods[cname]
        if (
            type(conv) is not OnnxConv2d
            or conv._forward_hooks
            or (conv.stride, conv.padding, conv.dilation, conv.groups, conv.auto_pad, conv.fused_relu) != geom
        ):
            return None
        w = conv.weight.data
        bias = conv.bias
        bias = None if bias is None else bias.data
        if x is not None and (type(x) is not np.ndarray or x.ndim != 4 or x.dtype != w.dtype):
            return None
        if bias is not None and bias.dtype != w.dtype:
            return None
        bn = None
        if bname is not None:
            m = mods[bname]
            if (
                type(m) is not BatchNorm2d
                or m.training
                or m._forward_hooks
                or m.running_mean is None
                or m.num_features != w.shape[0]
            ):
                return None
            bn = (
                m.running_mean,
                m.running_var,
                None if m.weight is None else m.weight.data,
                None if m.bias is None else m.bias.data,
                float(m.eps),
            )
        if conv.auto_pad is None:
            p = sym
            if extra is not None:
                if x is None:
                    return None
                x = np.pad(x, extra)
        else:
            if x is None:
                return None
            full = auto_pads(conv.auto_pad, x.shape[2:], conv.kernel_size, stride, dil)
            t, b, l, r = (full[0], full[0], full[1], full[1]) if len(full) == 2 else full
            st, sl = min(t, b), min(l, r)
            if (t, b, l, r) != (st, st, sl, sl):
                x = np.pad(x, ((0, 0), (0, 0), (t - st, b - st), (l - sl, r - sl)))
            p = (st, sl)
        if full_act is not None:  # everything known at compile time
            return x, w, bias, p, bn, full_act
        if act == "Clip":
            lo = _scalar_or_none(_const(gm, act_args[0])) if act_args[0] else None
            hi = _scalar_or_none(_const(gm, act_args[1])) if act_args[1] else None
            return x, w, bias, p, bn, ("clamp", 1.0, 0.0, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        # hardswish4: the constants are trainable; read their current values
        add, lo, hi, div = (_const(gm, n) for n in act_args)
        if add.dtype != w.dtype or div.dtype != w.dtype or not div.item() > 0:
            return x, w, bias, p, bn, None
        d = div.item()
        lo, hi = _scalar_or_none(lo), _scalar_or_none(hi)
        return (
            x,
            w,
            bias,
            p,
            bn,
            ("hardswish", 1 / d, add.item() / d, -np.inf if lo is None else lo / d, np.inf if hi is None else hi / d),
        )

    def fn(gm, values):
        sp = spec(gm, values, values[xin])
        if sp is None:
            return slow(gm, values)
        x, w, bias, p, bn, a = sp
        if a is None:  # hardswish4 with constants of another dtype or a non-positive divisor
            values[conv_node.outputs[0] if bname is None else bn_node.outputs[0]] = fused(
                x, w, bias, stride, p, dil, groups, conv_relu, bn, "none"
            )
            _run_nodes(gm, group[2 if bname else 1 :], values, OPS)
            for o in inner:
                values.pop(o, None)
            return None
        values[out] = fused(x, w, bias, stride, p, dil, groups, conv_relu, bn, *a)
        return None

    if metas is not None:
        metas[id(fn)] = {
            "spec": spec,
            "conv": conv0,
            "xin": xin,
            "out": out,
            "inner": inner,
            "plain": conv0.auto_pad is None and extra is None and dil == (1, 1),
        }
    return fn, list(group), None, ext_inputs


def _is_pw(c):
    return tuple(c.kernel_size) == (1, 1) and c.stride == (1, 1) and tuple(c.padding) == (0, 0) and c.groups == 1


def _is_dw(c):
    k, s, p = tuple(c.kernel_size), tuple(c.stride), tuple(c.padding)
    return (
        c.groups == c.in_channels == c.out_channels and k[0] == k[1] and s[0] == s[1] and len(p) == 2 and p[0] == p[1]
    )


def _chains(steps, metas, only):
    """Merge conv steps that form [1x1 expand] -> depthwise -> [1x1 project] chains (each stage's
    output read only by the next stage's conv) into one step at the first one's place."""
    by_conv = {id(st[1][0]): i for i, st in enumerate(steps) if id(st[0]) in metas}
    merged, out = set(), []
    for i, st in enumerate(steps):
        if i in merged:
            continue
        m = metas.get(id(st[0]))
        run = [i] if m is not None and m["plain"] else []
        while run and len(run) < 3:
            nxt = only(metas[id(steps[run[-1]][0])]["out"])
            j = by_conv.get(id(nxt)) if nxt is not None else None
            if j is None or j in merged or not metas[id(steps[j][0])]["plain"]:
                break
            run.append(j)
        convs = [metas[id(steps[j][0])]["conv"] for j in run]
        kinds = "".join("p" if _is_pw(c) else "d" if _is_dw(c) else "x" for c in convs)
        for pat in ("pdp", "pd", "dp"):
            if kinds.startswith(pat):
                run = run[: len(pat)]
                break
        else:
            out.append(st)
            continue
        merged.update(run[1:])
        out.append(_chain_step([steps[j] for j in run], [metas[id(steps[j][0])] for j in run], pat))
    return out


def _chain_stage(sp, conv_relu):
    """A dw_chain_forward stage tuple from a conv step's spec, or None if the chain cannot take it."""
    _x, w, bias, _p, bn, a = sp
    if a is None:
        return None
    if conv_relu:  # the conv's own fused ReLU, then the step's activation: only ReLU after ReLU composes
        if a[0] not in ("none", "relu"):
            return None
        a = ("relu", 1.0, 0.0, 0.0, 0.0)
    return (w, bias, bn, *a)


def _chain_step(parts, metas, pat):
    d = pat.index("d")
    xin, out = metas[0]["xin"], metas[-1]["out"]
    mids = [m["out"] for m in metas[:-1]]
    dwc = metas[d]["conv"]
    relus = [m["conv"].fused_relu for m in metas]
    declined = set()  # input shapes and dtypes the chain kernel declined (planes too small to pay)

    def one_by_one(gm, values):
        for fn, *_ in parts:
            fn(gm, values)
        for o in mids:
            values.pop(o, None)

    def fn(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray or (x.shape, x.dtype) in declined:
            return one_by_one(gm, values)
        stages = []
        for t, m in enumerate(metas):
            sp = m["spec"](gm, values, x if t == 0 else None)
            st = None if sp is None else _chain_stage(sp, relus[t])
            if st is None or st[0].dtype != x.dtype:
                return one_by_one(gm, values)
            stages.append(st)
        y = _core.dw_chain_forward(
            x,
            stages[0] if d == 1 else None,
            stages[d],
            stages[d + 1] if d + 1 < len(stages) else None,
            tuple(dwc.stride),
            tuple(dwc.padding),
        )
        if y is None:
            declined.add((x.shape, x.dtype))
            return one_by_one(gm, values)
        values[out] = y
        return None

    nodes = [nd for p in parts for nd in p[1]]
    ins = (
        [xin]
        + [x for p in parts[1:] for x in p[3] if x not in mids and x != xin]
        + [x for x in parts[0][3] if x != xin]
    )
    return fn, nodes, None, ins
