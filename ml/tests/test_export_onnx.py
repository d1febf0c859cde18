"""The ONNX export command: a file ONNX Runtime runs, with the probabilities of PyTorch in fp32."""

import contextlib
import io
import re

import numpy as np
import pytest
import torch

from conftest import picture
from ml.export_onnx import PARITY_TOLERANCE, main
from ml.preprocessing import to_batch

SIZE = 96  # the export takes any input size; a small one keeps the test quick


@pytest.fixture(scope="module")
def exported(resnet18, tmp_path_factory):
    from ml.weights import save_weights

    folder = tmp_path_factory.mktemp("onnx")
    weights = folder / "detector.safetensors"
    save_weights(resnet18, weights)
    output = folder / "detector.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([str(weights), "--architecture", "resnet18", "--input-size", str(SIZE), "--output", str(output)])
    return code, output, printed.getvalue()


def test_the_export_matches_pytorch_on_pictures_at_any_batch_size(resnet18, exported):
    import onnxruntime as ort

    code, output, _ = exported
    images = to_batch([picture(220 + 30 * i, 180, seed=20 + i) for i in range(5)], SIZE)
    with torch.no_grad():
        expected = torch.sigmoid(resnet18.eval()(images)).numpy()

    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    single = [session.run(["probability_fake"], {"images": images[i : i + 1].numpy()})[0] for i in range(5)]
    logits, together = session.run(["logits", "probability_fake"], {"images": images.numpy()})

    assert code == 0
    assert together.shape == logits.shape == (5,)
    assert np.abs(together - expected).max() <= PARITY_TOLERANCE
    assert np.abs(np.concatenate(single) - expected).max() <= PARITY_TOLERANCE
    assert np.allclose(together, 1 / (1 + np.exp(-logits)), atol=1e-6)
    assert expected.max() - expected.min() > 0.2, "probabilities should differ, or the comparison proves little"


def test_the_command_reports_its_own_parity_check(exported):
    code, output, printed = exported

    reported = re.fullmatch(rf"wrote {re.escape(str(output))} \(max \|Δp\| vs PyTorch fp32: (\S+)\)\n", printed)
    assert code == 0 and reported, printed
    assert float(reported[1]) <= PARITY_TOLERANCE


def test_weights_that_cannot_be_read_fail_with_the_reason(tmp_path, capsys):
    code = main([str(tmp_path / "missing.safetensors"), "--architecture", "resnet18"])

    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: No weights file at {tmp_path / 'missing.safetensors'}."
    assert not (tmp_path / "missing.onnx").exists()
