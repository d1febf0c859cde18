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

logger = logging.getLogger(__name__)

DROPOUT = 0.3


class DeepfakeNet(nn.Module):
    """A ResNet backbone without its ImageNet classifier, then a 3-layer head that outputs one logit for "fake"."""

    def __init__(self, backbone: torchvision.models.ResNet, feature_dim: int, hidden: tuple[int, int] = (512, 128)):
        super().__init__()
        backbone.fc = nn.Identity()
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
        """Activations of the Grad-CAM target layer (`backbone.layer4`), shape (batch, channels, h, w)."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(images))))
        return b.layer4(b.layer3(b.layer2(b.layer1(x))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """One logit per image from the target layer's activations, shape (batch,)."""
        pooled = torch.flatten(self.backbone.avgpool(features), 1)
        return self.head(pooled).squeeze(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    backbone: Callable[..., torchvision.models.ResNet]
    imagenet_weights: torchvision.models.WeightsEnum
    feature_dim: int
    gradcam_layer: str  # dotted module path inside DeepfakeNet; forward_features ends with this layer
    default_input_size: int = 224

    def build(self, *, pretrained: bool = False) -> DeepfakeNet:
        """A fresh model. With pretrained=True the backbone starts from ImageNet weights when they can be had."""
        weights = None
        if pretrained:
            weights = self.imagenet_weights
            try:
                weights.get_state_dict(progress=False, check_hash=True)
            except Exception as exc:
                warnings.warn(
                    f"ImageNet weights for {self.name} could not be loaded ({exc.__class__.__name__}: {exc}); "
                    "the backbone starts from random weights. Expect to need more data and epochs.",
                    stacklevel=2,
                )
                weights = None
        return DeepfakeNet(self.backbone(weights=weights), self.feature_dim)

    def target_layer(self, model: DeepfakeNet) -> nn.Module:
        return model.get_submodule(self.gradcam_layer)


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            name="resnet50",
            description="ResNet-50 backbone, 3-layer head; the design's production architecture (25.6M parameters).",
            backbone=torchvision.models.resnet50,
            imagenet_weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
            feature_dim=2048,
            gradcam_layer="backbone.layer4",
        ),
        Architecture(
            name="resnet18",
            description="ResNet-18 backbone, 3-layer head; fast, for the starter model and tests (11.5M parameters).",
            backbone=torchvision.models.resnet18,
            imagenet_weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
            feature_dim=512,
            gradcam_layer="backbone.layer4",
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitectureError(f"Unknown architecture “{name}”. Known architectures: {known}.") from None
