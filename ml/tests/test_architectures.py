import pytest
import torch

import ml
from ml.architectures import ARCHITECTURES, get_architecture
from ml.errors import UnknownArchitectureError


def test_the_torch_free_name_list_matches_the_registry():
    assert tuple(ARCHITECTURES) == ml.ARCHITECTURE_NAMES


@pytest.mark.parametrize(
    ("name", "parameters", "target"),
    [("resnet18", 11.5e6, "layer4"), ("resnet50", 25.6e6, "layer4"), ("mobilenet_v2", 2.9e6, "features.18")],
)
def test_each_architecture_outputs_one_logit_per_image(name, parameters, target):
    arch = get_architecture(name)
    model = arch.build().eval()

    with torch.no_grad():
        logits = model(torch.zeros(2, 3, arch.default_input_size, arch.default_input_size))
        features = model.forward_features(torch.zeros(1, 3, 160, 160))

    assert logits.shape == (2,)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(parameters, rel=0.05)
    assert arch.target_layer(model) is model.backbone.get_submodule(target)
    # Grad-CAM's target layer is where the backbone half ends.
    assert features.shape[1] == arch.feature_dim


def test_the_head_is_the_designs_three_layer_classifier():
    head = get_architecture("resnet50").build().head

    kinds = [type(layer).__name__ for layer in head]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert head[3].p == head[7].p == 0.3


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(UnknownArchitectureError, match="Known architectures: mobilenet_v2, resnet18, resnet50"):
        get_architecture("vgg16")
