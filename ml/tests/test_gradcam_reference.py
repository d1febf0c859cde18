"""The engine against references: pytorch-grad-cam's GradCAM and a plain forward pass, in fp32."""

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

from conftest import picture
from ml.architectures import get_architecture
from ml.detector import Detector
from ml.preprocessing import to_batch


@pytest.fixture(scope="module")
def images():
    return to_batch([picture(300 + 40 * i, 200 + 30 * i, seed=i) for i in range(4)], 224)


def reference_copy(model):
    copy = get_architecture("resnet18").build()
    copy.load_state_dict(model.state_dict())
    return copy.eval()


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_heatmaps_equal_pytorch_grad_cam(resnet18, images, backend):
    detector = Detector(resnet18, architecture="resnet18", input_size=224, backend=backend, precision="fp32")
    results = detector.analyze(images)

    reference_model = reference_copy(resnet18)
    targets = [BinaryClassifierOutputTarget(1 if r.label == "fake" else 0) for r in results]
    with GradCAM(reference_model, [get_architecture("resnet18").target_layer(reference_model)]) as cam:
        expected = cam(images, targets=targets)

    assert {r.label for r in results} == {"fake", "real"}, "the batch should exercise both target signs"
    actual = np.stack([r.heatmap for r in results])
    assert actual.shape == expected.shape == (4, 224, 224)
    assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_probabilities_equal_a_plain_forward(resnet18, images, backend):
    detector = Detector(resnet18, architecture="resnet18", input_size=224, backend=backend, precision="fp32")

    with torch.no_grad():
        expected = torch.sigmoid(reference_copy(resnet18)(images)).tolist()
    analyzed = [r.probability_fake for r in detector.analyze(images)]
    predicted = [r.probability_fake for r in detector.predict(images)]

    assert np.allclose(analyzed, expected, atol=1e-5)
    assert np.allclose(predicted, expected, atol=1e-5)
    assert max(expected) - min(expected) > 0.2, "probabilities should differ, or the comparison proves little"


def test_one_forward_pass_and_no_parameter_gradients(resnet18, images):
    detector = Detector(resnet18, architecture="resnet18", input_size=224, backend="torch", precision="fp32")
    calls = {"backbone": 0, "head": 0}
    # The backbone is a traced graph with batch norm folded in: count calls of its first convolution.
    first_conv = next(m for m in detector.features.module.modules() if isinstance(m, torch.nn.Conv2d))
    backbone_hook = first_conv.register_forward_hook(lambda *_: calls.__setitem__("backbone", calls["backbone"] + 1))
    head_hook = detector.model.head.register_forward_hook(lambda *_: calls.__setitem__("head", calls["head"] + 1))
    try:
        detector.analyze(images)
    finally:
        backbone_hook.remove()
        head_hook.remove()

    assert calls == {"backbone": 1, "head": 1}
    parameters = list(detector.model.parameters()) + list(detector.features.module.parameters())
    assert all(not p.requires_grad and p.grad is None for p in parameters)


def test_batch_results_equal_single_image_results(resnet18, images):
    detector = Detector(resnet18, architecture="resnet18", input_size=224, backend="torch", precision="fp32")

    batch = detector.analyze(images)
    singles = [detector.analyze(images[i : i + 1])[0] for i in range(len(images))]

    for together, alone in zip(batch, singles, strict=True):
        assert together.probability_fake == pytest.approx(alone.probability_fake, abs=1e-5)
        assert np.abs(together.heatmap - alone.heatmap).max() <= 1e-4


def test_labels_follow_the_threshold(resnet18, images):
    probabilities = [
        r.probability_fake for r in Detector(resnet18, architecture="resnet18", input_size=224).predict(images)
    ]
    threshold = sorted(probabilities)[2]

    detector = Detector(resnet18, architecture="resnet18", input_size=224, threshold=threshold)

    labels = [r.label for r in detector.predict(images)]
    assert labels == ["fake" if p >= threshold else "real" for p in probabilities]


def test_default_fast_path_agrees_with_fp32(resnet18, images):
    fast = Detector(resnet18, architecture="resnet18", input_size=224)  # auto backend and precision
    exact = Detector(resnet18, architecture="resnet18", input_size=224, backend="torch", precision="fp32")

    for a, b in zip(fast.analyze(images), exact.analyze(images), strict=True):
        assert abs(a.probability_fake - b.probability_fake) <= 0.01
        if a.label == b.label:
            assert np.corrcoef(a.heatmap.ravel(), b.heatmap.ravel())[0, 1] >= 0.98
