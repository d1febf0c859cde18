"""Speed of the detector against a naive baseline and the machine's compute floor: `python -m ml.bench`.

For each batch size it prints ms per image of
  (a) the naive baseline: the fp32 eager model with pytorch-grad-cam's GradCAM (hooks, a full backward pass with
      parameter gradients);
  (b) this engine's default path: Detector.analyze with automatic backend and precision, as the product runs it;
  (c) the compute floor: the model's FLOPs divided by the fp32 GEMM rate (a large torch.mm) measured in this run;
then a/b, b/c, and how far (b) is from the fp32 reference (a): max |Δ probability| and the worst heatmap
correlation. Both paths start from the same preprocessed batch, so decoding and resizing are not timed.

The model is random but calibrated on real photographs (the ones bundled with scikit-image): batch-norm statistics
from the photos, output rescaled so logits spread like a trained model's. Without that every probability sits at
0.5 and agreement between paths would prove nothing. `--weights` measures a trained model instead: do that before
turning bf16 on, since how far rounding moves the probabilities depends on the model. Timings are the best of
--repeats runs, with (a), (b) and (c) interleaved so a busy machine slows all three alike; medians are printed too.

`--compare` also times every candidate backend we considered, to choose the default by measurement
(docs/performance.md records the figures).
"""

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ml.architectures import ARCHITECTURES, DeepfakeNet, get_architecture
from ml.detector import BACKENDS, PRECISIONS, Detector
from ml.errors import MLError
from ml.precision import choose_precision
from ml.preprocessing import to_batch
from ml.probe import correlation, crops, photographs
from ml.weights import load_model

GOALS = {"speedup_vs_naive": 6.0, "engine_over_floor": 4.0, "max_abs_dp": 0.01, "heatmap_corr": 0.98}
GEMM_SIZE = 2048
EVALUATION_IMAGES = 16
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def benchmark_model(architecture: str, images: torch.Tensor, *, seed: int = 0) -> DeepfakeNet:
    """A random model whose batch-norm statistics come from `images` and whose logits on them spread by about 3."""
    torch.manual_seed(seed)
    model = get_architecture(architecture).build()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: the statistics are exactly those of the images
    with torch.no_grad():
        model.train()(images)
        model.eval()
        logits = model(images)
        output = model.head[-1]
        scale = 3.0 / (logits.std() + 1e-6)
        output.weight.mul_(scale)
        output.bias.mul_(scale).sub_(logits.median() * scale)
    return model.eval()


def model_flops(model: DeepfakeNet, input_size: int) -> int:
    """FLOPs of one image's forward pass, counted by PyTorch: 2 × the multiply-adds of convolutions and matmuls."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, input_size, input_size))
    return counter.get_total_flops()


def gemm_seconds(size: int = GEMM_SIZE, dtype: torch.dtype = torch.float32) -> Callable[[], float]:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)

    def run() -> float:
        started = time.perf_counter()
        torch.mm(a, b)
        return time.perf_counter() - started

    return run


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started

    return run


def interleaved(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each run once to warm up, then all of them in turn `repeats` times; the seconds of every timed call."""
    for run in runs.values():
        run()
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(run())
    return seconds


