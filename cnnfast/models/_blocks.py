"""Blocks shared by the models: Conv2dNormActivation, SqueezeExcitation, StochasticDepth,
_make_divisible and torchvision's weight initialisation (same module names as torchvision.ops)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import _core, nn
from .._random import _get_generator
from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor, Generator


def _make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's (and TF slim's) channel rounding: a multiple of ``divisor``, at most 10% down."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias when normalised) -> BatchNorm2d -> activation, as ``torchvision.ops.Conv2dNormActivation``
    (children ``0``, ``1``, ``2``). ``padding=None`` means ``(kernel_size - 1) // 2 * dilation``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] | None = nn.ReLU,
        dilation: int = 1,
        inplace: bool | None = True,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        if bias is None:
            bias = norm_layer is None
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=bias
            )
        ]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer() if inplace is None else activation_layer(inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


class SqueezeExcitation(nn.Module):
    """``x * scale_activation(fc2(activation(fc1(avgpool(x)))))`` with 1x1 convs (torchvision.ops.SqueezeExcitation)."""

    def __init__(
        self,
        input_channels: int,
        squeeze_channels: int,
        activation: Callable[[], nn.Module] = nn.ReLU,
        scale_activation: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input: ArrayOrTensor) -> ArrayOrTensor:
        scale = self.avgpool(input)
        scale = self.fc1(scale)
        scale = self.activation(scale)
        scale = self.fc2(scale)
        return self.scale_activation(scale)

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        if type(input) is np.ndarray and not self.training:
            y = self._fused(input)
            if y is not None:
                return y
        return self._scale(input) * input

    def _fused(self, x: np.ndarray) -> np.ndarray | None:
        """The eval-mode ndarray forward as one ``_core.se_scale_forward`` call, or None where it
        does not apply (submodules replaced or hooked, other dtypes; then the module calls run)."""
        fc1, fc2, act, sact, pool = self.fc1, self.fc2, self.activation, self.scale_activation, self.avgpool
        a1 = _SE_ACTIVATIONS.get(type(act))
        if (
            a1 is None
            or type(sact) not in (nn.Hardsigmoid, nn.Sigmoid)
            or type(pool) is not nn.AdaptiveAvgPool2d
            or pool.output_size not in (1, (1, 1))
            or x.ndim != 4
            or x.dtype.char not in "fd"
        ):
            return None
        convs = (fc1, fc2)
        for m in (pool, act, sact) + convs:
            if m._forward_hooks:
                return None
        for c in convs:
            if (
                type(c) is not nn.Conv2d
                or c.kernel_size != (1, 1)
                or c.stride != (1, 1)
                or c.groups != 1
                or not (c.padding in ("valid", "same") or not any(c.padding))
                or c.weight.data.dtype != x.dtype
                or (c.bias is not None and c.bias.data.dtype != x.dtype)
            ):
                return None
        return _core.se_scale_forward(
            x,
            fc1.weight.data,
            None if fc1.bias is None else fc1.bias.data,
            fc2.weight.data,
            None if fc2.bias is None else fc2.bias.data,
            a1,
            "hardsigmoid" if type(sact) is nn.Hardsigmoid else "sigmoid",
        )


_SE_ACTIVATIONS = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.Identity: "none"}


def stochastic_depth(
    input: ArrayOrTensor, p: float, mode: str, training: bool = True, generator: Generator = None
) -> ArrayOrTensor:
    """Randomly zero whole rows (``mode='row'``: per sample) or the whole input (``'batch'``) with
    probability ``p``, scaling survivors by ``1/(1-p)`` (torchvision.ops.stochastic_depth)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("row", "batch"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input
    data = input.data if isinstance(input, Tensor) else np.asarray(input)
    size = (data.shape[0],) + (1,) * (data.ndim - 1) if mode == "row" else (1,) * data.ndim
    keep = _get_generator(generator, "stochastic_depth").random(size) < 1.0 - p
    noise = keep.astype(data.dtype)
    if p < 1.0:
        noise /= data.dtype.type(1.0 - p)
    return input * noise


class StochasticDepth(nn.Module):
    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        return stochastic_depth(input, self.p, self.mode, self.training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, mode={self.mode})"


def _residual_add(result: ArrayOrTensor, input: ArrayOrTensor) -> ArrayOrTensor:
    """``result + input`` (torchvision writes ``result += input``; out of place keeps autograd simple).

    Call it as ``result = _residual_add(result, input)`` with ``result`` a local of the caller: an
    ndarray ``result`` that nothing else holds (the caller's local and this frame its only
    references: not kept by a forward hook, not a view of another array) is added to in place,
    which saves a new array and a pass over memory at small batches."""
    if (
        type(result) is np.ndarray
        and type(input) is np.ndarray
        and result.shape == input.shape
        and result.dtype == input.dtype
        and sys.getrefcount(result) <= _SOLE_REFS
        and result.flags.writeable
        and (result.base is None or type(result.base).__name__ == "PyCapsule")  # cnnfast's allocator
    ):
        return np.add(result, input, out=result)
    return result + input


def _sole_refs() -> int:
    """``sys.getrefcount`` of an object held by the caller's local alone, read as
    :func:`_residual_add` reads it (measured: CPython versions count differently)."""

    def probe(result: object) -> int:
        return sys.getrefcount(result)

    def caller() -> int:
        result = object()
        return probe(result)

    return caller()


_SOLE_REFS = _sole_refs()


def _init_classifier_style(model: nn.Module, linear: str = "normal001") -> None:
    """torchvision's initialisation for MobileNet/EfficientNet: kaiming_normal(fan_out) convs with zero
    bias, BatchNorm ones/zeros, and Linear N(0, 0.01) (``linear='normal001'``) or U(+-1/sqrt(out))."""
    from ..nn import init

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear == "normal001":
                init.normal_(m.weight, 0, 0.01)
            else:
                r = 1.0 / np.sqrt(m.out_features)
                init.uniform_(m.weight, -r, r)
            init.zeros_(m.bias)  # type: ignore[type-var]  # these classifiers' Linear layers have a bias


__all__ = ["Conv2dNormActivation", "SqueezeExcitation", "StochasticDepth", "stochastic_depth", "_make_divisible"]
