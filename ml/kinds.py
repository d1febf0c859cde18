"""Make evaluation folders of manipulation kinds no bundled model was trained on, from a data set's held-out real faces.

The other kinds of issue 21 (hand-made splices, classic landmark-based face swaps, diffusion-generated faces) are
kept outside the project, so this makes two stand-ins from the real faces that every model here held out (the
seeded 80/20 split of ml.data.stratified_split, seed 0, the split train_detector and ml.reference use):

  face-swap/     real/: the held-out real faces; fake/: each of them with another held-out person's face put in
                 its place, the classic way: of 24 people picked at random, the one whose landmarks fit best,
                 aligned to the target's five RetinaFace landmarks by a similarity transform (never enlarged over
                 1.5×), its colours matched to the target's inside the mask (mean and spread per
                 Lab channel), then pasted inside a face-shaped mask (ml.blend.face_mask) by Poisson blending
                 (cv2.seamlessClone), or for every other picture by a feathered alpha blend.
  self-blended/  real/: the same real faces; fake/: each self-blended (ml.blend.self_blend, seeded), the
                 pseudo-fakes self-blended training learns from: in kind for those models, unseen for the others.

Fakes are written as JPEG with their target's own quantisation tables, so compression tells the classes apart no
more than it does in the real data. real/ holds symbolic links: no image is copied. Everything is seeded.

The output goes outside the repository (the real faces' terms travel with them):
  python -m ml.kinds ../shared/datasets/openforensics-train /work/scratch/kinds
  python -m ml.evaluate --package models/reference --subset validation --output /work/scratch/evaluation \
      --data ../shared/datasets/openforensics-train /work/scratch/kinds/face-swap /work/scratch/kinds/self-blended
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

from ml.blend import face_mask, self_blend
from ml.data import REAL, scan_folder, stratified_split
from ml.errors import MLError
from ml.faces import Face, largest_face

KINDS = ("face-swap", "self-blended")


def held_out_reals(data_dir: Path, *, seed: int, val_fraction: float) -> list[Path]:
    folder = scan_folder(data_dir, need_fakes=False)
    _train, validation = stratified_split(folder.samples, val_fraction=val_fraction, seed=seed)
    return [sample.path for sample in validation if sample.label == REAL]


def save_like(image: Image.Image, original: Image.Image, path: Path) -> None:
    """JPEG with the original's quantisation tables when it was a JPEG (same compression), else quality 90."""
    if getattr(original, "quantization", None):
        sampling = JpegImagePlugin.get_sampling(original)
        image.save(path, "JPEG", qtables=original.quantization, subsampling=max(sampling, 0))
    else:
        image.save(path, "JPEG", quality=90)


