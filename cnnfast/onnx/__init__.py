"""ONNX interchange: ``load`` an ONNX model as a trainable cnnfast module; ``export`` a cnnfast network.

``load`` needs the optional ``onnx`` package (``pip install 'cnnfast[onnx]'``), imported when
called; importing ``cnnfast.onnx`` itself needs only NumPy.
"""

from typing import Any

from ._graph import SUPPORTED_OPS, GraphModule, OnnxConv2d, OnnxImportError
from ._import import load

__all__ = ["SUPPORTED_OPS", "GraphModule", "OnnxConv2d", "OnnxImportError", "export", "load"]


def export(*args: Any, **kwargs: Any) -> None:
    """``export(model, path, example_input)``: write a cnnfast network as an ONNX file
    (implemented in ``cnnfast.onnx_export``)."""
    try:
        from ..onnx_export import export as _export
    except ImportError as e:
        if "onnx_export" not in str(e):
            raise
        raise NotImplementedError(
            "cnnfast.onnx.export is not available in this build (cnnfast.onnx_export is " "missing)"
        ) from None
    return _export(*args, **kwargs)
