"""``Module.summary``: a Keras-style table of layers, output shapes and parameter counts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from .._typing import DTypeLike

# A cnnfast.nn.Module (not imported: module.py imports this module, in Module.summary).
_Module = Any

__all__ = ["summary", "ModelSummary"]


class ModelSummary(dict[str, Any]):
    """The numbers behind the table: ``layers`` (list of dicts: name, type, output_shape, params,
    trainable), ``total_params``, ``trainable_params``, ``non_trainable_params``, ``param_bytes``,
    ``input_bytes``, ``activation_bytes`` (outputs of one forward pass). ``str()`` is the table."""

    def __str__(self) -> str:
        return self["text"]

    def __repr__(self) -> str:
        return (
            f"ModelSummary(total_params={self['total_params']:,}, trainable_params={self['trainable_params']:,}, "
            f"layers={len(self['layers'])})"
        )


def _shape_of(out: Any) -> tuple[int, ...]:
    if isinstance(out, (tuple, list)):
        return _shape_of(out[0]) if out else ()
    return tuple(np.shape(out.data if isinstance(out, Tensor) else out))


def _nbytes(out: Any) -> int:
    if isinstance(out, (tuple, list)):
        return sum(_nbytes(o) for o in out)
    a = out.data if isinstance(out, Tensor) else out
    return a.nbytes if isinstance(a, np.ndarray) else 0


def _mb(n: float) -> str:
    return f"{n / 2 ** 20:.2f} MB"


def summary(
    model: _Module,
    input_shape: Sequence[int],
    file: IO[str] | Literal[False] | None = None,
    dtype: DTypeLike = np.float32,
) -> ModelSummary:
    """See :meth:`cnnfast.nn.Module.summary`."""
    shape = tuple(int(s) for s in input_shape)
    rows: list[dict[str, Any]] = []
    handles = []
    # Rows for modules that hold parameters themselves or have no children (the layers), in call order.
    for name, m in model.named_modules():
        has_own = any(p is not None for p in m._parameters.values())
        if m is model and not has_own and m._modules:
            continue
        if m._modules and not has_own:
            continue

        def hook(mod: _Module, inputs: tuple[Any, ...], out: Any, _name: str = name) -> None:
            own = [p for p in mod._parameters.values() if p is not None]
            rows.append(
                {
                    "name": _name or type(mod).__name__,
                    "type": type(mod).__name__,
                    "output_shape": _shape_of(out),
                    "params": sum(p.data.size for p in own),
                    "trainable": sum(p.data.size for p in own if p.requires_grad),
                    "bytes": _nbytes(out),
                }
            )

        handles.append(m.register_forward_hook(hook))
    x = np.zeros(shape, dtype=dtype)
    was_training = model.training
    model.eval()  # no dropout; the shapes are the same either way
    try:
        with no_grad():
            # a Tensor, so a custom forward may use Tensor methods (x.view, x.flatten(1), ...)
            model(Tensor(x))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    params = list(model.parameters())
    total = sum(p.data.size for p in params)
    trainable = sum(p.data.size for p in params if p.requires_grad)
    info = ModelSummary(
        layers=[{k: v for k, v in r.items() if k != "bytes"} for r in rows],
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        param_bytes=sum(p.data.nbytes for p in params),
        input_bytes=x.nbytes,
        activation_bytes=sum(r["bytes"] for r in rows),
    )
    info["text"] = _format(type(model).__name__, shape, rows, info)
    if file is not False:
        print(info["text"], file=sys.stdout if file is None else file)
    return info


def _format(model_name: str, input_shape: tuple[int, ...], rows: list[dict[str, Any]], info: ModelSummary) -> str:
    headers = ("Layer (type)", "Output Shape", "Param #")
    body = [
        (
            f"{r['name']} ({r['type']})",
            str(r["output_shape"]),
            f"{r['params']:,}"
            + (
                ""
                if r["trainable"] == r["params"]
                else " (frozen)"
                if r["trainable"] == 0
                else f" ({r['params'] - r['trainable']:,} frozen)"
            ),
        )
        for r in rows
    ]
    w = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(headers)]
    width = sum(w) + 6
    line = lambda cells: f"{cells[0]:<{w[0]}}   {cells[1]:<{w[1]}}   {cells[2]:>{w[2]}}"  # noqa: E731
    out = [f'Model: "{model_name}"  input {input_shape}', "=" * width, line(headers), "=" * width]
    out += [line(b) for b in body]
    out += [
        "=" * width,
        f"Total params: {info['total_params']:,}",
        f"Trainable params: {info['trainable_params']:,}",
        f"Non-trainable params: {info['non_trainable_params']:,}",
        "-" * width,
        f"Input size: {_mb(info['input_bytes'])}",
        f"Activations (forward pass): {_mb(info['activation_bytes'])}",
        f"Params size: {_mb(info['param_bytes'])}",
        f"Estimated total (input + activations x2 for backward + params): "
        f"{_mb(info['input_bytes'] + 2 * info['activation_bytes'] + info['param_bytes'])}",
        "-" * width,
    ]
    return "\n".join(out)