class NaiveGradCAM:
    """The baseline: the fp32 eager model as built (parameters require grad) and pytorch-grad-cam's GradCAM."""

    def __init__(self, model: DeepfakeNet, architecture: str, threshold: float = 0.5):
        try:
            from pytorch_grad_cam import GradCAM
        except ImportError:
            raise MLError(
                "The benchmark's baseline is pytorch-grad-cam, a development dependency: "
                "pip install -r requirements-dev.txt (make test installs it)."
            ) from None

        self.model = copy.deepcopy(model).eval().requires_grad_(True)
        self.cam = GradCAM(self.model, [get_architecture(architecture).target_layer(self.model)])
        self.threshold = threshold

    def __call__(self, batch: torch.Tensor, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

        targets = [BinaryClassifierOutputTarget(1 if label == "fake" else 0) for label in labels]
        heatmaps = self.cam(batch, targets=targets)
        probabilities = torch.sigmoid(self.cam.outputs.detach()).numpy()
        return probabilities, heatmaps

    def labels(self, batch: torch.Tensor) -> list[str]:
        with torch.no_grad():
            probabilities = torch.sigmoid(self.model(batch))
        return ["fake" if p >= self.threshold else "real" for p in probabilities.tolist()]


def agreement(detector: Detector, naive: NaiveGradCAM, images: torch.Tensor, batch_size: int) -> dict[str, float]:
    """(b) against the fp32 reference (a) on every evaluation image, processed batch_size at a time."""
    differences, correlations = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        expected_p, expected_maps = naive(batch, naive.labels(batch))
        results = detector.analyze(batch)
        for result, p, heatmap in zip(results, expected_p, expected_maps, strict=True):
            differences.append(abs(result.probability_fake - float(p)))
            correlations.append(correlation(result.heatmap, heatmap))
    return {
        "max_abs_dp": max(differences),
        "heatmap_corr": min(correlations),
        "heatmap_corr_mean": statistics.fmean(correlations),
        "agreement_images": len(differences),
    }


def measure(
    detector: Detector,
    naive: NaiveGradCAM,
    images: torch.Tensor,
    *,
    batch_size: int,
    flops: int,
    repeats: int,
) -> dict[str, float]:
    batch = images[:batch_size]
    labels = naive.labels(batch)
    seconds = interleaved(
        {
            "naive": timed(lambda: naive(batch, labels)),
            "engine": timed(lambda: detector.analyze(batch)),
            "gemm": gemm_seconds(),
            "gemm_bf16": gemm_seconds(dtype=torch.bfloat16),
        },
        repeats,
    )
    per_image = {name: [s * 1000 / batch_size for s in values] for name, values in seconds.items()}
    gemm_rate = 2 * GEMM_SIZE**3 / min(seconds["gemm"])
    bf16_rate = 2 * GEMM_SIZE**3 / min(seconds["gemm_bf16"])
    naive_ms, engine_ms = min(per_image["naive"]), min(per_image["engine"])
    floor_ms = flops / gemm_rate * 1000
    return {
        "naive_ms": naive_ms,
        "engine_ms": engine_ms,
        "floor_ms": floor_ms,
        "bf16_floor_ms": flops / bf16_rate * 1000,
        "engine_over_bf16_floor": engine_ms / (flops / bf16_rate * 1000),
        "speedup_vs_naive": naive_ms / engine_ms,
        "engine_over_floor": engine_ms / floor_ms,
        **agreement(detector, naive, images, batch_size),
        "naive_median_ms": statistics.median(per_image["naive"]),
        "engine_median_ms": statistics.median(per_image["engine"]),
        "gemm_gflops": gemm_rate / 1e9,
        "gemm_bf16_gflops": bf16_rate / 1e9,
        "repeats": repeats,
    }


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        flags = set(
            next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
        )
    except (OSError, StopIteration):
        flags = set()
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import openvino

        info["openvino"] = openvino.get_version()
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = round(os.getloadavg()[0], 2)
    return info


# Candidate backbone runners for --compare. Each maps a preprocessed float32 batch to the target layer's fp32
# activations; the Grad-CAM head stays the engine's fp32 autograd head in every case.


class _Eager:
    """Plain eager PyTorch, NCHW, batch norm not folded."""

    def __init__(self, model: DeepfakeNet, dtype: torch.dtype = torch.float32, channels_last: bool = False):
        self.format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype
        self.model = copy.deepcopy(model).eval().requires_grad_(False).to(dtype=dtype, memory_format=self.format)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            features = self.model.forward_features(batch.to(self.dtype).contiguous(memory_format=self.format))
        return features.float().clone()


class _Compiled:
    """torch.compile (Inductor) of the folded channels-last backbone, with weights frozen as constants."""

    def __init__(self, model: DeepfakeNet, input_size: int):
        import torch._inductor.config as inductor

        from ml.detector import TorchFeatures

        inductor.freezing = True
        self.inner = TorchFeatures(model, device=torch.device("cpu"), precision="fp32")
        self.inner.module = torch.compile(self.inner.module, dynamic=False)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.inner(batch)


def _export_features_onnx(model: DeepfakeNet, path: Path, input_size: int) -> Path:
    from ml.detector import _Features

    program = torch.onnx.export(
        _Features(copy.deepcopy(model)).eval(),
        (torch.zeros(2, 3, input_size, input_size),),
        input_names=["images"],
        output_names=["features"],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=1024)}},
        dynamo=True,
        verbose=False,
    )
    program.save(str(path))
    return path


