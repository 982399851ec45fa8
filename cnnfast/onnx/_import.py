"""ONNX file -> :class:`~cnnfast.onnx._graph.GraphSpec` -> trainable ``GraphModule`` (parsing needs ``onnx``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._graph import DTYPES, GraphModule, GraphSpec, Node, OnnxImportError

if TYPE_CHECKING:
    import onnx

    from .._typing import Array

__all__ = ["load", "spec_from_onnx"]


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "cnnfast.onnx.load needs the 'onnx' package to parse ONNX files: "
            "pip install 'cnnfast[onnx]' (or pip install onnx)"
        ) from None
    return onnx


def _attr_value(onnx: Any, a: Any, where: str) -> Any:
    from onnx import numpy_helper

    T = onnx.AttributeProto
    if a.type == T.FLOAT:
        return float(a.f)
    if a.type == T.INT:
        return int(a.i)
    if a.type == T.STRING:
        return a.s.decode("utf-8", "replace")
    if a.type == T.TENSOR:
        return numpy_helper.to_array(a.t)
    if a.type == T.FLOATS:
        return [float(v) for v in a.floats]
    if a.type == T.INTS:
        return [int(v) for v in a.ints]
    if a.type == T.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    raise OnnxImportError(
        f"{where}: attribute {a.name!r} of type {T.AttributeType.Name(a.type)} is not supported "
        f"(subgraphs and sparse tensors cannot be imported)"
    )


def _constant_value(onnx: Any, node: Any, attrs: dict[str, Any]) -> Array:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dtype in (
        ("value_float", np.float32),
        ("value_floats", np.float32),
        ("value_int", np.int64),
        ("value_ints", np.int64),
    ):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise OnnxImportError(f"Constant node {node.name!r}: no supported value attribute (got {sorted(attrs)})")


def spec_from_onnx(model: onnx.ModelProto, source: str = "") -> GraphSpec:
    """An ``onnx.ModelProto`` -> :class:`GraphSpec` (initializers and Constant nodes as constants)."""
    onnx = _onnx()
    from onnx import numpy_helper

    g = model.graph
    opset = None
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = int(imp.version)
    if opset is None:
        raise OnnxImportError("the model imports no version of the default ONNX operator set")
    constants = {}
    for t in g.initializer:
        try:
            constants[t.name] = numpy_helper.to_array(t)
        except Exception as e:  # noqa: BLE001 - the onnx package raises various types on bad tensors
            raise OnnxImportError(f"initializer {t.name!r} cannot be read: {e}") from None
    inputs = []
    for vi in g.input:
        if vi.name in constants:
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise OnnxImportError(f"graph input {vi.name!r} is not a tensor")
        dtype = DTYPES.get(tt.elem_type)
        if dtype is None:
            raise OnnxImportError(f"graph input {vi.name!r} has an unsupported element type {tt.elem_type}")
        shape = None
        if tt.HasField("shape"):
            shape = tuple(
                int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim
            )
        inputs.append((vi.name, shape, dtype))
    nodes = []
    for i, n in enumerate(g.node):
        name = n.name or (n.output[0] if n.output else f"node{i}")
        where = f"{n.op_type} node {name!r}"
        if n.domain not in ("", "ai.onnx"):
            raise OnnxImportError(
                f"unsupported ONNX operator {n.domain}.{n.op_type} (node {name!r}): only the default "
                f"domain is supported"
            )
        attrs = {a.name: _attr_value(onnx, a, where) for a in n.attribute}
        if n.op_type == "Constant":
            if len(n.output) != 1:
                raise OnnxImportError(f"{where}: expected one output")
            constants[n.output[0]] = _constant_value(onnx, n, attrs)
            continue
        nodes.append(Node(n.op_type, list(n.input), list(n.output), attrs, name))
    outputs = [o.name for o in g.output]
    return GraphSpec(inputs, outputs, nodes, constants, opset, source)


def load(
    path: str | os.PathLike[str] | bytes | bytearray | onnx.ModelProto,
    outputs: str | Sequence[str] | None = None,
    *,
    inputs: str | Sequence[str] | None = None,
) -> GraphModule:
    """Import an ONNX model as a trainable ``cnnfast.nn.Module`` (see :class:`GraphModule`).

    ``path`` is a file name, bytes of a serialised model, or an ``onnx.ModelProto``. ``outputs``
    (tensor names) cuts the graph there, e.g. for feature extraction; by default the graph's
    outputs. ``inputs`` (tensor names) starts it at inner tensors instead of the graph's inputs
    (the module then takes those tensors), e.g. to fine-tune only the last blocks. Called on ndarrays the module returns an ndarray (a tuple for several outputs); on
    Tensors it records for backward. Initializers and Constant nodes become Parameters (float) or
    buffers; Conv -> ``nn.Conv2d``, BatchNormalization -> ``nn.BatchNorm2d``, Gemm -> ``nn.Linear``.
    The module is returned in eval mode. Unsupported operators or malformed files raise
    ``OnnxImportError`` (a ValueError) naming the operator or the problem.
    """
    onnx = _onnx()
    if isinstance(path, onnx.ModelProto):
        model, source = path, "<ModelProto>"
    elif isinstance(path, (bytes, bytearray)):
        try:
            model = onnx.load_model_from_string(bytes(path))
        except Exception as e:  # noqa: BLE001
            raise OnnxImportError(
                f"cnnfast.onnx.load: the bytes are not an ONNX model ({type(e).__name__}: {e})"
            ) from None
        source = "<bytes>"
    else:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"cnnfast.onnx.load: no such file {path!r}")
        try:
            model = onnx.load(path)
        except Exception as e:  # noqa: BLE001 - protobuf DecodeError and friends
            raise OnnxImportError(
                f"cnnfast.onnx.load: {path!r} is not a valid ONNX model " f"({type(e).__name__}: {e})"
            ) from None
        source = os.path.basename(path)
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxImportError(f"cnnfast.onnx.load: {source} holds no graph (empty or not an ONNX model)")
    return GraphModule(spec_from_onnx(model, source), outputs=outputs, inputs=inputs)
