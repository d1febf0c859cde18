"""Training and evaluation data: a folder with `real/` and `fake/` sub-folders of images, as the README lays it out.

    dataset/
    ├── real/   authentic images (label 0)
    └── fake/   generated or manipulated images (label 1)

Sub-folders inside `real/` and `fake/` are read too. Files with an image suffix that cannot be decoded by
ml.preprocessing.decode_image (the same decoder inference uses) are skipped and counted, with the reason; other
files (notes, .DS_Store…) are ignored. Images are decoded again, and augmented, each time a sample is read: nothing
is cached unless asked, so any folder size works.
"""

import os
import random
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ml.blend import BlendConfig, self_blend
from ml.errors import TrainingDataError, UnreadableImageError
from ml.faces import Face, crop_face, largest_face
from ml.preprocessing import decode_image, to_array

CLASSES = ("real", "fake")  # index = label: 0 real, 1 fake (the model's one logit says "fake")
REAL, FAKE = 0, 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # REAL or FAKE
    blended: bool = False  # a pseudo-fake: the real picture at `path`, self-blended when read (ml.blend)


def self_blended(samples: Sequence[Sample], per_real: float = 1.0) -> list[Sample]:
    """Pseudo-fakes made from the real samples: `per_real` of them per real picture (1: one each; 0.5: every other
    one). Each is blended afresh every time it is read, so no two epochs see the same fakes."""
    reals = [sample for sample in samples if sample.label == REAL]
    count = round(len(reals) * per_real)
    return [Sample(reals[i % len(reals)].path, FAKE, blended=True) for i in range(count)] if reals else []


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    reason: str


@dataclass
class ImageFolder:
    """The readable images of one dataset folder, and the image files that were skipped."""

    root: Path
    samples: list[Sample]
    skipped: list[SkippedFile] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return count_classes(self.samples)


@dataclass
class TrainingData:
    train: list[Sample]
    validation: list[Sample]
    skipped: list[SkippedFile]
    description: dict  # the model card's "data" section


def count_classes(samples: Iterable[Sample]) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    for sample in samples:
        counts[CLASSES[sample.label]] += 1
    return counts


def list_image_files(folder: Path) -> list[Path]:
    """Every file under `folder` with an image suffix, hidden files excluded, in a stable (sorted) order."""
    found = []
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(
            Path(directory) / name
            for name in files
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
        )
    return sorted(found)


def _check_readable(path: Path) -> str | None:
    """None when the file decodes, else the reason it does not."""
    try:
        decode_image(path)
    except UnreadableImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


def scan_folder(
    root: Path | str, *, progress: bool = False, threads: int | None = None, need_fakes: bool = True
) -> ImageFolder:
    """The readable images of `root/real` and `root/fake`; raises TrainingDataError when a class has none (fakes
    may be missing with need_fakes=False: self-blended training makes its own)."""
    root = Path(root)
    if not root.exists():
        raise TrainingDataError(f"The data folder {root} does not exist.")
    if not root.is_dir():
        raise TrainingDataError(f"{root} is a file; give the folder that holds real/ and fake/.")
    needed = CLASSES if need_fakes else ("real",)
    missing = [name for name in needed if not (root / name).is_dir()]
    if missing:
        raise TrainingDataError(
            f"{root} has no {' and no '.join(f'{name}/' for name in missing)} folder. Put authentic images in "
            f"{root / 'real'} and generated or manipulated ones in {root / 'fake'}."
        )
    candidates = [
        (path, label)
        for label, name in enumerate(CLASSES)
        if (root / name).is_dir()
        for path in list_image_files(root / name)
    ]
    # Pillow releases the GIL while decoding, so threads check files in parallel.
    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
        reasons = pool.map(_check_readable, [path for path, _ in candidates])
        if progress:
            reasons = tqdm(reasons, total=len(candidates), desc=f"checking {root.name}", unit="img", leave=False)
        reasons = list(reasons)
    samples = [Sample(path, label) for (path, label), reason in zip(candidates, reasons, strict=True) if not reason]
    skipped = [SkippedFile(path, reason) for (path, _), reason in zip(candidates, reasons, strict=True) if reason]
    folder = ImageFolder(root, samples, skipped)
    counts = folder.counts()
    empty = [name for name in needed if counts[name] == 0]
    if empty:
        details = []
        for name in empty:
            unreadable = sum(1 for s in skipped if s.path.is_relative_to(root / name))
            details.append(
                f"{root / name} has no readable image"
                + (f" ({unreadable} image files could not be decoded)" if unreadable else "")
            )
        raise TrainingDataError(
            "; ".join(details) + f". Both classes are needed, with {', '.join(IMAGE_SUFFIXES)} files."
        )
    return folder


