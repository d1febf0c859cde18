"""Inference: the probability that an image is fake, its label, and a Grad-CAM heatmap, from one forward pass.

How one pass is enough: the model splits at its Grad-CAM target layer (see ml.architectures). The backbone half
runs once without autograd, on the fastest backend measured for this machine (see docs/performance.md); its
activations A become a leaf tensor that requires grad, and the small head runs on A in fp32 with autograd on.
Backpropagating the class score then reaches A and nothing else: no parameter gradients, no second forward.
Grad-CAM is then ReLU(Σ_k mean(∂score/∂A_k) · A_k), normalised and upsampled as pytorch-grad-cam does.
"""

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import ml
from ml.architectures import DeepfakeNet, get_architecture
from ml.calibration import apply as apply_calibration
from ml.preprocessing import to_batch
from ml.weights import load_model

logger = logging.getLogger(__name__)

FAKE, REAL = "fake", "real"
BACKENDS = ml.BACKENDS
PRECISIONS = ml.INFERENCE_PRECISIONS


@dataclass(frozen=True)
class Prediction:
    probability_fake: float
    label: str  # "fake" when probability_fake >= the model's threshold, else "real"
    heatmap: np.ndarray | None  # float32 (input_size, input_size) in [0, 1]; None from predict()
    inference_ms: float  # this image's share of the batch's forward pass
    heatmap_ms: float  # this image's share of the gradient and Grad-CAM computation
    probability_raw: float | None = None  # the model's own, before its calibration (ml.calibration); None: the same

    def __post_init__(self):
        if self.probability_raw is None:
            object.__setattr__(self, "probability_raw", self.probability_fake)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 dot products in hardware (AVX-512 BF16 or AMX), where bf16 pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The "auto" precision is fp32 here: bf16 is chosen per model, by measuring it (ml.precision, run when the product
    checks a model, and by `python -m ml.bench --weights W`), since how far bf16 moves the probabilities depends on
    the model (a random ResNet-50: up to 0.6; a trained resnet18: 0.002).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return "fp32" if precision == "auto" else precision


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return backend
    return "openvino" if device.type == "cpu" and openvino_available() else "torch"


class _Features(nn.Module):
    """The backbone half of a DeepfakeNet as a module of its own, for tracing and conversion."""

    def __init__(self, model: DeepfakeNet):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(images)


class TorchFeatures:
    """The backbone in PyTorch eager mode: batch norm folded into the convolutions, channels-last, bf16 or fp32."""

    def __init__(self, model: DeepfakeNet, *, device: torch.device, precision: str):
        from torch.fx.experimental.optimization import fuse

        self.device = device
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        folded = fuse(_Features(copy.deepcopy(model)).eval())
        self.module = folded.to(device=device, dtype=self.dtype, memory_format=torch.channels_last).requires_grad_(
            False
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            images = batch.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
            features = self.module(images).float()
        return features.clone()  # a normal tensor, so autograd may use it outside inference mode


class OpenVINOFeatures:
    """The backbone compiled by OpenVINO for this CPU, with a dynamic batch size.

    The model goes to OpenVINO through torch.export (not the deprecated TorchScript tracer). `hint` is OpenVINO's
    PERFORMANCE_HINT: LATENCY runs one request on all the threads, which is what one analysis at a time wants.
    """

    def __init__(
        self,
        model: DeepfakeNet,
        *,
        input_size: int,
        precision: str,
        num_threads: int | None,
        hint: str = "LATENCY",
    ):
        import openvino as ov

        example = torch.zeros(2, 3, input_size, input_size)
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(
            _Features(copy.deepcopy(model)).eval(), (example,), dynamic_shapes={"images": {0: batch}}
        )
        converted = ov.convert_model(program)
        converted.reshape({0: ov.PartialShape([-1, 3, input_size, input_size])})
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": hint}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = num_threads
        self.compiled = ov.Core().compile_model(converted, "CPU", config)
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request, reused: calls take turns

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.numpy(), dtype=np.float32)
        with self._lock:
            output = self._request.infer({0: array})[0]
        return torch.from_numpy(np.array(output, dtype=np.float32))


