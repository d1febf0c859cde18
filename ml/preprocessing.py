"""Image decoding and preprocessing, shared by training, evaluation and inference so they always agree.

Decoding (`decode_image`): the first frame of animated images, EXIF orientation applied, every Pillow mode turned
into 8-bit RGB, transparent pixels flattened onto white.

Resize policy (`to_tensor`): the whole image is resized to input_size × input_size with Pillow's antialiased
bilinear filter, ignoring the aspect ratio. Nothing is cropped away, so the detector sees every pixel and the
Grad-CAM heatmap maps back onto the whole original image by resizing it to the original width and height.
"""

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ml.errors import TooManyPixelsError, UnreadableImageError

if TYPE_CHECKING:
    import torch

# Decoding needs only Pillow and NumPy, so the web process can validate uploads without importing PyTorch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Larger images are refused before they are decoded: 50 megapixels is a 8660 × 5773 photo, already far beyond
# what the detector looks at, and decoding a hostile "pixel bomb" could otherwise take gigabytes of memory.
DEFAULT_MAX_PIXELS = 50_000_000

_MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
_STD = np.array(IMAGENET_STD, dtype=np.float32)
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, upright
    format: str  # Pillow's name of the file format: JPEG, PNG, WEBP, GIF, …
    mode: str  # the colour mode the file had
    width: int
    height: int
    frames: int


def decode_image(
    source: bytes | BinaryIO | Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS, check_only: bool = False
) -> DecodedImage:
    """Decode an image file into an upright RGB Pillow image; raises UnreadableImageError with the reason.

    check_only: to check a file, not to use it. A JPEG is then decoded at an eighth of its size (libjpeg scales while
    decoding, still reading the whole file, so damage is found as before: 4-8 times faster on large photos); the
    width and height are still the full picture's.
    """
    if isinstance(source, bytes | bytearray):
        if not source:
            raise UnreadableImageError("The file is empty.")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise TooManyPixelsError(
                        f"The image is {width} × {height} pixels ({width * height / 1e6:.1f} megapixels); images up "
                        f"to {max_pixels / 1e6:g} megapixels are accepted. Please resize it and try again."
                    )
                file_format, mode, frames = image.format or "unknown", image.mode, getattr(image, "n_frames", 1)
                image.seek(0)
                if check_only and file_format == "JPEG":
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
                rgb = to_rgb(ImageOps.exif_transpose(image))
                rgb.load()
                upright = (height, width) if _turned(image) else (width, height)
    except UnreadableImageError:
        raise
    except UnidentifiedImageError:
        raise UnreadableImageError("The file is not an image in a format we can read (JPEG, PNG or WebP).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixelsError(
            f"The image declares too many pixels to be decoded safely; images up to {max_pixels / 1e6:g} megapixels "
            "are accepted."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnreadableImageError(f"The image is damaged or truncated and cannot be decoded ({exc}).") from None
    return DecodedImage(image=rgb, format=file_format, mode=mode, width=upright[0], height=upright[1], frames=frames)


def _turned(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the picture by a quarter (exif_transpose swaps its width and height)."""
    return image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparency is flattened onto a white background."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I") or image.mode == "F":
        grey = np.clip(np.rint(_to_8_bit_range(image)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise UnreadableImageError(f"Images in the {image.mode} colour mode are not supported.") from None


def _to_8_bit_range(image: Image.Image) -> np.ndarray:
    """Greyscale values of a 16-bit, 32-bit integer or float image, scaled to 0-255 without clipping to white.

    16-bit modes always map 0-65535 onto 0-255. Other integer and float images are scaled by the range their values
    use: up to 1.0 (floats) means 0-1, up to 255 means 8-bit values, up to 65535 means 16-bit ones, and anything
    larger is scaled so its maximum becomes 255.
    """
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        return values / 257.0
    top = float(values.max()) if values.size else 0.0
    if image.mode == "F" and top <= 1.0:
        return values * 255.0
    if top <= 255.0:
        return values
    if top <= 65535.0:
        return values / 257.0
    return values * (255.0 / top)


def model_view(image: Image.Image, input_size: int) -> Image.Image:
    """The picture as the model sees it, per the resize policy above; already that size, it stays as it is."""
    return image.resize((input_size, input_size), Image.Resampling.BILINEAR)


def to_array(image: Image.Image, input_size: int) -> np.ndarray:
    """The normalised (3, input_size, input_size) float32 array the model takes, per the resize policy above."""
    resized = model_view(image, input_size)
    pixels = np.asarray(resized, dtype=np.float32) * (1.0 / 255.0)
    return ((pixels - _MEAN) / _STD).transpose(2, 0, 1)


def to_tensor(image: Image.Image, input_size: int) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.ascontiguousarray(to_array(image, input_size)))


def to_batch(images: list[Image.Image], input_size: int) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.stack([to_array(image, input_size) for image in images]))