def pair_key(sample: Sample) -> str:
    """The name that pairs real/NAME with fake/NAME: the path below the class folder, without its suffix."""
    parts = sample.path.with_suffix("").parts
    for position in range(len(parts) - 2, -1, -1):
        if parts[position] == CLASSES[sample.label]:
            return "/".join(parts[position + 1 :])
    return sample.path.stem


def find_pairs(samples: Sequence[Sample]) -> tuple[list[tuple[int, int]], list[int]]:
    """(real index, fake index) of every real/NAME with a fake/NAME, and the indices of the samples left over."""
    reals = {pair_key(s): i for i, s in enumerate(samples) if s.label == REAL}
    fakes = {pair_key(s): i for i, s in enumerate(samples) if s.label == FAKE}
    pairs = [(reals[key], fakes[key]) for key in sorted(reals.keys() & fakes.keys())]
    paired = {i for pair in pairs for i in pair}
    return pairs, [i for i in range(len(samples)) if i not in paired]


def stratified_split(
    samples: Sequence[Sample], *, val_fraction: float, seed: int, paired: bool = False
) -> tuple[list[Sample], list[Sample]]:
    """Split each class separately, so both parts keep the class balance; the same seed gives the same split.

    paired: real/NAME and fake/NAME go to the same part, so validation never holds the real picture behind a fake
    that training saw (or the other way round). Pairs are split first, the other images per class as usual.
    """
    if not 0 < val_fraction < 1:
        raise TrainingDataError(f"The validation fraction must be between 0 and 1, not {val_fraction}.")
    pairs, others = find_pairs(samples) if paired else ([], [])
    if not pairs:
        return _split_by_class(samples, val_fraction=val_fraction, seed=seed)
    order = list(pairs)  # find_pairs gives them sorted by name: the same seed gives the same split
    random.Random(f"{seed}:pairs").shuffle(order)
    n_validation = min(max(1, round(len(order) * val_fraction)), len(order) - 1)
    if n_validation < 1:
        raise TrainingDataError(
            "There is 1 real/fake pair: too few to hold out images for validation and still train. "
            "Add images or give --val-dir."
        )
    train = [samples[i] for pair in order[n_validation:] for i in pair]
    validation = [samples[i] for pair in order[:n_validation] for i in pair]
    if others:
        more_train, more_validation = _split_by_class(
            [samples[i] for i in others], val_fraction=val_fraction, seed=seed, allow_empty=True
        )
        train, validation = train + more_train, validation + more_validation
    return train, validation


def _split_by_class(
    samples: Sequence[Sample], *, val_fraction: float, seed: int, allow_empty: bool = False
) -> tuple[list[Sample], list[Sample]]:
    train, validation = [], []
    for label, name in enumerate(CLASSES):
        members = sorted((s for s in samples if s.label == label), key=lambda s: str(s.path))
        if not members and label == FAKE:
            continue  # self-blended training without real fakes
        random.Random(f"{seed}:{name}").shuffle(members)
        if allow_empty:  # images left over beside pairs: a class may have none, or too few to split
            n_validation = round(len(members) * val_fraction) if len(members) > 1 else 0
        else:
            n_validation = max(1, round(len(members) * val_fraction))
        if len(members) - n_validation < 1 and not allow_empty:
            raise TrainingDataError(
                f"The {name} class has {len(members)} readable image(s): too few to hold out "
                f"{val_fraction:.0%} for validation and still train. Add images or give --val-dir."
            )
        validation.extend(members[:n_validation])
        train.extend(members[n_validation:])
    return train, validation


def load_training_data(
    data_dir: Path | str,
    *,
    val_dir: Path | str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    paired: bool = False,
    progress: bool = False,
    need_fakes: bool = True,
) -> TrainingData:
    """Training and validation samples: a seeded stratified split of data_dir (keeping real/fake pairs together
    when paired), or all of val_dir for validation."""
    folder = scan_folder(data_dir, progress=progress, need_fakes=need_fakes)
    description = {
        "train_dir": str(Path(data_dir).resolve()),
        "skipped_files": len(folder.skipped),
        "skipped_examples": [f"{s.path}: {s.reason}" for s in folder.skipped[:10]],
    }
    if val_dir is not None:
        validation_folder = scan_folder(val_dir, progress=progress, need_fakes=need_fakes)
        train, validation = folder.samples, validation_folder.samples
        skipped = folder.skipped + validation_folder.skipped
        description.update(
            split="explicit validation folder",
            val_dir=str(Path(val_dir).resolve()),
            skipped_files=len(skipped),
            skipped_examples=[f"{s.path}: {s.reason}" for s in skipped[:10]],
        )
    else:
        train, validation = stratified_split(folder.samples, val_fraction=val_fraction, seed=seed, paired=paired)
        skipped = folder.skipped
        description.update(split="stratified random split", val_fraction=val_fraction, split_seed=seed)
        if paired:
            description["split"] = "stratified random split, real/fake pairs kept together"
            description["paired"] = True
    description["counts"] = {"train": count_classes(train), "validation": count_classes(validation)}
    return TrainingData(train=train, validation=validation, skipped=skipped, description=description)


class PairedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches that hold whole real/fake pairs (batch_size // 2 of them), in a random order drawn from `generator`.

    A detector that sees a picture and its manipulated copy side by side learns from their difference, not from
    what the pictures show, which makes artifact detectors learn several times faster. Images without a partner
    are batched among themselves after the pairs. With several processes, each takes every world_size-th batch.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        batch_size: int,
        *,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.pairs, self.others = find_pairs(samples)
        self.batch_size, self.generator = batch_size, generator
        self.rank, self.world_size = rank, world_size

    def _all_batches(self) -> list[list[int]]:
        per_batch = max(1, self.batch_size // 2)
        order = torch.randperm(len(self.pairs), generator=self.generator).tolist()
        batches = [
            [i for k in order[start : start + per_batch] for i in self.pairs[k]]
            for start in range(0, len(order) - per_batch + 1, per_batch)
        ]
        others = [self.others[k] for k in torch.randperm(len(self.others), generator=self.generator).tolist()]
        batches += [
            others[start : start + self.batch_size]
            for start in range(0, len(others) - self.batch_size + 1, self.batch_size)
        ]
        return batches

    def __len__(self) -> int:
        per_batch = max(1, self.batch_size // 2)
        total = len(self.pairs) // per_batch + len(self.others) // self.batch_size
        return total // self.world_size

    def __iter__(self):
        batches = self._all_batches()
        return iter(batches[self.rank :: self.world_size][: len(self)])


class ImageDataset(torch.utils.data.Dataset):
    """(image tensor, label) pairs: decode, degrade, self-blend, frame the face, augment, then the shared to_array.

    - degrade: applied to the whole decoded picture, as a file is changed before it reaches the detector (the
      robustness evaluation's JPEG and downscaling);
    - a sample marked `blended` becomes a self-blended pseudo-fake of its real picture (ml.blend), around its largest
      face; with blend_seed the blend of each item is always the same (validation), else drawn afresh each time;
    - faces: crop the largest face as the face path of inference does (ml.faces), so face models train and are
      evaluated on the framing they see in use;
    - augment: the training augmentations, on the picture the model will see.

    With cache=True each decoded picture (and its face) is kept in memory (in each loader process): decoding and
    finding faces are then done once, and blends and augmentations afresh every time.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        input_size: int,
        augment: Callable[[Image.Image], Image.Image] | None = None,
        *,
        cache: bool = False,
        faces: bool = False,
        degrade: Callable[[Image.Image], Image.Image] | None = None,
        blend: BlendConfig | None = None,
        blend_seed: int | None = None,
    ):
        self.samples = list(samples)
        self.input_size = input_size
        self.augment = augment
        self.faces = faces
        self.degrade = degrade
        self.blend = blend or BlendConfig()
        self.blend_seed = blend_seed
        self.cache: dict[int, tuple[Image.Image, Face | None]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def _decoded(self, index: int) -> tuple[Image.Image, Face | None]:
        """The picture after any degradation, and its largest face when faces or a blend need one."""
        sample = self.samples[index]
        try:
            image = decode_image(sample.path).image
        except (UnreadableImageError, OSError) as exc:
            raise TrainingDataError(
                f"{sample.path} could be read when the data was checked, but not now: {exc}"
            ) from None
        if self.degrade is not None:
            image = self.degrade(image)
        return image, (largest_face(image) if self.faces or sample.blended else None)

    def _blended(self, index: int, image: Image.Image, face: Face | None) -> Image.Image:
        if face is None:  # no face to blend around: the middle of the picture stands in for one
            side = min(image.size) / 2
            x, y = image.width / 2, image.height / 2
            face = Face((x - side / 2, y - side / 2, x + side / 2, y + side / 2), 0.0, ())
        seed = (self.blend_seed, index) if self.blend_seed is not None else random.getrandbits(64)
        return self_blend(image, face, rng=np.random.default_rng(seed), config=self.blend).image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.samples[index]
        decoded = self.cache.get(index) if self.cache is not None else None
        if decoded is None:
            decoded = self._decoded(index)
            if self.cache is not None:
                self.cache[index] = decoded
        image, face = decoded
        if sample.blended:
            image = self._blended(index, image, face)
        if self.faces and face is not None:
            image = crop_face(image, face)
        if self.augment is not None:
            image = self.augment(image)
        return torch.from_numpy(to_array(image, self.input_size)), torch.tensor(float(sample.label))
