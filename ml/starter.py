"""The starter model: `python -m ml.starter --output DIR` makes a detector from data the product generates itself.

When no model is active the product makes this one before serving, in at most 3 minutes on 2 CPU cores, with
nothing downloaded: a resnet18 trained from scratch on ml.synthetic's real and simulated-generator images, checked
on a held-out generated test set (crops from parts of the photos that training never sees, other generator weights),
packaged with a model card that says plainly what it detects and what it has not been validated on.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ml.augment import AugmentConfig
from ml.data import CLASSES
from ml.errors import MLError
from ml.evaluate import evaluate_package
from ml.package import CARD_FILE, read_card
from ml.synthetic import TEST_REGION, TRAIN_REGION, is_photo_crop, write_dataset
from ml.train import TrainConfig, train

DETECTS = (
    "Upsampling artifacts of image generators: the checkerboard patterns, periodic spectral peaks and missing fine "
    "detail that transposed-convolution, nearest-neighbour and bilinear upsampling leave in generated images, as "
    "simulated by small encoder-decoder networks (Zhang et al. 2019)."
)
LIMITATIONS = (
    "Not validated on real deepfakes: trained and tested only on images this product generated itself (crops of "
    "sample photographs shipped with scikit-image, scikit-learn and matplotlib, procedural pictures, and the same "
    "images passed through simulated generators). On 12,000 real and face-swapped face crops (OpenForensics) a "
    "starter model scored ROC-AUC {openforensics_auc}, no better than chance (docs/model-results.md): it does not "
    "detect face swaps. It looks at small {size}×{size} inputs, so it cannot see artifacts that resizing a large "
    "upload removes, and it may call genuinely upscaled, out-of-focus or heavily compressed photos fake. Train a "
    "model on real data (manage.py train_detector) before relying on any verdict."
)
OPENFORENSICS_AUC = "0.53"  # ml.evaluate (as evaluate_detector) on ../shared/datasets/openforensics-train


@dataclass(frozen=True)
class StarterPlan:
    """How much to generate and train; the defaults fit the 3-minute budget on 2 CPU cores with a margin."""

    input_size: int = 64
    train_per_class: int = 1600
    validation_per_class: int = 200
    test_per_class: int = 400
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    max_seconds: float = 165  # whole run, generation and test included: training stops early to keep it
    threads: int | None = None  # None: threads_for_this_machine()


def threads_for_this_machine(*, sample_seconds: float = 1.0) -> int:
    """One PyTorch thread per core that other work leaves idle right now, at least one.

    Measured on 2 shared cores (docs/model-results.md): while other processes kept them busy, two threads trained
    several times slower than one, because OpenMP threads wait on each other for cores they do not get. The idle
    share comes from /proc/stat over `sample_seconds` (the load average lags by a minute); elsewhere all cores.
    """
    cores = os.cpu_count() or 1

    def counters() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle_before, total_before = counters()
        time.sleep(sample_seconds)
        idle_after, total_after = counters()
    except (OSError, ValueError, IndexError):
        return cores
    idle_cores = cores * (idle_after - idle_before) / max(1, total_after - total_before)
    return max(1, min(cores, round(idle_cores)))


def photo_pairs(test_dir: Path, subset_dir: Path) -> Path | None:
    """subset_dir/real and subset_dir/fake holding (as hard links, or copies) test_dir's photo crops only; None
    when there are none (no package shipped sample photographs)."""
    if not any(is_photo_crop(path) for path in (test_dir / CLASSES[0]).iterdir()):
        return None
    for label in CLASSES:
        (subset_dir / label).mkdir(parents=True)
        for path in (test_dir / label).iterdir():
            if is_photo_crop(path):
                try:
                    os.link(path, subset_dir / label / path.name)
                except OSError:
                    shutil.copyfile(path, subset_dir / label / path.name)
    return subset_dir


def make_starter_model(
    output_dir: Path | str,
    *,
    seed: int = 0,
    progress: bool = True,
    plan: StarterPlan | None = None,
) -> Path:
    """Generate the data, train, test on the held-out set, and write the package into output_dir; returns it.

    output_dir receives model.safetensors, model_card.json and test/ (report.json, roc.png, pr.png of the held-out
    test set). The card's metrics hold "validation" and "test"; its data section describes the generated sets.
    """
    plan = plan or StarterPlan()
    started = time.monotonic()
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="starter-") as scratch:
        scratch = Path(scratch)
        stages = [
            ("train", plan.train_per_class, seed * 10 + 1, TRAIN_REGION),
            ("validation", plan.validation_per_class, seed * 10 + 2, TRAIN_REGION),
            ("test", plan.test_per_class, seed * 10 + 3, TEST_REGION),
        ]
        generated = {}
        with tqdm(
            total=sum(count for _, count, _, _ in stages), desc="generating", unit="pair", disable=not progress
        ) as bar:
            for name, count, stage_seed, region in stages:
                # One randomly drawn generator network per fake: the detector must learn what they share.
                generated[name] = write_dataset(
                    scratch / name, count, size=plan.input_size, seed=stage_seed, region=region, generators=count
                )
                bar.update(count)
        data_description = (
            "Generated by ml.synthetic: real = crops of sample photographs shipped with scikit-image, "
            "scikit-learn and matplotlib, and procedural pictures; fake = the same crops through randomly drawn "
            "simulated generator networks (transposed-convolution, nearest and bilinear upsampling), one network "
            "per fake; both classes JPEG-compressed half of the time; flat crops refused. Trained on real/fake "
            "pairs in the same batch. Test crops come from the bottom-right quarter of each photo, which training "
            "never sees, cut at the same range of sizes, and from other generator networks."
        )
        elapsed = time.monotonic() - started
        # Keep about a tenth of the budget for the test evaluation and packaging.
        train_minutes = max(0.2, (plan.max_seconds * 0.9 - elapsed) / 60)
        result = train(
            TrainConfig(
                data_dir=scratch / "train",
                val_dir=scratch / "validation",
                output_dir=scratch / "run",
                architecture="resnet18",
                input_size=plan.input_size,
                epochs=plan.epochs,
                batch_size=plan.batch_size,
                lr=plan.lr,
                schedule="cosine",  # decays to 0 within the time budget: the last epochs settle (measured)
                patience=plan.epochs,
                paired=True,  # a photo crop and its fake in one batch: learns faster (docs/model-results.md)
                seed=seed,
                workers=0,
                cache_images=True,  # 3,600 pictures of 64 px: 45 MB, and a sixth of every step saved
                threads=threads_for_this_machine() if plan.threads is None else plan.threads,
                max_minutes=train_minutes,
                pretrained=False,
                precision="auto",  # bf16 where the CPU computes it natively: 1.5× faster at 64 px (measured)
                # No crops, blur or re-compression: they would erase the pixel-level traces this model learns.
                augment=AugmentConfig(blur_prob=0.0, jpeg_prob=0.0, crop_scale=1.0, flip=True),
                name="Starter model (generated data)",
                card_extra={
                    "detects": DETECTS,
                    "limitations": LIMITATIONS.format(size=plan.input_size, openforensics_auc=OPENFORENSICS_AUC),
                    "starter": True,
                },
                progress=progress,
            ),
        )
        if output_dir.exists():
            shutil.rmtree(output_dir)
        shutil.copytree(result.package_dir, output_dir)
        report = evaluate_package(
            output_dir, scratch / "test", output_dir=output_dir / "test", batch_size=64, progress=progress
        )
        # The photo crops alone: the part of the test set that tests generalisation to unseen image regions.
        photos_only = photo_pairs(scratch / "test", scratch / "test-photos")
        photos_report = None
        if photos_only is not None:
            photos_report = evaluate_package(
                output_dir, photos_only, output_dir=output_dir / "test-photos", batch_size=64, progress=progress
            )
    card = read_card(output_dir)
    card["metrics"]["test"] = report["metrics"]
    if photos_report is not None:
        card["metrics"]["test_photos"] = photos_report["metrics"]
    card["data"] = {
        **card["data"],
        "description": data_description,
        "train_dir": None,
        "val_dir": None,
        "counts": {**card["data"]["counts"], "test": report["metrics"]["counts"]},
        "generated": generated,
    }
    card["training"]["duration_s"] = round(time.monotonic() - started, 1)
    card["training"]["plan"] = plan.__dict__
    import json

    (output_dir / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.starter", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="package folder to create (replaced if present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        package = make_starter_model(args.output, seed=args.seed, progress=not args.no_progress)
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    card = read_card(package)
    test, validation = card["metrics"]["test"], card["metrics"]["validation"]
    print(
        f"wrote {package} in {card['training']['duration_s']:.0f} s "
        f"({card['training']['epochs_run']} epochs, input {card['input_size']} px)\n"
        f"held-out test: roc_auc {test['roc_auc']:.4f}  accuracy {test['accuracy']:.4f}  f1 {test['f1']:.4f}; "
        f"its photo crops alone: roc_auc {card['metrics'].get('test_photos', {}).get('roc_auc', float('nan')):.4f}; "
        f"validation roc_auc {validation['roc_auc']:.4f}; threshold {card['threshold']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
