"""What the stability check costs: `python -m ml.bench_stability [--package models/reference] [--runs 15]`.

A plain analysis against one with stability (ml.stability: four re-encodings in the same batch), on two photos of
about 1.5 megapixels: scikit-image's astronaut (one face) and its coffee cup (no face), each saved as a JPEG file.
One run decodes the file and analyses it (ml.analysis.analyze_picture) as a worker does, on the backend and
precision the product uses by default (auto, auto), then draws the result's pictures as detection.engine does for a
kept original. Both are shown: the analysis alone (the stricter ratio, since drawing costs the same either way) and
the whole run, what a user waits for. Plain and stability runs alternate, so a busy machine slows both alike; the
figures are medians, printed as a Markdown table with the machine's load. Goal: ≤ 1.5× plain.
"""

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from ml import rendering
from ml.analysis import PictureAnalysis, analyze_picture
from ml.detector import Detector
from ml.faces import FaceFinder
from ml.package import WEIGHTS_FILE, read_card
from ml.preprocessing import decode_image

GOAL = 1.5


def photos() -> dict[str, bytes]:
    """The two test photos as JPEG files (quality 92), upscaled to about 1.5 megapixels."""
    import skimage.data

    pictures = {
        "astronaut, one face, 1240 × 1240": Image.fromarray(skimage.data.astronaut()).resize((1240, 1240)),
        "coffee, no face, 1500 × 1000": Image.fromarray(skimage.data.coffee()).resize((1500, 1000)),
    }
    files = {}
    for name, picture in pictures.items():
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=92)
        files[name] = buffer.getvalue()
    return files


def draw(image: Image.Image, result: PictureAnalysis) -> None:
    """The result's pictures as detection.engine draws them for a kept original (1024 px overlay, 256 px thumbnail,
    the heatmap, each face's overlay), encoded and thrown away."""
    shown = rendering.thumbnail(image, max_side=1024)
    overlay = rendering.overlay(shown, result.heatmap, max_side=max(shown.size))
    rendering.encode(rendering.thumbnail(shown, max_side=256), "webp")
    rendering.encode(rendering.colorize(result.heatmap, overlay.size), "png")
    rendering.encode(overlay, "webp")
    for face in result.faces:
        picture = rendering.overlay(face.crop, face.prediction.heatmap, max_side=min(320, face.crop.width))
        rendering.encode(picture, "webp")


def measure(detector: Detector, finder: FaceFinder | None, framing: float | None, data: bytes, runs: int) -> dict:
    """Medians of the analysis alone and of the whole run, plain and with stability, and the last stability."""

    def run(stability: bool) -> tuple[float, float, PictureAnalysis]:
        started = time.perf_counter()
        image = decode_image(data).image
        result = analyze_picture(detector, image, finder=finder, framing=framing, stability=stability)
        analysed = time.perf_counter()
        draw(image, result)
        return (analysed - started) * 1000, (time.perf_counter() - started) * 1000, result

    run(False), run(True)  # warm-up: the backend meets each batch size once
    timings = {False: [], True: []}
    for _ in range(runs):
        for stability in (False, True):
            analysis_ms, whole_ms, result = run(stability)
            timings[stability].append((analysis_ms, whole_ms))
    plain, checked = ([statistics.median(column) for column in zip(*timings[key], strict=True)] for key in timings)
    return {"scope": result.scope, "plain_ms": plain, "stability_ms": checked, "stability": result.stability}


def table(rows: dict[str, dict], *, runs: int, detector: Detector, threads: int | None) -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"Stability check cost, {detector.describe()}, {threads or 'all'} inference thread(s), median of {runs} runs, "
        f"{os.cpu_count()} cores, load average {load} (1, 5, 15 min); goal ≤ {GOAL}× plain.",
        "",
        "| Photo | Scope | Analysis: plain (ms) | with stability | ratio | With drawing: plain (ms) | with stability "
        "| ratio | Spread | Stable |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in rows.items():
        cells = [
            f"{plain:.0f} | {checked:.0f} | {checked / plain:.2f}×"
            for plain, checked in zip(row["plain_ms"], row["stability_ms"], strict=True)
        ]
        stable = "yes" if row["stability"]["stable"] else "no"
        lines.append(f"| {name} | {row['scope']} | {' | '.join(cells)} | {row['stability']['spread']:.3f} | {stable} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.bench_stability", description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=Path("models/reference"), help="a model package")
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each kind (at least 1)")
    parser.add_argument("--backend", default="auto", choices=("auto", "openvino", "torch"))
    parser.add_argument(
        "--threads", type=int, default=None, help="inference threads (default: every core, as one worker process)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    card = read_card(args.package)
    detector = Detector.from_weights(
        args.package / WEIGHTS_FILE,
        architecture=card["architecture"],
        input_size=card["input_size"],
        threshold=card["threshold"],
        expected_sha256=card.get("sha256"),
        backend=args.backend,
        num_threads=args.threads,
    )
    faces = card.get("faces")
    finder, framing = (FaceFinder(), faces["framing"]) if faces else (None, None)
    rows = {name: measure(detector, finder, framing, data, args.runs) for name, data in photos().items()}
    print(table(rows, runs=args.runs, detector=detector, threads=args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
