"""Face-path consistency: `python -m ml.bench_faces DATA_DIR [--package models/reference] [--count 100]`.

A face crop and the same crop pasted into a larger photo must get the same verdict: the face path (ml.analysis)
finds the face in both and frames it alike. For `count` real and `count` fake crops of DATA_DIR's held-out split
(the split the model card records), the crop alone is analysed, then the crop pasted at several sizes and random
positions into faceless photos that ship with scikit-image, scaled to PHOTO_SIDE pixels; a pasted crop agrees when
its picture gets the crop's label. Prints (or, with --json, writes) the agreement, how often the face was found,
the ROC-AUC of the crops alone and pasted, and the time per photo. Goal: agreement ≥ 95 %.

Agreement is counted twice: on the label (fake at or above the model's threshold), and on the verdict the product
shows, where a probability within --uncertain-margin of the threshold reads "uncertain" (the product's
UNCERTAIN_MARGIN, 0.1 by default).
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from ml.analysis import FACES, analyze_picture
from ml.data import scan_folder, stratified_split
from ml.detector import Detector
from ml.faces import FaceFinder
from ml.package import WEIGHTS_FILE, read_card
from ml.preprocessing import decode_image

PHOTO_SIDE = 1200
PASTE_SIDES = (128, 256, 384)
BACKGROUNDS = ("coffee", "chelsea", "rocket", "motorcycle_left")  # skimage.data photos without a face


def backgrounds() -> list[Image.Image]:
    import skimage.data

    photos = []
    for name in BACKGROUNDS:
        array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
        photo = Image.fromarray(np.asarray(array, dtype=np.uint8)).convert("RGB")
        scale = PHOTO_SIDE / max(photo.size)
        photos.append(photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS))
    return photos


def pasted(crop: Image.Image, background: Image.Image, side: int, rng: random.Random) -> Image.Image:
    photo = background.copy()
    left, top = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
    photo.paste(crop.resize((side, side), Image.Resampling.LANCZOS), (left, top))
    return photo


def held_out(data_dir: Path, card: dict, count: int, seed: int):
    split = card.get("data", {})
    samples = scan_folder(data_dir).samples
    if "val_fraction" in split:
        _, samples = stratified_split(samples, val_fraction=split["val_fraction"], seed=split["split_seed"])
    rng = random.Random(seed)
    chosen = []
    for label in (0, 1):
        members = [s for s in samples if s.label == label]
        chosen += rng.sample(members, min(count, len(members)))
    return chosen


def verdict(probability: float, threshold: float, margin: float) -> str:
    if abs(probability - threshold) < margin:
        return "uncertain"
    return "fake" if probability >= threshold else "real"


def run(data_dir: Path, package: Path, *, count: int, seed: int, margin: float = 0.1) -> dict:
    card = read_card(package)
    detector = Detector.from_weights(
        package / WEIGHTS_FILE,
        architecture=card["architecture"],
        input_size=card["input_size"],
        threshold=card["threshold"],
        expected_sha256=card["sha256"],
    )
    finder, framing = FaceFinder(), card["faces"]["framing"]
    rng, photos = random.Random(seed), backgrounds()
    labels, alone_scores, seconds = [], [], []
    agree, same_verdict, found, pasted_scores = ({side: [] for side in PASTE_SIDES} for _ in range(4))
    for sample in held_out(data_dir, card, count, seed):
        crop = decode_image(sample.path).image
        alone = analyze_picture(detector, crop, finder=finder, framing=framing)
        labels.append(sample.label)
        alone_scores.append(alone.probability_fake)
        for side in PASTE_SIDES:
            photo = pasted(crop, rng.choice(photos), side, rng)
            started = time.perf_counter()
            result = analyze_picture(detector, photo, finder=finder, framing=framing)
            seconds.append(time.perf_counter() - started)
            agree[side].append(result.label == alone.label)
            same_verdict[side].append(
                verdict(result.probability_fake, detector.threshold, margin)
                == verdict(alone.probability_fake, detector.threshold, margin)
            )
            found[side].append(result.scope == FACES)
            pasted_scores[side].append(result.probability_fake)
    return {
        "package": str(package),
        "crops": {"real": labels.count(0), "fake": labels.count(1)},
        "photo_side": PHOTO_SIDE,
        "agreement": float(np.mean([a for side in PASTE_SIDES for a in agree[side]])),
        "agreement_by_side": {side: float(np.mean(agree[side])) for side in PASTE_SIDES},
        "uncertain_margin": margin,
        "verdict_agreement": float(np.mean([a for side in PASTE_SIDES for a in same_verdict[side]])),
        "verdict_agreement_by_side": {side: float(np.mean(same_verdict[side])) for side in PASTE_SIDES},
        "face_found_by_side": {side: float(np.mean(found[side])) for side in PASTE_SIDES},
        "roc_auc_alone": float(roc_auc_score(labels, alone_scores)),
        "roc_auc_pasted_by_side": {side: float(roc_auc_score(labels, pasted_scores[side])) for side in PASTE_SIDES},
        "median_ms_per_photo": float(np.median(seconds) * 1000),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.bench_faces", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder with real/ and fake/ face crops")
    parser.add_argument("--package", type=Path, default=Path("models/reference"), help="a face model's package")
    parser.add_argument("--count", type=int, default=100, help="crops per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uncertain-margin", type=float, default=0.1, help="the product's UNCERTAIN_MARGIN")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not read_card(args.package).get("faces"):
        parser.error(f"{args.package} is not a face model (its card has no 'faces')")
    report = run(args.data_dir, args.package, count=args.count, seed=args.seed, margin=args.uncertain_margin)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{report['crops']['real']} real + {report['crops']['fake']} fake crops, pasted at {PASTE_SIDES} px into "
        f"{PHOTO_SIDE} px photos: same label as the crop alone for {report['agreement']:.1%} (goal ≥ 95 %), same "
        f"verdict (uncertain within {args.uncertain_margin} of the threshold) for {report['verdict_agreement']:.1%}"
    )
    for side in PASTE_SIDES:
        print(
            f"  {side:>4} px: label {report['agreement_by_side'][side]:.1%}, verdict "
            f"{report['verdict_agreement_by_side'][side]:.1%}, face found "
            f"{report['face_found_by_side'][side]:.1%}, ROC-AUC {report['roc_auc_pasted_by_side'][side]:.4f}"
        )
    print(
        f"ROC-AUC of the crops alone {report['roc_auc_alone']:.4f}; median {report['median_ms_per_photo']:.0f} ms/photo"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
