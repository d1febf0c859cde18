"""Export a detector to ONNX: `python -m ml.export_onnx WEIGHTS --architecture resnet50 --output model.onnx`.

The graph takes `images`, a float32 batch (N, 3, S, S) preprocessed as ml.preprocessing does, and returns `logits`
and `probability_fake`, with a dynamic batch size. The export is checked against PyTorch with ONNX Runtime.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.architectures import ARCHITECTURES, DeepfakeNet, get_architecture
from ml.errors import MLError
from ml.weights import load_model

PARITY_TOLERANCE = 1e-3


class _WithProbability(nn.Module):
    def __init__(self, model: DeepfakeNet):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(images)
        return logits, torch.sigmoid(logits)


def export_onnx(model: DeepfakeNet, output: Path | str, *, input_size: int) -> Path:
    model = model.eval()
    example = torch.randn(2, 3, input_size, input_size)
    program = torch.onnx.export(
        _WithProbability(model).eval(),
        (example,),
        input_names=["images"],
        output_names=["logits", "probability_fake"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=1024)}},
        dynamo=True,
        verbose=False,
    )
    program.save(str(output))
    return Path(output)


def parity(model: DeepfakeNet, onnx_path: Path | str, *, input_size: int, batch_size: int = 4) -> float:
    """Max |Δ probability| between ONNX Runtime and PyTorch (fp32) on a random batch."""
    import onnxruntime as ort

    images = torch.randn(batch_size, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = torch.sigmoid(model.eval()(images)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(["probability_fake"], {"images": images.numpy()})
    return float(np.abs(actual - expected).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.export_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help=".safetensors or .pth weights")
    parser.add_argument("--architecture", required=True, choices=sorted(ARCHITECTURES))
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None, help="default: the weights' name with .onnx")
    args = parser.parse_args(argv)

    arch = get_architecture(args.architecture)
    input_size = args.input_size or arch.default_input_size
    output = args.output or args.weights.with_suffix(".onnx")
    try:
        model = load_model(args.weights, architecture=arch.name)
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    export_onnx(model, output, input_size=input_size)
    difference = parity(model, output, input_size=input_size)
    print(f"wrote {output} (max |Δp| vs PyTorch fp32: {difference:.2e})")
    if difference > PARITY_TOLERANCE:
        print(f"error: the export disagrees with PyTorch by more than {PARITY_TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
