"""GoogLeNet (Inception v1) as torchvision's ``googlenet.py``, without the auxiliary heads.

Like torchvision, the "5x5" branch uses a 3x3 conv (torchvision issue 906) so its weights fit.
``transform_input=True`` re-normalises ImageNet-normalised input to the (x - 0.5) / 0.5 scale
the original weights expect: torchvision sets it when it loads its pretrained weights, so pass
``transform_input=True`` when you load them. A state dict that still holds the auxiliary heads
(``aux1.*``, ``aux2.*``, as torchvision's weight file does) loads: those keys are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import functional as F
from .. import nn
from ..autograd.tensor import Tensor
from ..functional import cat
from ..nn.fusion import conv_bn_act

if TYPE_CHECKING:
    from .._typing import ArrayOrTensor

__all__ = ["GoogLeNet", "googlenet"]


_RELU = nn.ReLU()  # marks the ReLU of BasicConv2d for the fused inference path (no state)


class BasicConv2d(nn.Module):
    _conv_bn_pairs = (("conv", "bn"),)

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        if not isinstance(x, Tensor):
            return conv_bn_act(self.conv, self.bn, _RELU, x)
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        transform_input: bool = False,
        init_weights: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if aux_logits:
            raise NotImplementedError(
                "GoogLeNet: the auxiliary heads (aux_logits=True) are not implemented; they "
                "only serve training from scratch"
            )
        self.aux_logits = False
        self.transform_input = bool(transform_input)
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights:  # torchvision: truncated normal std 0.01 in [-2, 2] (never reached at that std)
            from ..nn import init

            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    init.normal_(m.weight, 0.0, 0.01)
                    np.clip(m.weight.data, -2, 2, out=m.weight.data)
                elif isinstance(m, nn.BatchNorm2d):
                    init.ones_(m.weight)
                    init.zeros_(m.bias)

    def _transform_input(self, x: ArrayOrTensor) -> ArrayOrTensor:
        if not self.transform_input:
            return x
        scale = np.array([0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5]).reshape(1, 3, 1, 1)
        shift = np.array([(0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5]).reshape(1, 3, 1, 1)
        dt = x.dtype
        return x * scale.astype(dt) + shift.astype(dt)

    def forward(self, x: ArrayOrTensor) -> ArrayOrTensor:
        x = self._transform_input(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.avgpool(x)
        x = x.reshape(x.shape[0], -1)
        x = self.dropout(x)
        return self.fc(x)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """As Module.load_state_dict, ignoring the auxiliary heads' keys (``aux1.*``, ``aux2.*``)."""
        kept = {k: v for k, v in state_dict.items() if not k.startswith(("aux1.", "aux2."))}
        return super().load_state_dict(kept, strict=strict)


def googlenet(*, num_classes: int = 1000, transform_input: bool = False, **kwargs: Any) -> GoogLeNet:
    """GoogLeNet without auxiliary heads (6,624,904 parameters with 1000 classes)."""
    return GoogLeNet(num_classes=num_classes, transform_input=transform_input, **kwargs)