def match_colours(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The source's Lab channels shifted and scaled to the target's mean and spread inside the mask."""
    inside = mask > 0.5
    if inside.sum() < 16:
        return source
    src, dst = (cv2.cvtColor(x, cv2.COLOR_RGB2LAB).astype(np.float32) for x in (source, target))
    for channel in range(3):
        s, d = src[..., channel][inside], dst[..., channel][inside]
        src[..., channel] = (src[..., channel] - s.mean()) * (d.std() / max(s.std(), 1e-3)) + d.mean()
    return cv2.cvtColor(src.clip(0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def face_swap(target: Image.Image, target_face: Face, source: Image.Image, source_face: Face, *, poisson: bool):
    """`target` with `source`'s face in place of its own; None when the faces cannot be aligned."""
    matrix, error = alignment(source_face, target_face)
    if matrix is None or error == float("inf"):
        return None
    dst = np.asarray(target.convert("RGB"))
    height, width = dst.shape[:2]
    warped = cv2.warpAffine(np.asarray(source.convert("RGB")), matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    valid = cv2.warpAffine(np.ones(source.size[::-1], np.uint8), matrix, (width, height))
    mask = face_mask(target_face, target.size, 0.95) * valid
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a border
    if mask.sum() < 64:
        return None
    warped = match_colours(warped, dst, mask)
    if poisson:
        x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
        try:
            swapped = cv2.seamlessClone(
                warped, dst, (mask * 255).astype(np.uint8), (x + w // 2, y + h // 2), cv2.NORMAL_CLONE
            )
        except cv2.error:  # OpenCV refuses some masks at the picture's edge: no swap for this face
            return None
    else:
        soft = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(1.0, target_face.side * 0.04))[..., None]
        swapped = (dst * (1 - soft) + warped * soft).round().clip(0, 255).astype(np.uint8)
    return Image.fromarray(swapped)


def alignment(source_face: Face, target_face: Face):
    """The similarity transform taking the source's landmarks onto the target's, and how badly they fit (the mean
    landmark error as a share of the target face's side; infinite when the source would be enlarged over 1.5×)."""
    source, target = (np.array(face.landmarks, np.float32) for face in (source_face, target_face))
    matrix, _ = cv2.estimateAffinePartial2D(source, target)
    if matrix is None:
        return None, float("inf")
    scale = float(np.hypot(*matrix[:, 0]))
    moved = source @ matrix[:, :2].T + matrix[:, 2]
    error = float(np.linalg.norm(moved - target, axis=1).mean() / target_face.side)
    return matrix, error if scale <= 1.5 else float("inf")


def best_donor(path: Path, usable: list[Path], faces: dict, rng: np.random.Generator, candidates: int = 24) -> Path:
    """Of a few other people picked at random, the one whose face fits the target's pose best (as swap tools do)."""
    others = [
        usable[i]
        for i in rng.choice(len(usable), size=min(candidates, len(usable)), replace=False)
        if usable[i] != path
    ]
    return min(others, key=lambda donor: alignment(faces[donor], faces[path])[1])


def link_reals(reals: list[Path], folder: Path) -> None:
    (folder / "real").mkdir(parents=True, exist_ok=True)
    (folder / "fake").mkdir(parents=True, exist_ok=True)
    for path in reals:
        link = folder / "real" / path.name
        if not link.exists():
            link.symlink_to(path.resolve())


def make_unseen_kinds(data_dir: Path, output: Path, *, seed: int = 0, val_fraction: float = 0.2) -> dict[str, Path]:
    """Write output/face-swap and output/self-blended (see the module's docstring); returns {kind: folder}."""
    reals = held_out_reals(data_dir, seed=seed, val_fraction=val_fraction)
    faces = {path: largest_face(Image.open(path).convert("RGB")) for path in reals}
    usable = [path for path in reals if faces[path] is not None and len(faces[path].landmarks) == 5]
    if len(usable) < 3:
        raise MLError(f"{data_dir}: {len(usable)} held-out real face(s) with landmarks; at least 3 are needed.")
    folders = {kind: output / kind for kind in KINDS}
    for folder in folders.values():
        link_reals(reals, folder)
    rng = np.random.default_rng(seed)
    for number, path in enumerate(usable):
        target = Image.open(path)
        target.load()
        donor = best_donor(path, usable, faces, rng)
        swapped = face_swap(target, faces[path], Image.open(donor), faces[donor], poisson=number % 2 == 0)
        if swapped is not None:
            save_like(swapped, target, folders["face-swap"] / "fake" / path.name)
        save_like(self_blend(target, faces[path], rng=rng).image, target, folders["self-blended"] / "fake" / path.name)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.kinds", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="a folder with real/ and fake/ (its real faces are used)")
    parser.add_argument("output", type=Path, help="where face-swap/ and self-blended/ go (outside the repository)")
    parser.add_argument("--seed", type=int, default=0, help="the split's seed and the blends' (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args(argv)
    try:
        folders = make_unseen_kinds(args.data_dir, args.output, seed=args.seed, val_fraction=args.val_fraction)
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kind, folder in folders.items():
        counts = {name: sum(1 for _ in (folder / name).iterdir()) for name in ("real", "fake")}
        print(f"{kind}: {counts['real']} real and {counts['fake']} fake pictures in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
