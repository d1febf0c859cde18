"""Stability under re-encoding: does the verdict survive what happens to a picture when someone saves it again?

A picture is analysed as uploaded and as a few realistic re-encodings of it (VARIANTS): re-saved as JPEG at quality
85 and 70 (Pillow's defaults otherwise, so 4:2:0 chroma subsampling, as most software saves), resized to 75 % and
cropped by 4 % on each side. The variants go through the model in the same batch as the picture itself
(ml.analysis), and a variant's probability for the picture follows the picture's own rule (the most suspicious face
decides). The rule (`stability_of`):

    unstable when any variant's label differs from the original's (labels at the model's threshold), or when the
    spread (largest − smallest probability over the original and its variants) exceeds MAX_SPREAD = 0.15;
    stable otherwise.

Why 0.15: a flip alone misses a probability that swings from 0.95 to 0.55 without crossing the threshold, yet a
verdict that moves that much when the file is merely re-saved is no firmer than one that flips. The product calls a
verdict uncertain within UNCERTAIN_MARGIN (0.1) of the threshold, a band 0.2 wide; a re-save that moves the
probability by three quarters of that band's width is well beyond the jitter of decoding (below 0.01) and is worth
telling the user.

Pure: Pillow and NumPy only. The faces are not searched again in the variants: the boxes found in the original are
carried over (`face_in_variant`), scaled and shifted as the resize and the crop moved them. For a face model only
the part of the picture around the faces is re-encoded (`variant_crops`): the crops come out as from the whole
re-encoded picture (the tests compare them), at a fraction of the cost on a large photo.
"""

import io
import time
from dataclasses import dataclass

from PIL import Image

from ml.faces import Face, frame_box
from ml.preprocessing import model_view

MAX_SPREAD = 0.15
RESAMPLING = Image.Resampling.BICUBIC  # Pillow's and most editors' default for resizing
# A JPEG with 4:2:0 chroma codes 16 × 16 pixel blocks on their own (DCT, quantisation, chroma averaging): a region
# cut on that grid re-encodes like the same pixels of the whole picture, but for the outermost pixels, where the
# decoder's chroma upsampling reads the next block. A margin of one block keeps those off the faces' crops.
BLOCK = 16


@dataclass(frozen=True)
class Variant:
    name: str
    description: str  # what a person did to the file, for messages: "re-saving as JPEG 70"
    jpeg_quality: int | None = None  # re-saved as JPEG at this quality
    scale: float = 1.0  # resized by this factor
    crop: float = 0.0  # this fraction of the width and of the height cut off each side


VARIANTS = (
    Variant("jpeg85", "re-saving as JPEG 85", jpeg_quality=85),
    Variant("jpeg70", "re-saving as JPEG 70", jpeg_quality=70),
    Variant("resize75", "resizing to 75 %", scale=0.75),
    Variant("crop4", "cropping 4 % off each side", crop=0.04),
)


def reencode(image: Image.Image, variant: Variant) -> Image.Image:
    """The picture after the variant's change. A JPEG variant comes back as the decoded JPEG file itself, so its
    `quantization` tables can be read."""
    if variant.jpeg_quality is not None:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=variant.jpeg_quality)
        decoded = Image.open(buffer)
        decoded.load()
        return decoded
    if variant.scale != 1.0:
        return image.resize(_scaled_size(image.size, variant.scale), RESAMPLING)
    if variant.crop:
        left, top = _crop_margins(image.size, variant.crop)
        return image.crop((left, top, image.width - left, image.height - top))
    return image


def face_in_variant(face: Face, size: tuple[int, int], variant: Variant) -> Face:
    """The face found in a picture of this size, where it lies in the picture's variant."""
    width, height = size
    new_width, new_height = _scaled_size(size, variant.scale)
    scale_x, scale_y = new_width / width, new_height / height
    left, top = _crop_margins(size, variant.crop)

    def moved(x: float, y: float) -> tuple[float, float]:
        return x * scale_x - left, y * scale_y - top

    x0, y0 = moved(*face.box[:2])
    x1, y1 = moved(*face.box[2:])
    return Face(box=(x0, y0, x1, y1), score=face.score, landmarks=tuple(moved(x, y) for x, y in face.landmarks))