def _min_max(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of a (batch, h, w) tensor to [0, 1], exactly as pytorch-grad-cam's scale_cam_image does."""
    flat = maps.flatten(1)
    shifted = flat - flat.min(dim=1, keepdim=True).values
    return (shifted / (1e-7 + shifted.max(dim=1, keepdim=True).values)).view_as(maps)


class Detector:
    """A loaded model: `analyze` gives probabilities, labels and heatmaps; `predict` skips the heatmaps.

    Safe to call from several threads: the fp32 head is stateless, and backends that keep state hold a lock.
    """

    def __init__(
        self,
        model: DeepfakeNet,
        *,
        architecture: str,
        input_size: int,
        threshold: float = 0.5,
        device: str = "auto",
        backend: str = "auto",
        precision: str = "auto",
        num_threads: int | None = None,
        features: Callable[[torch.Tensor], torch.Tensor] | None = None,
        calibration: dict | None = None,
    ):
        """`features` replaces the backbone runner chosen by backend and precision (benchmarks try others with it):
        it maps a preprocessed float32 batch to the target layer's fp32 activations. `calibration` (ml.calibration)
        maps every probability the model gives, and the threshold is on that calibrated scale."""
        self.architecture = architecture
        self.input_size = input_size
        self.threshold = threshold
        self.calibration = calibration or {}
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.backend = resolve_backend(backend, self.device)
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = model.eval().requires_grad_(False).to(self.device)
        if features is not None:
            self.features = features
        elif self.backend == "openvino":
            self.features = OpenVINOFeatures(
                self.model, input_size=input_size, precision=self.precision, num_threads=num_threads
            )
        else:
            self.features = TorchFeatures(self.model, device=self.device, precision=self.precision)

    @classmethod
    def from_weights(
        cls,
        path: Path | str,
        *,
        architecture: str,
        input_size: int | None = None,
        threshold: float = 0.5,
        expected_sha256: str | None = None,
        **options,
    ) -> "Detector":
        arch = get_architecture(architecture)
        model = load_model(path, architecture=arch.name, expected_sha256=expected_sha256)
        return cls(
            model,
            architecture=arch.name,
            input_size=input_size or arch.default_input_size,
            threshold=threshold,
            **options,
        )

    def describe(self) -> str:
        return f"{self.architecture} on {self.device.type} ({self.backend}, {self.precision})"

    def batch(self, images: list[Image.Image] | torch.Tensor) -> torch.Tensor:
        return images if isinstance(images, torch.Tensor) else to_batch(images, self.input_size)

    def label_of(self, probability: float) -> str:
        return FAKE if probability >= self.threshold else REAL

    def predict(self, images: list[Image.Image] | torch.Tensor) -> list[Prediction]:
        batch = self.batch(images)
        started = time.perf_counter()
        features = self.features(batch)
        with torch.inference_mode():
            raw = torch.sigmoid(self.model.forward_head(features.to(self.device))).float().cpu().numpy()
        share = (time.perf_counter() - started) * 1000 / len(batch)
        return [
            Prediction(p, self.label_of(p), None, share, 0.0, probability_raw=r)
            for p, r in zip(self.calibrated(raw), raw.tolist(), strict=True)
        ]

    def calibrated(self, raw: np.ndarray) -> list[float]:
        return np.atleast_1d(apply_calibration(self.calibration, raw)).tolist()

    def analyze(self, images: list[Image.Image] | torch.Tensor) -> list[Prediction]:
        batch = self.batch(images)
        started = time.perf_counter()
        activations = self.features(batch).to(self.device).requires_grad_(True)
        with torch.enable_grad():
            logits = self.model.forward_head(activations)
            forward_done = time.perf_counter()
            raw = torch.sigmoid(logits.detach()).float().cpu().numpy()
            probabilities = self.calibrated(raw)
            # The score of the predicted class: the logit for "fake", its negative for "real".
            sign = torch.tensor([1.0 if p >= self.threshold else -1.0 for p in probabilities], device=logits.device)
            (gradients,) = torch.autograd.grad((logits * sign).sum(), activations)
        heatmaps = self._grad_cam(activations.detach(), gradients)
        finished = time.perf_counter()
        n = len(batch)
        inference_ms, heatmap_ms = (forward_done - started) * 1000 / n, (finished - forward_done) * 1000 / n
        return [
            Prediction(p, self.label_of(p), heatmap, inference_ms, heatmap_ms, probability_raw=r)
            for p, r, heatmap in zip(probabilities, raw.tolist(), heatmaps.cpu().numpy(), strict=True)
        ]

    def _grad_cam(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        weights = gradients.mean(dim=(2, 3), keepdim=True)
        cams = _min_max(torch.relu((weights * activations).sum(dim=1)))
        size = (self.input_size, self.input_size)
        upsampled = F.interpolate(cams.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
        return _min_max(torch.relu(upsampled))
