"""MobileNetV2 and MobileNetV3-Small (torchvision's ``mobilenetv2.py`` / ``mobilenetv3.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from functools import partial

from .. import nn
from ._blocks import Conv2dNormActivation, SqueezeExcitation, _init_classifier_style, _make_divisible, _residual_add

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["MobileNetV2", "MobileNetV3", "mobilenet_v2", "mobilenet_v3_small"]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 project + BN (``conv``)."""

    def __init__(
        self, inp: int, oup: int, stride: int, expand_ratio: float, norm_layer: Callable[[int], nn.Module] | None = None
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        norm_layer = norm_layer or nn.BatchNorm2d
        hidden_dim = int(round(inp * expand_ratio))
        self.stride = stride
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(
                Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.ReLU6)
            )
        layers += [
            Conv2dNormActivation(
                hidden_dim,
                hidden_dim,
                stride=stride,
                groups=hidden_dim,
                norm_layer=norm_layer,
                activation_layer=nn.ReLU6,
            ),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            norm_layer(oup),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        result = self.conv(x)
        if self.use_res_connect:
            result = _residual_add(result, x)
        return result


class MobileNetV2(nn.Module):
    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, round_nearest: int = 8, dropout: float = 0.2
    ) -> None:
        super().__init__()
        input_channel, last_channel = 32, 1280
        setting = [
            [1, 16, 1, 1],
            [6, 24, 2, 2],
            [6, 32, 3, 2],
            [6, 64, 4, 2],
            [6, 96, 3, 1],
            [6, 160, 3, 2],
            [6, 320, 1, 1],
        ]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2, activation_layer=nn.ReLU6)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(
            Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1, activation_layer=nn.ReLU6)
        )
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        _init_classifier_style(self)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        from .. import functional as F

        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = x.reshape(x.shape[0], -1)
        return self.classifier(x)


class _V3Config:
    def __init__(
        self,
        input_channels: int,
        kernel: int,
        expanded_channels: int,
        out_channels: int,
        use_se: bool,
        activation: str,
        stride: int,
        dilation: int,
        width_mult: float,
    ) -> None:
        adj = lambda c: _make_divisible(c * width_mult, 8)  # noqa: E731
        self.input_channels = adj(input_channels)
        self.kernel = kernel
        self.expanded_channels = adj(expanded_channels)
        self.out_channels = adj(out_channels)
        self.use_se = use_se
        self.use_hs = activation == "HS"
        self.stride = stride
        self.dilation = dilation


class InvertedResidualV3(nn.Module):
    """MobileNetV3 block: expand, depthwise, optional squeeze-and-excitation (hardsigmoid gate), project."""

    def __init__(self, cnf: _V3Config, norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(
                Conv2dNormActivation(
                    cnf.input_channels,
                    cnf.expanded_channels,
                    kernel_size=1,
                    norm_layer=norm_layer,
                    activation_layer=act,
                )
            )
        stride = 1 if cnf.dilation > 1 else cnf.stride
        layers.append(
            Conv2dNormActivation(
                cnf.expanded_channels,
                cnf.expanded_channels,
                kernel_size=cnf.kernel,
                stride=stride,
                dilation=cnf.dilation,
                groups=cnf.expanded_channels,
                norm_layer=norm_layer,
                activation_layer=act,
            )
        )
        if cnf.use_se:
            squeeze = _make_divisible(cnf.expanded_channels // 4, 8)
            layers.append(SqueezeExcitation(cnf.expanded_channels, squeeze, scale_activation=nn.Hardsigmoid))
        layers.append(
            Conv2dNormActivation(
                cnf.expanded_channels, cnf.out_channels, kernel_size=1, norm_layer=norm_layer, activation_layer=None
            )
        )
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels

    def forward(self, input: ArrayOrTensor) -> ArrayOrTensor:
        result = self.block(input)
        if self.use_res_connect:
            result = _residual_add(result, input)
        return result


class MobileNetV3(nn.Module):
    def __init__(
        self,
        inverted_residual_setting: Sequence[_V3Config],
        last_channel: int,
        num_classes: int = 1000,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        first = inverted_residual_setting[0].input_channels
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, first, kernel_size=3, stride=2, norm_layer=norm_layer, activation_layer=nn.Hardswish
            )
        ]
        for cnf in inverted_residual_setting:
            layers.append(InvertedResidualV3(cnf, norm_layer))
        last_in = inverted_residual_setting[-1].out_channels
        last_out = 6 * last_in
        layers.append(
            Conv2dNormActivation(last_in, last_out, kernel_size=1, norm_layer=norm_layer, activation_layer=nn.Hardswish)
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_out, last_channel),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_channel, num_classes),
        )
        _init_classifier_style(self)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = x.reshape(x.shape[0], -1)
        return self.classifier(x)


def mobilenet_v2(*, num_classes: int = 1000, **kwargs: Any) -> MobileNetV2:
    """MobileNetV2 (3,504,872 parameters with 1000 classes)."""
    return MobileNetV2(num_classes=num_classes, **kwargs)


def mobilenet_v3_small(*, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2) -> MobileNetV3:
    """MobileNetV3-Small (2,542,856 parameters with 1000 classes)."""
    c = partial(_V3Config, width_mult=width_mult)
    setting = [
        c(16, 3, 16, 16, True, "RE", 2, 1),
        c(16, 3, 72, 24, False, "RE", 2, 1),
        c(24, 3, 88, 24, False, "RE", 1, 1),
        c(24, 5, 96, 40, True, "HS", 2, 1),
        c(40, 5, 240, 40, True, "HS", 1, 1),
        c(40, 5, 240, 40, True, "HS", 1, 1),
        c(40, 5, 120, 48, True, "HS", 1, 1),
        c(48, 5, 144, 48, True, "HS", 1, 1),
        c(48, 5, 288, 96, True, "HS", 2, 1),
        c(96, 5, 576, 96, True, "HS", 1, 1),
        c(96, 5, 576, 96, True, "HS", 1, 1),
    ]
    return MobileNetV3(setting, _make_divisible(1024 * width_mult, 8), num_classes=num_classes, dropout=dropout)