@dataclass(frozen=True)
class VariantsPlan:
    """What the model must see of a picture's variants: for each variant's name, its faces' crops (the faces found
    in the original) or, without faces, the whole variant."""

    inputs: dict[str, list[Image.Image]]
    reencode_ms: float


def variants_plan(image: Image.Image, faces: list[Face], *, framing: float | None, input_size: int) -> VariantsPlan:
    """Without faces each whole variant is shrunk to the model's view at once (the same pixels the model would get),
    so a large picture's re-encodings are not all held in memory together."""
    started = time.perf_counter()
    inputs = {
        variant.name: variant_crops(image, faces, variant, framing=framing)
        if faces
        else [model_view(reencode(image, variant), input_size)]
        for variant in VARIANTS
    }
    return VariantsPlan(inputs=inputs, reencode_ms=(time.perf_counter() - started) * 1000)


def variant_crops(image: Image.Image, faces: list[Face], variant: Variant, *, framing: float) -> list[Image.Image]:
    """The faces' framed crops (ml.faces.crop_face) in the picture's variant, re-encoding only the region around
    them: the same pixels as cropping reencode(image, variant)."""
    size = _variant_size(image.size, variant)
    frames = [frame_box(face_in_variant(face, image.size, variant), size, framing=framing) for face in faces]
    region = _region(frames, size)
    part = _variant_part(image, variant, region)
    left, top = region[:2]
    # Past the region's edges lies only what is past the picture's (black, as crop_face gives it).
    return [part.crop((x0 - left, y0 - top, x1 - left, y1 - top)) for x0, y0, x1, y1 in frames]


def _region(frames: list[tuple[int, int, int, int]], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The frames' bounding box in the picture, widened by a block and out to the block grid."""
    width, height = size
    left = max(0, min(frame[0] for frame in frames) - BLOCK) // BLOCK * BLOCK
    top = max(0, min(frame[1] for frame in frames) - BLOCK) // BLOCK * BLOCK
    right = min(width, -(-(max(frame[2] for frame in frames) + BLOCK) // BLOCK) * BLOCK)
    bottom = min(height, -(-(max(frame[3] for frame in frames) + BLOCK) // BLOCK) * BLOCK)
    return left, top, max(right, left + 1), max(bottom, top + 1)


def _variant_part(image: Image.Image, variant: Variant, region: tuple[int, int, int, int]) -> Image.Image:
    """reencode(image, variant).crop(region), made from that region of the picture only."""
    x0, y0, x1, y1 = region
    if variant.jpeg_quality is not None:
        return reencode(image.crop(region), variant)
    if variant.scale != 1.0:
        # Pillow samples a box exactly as the whole picture's resize does, reading past the box for its filter.
        width, height = _variant_size(image.size, variant)
        sx, sy = image.width / width, image.height / height
        return image.resize((x1 - x0, y1 - y0), RESAMPLING, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    left, top = _crop_margins(image.size, variant.crop)
    return image.crop((x0 + left, y0 + top, x1 + left, y1 + top))


def stability_of(probability: float, variants: dict[str, float], *, threshold: float) -> dict:
    """The rule of the module's docstring: {"stable", "spread", "variants", "flips", "max_spread"}, plain data."""
    every = [probability, *variants.values()]
    spread = max(every) - min(every)
    fake = probability >= threshold
    flips = [name for name, p in variants.items() if (p >= threshold) != fake]
    return {
        "stable": not flips and spread <= MAX_SPREAD,
        "spread": round(spread, 6),
        "variants": {name: round(float(p), 6) for name, p in variants.items()},
        "flips": flips,
        "max_spread": MAX_SPREAD,
    }


def _variant_size(size: tuple[int, int], variant: Variant) -> tuple[int, int]:
    width, height = _scaled_size(size, variant.scale)
    left, top = _crop_margins(size, variant.crop)
    return width - 2 * left, height - 2 * top


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _crop_margins(size: tuple[int, int], fraction: float) -> tuple[int, int]:
    return round(size[0] * fraction), round(size[1] * fraction)
