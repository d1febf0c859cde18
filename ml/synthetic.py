"""Real and fake images the product makes itself, for the starter model: no download, no third-party dataset.

Real: square crops of natural photographs shipped inside installed packages (scikit-image's `skimage.data`,
scikit-learn's `load_sample_images`, matplotlib's sample portrait), taken at random positions and scales and only
ever shrunk (antialiased), so they keep a camera's fine detail; plus procedural pictures (fractal-noise colour
fields, shapes, sensor noise).

Fake: the same crops passed through simulated generator pipelines, after Zhang et al. 2019 ("Detecting and
simulating artifacts in GAN fake images", AutoGAN): a small encoder-decoder network downsamples the crop 2× or 4×
with strided convolutions and upsamples it back with transposed convolutions, nearest-neighbour or bilinear
upsampling, each followed by a convolution, as GAN generators do. The weights are not trained: each network draws
them near a reconstruction (blur-and-subsample down, interpolation up) plus random perturbations, so its output
looks like its input but carries the generator's upsampling fingerprint (periodic spectral peaks, checkerboard
patterns, missing high frequencies). Every fake comes from one of many randomly drawn networks.

Both classes are JPEG-compressed with the same probability and quality range, so compression never tells them apart.
Flat photo crops (sky, blank walls) are drawn again, or left out: they carry no trace of any generator. Every
photo is split in two: its bottom-right quarter feeds the held-out test set, the other three quarters training and
validation, so test crops share no pixels with training crops; both are cut at the same range of sizes.
"""

import io
import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from ml.data import CLASSES

logger = logging.getLogger(__name__)

# skimage.data images that are photographs (or micrographs) and ship with the package (no download needed).
SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "moon",
    "coins",
    "clock",
    "grass",
    "gravel",
    "brick",
    "cell",
)
UPSAMPLING = ("transposed", "nearest", "bilinear")
# A region is one or more rectangles (left, top, right, bottom) in fractions of a photo's width and height.
Region = tuple[tuple[float, float, float, float], ...]
TRAIN_REGION: Region = ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 0.5))  # all but the bottom-right quarter
TEST_REGION: Region = ((0.5, 0.5, 1.0, 1.0),)
JPEG_PROBABILITY, JPEG_QUALITY = 0.5, (70, 95)
PROCEDURAL_SHARE = 0.3
MIN_TEXTURE = 4.0  # photo crops flatter than this (mean grey-level step between neighbours) are drawn again


def natural_photos() -> list[tuple[str, Image.Image]]:
    """(name, RGB image) for every sample photograph that the installed packages ship."""
    photos = []
    try:
        import skimage.data

        for name in SKIMAGE_PHOTOS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    array = getattr(skimage.data, name)()
            except Exception as exc:  # a missing file or a data package that needs a download: use the others
                logger.info("skimage.data.%s is not available: %s", name, exc)
                continue
            photos.append((f"skimage.{name}", Image.fromarray(np.asarray(array, dtype=np.uint8)).convert("RGB")))
        try:
            # A stereo pair: only the left view, since the right one shows the same scene (its test quarter would
            # show what the left view's training region shows).
            left, _, _ = skimage.data.stereo_motorcycle()
            photos.append(("skimage.motorcycle_left", Image.fromarray(np.asarray(left, dtype=np.uint8)).convert("RGB")))
        except Exception as exc:
            logger.info("skimage.data.stereo_motorcycle is not available: %s", exc)
    except ImportError:
        logger.info("scikit-image is not installed; its sample photographs are not used")
    try:
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as portrait:
            photos.append(("matplotlib.grace_hopper", portrait.convert("RGB")))
    except Exception as exc:  # ImportError, or a matplotlib build without its sample data
        logger.info("matplotlib's sample photograph is not available: %s", exc)
    try:
        from sklearn.datasets import load_sample_images

        samples = load_sample_images()
        for filename, array in zip(samples.filenames, samples.images, strict=True):
            photos.append((f"sklearn.{Path(filename).stem}", Image.fromarray(array).convert("RGB")))
    except ImportError:
        logger.info("scikit-learn is not installed; its sample photographs are not used")
    return photos


