"""The eval-mode ndarray path of :class:`~cnnfast.onnx._graph.GraphModule` (inference only).

A GraphModule called on ndarrays in eval mode records nothing, so it runs a compiled list of
steps instead of one dispatch per graph node:

- ``Conv -> BatchNormalization -> activation`` (Relu, HardSwish, HardSigmoid, Clip, the
  ``Add(3) -> Clip(0, 6) -> Mul -> Div(6)`` hardswish that PaddlePaddle exports, the ``Sigmoid ->
  Mul`` SiLU that PyTorch exports, Gelu, LeakyRelu) is one step: the
  BatchNorm is folded into the conv's weights when they are no larger than the output (else
  applied in place to the conv's output), ReLU runs in the conv kernel's epilogue, the other
  activations in place on the conv's output. A Conv without BatchNorm fuses its activation too.
  The whole step is one C++ call (``_core.conv_bn_act_forward``, with the padding and the
  activation's constants worked out once); a 1x1 conv on a 1x1 plane (an SE block's) runs there
  as matrix-vector products.
- A squeeze-and-excitation block, ``GlobalAveragePool -> Conv 1x1 [-> activation] -> Conv 1x1 ->
  HardSigmoid | Sigmoid -> Mul`` with the block input, is one step (``_core.se_scale_forward``: the
  plane means, the two small matrix products and the channel scaling in one call); another
  GlobalAveragePool is one ``_core.global_avg_pool_forward`` call.
- The erf GELU as PyTorch and PaddlePaddle export it, ``Div(y, c1) -> Erf -> Add(1) -> Mul(y) ->
  Mul(c3)`` (c1 = sqrt 2, c3 = 1/2), is one step (``_core.pointwise_forward`` kind ``'gelu'``, in
  place on ``y`` when nothing else reads it).
- Conv steps that form ``[1x1 expand] -> depthwise -> [1x1 project]`` chains (each output read
  only by the next conv) are one step: ``_core.dw_chain_forward`` runs the chain in one pass over
  the image, the intermediate tensors staying in cache (the layers one by one where it declines).
- Every other node runs its ordinary operator function.

Nothing derived from the weights is cached: each call reads the modules' current parameters and
running statistics, so weights changed in place (an optimizer step, ``load_state_dict``) are
used. A step whose modules were replaced, put in training mode, given forward hooks or a
different dtype than the input falls back to running its nodes one by one, the path a Tensor
input takes. Results equal the node-by-node path's up to float rounding (the folding).

Fast programs. Each step checks the modules it uses on every call (types, geometry, hooks,
modes, dtypes), and at batch 1 that Python ran longer than the kernels on small networks: after
each large kernel the interpreter's and NumPy's code and data are out of the CPU caches, so a
microsecond of Python there costs several (``bench/eval_overhead.py --cold-numpy``: a NumPy softmax
of a 1x2 array, 4 us warm, 39 us right after a 64 -> 64 3x3 conv on 56x56).
So the second call with the same module structure (``nn.module._structure_epoch``, bumped by any
attribute, child, hook or mode change of any module) and the same input shapes and dtypes also
binds each step (:class:`Capture`: ``fn.bind``), and later such calls run the bound forms
(:func:`run_fast`): the modules and geometry fixed, only the parameters' current arrays and the
activations' constants read per call; shape arithmetic (Shape -> Slice -> Concat of a free batch
size) recorded. What the epoch cannot see -- a Parameter given data of another dtype, a
constant buffer edited in place, a chain the kernel declines -- raises :class:`Stale`, and the
call starts again on the checked steps. The bound forms make the same kernel calls on the same
arrays, so their results are identical.
"""

from __future__ import annotations

import sys

import numpy as np

from .. import _core
from ..autograd.tensor import Tensor
from ..nn.normalization import BatchNorm2d

__all__ = ["Capture", "Stale", "compile_eval", "run_fast"]

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


# ops whose output on ndarrays is always a fresh array (never an input or a view of one)
_FRESH_OPS = {
    "Conv",
    "BatchNormalization",
    "Relu",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
    "Gelu",
    "LeakyRelu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
}


def _sole_refs():
    """``sys.getrefcount`` of an object the value table alone holds, read as :func:`_se_step`
    reads it (3 on CPython 3.9-3.13; measured, as newer versions count local variables otherwise)."""

    def probe(values):
        x = values["x"]
        return sys.getrefcount(x)

    return probe({"x": object()})


_SOLE_REFS = _sole_refs()


def _const(gm, name):
    """The current ndarray of the graph constant ``name`` (a Parameter's data or a buffer)."""
    v = gm.__dict__[gm._names[name]]
    return v.data if isinstance(v, Tensor) else v


def _scalar_or_none(a):
    return None if a is None else a.item()


