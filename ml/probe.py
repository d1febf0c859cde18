"""Pictures to measure a model on without a data set: photographs shipped inside scikit-image, cropped at random,
the astronaut's face, and how alike two heatmaps are. Used by the benchmark (ml.bench), the precision
check (ml.precision), the load benchmark and the tests."""

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "camera.png",
)


def photographs() -> list[Image.Image]:
    """Real photographs shipped inside scikit-image (a portrait, a cat, a rocket, a motorbike, microscopy…)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    return [Image.open(folder / name).convert("RGB") for name in PHOTOS]


def astronaut_face() -> Image.Image:
    """Eileen Collins' face from scikit-image's astronaut photo (NASA, public domain), framed loosely, 170 × 170."""
    import skimage.data

    return Image.fromarray(skimage.data.astronaut()).crop((140, 30, 310, 200))


def crops(photos: list[Image.Image], count: int, *, seed: int) -> list[Image.Image]:
    """Random crops (half to all of each side) of the photographs, some mirrored: varied, real-looking images."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        width, height = int(photo.width * rng.uniform(0.5, 1.0)), int(photo.height * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, photo.width - width + 1)), int(rng.integers(0, photo.height - height + 1))
        crop = photo.crop((left, top, left + width, top + height))
        images.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return images


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])
