"""ResNet-18/34/50 (torchvision's ``resnet.py``: ResNet v1.5, stride on the 3x3 conv of the bottleneck)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any


from .. import nn
from ..nn import init
from ..nn.fusion import conv_bn_act

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1
    _conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))  # for nn.fold_batchnorm

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        identity = x
        out = conv_bn_act(self.conv1, self.bn1, self.relu, x)
        if self.downsample is not None:
            identity = self.downsample(x)
        return conv_bn_act(self.conv2, self.bn2, self.relu, out, identity)  # relu(bn2(conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4
    _conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        identity = x
        out = conv_bn_act(self.conv1, self.bn1, self.relu, x)
        out = conv_bn_act(self.conv2, self.bn2, self.relu, out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return conv_bn_act(self.conv3, self.bn3, self.relu, out, identity)  # relu(bn3(conv3(out)) + identity)


class ResNet(nn.Module):
    """torchvision's ResNet: stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), four stages, global
    average pooling, ``fc``. ``zero_init_residual`` zeroes each block's last BN gamma."""

    _conv_bn_pairs = (("conv1", "bn1"),)

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    init.zeros_(m.bn2.weight)

    def _make_layer(
        self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        x = conv_bn_act(self.conv1, self.bn1, self.relu, x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = x.reshape(x.shape[0], -1)
        return self.fc(x)


def resnet18(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-18 (11,689,512 parameters with 1000 classes)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


def resnet34(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-34 (21,797,672 parameters with 1000 classes)."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


def resnet50(*, num_classes: int = 1000, **kwargs: Any) -> ResNet:
    """ResNet-50 (25,557,032 parameters with 1000 classes)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)
