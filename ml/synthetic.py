"""Real and fake images the product makes itself, for the starter model: no download, no third-party dataset.

Real: square crops of natural photographs shipped inside installed packages (scikit-image's `skimage.data`,
scikit-learn's `load_sample_images`), taken at random positions and scales and only ever shrunk (antialiased), so
they keep a camera's fine detail; plus procedural pictures (fractal-noise colour fields, shapes, sensor noise).

Fake: the same crops passed through simulated generator pipelines, after Zhang et al. 2019 ("Detecting and
simulating artifacts in GAN fake images", AutoGAN): a small encoder-decoder network downsamples the crop 2× or 4×
with strided convolutions and upsamples it back with transposed convolutions, nearest-neighbour or bilinear
upsampling, each followed by a convolution, as GAN generators do. The weights are not trained: each network draws
them near a reconstruction (blur-and-subsample down, interpolation up) plus random perturbations, so its output
looks like its input but carries the generator's upsampling fingerprint (periodic spectral peaks, checkerboard
patterns, missing high frequencies). Every fake comes from one of many randomly drawn networks.

Both classes are JPEG-compressed with the same probability and quality range, so compression never tells them apart.
Flat photo crops (sky, blank walls) are drawn again: they carry no trace of any generator. Photos are split by
columns: the left 75% of every photo feeds training and validation, the right 25% the held-out test set, so test
crops share no pixels with training crops.
"""

import io
import logging
import warnings
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
TRAIN_REGION, TEST_REGION = (0.0, 0.75), (0.75, 1.0)  # fractions of each photo's width
JPEG_PROBABILITY, JPEG_QUALITY = 0.5, (70, 95)
PROCEDURAL_SHARE = 0.2
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
    except ImportError:
        logger.info("scikit-image is not installed; its sample photographs are not used")
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
    region: tuple[float, float],
    *,
    min_texture: float = 0.0,
    tries: int = 20,
) -> Image.Image:
    """A size × size crop from the given column range of the photo, at a random scale ≤ 1 (only ever shrunk).

    With min_texture, flat crops (sky, blank walls) are drawn again, up to `tries` times, keeping the most
    textured: a flat area carries no trace of any generator, so it would only teach the detector to guess.
    """
    best, best_texture = None, -1.0
    for _ in range(max(1, tries)):
        crop = _photo_crop(photo, size, rng, region)
        crop_texture = texture(crop) if min_texture else 0.0
        if crop_texture >= min_texture:
            return crop
        if crop_texture > best_texture:
            best, best_texture = crop, crop_texture
    return best


def _photo_crop(photo: Image.Image, size: int, rng: np.random.Generator, region: tuple[float, float]) -> Image.Image:
    left_edge, right_edge = round(photo.width * region[0]), round(photo.width * region[1])
    available = min(right_edge - left_edge, photo.height)
    side = size if available <= size else round(size * 2 ** rng.uniform(0, np.log2(available / size)))
    side = min(side, available)
    left = int(rng.integers(left_edge, right_edge - side + 1))
    top = int(rng.integers(0, photo.height - side + 1))
    crop = photo.crop((left, top, left + side, top + side))
    return crop if side == size else crop.resize((size, size), Image.Resampling.LANCZOS)


def procedural_picture(size: int, rng: np.random.Generator) -> Image.Image:
    """A photo-like picture: a fractal-noise colour field, a few soft shapes, and mild sensor noise."""
    spectrum = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2
    spectrum[0, 0] = 1.0
    falloff = spectrum ** -(rng.uniform(0.9, 1.4))  # 1/f^β amplitude: the statistics of natural images
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
    region: tuple[float, float] = TRAIN_REGION,
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
    for index in range(count - n_procedural):
        _, photo = photos[index % len(photos)]
        reals.append(photo_crop(photo, size, rng, region, min_texture=min_texture))
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
    description = {
        "photos": [name for name, _ in photos],
        "procedural": n_procedural,
        "photo_crops": count - n_procedural,
        "min_texture": min_texture,
        "generators": len(specs),
        "upsampling": {kind: sum(spec.upsampling == kind for spec in specs) for kind in UPSAMPLING},
    }
    return reals, fakes, description


def write_dataset(
    folder: Path | str,
    count: int,
    *,
    size: int,
    seed: int,
    region: tuple[float, float] = TRAIN_REGION,
    generators: int = 32,
    photos: list[tuple[str, Image.Image]] | None = None,
) -> dict:
    """Write `count` real and `count` fake images into folder/real and folder/fake; returns a description.

    A real picture and the fake made from it share their name (real/3_00012.png, fake/3_00012.jpg), which is how
    `--paired` training (ml.train) finds the pairs.
    """
    folder = Path(folder)
    reals, fakes, description = generate_pairs(
        count, size=size, seed=seed, region=region, generators=generators, photos=photos
    )
    rng = np.random.default_rng([seed, 1])
    for name, pictures in zip(CLASSES, (reals, fakes), strict=True):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index, picture in enumerate(pictures):
            data, suffix = encode(picture, rng)
            (folder / name / f"{seed}_{index:05d}{suffix}").write_bytes(data)
    return {**description, "per_class": count, "size": size, "seed": seed, "region": list(region)}