class Stale(Exception):
    """Raised by a step of a fast program (:func:`run_fast`) that finds what it bound changed in a
    way the module structure epoch does not track (a Parameter given data of another dtype, an
    activation constant the fused call cannot take, a chain the kernel declines): the forward
    starts again on the checked steps."""


def _const_getter(gm, name):
    """A function returning the graph constant ``name``'s current array: a Parameter's ``.data``
    (which may be reassigned without any module attribute changing) or the buffer itself."""
    v = gm.__dict__[gm._names[name]]
    if isinstance(v, Tensor):
        return lambda: v.data
    return lambda: v


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
    # the GELU node groups, by the group's first node in the plan (there the step runs: its other
    # inputs, y and constants, are known by then)
    pos = {id(n): i for i, n in enumerate(plan)}
    gelu_at = {}
    for nd in plan:
        if nd.op == "Div":
            ge = _match_gelu(gm, nd, consumers, outputs, only, small_const)
            if ge is not None:
                gelu_at[id(min(ge[0], key=lambda n: pos[id(n)]))] = ge
    for nd in plan:
        if id(nd) in used:
            continue
        if nd.op == "GlobalAveragePool":
            se = _match_se(gm, nd, consumers, outputs, OnnxConv2d)
            if se is not None:
                used.update(id(n) for n in se[0])
                steps.append(_se_step(gm, *se, OPS=OPS, OnnxConv2d=OnnxConv2d))
                continue
            steps.append(_gap(gm, nd, OPS))
            continue
        ge = gelu_at.get(id(nd))
        if ge is not None and not any(id(n) in used for n in ge[0]):
            used.update(id(n) for n in ge[0])
            steps.append(_gelu_step(gm, *ge, OPS=OPS))
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
        elif c is not None and c.op == "Gelu" and c.attrs.get("approximate", "none") == "none":
            act = "Gelu"
        elif c is not None and c.op == "LeakyRelu":
            act, act_args = "LeakyRelu", (float(c.attrs.get("alpha", 0.01)),)
        elif c is not None and c.op == "HardSigmoid":
            act, act_args = "HardSigmoid", (float(c.attrs.get("alpha", 0.2)), float(c.attrs.get("beta", 0.5)))
        elif (
            c is not None
            and c.op == "Clip"
            and gm._opset >= 11
            and all((not x) or small_const(x) for x in c.inputs[1:3])
        ):
            act, act_args = "Clip", tuple(c.inputs[1:3]) + (None,) * (3 - len(c.inputs))
        else:
            cs = consumers.get(y, [])
            # y -> Sigmoid -> Mul(y, .): SiLU as PyTorch exports it (EfficientNet, YOLO)
            sig = next((n for n in cs if n.op == "Sigmoid"), None) if len(cs) == 2 and y not in outputs else None
            mul = next((n for n in cs if n.op == "Mul"), None) if sig is not None else None
            if (
                sig is not None
                and mul is not None
                and sig.inputs == [y]
                and only(sig.outputs[0]) is mul
                and len(mul.inputs) == 2
                and sorted(mul.inputs) == sorted([y, sig.outputs[0]])
                and y != sig.outputs[0]
            ):
                act = "Silu"
                group += [sig, mul]
                c = None
                cs = []
            # y -> Add(y, a) -> Clip(., lo, hi) -> Mul(y, .) -> Div(., d): hardswish as PaddlePaddle exports it
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
    steps = _post_adds(steps, metas, only, OPS)
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


# Operators whose outputs depend on their inputs alone (no parameters, nothing random). In a fast
# program such a node whose inputs are all known once the input shapes are fixed (a Shape's
# output, constant buffers, outputs of other such nodes) is not run: its outputs are recorded.
_PURE_OPS = {
    "Cast",
    "Slice",
    "Concat",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Flatten",
    "Identity",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "ConstantOfShape",
}


