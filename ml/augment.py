"""Training augmentations and the degradations of the robustness evaluation, all on decoded Pillow images.

The training recipe follows Wang et al. 2020, "CNN-generated images are surprisingly easy to spot… for now": with
probability 0.5 a Gaussian blur with σ ~ U[0, 3], with probability 0.5 a JPEG re-compression with quality
~ U{30, …, 100}, then a random crop and a horizontal flip. They found this makes detectors hold up on images that
were blurred, re-compressed or resized on their way to the detector. Augmentations draw from Python's `random`
module, which PyTorch's DataLoader seeds differently in every worker.
"""

import io
import random
from dataclasses import asdict, dataclass
from functools import partial

from PIL import Image, ImageFilter


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    # Pillow's GaussianBlur radius is the standard deviation of the kernel.
    return image.filter(ImageFilter.GaussianBlur(radius=sigma)) if sigma > 0 else image


def jpeg_recompress(image: Image.Image, quality: int) -> Image.Image:
    """The image after a JPEG round trip at `quality` (4:2:0 chroma subsampling, as most encoders do)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def downscale(image: Image.Image, factor: float) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class AugmentConfig:
    downscale_prob: float = 0.0  # resize to a random shorter side in [downscale_min_side, the picture's own]
    downscale_min_side: int = 64
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (30, 100)
    crop_scale: float = 0.875  # side of the random square-ish crop relative to the image's side; 1 disables
    flip: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


class Augment:
    """Callable: PIL image -> PIL image, randomised as AugmentConfig says (downscale, blur, JPEG, crop, flip, in that
    order). Random downscaling teaches the model that a picture's resolution says nothing of its class: without it, a
    model trained on crops whose resolution differs by class (OpenForensics' fake crops are larger than its real ones)
    learns the resolution, and its verdicts move when a picture is resized (docs/model-results.md)."""

    def __init__(self, config: AugmentConfig | None = None):
        self.config = config or AugmentConfig()

    def __call__(self, image: Image.Image) -> Image.Image:
        c = self.config
        shorter = min(image.size)
        if c.downscale_prob and shorter > c.downscale_min_side and random.random() < c.downscale_prob:
            image = downscale(image, random.randint(c.downscale_min_side, shorter) / shorter)
        if c.blur_prob and random.random() < c.blur_prob:
            image = gaussian_blur(image, random.uniform(*c.blur_sigma))
        if c.jpeg_prob and random.random() < c.jpeg_prob:
            image = jpeg_recompress(image, random.randint(*c.jpeg_quality))
        if c.crop_scale < 1:
            width, height = max(1, round(image.width * c.crop_scale)), max(1, round(image.height * c.crop_scale))
            left, top = random.randint(0, image.width - width), random.randint(0, image.height - height)
            image = image.crop((left, top, left + width, top + height))
        if c.flip and random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image


# The robustness evaluation's conditions: what an image often goes through between its maker and the detector.
# partial objects, unlike lambdas, can be pickled into DataLoader worker processes.
DEGRADATIONS = {
    "jpeg_q95": partial(jpeg_recompress, quality=95),
    "jpeg_q75": partial(jpeg_recompress, quality=75),
    "jpeg_q50": partial(jpeg_recompress, quality=50),
    "downscale_0.5x": partial(downscale, factor=0.5),
}
