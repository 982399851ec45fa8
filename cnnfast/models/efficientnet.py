"""EfficientNet-B0 (torchvision's ``efficientnet.py``: MBConv blocks with SiLU, squeeze-and-excitation
and stochastic depth; BatchNorm with torch's default eps, as torchvision's B0 uses)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import copy
import math
from functools import partial

from .. import nn
from ._blocks import (
    Conv2dNormActivation,
    SqueezeExcitation,
    StochasticDepth,
    _init_classifier_style,
    _make_divisible,
    _residual_add,
)

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["EfficientNet", "MBConv", "efficientnet_b0"]


class MBConvConfig:
    def __init__(
        self,
        expand_ratio: float,
        kernel: int,
        stride: int,
        input_channels: int,
        out_channels: int,
        num_layers: int,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
    ) -> None:
        self.expand_ratio = expand_ratio
        self.kernel = kernel
        self.stride = stride
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.num_layers = int(math.ceil(num_layers * depth_mult))

    @staticmethod
    def adjust_channels(channels: int, width_mult: float, min_value: int | None = None) -> int:
        return _make_divisible(channels * width_mult, 8, min_value)


class MBConv(nn.Module):
    def __init__(self, cnf: MBConvConfig, stochastic_depth_prob: float, norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        layers: list[nn.Module] = []
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels, expanded, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.SiLU
                )
            )
        layers.append(
            Conv2dNormActivation(
                expanded,
                expanded,
                kernel_size=cnf.kernel,
                stride=cnf.stride,
                groups=expanded,
                norm_layer=norm_layer,
                activation_layer=nn.SiLU,
            )
        )
        squeeze = max(1, cnf.input_channels // 4)
        layers.append(SqueezeExcitation(expanded, squeeze, activation=partial(nn.SiLU, inplace=True)))
        layers.append(
            Conv2dNormActivation(
                expanded, cnf.out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        result = self.block(input)
        if self.use_res_connect:
            result = self.stochastic_depth(result)
            result = _residual_add(result, input)
        return result


class EfficientNet(nn.Module):
    def __init__(
        self,
        inverted_residual_setting: Sequence[MBConvConfig],
        dropout: float,
        stochastic_depth_prob: float = 0.2,
        num_classes: int = 1000,
        norm_layer: Callable[[int], nn.Module] | None = None,
        last_channel: int | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        first = inverted_residual_setting[0].input_channels
        layers: list[nn.Module] = [
            Conv2dNormActivation(3, first, kernel_size=3, stride=2, norm_layer=norm_layer, activation_layer=nn.SiLU)
        ]
        total = sum(c.num_layers for c in inverted_residual_setting)
        block_id = 0
        for cnf in inverted_residual_setting:
            stage: list[nn.Module] = []
            for _ in range(cnf.num_layers):
                bc = copy.copy(cnf)
                if stage:
                    bc.input_channels = bc.out_channels
                    bc.stride = 1
                stage.append(MBConv(bc, stochastic_depth_prob * float(block_id) / total, norm_layer))
                block_id += 1
            layers.append(nn.Sequential(*stage))
        last_in = inverted_residual_setting[-1].out_channels
        last_out = last_channel if last_channel is not None else 4 * last_in
        layers.append(
            Conv2dNormActivation(last_in, last_out, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.SiLU)
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), nn.Linear(last_out, num_classes))
        _init_classifier_style(self, linear="uniform")

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = x.reshape(x.shape[0], -1)
        return self.classifier(x)


def efficientnet_b0(
    *, num_classes: int = 1000, dropout: float = 0.2, stochastic_depth_prob: float = 0.2
) -> EfficientNet:
    """EfficientNet-B0 (5,288,548 parameters with 1000 classes)."""
    c = partial(MBConvConfig, width_mult=1.0, depth_mult=1.0)
    setting = [
        c(1, 3, 1, 32, 16, 1),
        c(6, 3, 2, 16, 24, 2),
        c(6, 5, 2, 24, 40, 2),
        c(6, 3, 2, 40, 80, 3),
        c(6, 5, 1, 80, 112, 3),
        c(6, 5, 2, 112, 192, 4),
        c(6, 3, 1, 192, 320, 1),
    ]
    return EfficientNet(setting, dropout, stochastic_depth_prob=stochastic_depth_prob, num_classes=num_classes)