class Capture:
    """Binds a fast program while GraphModule._forward_eval runs its checked steps once:
    :meth:`before` ahead of each step, :meth:`after` once it ran, :meth:`program` at the end.

    A step's fast form comes from its ``fn.bind`` (None: the step itself, its constants read into
    the value table on every call). A Shape node becomes a check of its input's shape; one-node
    steps of ``_PURE_OPS`` whose inputs are all known (see there) are dropped and their outputs
    recorded, read-only (the constant buffers they read are compared byte for byte on every call:
    an in-place edit leaves the structure epoch unchanged); a Reshape or Flatten of a known shape
    keeps only its input's shape check and the final shape."""

    def __init__(self, gm):
        self.steps, self.need, self.static, self.checks = [], set(), {}, {}
        self.pending = None
        self.outputs = set(gm.output_names)

    def _buffer(self, gm, x):
        """The constant buffer (an ndarray, not a Parameter) named ``x``, or None."""
        if x not in gm._names or x in gm.input_names:
            return None
        v = gm.__dict__[gm._names[x]]
        return v if type(v) is np.ndarray else None

    def _known(self, gm, names):
        return all(x in self.static or self._buffer(gm, x) is not None for x in names if x)

    def _check(self, gm, names):
        for x in names:
            if x and x not in self.static:
                v = self._buffer(gm, x)
                self.checks.setdefault(x, (v, v.tobytes()))

    def before(self, gm, step, values):
        fn, nodes, free = step
        nd = getattr(fn, "_node", None)
        self.pending = None
        if nd is not None and not self.outputs.intersection(nd.outputs):
            x = values.get(nd.inputs[0]) if nd.inputs and nd.inputs[0] else None
            if nd.op == "Shape" and type(x) is np.ndarray:
                xin, shape = nd.inputs[0], x.shape

                def check(gm, values):
                    if values[xin].shape != shape:
                        raise Stale

                self.steps.append((check, free))
                self.pending = ("static", nd, step)
                return
            if nd.op in _PURE_OPS and self._known(gm, nd.inputs):
                self._check(gm, nd.inputs)
                self.pending = ("static", nd, step)
                return
            if nd.op in ("Reshape", "Flatten") and type(x) is np.ndarray and self._known(gm, nd.inputs[1:]):
                self._check(gm, nd.inputs[1:])
                self.pending = ("reshape", nd, x.shape, len(self.steps), free)
                self.steps.append(None)
                return
        bind = getattr(fn, "bind", None)
        fast = bind(gm, values) if bind is not None else None
        if fast is None:
            self.need.update(x for nd in nodes for x in nd.inputs if x in gm._names)
        self.steps.append((fast or fn, free))

    def after(self, gm, values):
        p = self.pending
        if p is None:
            return
        nd = p[1]
        if p[0] == "static":
            outs = [values[o] for o in nd.outputs if o]
            if all(type(a) is np.ndarray for a in outs):
                for o, a in zip([o for o in nd.outputs if o], outs):
                    rec = np.array(a, copy=True)
                    rec.flags.writeable = False
                    self.static[o] = rec
            elif nd.op != "Shape":  # (not recordable after all: it runs on every call)
                self.need.update(x for x in nd.inputs if x in gm._names)
                self.steps.append((p[2][0], p[2][2]))
            return
        _, nd, xshape, i, free = p
        xin, out = nd.inputs[0], nd.outputs[0]
        y = values[out]
        if type(y) is not np.ndarray:
            raise Stale
        yshape = y.shape

        def reshape(gm, values):
            x = values[xin]
            if x.shape != xshape:
                raise Stale
            values[out] = x.reshape(yshape)

        self.steps[i] = (reshape, free)

    def program(self, consts):
        """``(constants, steps, recorded values, buffer checks)`` for :func:`run_fast`."""
        need = [(n, attr) for n, attr in consts if n in self.need]
        return need, self.steps, dict(self.static), list(self.checks.values())


def run_fast(gm, fast, values, output_names):
    """One forward on a fast program that :class:`Capture` bound: the constant buffers checked,
    the recorded values and the constants that steps without a fast form read put into the value
    table, then each step run; returns the outputs' values. Raises :class:`Stale` (or whatever a
    step raised) for the caller to start again on the checked steps."""
    need, steps, static, checks = fast
    for a, b in checks:
        if a.tobytes() != b:
            raise Stale
    values.update(static)
    d = gm.__dict__
    for n, attr in need:
        v = d[attr]
        values[n] = v.data if isinstance(v, Tensor) else v
    for f, free in steps:
        f(gm, values)
        for x in free:
            del values[x]
    return tuple(values[o] for o in output_names)


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

        fn._node = nd  # one node running its operator: Capture may record or reshape it
        ob = getattr(op, "bind", None)
        if ob is not None:
            fn.bind = lambda gm, values: ob(gm, nd, values)
    else:

        def fn(gm, values):
            _run_nodes(gm, (nd,), values, OPS)

    return fn, [nd], None, [x for x in ins if x]


