"""bf16 or fp32 for one model on this machine, decided by measurement.

bf16 can halve the backbone's time on a CPU with AMX or AVX-512 BF16, but how far its rounding moves the
probabilities depends on the model: a random ResNet-50 moved by up to 0.6, a trained resnet18 by 0.002. So each model
is measured when it is registered: the same backend in fp32 and in bf16 on the same pictures (photographs shipped
with scikit-image, cropped at random, and for a face model the astronaut's face), comparing probabilities,
heatmaps and time. bf16 is chosen when it agrees within the product's tolerance (|Δp| ≤ 0.01 on every picture,
heatmap correlation ≥ 0.98 on every picture) and is clearly faster (at least MIN_SPEEDUP); otherwise fp32.

The speed half of the decision belongs to the machine that measured it: a worker on other hardware may differ.
"""

import time

import torch
from PIL import Image

from ml.architectures import DeepfakeNet
from ml.probe import astronaut_face, correlation, crops, photographs

MAX_ABS_DP = 0.01
MIN_HEATMAP_CORR = 0.98
MIN_SPEEDUP = 1.1
PICTURES = 8


def probe_pictures(count: int = PICTURES, *, seed: int = 0) -> list[Image.Image]:
    photos = photographs()
    return [astronaut_face(), *crops(photos, count - 1, seed=seed)]


def _best_ms_per_picture(detector, batch: torch.Tensor, repeats: int) -> float:
    detector.analyze(batch[:1])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for picture in batch:  # one at a time, as a worker analyses an upload
            detector.analyze(picture[None])
        best = min(best, time.perf_counter() - started)
    return best * 1000 / len(batch)


def decide(*, max_abs_dp: float, min_heatmap_corr: float, speedup: float) -> tuple[str, str]:
    """The precision to run in, and why."""
    if max_abs_dp > MAX_ABS_DP or min_heatmap_corr < MIN_HEATMAP_CORR:
        return "fp32", (
            f"bf16 moved a probability by {max_abs_dp:.4f} or a heatmap to correlation {min_heatmap_corr:.3f} "
            f"(at most {MAX_ABS_DP} and at least {MIN_HEATMAP_CORR} allowed)"
        )
    if speedup < MIN_SPEEDUP:
        return "fp32", f"bf16 agrees with fp32 but is not faster here ({speedup:.2f}×, {MIN_SPEEDUP}× needed)"
    return "bf16", f"bf16 agrees with fp32 and is {speedup:.2f}× as fast here"


def choose_precision(
    model: DeepfakeNet,
    *,
    architecture: str,
    input_size: int,
    backend: str = "auto",
    pictures: list[Image.Image] | None = None,
    repeats: int = 2,
) -> dict:
    """Measure the model in fp32 and bf16 with the same backend; the choice and the figures behind it."""
    from ml.detector import Detector, cpu_has_native_bf16
    from ml.preprocessing import to_batch

    batch = to_batch(pictures or probe_pictures(), input_size)
    detectors = {
        precision: Detector(
            model, architecture=architecture, input_size=input_size, backend=backend, precision=precision
        )
        for precision in ("fp32", "bf16")
    }
    results = {precision: detector.analyze(batch) for precision, detector in detectors.items()}
    pairs = list(zip(results["fp32"], results["bf16"], strict=True))
    max_abs_dp = max(abs(a.probability_fake - b.probability_fake) for a, b in pairs)
    min_corr = min(correlation(a.heatmap, b.heatmap) for a, b in pairs)
    timings = {precision: _best_ms_per_picture(detector, batch, repeats) for precision, detector in detectors.items()}
    speedup = timings["fp32"] / timings["bf16"]
    precision, reason = decide(max_abs_dp=max_abs_dp, min_heatmap_corr=min_corr, speedup=speedup)
    return {
        "precision": precision,
        "reason": reason,
        "max_abs_dp": round(max_abs_dp, 6),
        "min_heatmap_corr": round(min_corr, 6),
        "fp32_ms": round(timings["fp32"], 2),
        "bf16_ms": round(timings["bf16"], 2),
        "speedup": round(speedup, 3),
        "pictures": len(batch),
        "backend": detectors["fp32"].backend,
        "cpu_native_bf16": cpu_has_native_bf16(),
    }
