import pytest
import torch

from conftest import picture
from ml.architectures import get_architecture
from ml.preprocessing import to_batch
from ml.weights import save_weights


def calibrated_model(name: str = "resnet18", *, seed: int = 0):
    """A randomly initialised model that behaves like a trained one on the test pictures.

    Untrained batch-norm statistics (mean 0, variance 1) make every probability sit near 0.5, which would let
    comparisons between code paths pass for the wrong reason. So the statistics come from pictures, and the output
    layer is rescaled so that logits on pictures are centred on 0 with a spread of about 3: some images come out
    clearly fake, others clearly real.
    """
    torch.manual_seed(seed)
    model = get_architecture(name).build()
    calibration = to_batch([picture(260 + 13 * i, 200 + 7 * i, seed=100 + i) for i in range(16)], 224)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(calibration)
        model.eval()
        logits = model(calibration)
        output = model.head[-1]
        scale = 3.0 / (logits.std() + 1e-6)
        output.weight.mul_(scale)
        output.bias.mul_(scale).sub_(logits.median() * scale)
    return model


@pytest.fixture(scope="session")
def resnet18():
    return calibrated_model("resnet18")


@pytest.fixture
def resnet18_weights(resnet18, tmp_path):
    path = tmp_path / "resnet18.safetensors"
    sha256 = save_weights(resnet18, path)
    return path, sha256
