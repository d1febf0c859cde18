"""Detector architectures: a torchvision backbone and the design's custom classification head, in a small registry.

Every model splits in two at its Grad-CAM target layer: `forward_features` runs the backbone up to and including
that layer, `forward_head` turns its activations into one logit for "fake". Inference runs the first half fast
(bf16, another runtime) and the second half in fp32 with autograd, which is all Grad-CAM needs.
"""

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from ml.errors import UnknownArchitectureError
from ml.pretrained import PretrainedWeightsError, load_state_dict

logger = logging.getLogger(__name__)

DROPOUT = 0.3


class DeepfakeNet(nn.Module):
    """A torchvision backbone without its ImageNet classifier, then a 3-layer head that outputs one logit for "fake".

    Subclasses say how the backbone reaches its Grad-CAM target layer (`forward_features`); the head is shared.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, hidden: tuple[int, int] = (512, 128)):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(feature_dim, hidden[0]),
            nn.BatchNorm1d(hidden[0]),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(hidden[0], hidden[1]),
            nn.BatchNorm1d(hidden[1]),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(hidden[1], 1),
        )

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Activations of the Grad-CAM target layer, shape (batch, channels, h, w)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """One logit per image from the target layer's activations, shape (batch,)."""
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)
        return self.head(pooled).squeeze(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


class ResNetDetector(DeepfakeNet):
    """ResNet backbone; the Grad-CAM target is `backbone.layer4`."""

    def __init__(self, backbone: torchvision.models.ResNet, feature_dim: int):
        backbone.fc = nn.Identity()
        super().__init__(backbone, feature_dim)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(images))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))


class MobileNetDetector(DeepfakeNet):
    """MobileNetV2 backbone; the Grad-CAM target is its last convolutional block, `backbone.features.18`."""

    def __init__(self, backbone: torchvision.models.MobileNetV2, feature_dim: int):
        backbone.classifier = nn.Identity()
        super().__init__(backbone, feature_dim)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(images)


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    backbone: Callable[..., nn.Module]
    detector: type[DeepfakeNet]
    imagenet_weights: torchvision.models.WeightsEnum
    feature_dim: int
    gradcam_layer: str  # dotted module path inside DeepfakeNet; forward_features ends with this layer
    default_input_size: int = 224

    def build(self, *, pretrained: bool = False) -> DeepfakeNet:
        """A fresh model. With pretrained=True the backbone starts from ImageNet weights when they can be had
        (ml.pretrained); a weights file that fails its checksum is refused with PretrainedWeightsError."""
        backbone = self.backbone(weights=None)
        if pretrained:
            try:
                backbone.load_state_dict(load_state_dict(self.imagenet_weights))
            except PretrainedWeightsError:
                raise
            except Exception as exc:  # no network, no cache: torch.hub raises many kinds
                warnings.warn(
                    f"ImageNet weights for {self.name} could not be loaded ({exc.__class__.__name__}: {exc}); "
                    "the backbone starts from random weights. Expect to need more data and epochs.",
                    stacklevel=2,
                )
        return self.detector(backbone, self.feature_dim)

    def target_layer(self, model: DeepfakeNet) -> nn.Module:
        return model.get_submodule(self.gradcam_layer)


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="resnet50",
            description="ResNet-50 backbone, 3-layer head; the design's production architecture (25.6M parameters).",
            backbone=torchvision.models.resnet50,
            detector=ResNetDetector,
            imagenet_weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
            feature_dim=2048,
            gradcam_layer="backbone.layer4",
        ),
        Architecture(
            name="resnet18",
            description="ResNet-18 backbone, 3-layer head; fast, for the starter model and tests (11.5M parameters).",
            backbone=torchvision.models.resnet18,
            detector=ResNetDetector,
            imagenet_weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
            feature_dim=512,
            gradcam_layer="backbone.layer4",
        ),
        Architecture(
            name="mobilenet_v2",
            description="MobileNetV2 backbone, 3-layer head; ImageNet weights available offline (ml.pretrained); "
            "the reference model's architecture (2.9M parameters).",
            backbone=torchvision.models.mobilenet_v2,
            detector=MobileNetDetector,
            imagenet_weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1,
            feature_dim=1280,
            gradcam_layer="backbone.features.18",
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitectureError(f"Unknown architecture “{name}”. Known architectures: {known}.") from None