def _gap(gm, nd, OPS):
    """GlobalAveragePool of a 4-D float ndarray: one C++ call (float32/float64), else one NumPy
    reduction and one scaling."""
    xin, out = nd.inputs[0], nd.outputs[0]

    gap = _core.global_avg_pool_forward

    def fn(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray or x.ndim != 4 or x.dtype.kind != "f" or x.size == 0:
            return _run_nodes(gm, (nd,), values, OPS)
        if x.dtype.char in "fd":
            values[out] = gap(x)
            return None
        n, c, h, w = x.shape
        y = np.add.reduce(x.reshape(n, c, h * w), axis=2)
        np.multiply(y, x.dtype.type(1 / (h * w)), out=y)
        values[out] = y.reshape(n, c, 1, 1)
        return None

    def bind(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray or x.ndim != 4 or x.size == 0 or x.dtype.char not in "fd":
            return None

        def fast(gm, values):
            values[out] = gap(values[xin])

        return fast

    fn.bind = bind
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
    elif act == "Silu":
        kind = "silu"
    elif act == "Gelu":
        kind, params = "gelu", (2**-0.5, 0.5)
    elif act == "LeakyRelu":
        kind, params = "leaky", act_args
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

    a_add, a_lo, a_hi, a_div = act_args if act == "hardswish4" else (None,) * 4
    g_stride, g_pad, g_dil, g_groups, g_auto, g_relu = geom

    def spec(gm, values, x):
        """``(x, w, bias, padding, bn, act)`` for the fused call from the current modules and
        constants (act: ``(kind, a, b, lo, hi)``, or None for a hardswish whose constants the
        fused call cannot take), or None where the nodes must run one by one. ``x`` None: the
        input is not known yet (a chain's later stage); its checks are left to the chain kernel."""
        # checked on every call, cheapest first (batch 1 spends ~1.5 us a step here): the geometry
        # by identity (a reassigned attribute is compared by value), dtypes by identity
        mods = gm._modules
        conv = mods[cname]
        if type(conv) is not OnnxConv2d or conv._forward_hooks:
            return None
        if (
            not (
                conv.stride is g_stride
                and conv.padding is g_pad
                and conv.dilation is g_dil
                and conv.groups == g_groups
                and conv.auto_pad == g_auto
                and conv.fused_relu is g_relu
            )
            and (conv.stride, conv.padding, conv.dilation, conv.groups, conv.auto_pad, conv.fused_relu) != geom
        ):
            return None
        w = conv.weight.data
        wdt = w.dtype
        bias = conv.bias
        if bias is not None:
            bias = bias.data
            if bias.dtype is not wdt and bias.dtype != wdt:
                return None
        if x is not None and (type(x) is not np.ndarray or x.ndim != 4 or (x.dtype is not wdt and x.dtype != wdt)):
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
        return x, w, bias, p, bn, act_now(values.__getitem__, wdt)

    def act_now(get, wdt):
        """The activation as (kind, a, b, lo, hi) from the current constants (``get(name)``: a
        constant's array), or None for a hardswish whose constants the fused call cannot take."""
        if full_act is not None:  # everything known at compile time
            return full_act
        if act == "Clip":
            lo = _scalar_or_none(get(act_args[0])) if act_args[0] else None
            hi = _scalar_or_none(get(act_args[1])) if act_args[1] else None
            return ("clamp", 1.0, 0.0, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        # hardswish4: the constants are trainable; read their current values (the value table
        # holds them: compile_eval lists a step's inputs among the constants read each call)
        add, lo, hi, div = get(a_add), get(a_lo), get(a_hi), get(a_div)
        if (add.dtype is not wdt and add.dtype != wdt) or (div.dtype is not wdt and div.dtype != wdt):
            return None
        d = div.item()
        if not d > 0:
            return None
        return (
            "hardswish",
            1 / d,
            add.item() / d,
            -np.inf if lo is None else lo.item() / d,
            np.inf if hi is None else hi.item() / d,
        )

    def bind_now(gm, sp):
        """For :func:`run_fast`: ``now()`` giving ``(w, bias, bn, act)`` as ``spec`` would while the
        module structure stays as it was when ``spec`` returned ``sp`` (the program's epoch): the
        modules, their geometry, hooks and modes are then unchanged, so only the parameters'
        current arrays (and the activation's constants) are read; a Parameter given data of
        another dtype raises :class:`Stale`. None if ``sp`` says the fused call cannot run."""
        if sp is None or sp[5] is None:
            return None
        mods = gm._modules
        conv = mods[cname]
        wt, bt = conv.weight, conv.bias
        wdt = sp[1].dtype
        bnm = mods[bname] if bname is not None else None
        gt = bnm.weight if bnm is not None else None
        btt = bnm.bias if bnm is not None else None
        eps = float(bnm.eps) if bnm is not None else 0.0
        fixed = full_act
        if fixed is None:
            getters = {n: _const_getter(gm, n) for n in act_args if n}

            def get(n):
                return getters[n]()

        def now():
            w = wt.data
            if w.dtype is not wdt and w.dtype != wdt:
                raise Stale
            b = None
            if bt is not None:
                b = bt.data
                if b.dtype is not wdt and b.dtype != wdt:
                    raise Stale
            bn = None
            if bnm is not None:
                bn = (
                    bnm.running_mean,
                    bnm.running_var,
                    None if gt is None else gt.data,
                    None if btt is None else btt.data,
                    eps,
                )
            a = fixed if fixed is not None else act_now(get, wdt)
            if a is None:
                raise Stale
            return w, b, bn, a

        return now

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

    def bind(gm, values):
        # (x is not computed yet for a chain's later stage: spec then binds a plain conv only)
        x = values.get(xin)
        sp = spec(gm, values, x)
        if sp is None or sp[0] is not x:  # (an input padded here on every call stays on fn)
            return None
        now = bind_now(gm, sp)
        if now is None:
            return None
        p = sp[3]

        def fast(gm, values):
            w, b, bn, a = now()
            x = values[xin]
            if x.dtype is not w.dtype and x.dtype != w.dtype:
                raise Stale
            values[out] = fused(x, w, b, stride, p, dil, groups, conv_relu, bn, *a)

        return fast

    fn.bind = bind
    if metas is not None:
        metas[id(fn)] = {
            "spec": spec,
            "bind_now": bind_now,
            "conv": conv0,
            "xin": xin,
            "out": out,
            "inner": inner,
            # (SiLU, GELU, LeakyReLU: not dw_chain_forward activations)
            "plain": conv0.auto_pad is None
            and extra is None
            and dil == (1, 1)
            and act not in ("Silu", "Gelu", "LeakyRelu"),
        }
    return fn, list(group), None, ext_inputs


def _local_refs():
    """``sys.getrefcount`` of an object one local variable alone holds, read as :func:`_add_step`'s
    ``add_into`` reads it (measured, as :func:`_sole_refs`)."""

    def probe(values):
        a = values.pop("x")
        return sys.getrefcount(a)

    return probe({"x": object()})


_LOCAL_REFS = _local_refs()


def _post_adds(steps, metas, only, OPS):
    """Merge a conv or chain step with the residual ``Add`` that follows it and alone reads its
    output: the sum goes into the step's fresh output in place (one step, no new array) when it is
    an unshared ndarray of the other operand's shape and dtype, else the Add runs as usual."""
    conv_fns = set(metas)  # ids of the conv steps' functions
    out = []
    i = 0
    while i < len(steps):
        st = steps[i]
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        y = st[1][-1].outputs[0] if st[1][-1].outputs else None
        add = nxt[1][0] if nxt is not None and len(nxt[1]) == 1 else None
        if (
            (id(st[0]) in conv_fns or getattr(st[0], "_dw_chain", False))
            and add is not None
            and add.op == "Add"
            and len(add.inputs) == 2
            and y in add.inputs
            and add.inputs[0] != add.inputs[1]
            and only(y) is add
        ):
            out.append(_add_step(st, add, y, OPS))
            i += 2
            continue
        out.append(st)
        i += 1
    return out


def _add_step(st, add, y, OPS):
    fn1 = st[0]
    first = add.inputs[0] == y
    other = add.inputs[1] if first else add.inputs[0]
    res = add.outputs[0]
    op = OPS["Add"]

    def add_into(gm, values):
        """The Add, once the step before it stored y: in place into y when nothing else holds it."""
        a = values.pop(y)
        b = values[other]
        if (
            type(a) is np.ndarray
            and type(b) is np.ndarray
            and a.shape == b.shape
            and (a.dtype is b.dtype or a.dtype == b.dtype)
            and sys.getrefcount(a) <= _LOCAL_REFS
            and a.flags.writeable
            and (a.base is None or type(a.base).__name__ == "PyCapsule")  # its own or cnnfast's allocation
        ):
            values[res] = np.add(a, b, out=a)
        else:
            values[res] = op(gm, add, [a, b] if first else [b, a])

    def fn(gm, values):
        fn1(gm, values)
        add_into(gm, values)

    def bind(gm, values):
        b1 = getattr(fn1, "bind", None)
        if b1 is None or other in gm._names:  # (a constant operand: read from the value table)
            return None
        f1 = b1(gm, values)
        if f1 is None:
            return None

        def fast(gm, values):
            f1(gm, values)
            add_into(gm, values)

        return fast

    fn.bind = bind
    return fn, list(st[1]) + [add], None, list(st[3]) + [other]


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
    if a is None or (conv_relu and bn is not None):  # relu(conv) then BatchNorm: nothing to fold into the stage
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

    def bind(gm, values):
        x = values[xin]
        if type(x) is not np.ndarray:
            return None
        if (x.shape, x.dtype) in declined:  # the parts' fast forms, one by one
            # (a later part is bound before its input exists: every part's weights must have
            # the chain input's dtype, as the checked steps would find)
            for t, m in enumerate(metas):
                sp = m["spec"](gm, values, x if t == 0 else None)
                if sp is None or sp[1].dtype != x.dtype:
                    return None
            fs = [p[0].bind(gm, values) for p in parts]
            if any(f is None for f in fs):
                return None

            def fast_parts(gm, values):
                for f in fs:
                    f(gm, values)
                for o in mids:
                    values.pop(o, None)

            return fast_parts
        nows = []
        for t, m in enumerate(metas):
            sp = m["spec"](gm, values, x if t == 0 else None)
            st = None if sp is None else _chain_stage(sp, relus[t])
            if st is None or st[0].dtype != x.dtype:
                return None
            nows.append(m["bind_now"](gm, sp))
        stride, padding = tuple(dwc.stride), tuple(dwc.padding)
        key = (x.shape, x.dtype)

        def fast(gm, values):
            x = values[xin]
            stages = []
            for now, relu in zip(nows, relus):
                w, b, bn, a = now()
                st = _chain_stage((None, w, b, None, bn, a), relu)
                if st is None or (w.dtype is not x.dtype and w.dtype != x.dtype):
                    raise Stale
                stages.append(st)
            y = _core.dw_chain_forward(
                x,
                stages[0] if d == 1 else None,
                stages[d],
                stages[d + 1] if d + 1 < len(stages) else None,
                stride,
                padding,
            )
            if y is None:
                declined.add(key)
                raise Stale
            values[out] = y

        return fast

    fn.bind = bind
    fn._dw_chain = True
    nodes = [nd for p in parts for nd in p[1]]
    ins = (
        [xin]
        + [x for p in parts[1:] for x in p[3] if x not in mids and x != xin]
        + [x for x in parts[0][3] if x != xin]
    )
    return fn, nodes, None, ins


def _conv1x1_geom(conv):
    """What a 1x1 conv of an SE block must keep for :func:`_se_step` (compared on every call)."""
    return (conv.kernel_size, conv.stride, conv.padding, conv.groups, conv.auto_pad, conv.fused_relu)


def _overwritable(gm, x, readers, consumers, outputs):
    """Whether the step that reads ``x`` may overwrite it: ``x`` has exactly ``readers`` consumers
    (all in the step), is not a graph input, output or constant, and its producer returns fresh
    memory (_FRESH_OPS)."""
    prod = next((n for n in gm._plan if x in n.outputs), None)
    return (
        len(consumers.get(x, [])) == readers
        and x not in outputs
        and x not in gm._names
        and prod is not None
        and prod.op in _FRESH_OPS
    )


def _match_se(gm, gap, consumers, outputs, OnnxConv2d):
    """The squeeze-and-excitation block starting at the GlobalAveragePool node ``gap``, as
    ``(nodes, conv1, act1, conv2, scale_act, alpha, beta, xin, out, inplace)`` for :func:`_se_step`,
    or None.

    Matched: ``GlobalAveragePool(x) -> Conv 1x1 [-> Relu | HardSwish | Sigmoid(h) * h] -> Conv 1x1
    -> HardSigmoid | Sigmoid -> Mul(x, scale)`` (either operand order), every intermediate used
    once (SiLU's twice) and no graph output; the convs ungrouped, stride 1, unpadded (a conv1
    with a fused ReLU gives act1 'relu'). The forms PaddlePaddle (PP-LCNet, PP-OCR's MobileNetV3)
    and :func:`cnnfast.onnx.export` (torchvision-style SqueezeExcitation) write, after the
    importer's simplification.
    """

    def only(t):
        c = consumers.get(t, [])
        return c[0] if len(c) == 1 and t not in outputs else None

    def conv1x1(nd):
        if nd is None or nd.op != "Conv":
            return None
        m = gm._modules.get(nd.attrs.get("_module"))
        if type(m) is not OnnxConv2d or m.kernel_size != (1, 1) or m.stride != (1, 1) or m.groups != 1:
            return None
        if any(m.padding) or m.auto_pad not in (None, "NOTSET", "VALID"):
            return None
        return m

    xin = gap.inputs[0]
    c1 = only(gap.outputs[0])
    m1 = conv1x1(c1)
    if m1 is None:
        return None
    nodes = [gap, c1]
    h = c1.outputs[0]
    act1 = "relu" if m1.fused_relu else "none"
    nxt = only(h)
    if not m1.fused_relu and nxt is not None and nxt.op in ("Relu", "HardSwish"):
        act1 = nxt.op.lower()
        nodes.append(nxt)
        h = nxt.outputs[0]
        nxt = only(h)
    elif not m1.fused_relu and nxt is None and h not in outputs:  # h * Sigmoid(h): SiLU
        cs = consumers.get(h, [])
        sig = next((n for n in cs if n.op == "Sigmoid"), None)
        mul = next((n for n in cs if n.op == "Mul"), None)
        if (
            len(cs) == 2
            and sig is not None
            and mul is not None
            and only(sig.outputs[0]) is mul
            and sorted(mul.inputs) == sorted([h, sig.outputs[0]])
        ):
            act1 = "silu"
            nodes += [sig, mul]
            h = mul.outputs[0]
            nxt = only(h)
    m2 = conv1x1(nxt)
    if m2 is None or m2.fused_relu:
        return None
    c2 = nxt
    nodes.append(c2)
    sc = only(c2.outputs[0])
    if sc is None or sc.op not in ("HardSigmoid", "Sigmoid"):
        return None
    alpha, beta = 0.0, 0.0
    if sc.op == "HardSigmoid":
        alpha, beta = float(sc.attrs.get("alpha", 0.2)), float(sc.attrs.get("beta", 0.5))
        if abs(alpha - 1 / 6) < 1e-6 and beta == 0.5:  # a float32 attribute meaning 1/6, as _op_hardsigmoid
            alpha = 1 / 6
    nodes.append(sc)
    mul = only(sc.outputs[0])
    s = sc.outputs[0]
    if mul is None or mul.op != "Mul" or len(mul.inputs) != 2 or sorted(mul.inputs) != sorted([xin, s]) or xin == s:
        return None
    nodes.append(mul)
    # x may be overwritten by the scaling when GAP and Mul are its only readers
    inplace = _overwritable(gm, xin, 2, consumers, outputs)
    return (
        nodes,
        c1.attrs["_module"],
        act1,
        c2.attrs["_module"],
        sc.op.lower(),
        alpha,
        beta,
        xin,
        mul.outputs[0],
        inplace,
    )


def _se_step(gm, nodes, n1, act1, n2, scale_act, alpha, beta, xin, out, inplace, *, OPS, OnnxConv2d):
    """One ``_core.se_scale_forward`` call for the SE block :func:`_match_se` found; node by node
    when a conv was replaced, given forward hooks or another geometry, or the dtypes differ. With
    ``inplace`` the block's input is scaled in place when it is a C-contiguous, writeable array,
    no view of another, and referenced by the value table alone (a fresh array nothing else reads
    or holds: 1.3x faster at batch 16, no second buffer brought into cache)."""
    mods = gm._modules
    g1, g2 = _conv1x1_geom(mods[n1]), _conv1x1_geom(mods[n2])
    inner = [o for n in nodes[:-1] for o in n.outputs if o]
    se = _core.se_scale_forward

    def slow(gm, values):
        _run_nodes(gm, nodes, values, OPS)
        for o in inner:
            values.pop(o, None)

    def fn(gm, values):
        # the checked path: the step bound to the modules as they are now, else node by node
        fast = bind(gm, values)
        if fast is None:
            return slow(gm, values)
        try:
            fast(gm, values)
        except Stale:  # (raised before anything is written)
            slow(gm, values)
        return None

    def bind(gm, values):
        x = values[xin]
        mods = gm._modules
        c1, c2 = mods[n1], mods[n2]
        if (
            type(c1) is not OnnxConv2d
            or type(c2) is not OnnxConv2d
            or c1._forward_hooks
            or c2._forward_hooks
            or _conv1x1_geom(c1) != g1
            or _conv1x1_geom(c2) != g2
        ):
            return None
        w1t, w2t, b1t, b2t = c1.weight, c2.weight, c1.bias, c2.bias
        dt = w1t.data.dtype
        if type(x) is not np.ndarray or x.ndim != 4 or x.dtype != dt or dt.char not in "fd":
            return None

        def fast(gm, values):
            x = values[xin]
            w1, w2 = w1t.data, w2t.data
            b1 = None if b1t is None else b1t.data
            b2 = None if b2t is None else b2t.data
            for a in (x, w1, w2, b1, b2):
                if a is not None and a.dtype is not dt and a.dtype != dt:
                    raise Stale
            dest = None
            # in place only if no one else holds x: the value table and this frame are its only
            # references (not a hook's saved output, not viewed by anything)
            if (
                inplace
                and sys.getrefcount(x) <= _SOLE_REFS
                and x.flags.c_contiguous
                and x.flags.writeable
                and not isinstance(x.base, np.ndarray)
            ):
                dest = x
            values[out] = se(x, w1, b1, w2, b2, act1, scale_act, alpha, beta, dest)

        return fast

    fn.bind = bind
    return fn, list(nodes), None, [xin]


def _match_gelu(gm, div, consumers, outputs, only, small_const):
    """``Div(y, c1) -> Erf -> Add(., c2) -> Mul(y, .) -> Mul(., c3)`` (PyTorch's and PaddlePaddle's
    export), or ``Mul(Mul(y, c3), Add(Erf(Div(y, c1)), c2))`` (``cnnfast.onnx.export``'s below
    opset 20), with the Add and Mul operands in either order and every intermediate read by the
    next node alone, as ``(nodes, y, out, c1, c2, c3, inplace)``, or None. The constants' values
    are checked when the step runs (they are trainable)."""
    if len(div.inputs) != 2 or not small_const(div.inputs[1]):
        return None
    y = div.inputs[0]
    erf = only(div.outputs[0])
    if erf is None or erf.op != "Erf":
        return None
    add = only(erf.outputs[0])
    if add is None or add.op != "Add" or len(add.inputs) != 2 or erf.outputs[0] not in add.inputs:
        return None
    c2 = add.inputs[1] if add.inputs[0] == erf.outputs[0] else add.inputs[0]
    mul1 = only(add.outputs[0])
    if (
        not small_const(c2)
        or mul1 is None
        or mul1.op != "Mul"
        or len(mul1.inputs) != 2
        or add.outputs[0] not in mul1.inputs
        or mul1.inputs[0] == mul1.inputs[1]
    ):
        return None
    other = mul1.inputs[1] if mul1.inputs[0] == add.outputs[0] else mul1.inputs[0]
    if other == y:  # Mul(y, .) -> Mul(., c3)
        mul2 = only(mul1.outputs[0])
        if mul2 is None or mul2.op != "Mul" or len(mul2.inputs) != 2 or mul1.outputs[0] not in mul2.inputs:
            return None
        c3 = mul2.inputs[1] if mul2.inputs[0] == mul1.outputs[0] else mul2.inputs[0]
        nodes = [div, erf, add, mul1, mul2]
    else:  # Mul(h, .) with h = Mul(y, c3) read by it alone
        mulh = next((n for n in consumers.get(y, []) if n.op == "Mul" and other in n.outputs), None)
        if mulh is None or only(other) is not mul1 or len(mulh.inputs) != 2 or y not in mulh.inputs:
            return None
        c3 = mulh.inputs[1] if mulh.inputs[0] == y else mulh.inputs[0]
        nodes = [div, erf, add, mulh, mul1]  # (in an order they can run in; the output last)
    if not small_const(c3):
        return None
    # y may be overwritten when the Div and the first Mul are its only readers
    inplace = _overwritable(gm, y, 2, consumers, outputs)
    return nodes, y, nodes[-1].outputs[0], div.inputs[1], c2, c3, inplace


def _gelu_step(gm, nodes, y, out, c1, c2, c3, inplace, *, OPS):
    """One ``_core.pointwise_forward(y, 'gelu', 1 / c1, c3)`` (``c3 y (1 + erf(y / c1))``) for the
    nodes :func:`_match_gelu` found, while ``y`` is a float32/float64 ndarray, the constants are
    scalars of its dtype with at most its dimensions (no broadcast beyond them), ``c2`` is 1 and
    ``c1`` nonzero (sqrt(2) in an exact GELU; the float16-stored backbone of
    :mod:`cnnfast.pretrained` has 1.4140625); node by node otherwise. In place on ``y`` when
    ``inplace`` and the value table alone holds it (see :func:`_se_step`)."""
    inner = [n.outputs[0] for n in nodes[:-1]]
    pw = _core.pointwise_forward

    def slow(gm, values):
        _run_nodes(gm, nodes, values, OPS)
        for o in inner:
            values.pop(o, None)

    def params(x, d, a, m):
        """(1 / c1, c3) for the kernel, or None where the nodes must run one by one."""
        if type(x) is not np.ndarray or x.dtype.char not in "fd":
            return None
        for c in (d, a, m):
            if (
                type(c) is not np.ndarray
                or c.size != 1
                or c.ndim > x.ndim
                or (c.dtype is not x.dtype and c.dtype != x.dtype)
            ):
                return None
        dv, mv = d.item(), m.item()
        if a.item() != 1.0 or not (np.isfinite(dv) and dv != 0 and np.isfinite(mv)):
            return None
        return 1.0 / dv, mv

    def run(values, x, sole, p):
        # sole: the value table and the caller's frame are x's only references (_SOLE_REFS)
        dest = (
            x
            if inplace and sole and x.flags.c_contiguous and x.flags.writeable and not isinstance(x.base, np.ndarray)
            else None
        )
        values[out] = pw(x, "gelu", p[0], p[1], out=dest)

    def fn(gm, values):
        x = values[y]
        p = params(x, _const(gm, c1), _const(gm, c2), _const(gm, c3))
        if p is None:
            return slow(gm, values)
        run(values, x, sys.getrefcount(x) <= _SOLE_REFS, p)
        return None

    def bind(gm, values):
        if params(values[y], _const(gm, c1), _const(gm, c2), _const(gm, c3)) is None:
            return None
        g1, g2, g3 = _const_getter(gm, c1), _const_getter(gm, c2), _const_getter(gm, c3)

        def fast(gm, values):
            x = values[y]
            p = params(x, g1(), g2(), g3())
            if p is None:
                raise Stale
            run(values, x, sys.getrefcount(x) <= _SOLE_REFS, p)

        return fast

    fn.bind = bind
    return fn, list(nodes), None, [y, c1, c2, c3]
