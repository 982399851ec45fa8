"""Pretrained networks shipped inside cnnfast (offline, no onnx package needed).

``ppocr_backbone()``: the convolutional backbone of PP-OCRv6's small text recogniser (Baidu /
PaddleOCR, Apache-2.0, via the rapidocr 3.10.0 wheel; see ``NOTICE`` and
``LICENSE-Apache-2.0.txt`` in this folder), converted by ``tools/convert_ppocr_backbone.py``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..onnx._graph import GraphModule

__all__ = ["PPOCR_MEAN", "PPOCR_STD", "ppocr_backbone", "ppocr_backbone_info"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_STEM = "ppocrv6_rec_small_backbone"
PPOCR_MEAN = 0.5
PPOCR_STD = 0.5


def _files() -> tuple[str, str]:
    j, z = (os.path.join(_HERE, _STEM + ext) for ext in (".json", ".npz"))
    for p in (j, z):
        if not os.path.isfile(p):
            raise FileNotFoundError(
                f"cnnfast.pretrained: {p} is missing from this installation (regenerate it with "
                f"tools/convert_ppocr_backbone.py)"
            )
    return j, z


def ppocr_backbone(
    outputs: str | Sequence[str] | None = None, inputs: str | Sequence[str] | None = None
) -> GraphModule:
    """PP-OCRv6_rec_small's CNN backbone as a trainable ``cnnfast.nn.Module`` (eval mode, float32).

    Input: ``(N, 3, 48, W)`` float32, RGB in [0, 1] normalised as ``(x - 0.5) / 0.5``. Output:
    ``(N, 120, 1, ceil(W / 8))`` features (the recogniser's tensor ``p2o.pd_op.add.65.0``);
    average them over space for a 120-dim image descriptor. 2,723,439 parameters (float16 on disk,
    so outputs differ from the original float32 network by about 1e-2 relative).
    ``outputs`` / ``inputs`` (tensor names) cut it as in :func:`cnnfast.onnx.load`.
    """
    from ..onnx._graph import GraphModule, load_spec

    spec, _ = load_spec(*_files())
    return GraphModule(spec, outputs=outputs, inputs=inputs)


def ppocr_backbone_info() -> dict[str, Any]:
    """The provenance record of :func:`ppocr_backbone` (source file, SHA-256, licence, shapes)."""
    import json

    with open(_files()[0]) as f:
        return dict(json.load(f)["meta"])
