"""cnnfast.models: the torchvision classification networks for transfer learning.

``resnet18``, ``resnet34``, ``resnet50``, ``mobilenet_v2``, ``mobilenet_v3_small``,
``efficientnet_b0`` and ``googlenet`` (no auxiliary heads), each with ``num_classes=``. Module
names, state-dict keys, shapes, parameter counts and eval-mode outputs are those of torchvision
0.29, so torchvision's pretrained weights load with::

    model = cnnfast.models.resnet18()
    model.load_state_dict(cnnfast.load_torch("resnet18-f37072fd.pth"))   # no PyTorch needed

The weights are not downloaded here (cnnfast works offline): fetch the .pth files elsewhere.
Inputs are NCHW float32, normalised as torchvision's weights expect (ImageNet mean/std).
"""

from .efficientnet import EfficientNet, efficientnet_b0
from .googlenet import GoogLeNet, googlenet
from .mobilenet import MobileNetV2, MobileNetV3, mobilenet_v2, mobilenet_v3_small
from .resnet import ResNet, resnet18, resnet34, resnet50

__all__ = [
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "googlenet",
    "ResNet",
    "MobileNetV2",
    "MobileNetV3",
    "EfficientNet",
    "GoogLeNet",
    "list_models",
]


def list_models() -> list[str]:
    """The architecture names, as ``torchvision.models.list_models`` spells them."""
    return ["efficientnet_b0", "googlenet", "mobilenet_v2", "mobilenet_v3_small", "resnet18", "resnet34", "resnet50"]