def texture(image: Image.Image) -> float:
    """Mean absolute difference between neighbouring grey levels (0-255): about 0 on a flat area."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def photo_crop(
    photo: Image.Image,
    size: int,
    rng: np.random.Generator,
    region: Region,
    *,
    min_texture: float = 0.0,
    tries: int = 20,
) -> Image.Image | None:
    """A size × size crop from the given region of the photo, at a random scale ≤ 1 (only ever shrunk), of at
    most largest_crop_side(photo) pixels before shrinking, whichever the region.

    With min_texture, flat crops (sky, blank walls) are drawn again, up to `tries` times, and None comes back when
    all of them are flat: a flat area carries no trace of any generator, so it would only teach the detector to
    guess (and, in the test set, measure guessing).
    """
    for _ in range(max(1, tries)):
        crop = _photo_crop(photo, size, rng, region)
        if not min_texture or texture(crop) >= min_texture:
            return crop
    return None


def region_boxes(photo: Image.Image, region: Region) -> list[tuple[int, int, int, int]]:
    """The region's rectangles in this photo's pixels (left, top, right, bottom)."""
    w, h = photo.size
    return [
        (round(left * w), round(top * h), round(right * w), round(bottom * h)) for left, top, right, bottom in region
    ]


def largest_crop_side(photo: Image.Image) -> int:
    """The side of the largest square that fits in every rectangle of the training and test regions of this photo.

    Crops from both regions are drawn at sides up to this, so they are shrunk by the same range of factors:
    a shrunk crop is sharper than one near the camera's own resolution, and a test set of less-shrunk (softer)
    crops than training would look more like the fakes for a reason that has nothing to do with generators.
    """
    return min(
        min(right - left, bottom - top) for left, top, right, bottom in region_boxes(photo, TRAIN_REGION + TEST_REGION)
    )


def _photo_crop(photo: Image.Image, size: int, rng: np.random.Generator, region: Region) -> Image.Image:
    rectangles = region_boxes(photo, region)
    areas = np.array([(right - left) * (bottom - top) for left, top, right, bottom in rectangles], dtype=float)
    left_edge, top_edge, right_edge, bottom_edge = rectangles[int(rng.choice(len(rectangles), p=areas / areas.sum()))]
    available = min(right_edge - left_edge, bottom_edge - top_edge, largest_crop_side(photo))
    side = size if available <= size else round(size * 2 ** rng.uniform(0, np.log2(available / size)))
    side = min(side, available)
    left = int(rng.integers(left_edge, right_edge - side + 1))
    top = int(rng.integers(top_edge, bottom_edge - side + 1))
    crop = photo.crop((left, top, left + side, top + side))
    return crop if side == size else crop.resize((size, size), Image.Resampling.LANCZOS)


def procedural_picture(size: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like picture: a fractal-noise colour field, a few soft shapes, and mild sensor noise."""
    squared_frequency = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    squared_frequency[0, 0] = 1.0
    # Amplitude ∝ 1/f^α with α near 1: the spectrum of natural images (Field 1987; van der Schaaf 1996).
    falloff = squared_frequency ** -(rng.uniform(0.9, 1.4) / 2)
    channels = []
    for _ in range(3):
        phases = np.exp(2j * np.pi * rng.random((size, size)))
        field = np.real(np.fft.ifft2(falloff * phases))
        channels.append((field - field.mean()) / (field.std() + 1e-8))
    mix = rng.normal(0, 1, (3, 3)) * 0.4 + np.eye(3)
    colour = np.tensordot(np.stack(channels, -1), mix, axes=1) * rng.uniform(25, 55) + rng.uniform(60, 190, 3)
    image = Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 5))):
        x0, y0 = rng.integers(-size // 4, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.8)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(2, 7), (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class GeneratorSpec:
    upsampling: str  # one of UPSAMPLING
    levels: int  # 1 or 2: the image is shrunk 2× or 4× and grown back
    noise: float  # scale of the random perturbation of the reconstruction kernels
    seed: int


def _blur_kernel(size: int) -> torch.Tensor:
    line = torch.tensor({2: [1.0, 1.0], 3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[size])
    kernel = torch.outer(line, line)
    return kernel / kernel.sum()


class SimulatedGenerator(torch.nn.Module):
    """An untrained encoder-decoder whose output resembles its input but carries generator upsampling artifacts.

    Every convolution mixes the 3 colour channels with a kernel drawn as (blur ⊗ identity) + perturbation; the
    perturbations sum to zero over each kernel, so colours and brightness are kept and only the fine structure
    changes. The network is linear: what tells its output apart is the upsampling, not a tone curve.
    """

    def __init__(self, spec: GeneratorSpec):
        super().__init__()
        self.spec = spec
        g = torch.Generator().manual_seed(spec.seed)

        def near(kernel: torch.Tensor, *, gain: float = 1.0) -> torch.Tensor:
            perturbation = torch.randn(3, 3, *kernel.shape, generator=g) * spec.noise * kernel.max()
            perturbation -= perturbation.mean(dim=(2, 3), keepdim=True)
            return (torch.eye(3)[:, :, None, None] * kernel + perturbation) * gain

        def size(low: int, high: int) -> int:
            return int(torch.randint(low, high + 1, (1,), generator=g))

        self.down = [near(_blur_kernel(size(2, 3))) for _ in range(spec.levels)]
        if spec.upsampling == "transposed":
            # Stride 2 with a kernel of 3 (uneven overlap) or 4; gain 4 because each output pixel receives a
            # quarter of the kernel. Unequal sums over the four phases are the classic checkerboard.
            self.up = [near(_blur_kernel(size(3, 4)), gain=4.0) for _ in range(spec.levels)]
        else:
            # After interpolation, a convolution that keeps, softens or sharpens the result.
            delta = torch.zeros(3, 3)
            delta[1, 1] = 1.0
            choices = (delta, _blur_kernel(3), 2 * delta - _blur_kernel(3))
            self.up = [near(choices[size(0, 2)]) for _ in range(spec.levels)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (n, 3, h, w) in [0, 1], h and w divisible by 2**levels; returns the same shape in [0, 1]."""
        x = images
        # Borders are padded by repeating the edge pixels: zero padding would darken them, a tell-tale of its own.
        for kernel in self.down:
            margin = (kernel.shape[-1] - 1) // 2
            x = F.conv2d(F.pad(x, (margin,) * 4, mode="replicate"), kernel, stride=2)
        for kernel in self.up:
            if self.spec.upsampling == "transposed":
                side = x.shape[-1] * 2
                x = F.conv_transpose2d(F.pad(x, (1,) * 4, mode="replicate"), kernel.transpose(0, 1), stride=2)
                x = x[..., 3 : 3 + side, 3 : 3 + side]
            else:
                options = {"align_corners": False} if self.spec.upsampling == "bilinear" else {}
                x = F.interpolate(x, scale_factor=2, mode=self.spec.upsampling, **options)
                x = F.conv2d(F.pad(x, (1,) * 4, mode="replicate"), kernel)
        return x.clamp(0, 1)


def random_spec(rng: np.random.Generator) -> GeneratorSpec:
    return GeneratorSpec(
        upsampling=UPSAMPLING[int(rng.integers(len(UPSAMPLING)))],
        levels=int(rng.integers(1, 3)),
        noise=float(rng.uniform(0.02, 0.25)),
        seed=int(rng.integers(2**31)),
    )


def to_unit_tensor(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images])).permute(
        0, 3, 1, 2
    )


def to_pictures(batch: torch.Tensor) -> list[Image.Image]:
    array = (batch.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(item) for item in array]


def encode(image: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """The image as file bytes: JPEG with probability JPEG_PROBABILITY (quality in JPEG_QUALITY), else PNG."""
    buffer = io.BytesIO()
    if rng.random() < JPEG_PROBABILITY:
        image.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
        return buffer.getvalue(), ".jpg"
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), ".png"


def generate_pairs(
    count: int,
    *,
    size: int,
    seed: int,
    region: Region = TRAIN_REGION,
    generators: int = 32,
    photos: list[tuple[str, Image.Image]] | None = None,
    min_texture: float = MIN_TEXTURE,
) -> tuple[list[Image.Image], list[Image.Image], dict]:
    """`count` real pictures and their `count` fakes (same crops through simulated generators), deterministic per
    seed; returns (reals, fakes, description)."""
    if size % 4:
        raise ValueError(f"size must be a multiple of 4 (the generators shrink 4×), not {size}")
    rng = np.random.default_rng(seed)
    photos = natural_photos() if photos is None else photos
    n_procedural = count if not photos else round(count * PROCEDURAL_SHARE)
    reals = [procedural_picture(size, rng) for _ in range(n_procedural)]
    picture_sources = ["procedural"] * n_procedural
    for index in range(count - n_procedural):
        # Photos in turn; a photo whose region gives no textured crop this time passes its turn to the next one.
        for offset in range(len(photos)):
            name, photo = photos[(index + offset) % len(photos)]
            crop = photo_crop(photo, size, rng, region, min_texture=min_texture)
            if crop is not None:
                break
        if crop is None:
            name, crop = "procedural", procedural_picture(size, rng)
        picture_sources.append(name)
        reals.append(crop)
    specs = [random_spec(rng) for _ in range(generators)]
    assignment = rng.integers(len(specs), size=count)
    fakes: list[Image.Image | None] = [None] * count
    with torch.no_grad():
        for spec_index, spec in enumerate(specs):
            members = np.flatnonzero(assignment == spec_index)
            if len(members):
                outputs = to_pictures(SimulatedGenerator(spec)(to_unit_tensor([reals[i] for i in members])))
                for i, picture in zip(members, outputs, strict=True):
                    fakes[i] = picture
    sources = dict(Counter(picture_sources))
    description = {
        "photos": [name for name, _ in photos],
        "procedural": sources.get("procedural", 0),
        "photo_crops": count - sources.get("procedural", 0),
        "sources": sources,
        "picture_sources": picture_sources,  # one per pair, in order
        "min_texture": min_texture,
        "generators": len(specs),
        "upsampling": {kind: sum(spec.upsampling == kind for spec in specs) for kind in UPSAMPLING},
    }
    return reals, fakes, description


def is_photo_crop(path: Path) -> bool:
    """Whether write_dataset wrote this file from a photo crop (not a procedural picture): its name says so."""
    return path.stem.endswith("_photo")


def write_dataset(
    folder: Path | str,
    count: int,
    *,
    size: int,
    seed: int,
    region: Region = TRAIN_REGION,
    generators: int = 32,
    photos: list[tuple[str, Image.Image]] | None = None,
) -> dict:
    """Write `count` real and `count` fake images into folder/real and folder/fake; returns a description.

    A real picture and the fake made from it share their name (real/3_00012_photo.png, fake/3_00012_photo.jpg),
    which is how `--paired` training (ml.train) finds the pairs; the name ends in _photo for a photo crop and
    _procedural for a procedural picture, so either kind can be evaluated on its own.
    """
    folder = Path(folder)
    reals, fakes, description = generate_pairs(
        count, size=size, seed=seed, region=region, generators=generators, photos=photos
    )
    kinds = ["procedural" if source == "procedural" else "photo" for source in description.pop("picture_sources")]
    rng = np.random.default_rng([seed, 1])
    for name, pictures in zip(CLASSES, (reals, fakes), strict=True):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index, (picture, kind) in enumerate(zip(pictures, kinds, strict=True)):
            data, suffix = encode(picture, rng)
            (folder / name / f"{seed}_{index:05d}_{kind}{suffix}").write_bytes(data)
    return {**description, "per_class": count, "size": size, "seed": seed, "region": [list(box) for box in region]}