def _quantize_int8(source: Path, target: Path, calibration: torch.Tensor) -> Path:
    """ONNX Runtime's static post-training quantization: QDQ, per-channel int8 weights, uint8 activations.

    reduce_range keeps weights to 7 bits: on AVX2 without VNNI the u8×s8 instruction saturates otherwise.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_name("prepared.onnx")
    quant_pre_process(str(source), str(prepared))
    batches = [{"images": calibration[i : i + 8].numpy()} for i in range(0, len(calibration), 8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.remaining = iter(batches)

        def get_next(self):
            return next(self.remaining, None)

    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return target


class _OnnxRuntime:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        (features,) = self.session.run(["features"], {"images": batch.numpy()})
        return torch.from_numpy(features)


class _OpenVINOFile:
    """An ONNX file (e.g. a quantized one) compiled by OpenVINO."""

    def __init__(self, path: Path, input_size: int, threads: int, hint: str = "LATENCY"):
        import openvino as ov

        core = ov.Core()
        converted = core.read_model(str(path))
        converted.reshape({0: ov.PartialShape([-1, 3, input_size, input_size])})
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads}
        self.request = core.compile_model(converted, "CPU", config).create_infer_request()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self.request.infer({0: batch.numpy()})[0], dtype=np.float32))


def candidates(model: DeepfakeNet, input_size: int, threads: int, calibration: torch.Tensor, workdir: Path):
    """(name, how to build its runner) for every option considered; builds happen one at a time, when timed."""
    from ml.detector import OpenVINOFeatures, TorchFeatures

    cpu = torch.device("cpu")
    onnx_fp32 = workdir / "features.onnx"
    int8 = workdir / "features-int8.onnx"

    def fp32_onnx() -> Path:
        return onnx_fp32 if onnx_fp32.exists() else _export_features_onnx(model, onnx_fp32, input_size)

    def int8_onnx() -> Path:
        return int8 if int8.exists() else _quantize_int8(fp32_onnx(), int8, calibration)

    def openvino(precision: str, hint: str):
        return lambda: OpenVINOFeatures(
            model, input_size=input_size, precision=precision, num_threads=threads, hint=hint
        )

    return [
        ("torch eager fp32 (NCHW)", lambda: _Eager(model)),
        ("torch fp32, BN folded, channels_last", lambda: TorchFeatures(model, device=cpu, precision="fp32")),
        ("torch bf16, BN folded, channels_last", lambda: TorchFeatures(model, device=cpu, precision="bf16")),
        ("openvino fp32, LATENCY hint", openvino("fp32", "LATENCY")),
        ("openvino fp32, THROUGHPUT hint", openvino("fp32", "THROUGHPUT")),
        ("openvino bf16, LATENCY hint", openvino("bf16", "LATENCY")),
        ("onnxruntime fp32", lambda: _OnnxRuntime(fp32_onnx(), threads)),
        ("torch.compile fp32 (inductor, frozen)", lambda: _Compiled(model, input_size)),
        ("int8 PTQ (onnxruntime QDQ) on onnxruntime", lambda: _OnnxRuntime(int8_onnx(), threads)),
        ("int8 PTQ (onnxruntime QDQ) on openvino", lambda: _OpenVINOFile(int8_onnx(), input_size, threads)),
    ]


def compare_backends(
    model: DeepfakeNet,
    naive: NaiveGradCAM,
    images: torch.Tensor,
    calibration: torch.Tensor,
    *,
    architecture: str,
    repeats: int,
    threads: int,
    batch_sizes: tuple[int, ...],
) -> list[dict[str, object]]:
    import tempfile

    size = images.shape[-1]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, build in candidates(model, size, threads, calibration, Path(workdir)):
            started = time.perf_counter()
            try:
                features = build()
                detector = Detector(
                    copy.deepcopy(model),
                    architecture=architecture,
                    input_size=size,
                    backend="torch",
                    precision="fp32",
                    features=features,
                )
                detector.analyze(images[:1])
            except Exception as exc:  # an option that does not work here is a finding, not a crash
                results.append(
                    {
                        "name": name,
                        "error": f"{exc.__class__.__name__}: {exc}"[:300],
                        "summary": f"{name}: failed ({exc.__class__.__name__})",
                    }
                )
                continue
            entry: dict[str, object] = {"name": name, "build_s": time.perf_counter() - started}
            parts = []
            for batch_size in batch_sizes:
                batch = images[:batch_size]
                seconds = interleaved({"engine": timed(lambda b=batch, d=detector: d.analyze(b))}, repeats)["engine"]
                per_image = [s * 1000 / batch_size for s in seconds]
                figures = {"engine_ms": min(per_image), "engine_median_ms": statistics.median(per_image)}
                figures.update(agreement(detector, naive, images, batch_size))
                entry[f"bs{batch_size}"] = figures
                parts.append(
                    f"bs{batch_size} {figures['engine_ms']:.1f} ms, max|Δp| {figures['max_abs_dp']:.1e}, "
                    f"corr min {figures['heatmap_corr']:.4f}"
                )
            entry["summary"] = f"{name}: " + "; ".join(parts) + f" (built in {entry['build_s']:.0f} s)"
            results.append(entry)
    return results


def run(
    *,
    architecture: str = "resnet50",
    batch_sizes: tuple[int, ...] = (1, 8),
    repeats: int = 5,
    threads: int | None = None,
    compare: bool = False,
    weights: Path | None = None,
    input_size: int | None = None,
    backend: str = "auto",
    precision: str = "auto",
    agreement_images: int = EVALUATION_IMAGES,
) -> dict[str, object]:
    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    arch = get_architecture(architecture)
    size = input_size or arch.default_input_size
    photos = photographs()
    calibration = to_batch(crops(photos, 16, seed=1), size)
    images = to_batch(crops(photos, max(agreement_images, *batch_sizes), seed=2), size)
    if weights:
        model = load_model(weights, architecture=arch.name)
        source = f"trained weights from {weights}"
    else:
        model = benchmark_model(architecture, calibration)
        source = "random, batch-norm statistics and output scale calibrated on photographs"
    flops = model_flops(model, size)
    naive = NaiveGradCAM(model, architecture)
    detector = Detector(
        copy.deepcopy(model),
        architecture=architecture,
        input_size=size,
        num_threads=threads,
        backend=backend,
        precision=precision,
    )

    report: dict[str, object] = {
        "architecture": architecture,
        "input_size": size,
        "model": source,
        "engine": detector.describe(),
        "flops_per_image": flops,
        "flops_counting": "FlopCounterMode: 2 x multiply-adds of convolutions and matmuls (batch norm, ReLU, "
        "pooling not counted)",
        "reference_probability_range": _probability_range(naive, images),
        "machine": machine(),
    }
    for batch_size in batch_sizes:
        report[f"bs{batch_size}"] = measure(
            detector, naive, images, batch_size=batch_size, flops=flops, repeats=repeats
        )
    if compare:
        report["options"] = compare_backends(
            model,
            naive,
            images,
            calibration,
            architecture=architecture,
            repeats=repeats,
            threads=threads,
            batch_sizes=batch_sizes,
        )
    if weights:  # what the product would choose for this model (ml.precision)
        report["precision_check"] = choose_precision(model, architecture=arch.name, input_size=size, backend=backend)
    if hasattr(os, "getloadavg"):
        report["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return report


def _probability_range(naive: NaiveGradCAM, images: torch.Tensor) -> list[float]:
    with torch.no_grad():
        probabilities = torch.sigmoid(naive.model(images))
    return [round(float(probabilities.min()), 4), round(float(probabilities.max()), 4)]


def goals_met(figures: dict[str, float]) -> dict[str, bool]:
    return {
        "speedup_vs_naive": figures["speedup_vs_naive"] >= GOALS["speedup_vs_naive"],
        "engine_over_floor": figures["engine_over_floor"] <= GOALS["engine_over_floor"],
        "max_abs_dp": figures["max_abs_dp"] <= GOALS["max_abs_dp"],
        "heatmap_corr": figures["heatmap_corr"] >= GOALS["heatmap_corr"],
    }


def render(report: dict[str, object]) -> str:
    m = report["machine"]
    lines = [
        f"{report['architecture']} at {report['input_size']}x{report['input_size']}, engine: {report['engine']}",
        f"model: {report['model']}",
        f"machine: {m['cpu']} ({' '.join(m['cpu_flags'])}), {m['cores']} cores, {m['torch_threads']} threads, "
        f"torch {m['torch']}"
        + (f", openvino {m['openvino']}" if "openvino" in m else "")
        + (f", load average {m.get('load_average_at_start')} → {m.get('load_average_at_end')}"),
        f"FLOPs per image: {report['flops_per_image'] / 1e9:.2f} G ({report['flops_counting']})",
        f"reference probabilities on the evaluation images: {report['reference_probability_range']}",
        "",
        "ms/image (best of repeats; median)  a: naive fp32 + pytorch-grad-cam, b: engine, c: FLOPs / GEMM rate",
        f"{'batch':>5} {'a':>16} {'b':>16} {'c':>7} {'GEMM GFLOP/s':>13} {'a/b':>6} {'b/c':>6} "
        f"{'max|Δp|':>9} {'corr min':>9} {'corr mean':>9}",
    ]
    for key, figures in report.items():
        if not (key.startswith("bs") and isinstance(figures, dict)):
            continue
        lines.append(
            f"{key[2:]:>5} {figures['naive_ms']:>7.1f} ({figures['naive_median_ms']:>6.1f}) "
            f"{figures['engine_ms']:>7.1f} ({figures['engine_median_ms']:>6.1f}) {figures['floor_ms']:>7.1f} "
            f"{figures['gemm_gflops']:>13.1f} {figures['speedup_vs_naive']:>6.2f} {figures['engine_over_floor']:>6.2f} "
            f"{figures['max_abs_dp']:>9.2e} {figures['heatmap_corr']:>9.4f} {figures['heatmap_corr_mean']:>9.4f}"
        )
    lines.append("")
    lines.append(
        f"goals: a/b ≥ {GOALS['speedup_vs_naive']}, b/c ≤ {GOALS['engine_over_floor']}, "
        f"max|Δp| ≤ {GOALS['max_abs_dp']}, heatmap corr ≥ {GOALS['heatmap_corr']}"
    )
    for key, figures in report.items():
        if key.startswith("bs") and isinstance(figures, dict):
            missed = [name for name, met in goals_met(figures).items() if not met]
            lines.append(f"  batch {key[2:]}: " + ("all met" if not missed else "NOT met: " + ", ".join(missed)))
    floors = [
        f"batch {key[2:]}: {figures['bf16_floor_ms']:.1f} ms/image ({figures['gemm_bf16_gflops']:.0f} GFLOP/s), "
        f"engine {figures['engine_over_bf16_floor']:.2f}× that"
        for key, figures in report.items()
        if key.startswith("bs") and isinstance(figures, dict)
    ]
    lines += ["", "bf16 floor (FLOPs / bf16 GEMM rate): " + "; ".join(floors)]
    if check := report.get("precision_check"):
        lines.append(
            f"precision for this model: {check['precision']} ({check['reason']}; |Δp| ≤ {check['max_abs_dp']:.4f}, "
            f"heatmap corr ≥ {check['min_heatmap_corr']:.4f}, "
            f"fp32 {check['fp32_ms']:.1f} / bf16 {check['bf16_ms']:.1f} ms per picture)"
        )
    for option in report.get("options", []):
        if option is report["options"][0]:
            lines += ["", "candidate backends (ms/image best of repeats; agreement with the fp32 reference):"]
        lines.append("  " + option["summary"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per path and batch size (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="threads for every path (default: all cores)")
    parser.add_argument("--architecture", default="resnet50", choices=sorted(ARCHITECTURES))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--input-size", type=int, default=None, help="default: the architecture's (224)")
    parser.add_argument("--weights", type=Path, default=None, help="a trained model instead of the calibrated one")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="the engine path's backend")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the engine path's precision")
    parser.add_argument(
        "--agreement-images", type=int, default=EVALUATION_IMAGES, help="images compared with the fp32 reference"
    )
    parser.add_argument("--compare", action="store_true", help="also time every candidate backend (minutes)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.agreement_images, *args.batch_sizes) < 1:
        parser.error("--repeats, --agreement-images and --batch-sizes must be at least 1")

    try:
        report = run(
            architecture=args.architecture,
            batch_sizes=tuple(args.batch_sizes),
            repeats=args.repeats,
            threads=args.threads,
            compare=args.compare,
            weights=args.weights,
            input_size=args.input_size,
            backend=args.backend,
            precision=args.precision,
            agreement_images=args.agreement_images,
        )
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
