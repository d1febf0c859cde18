"""Decoding uploads into upright RGB images, and the tensors the model takes, on real encoded files."""

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import image_bytes, picture
from ml.errors import UnreadableImageError
from ml.preprocessing import IMAGENET_MEAN, IMAGENET_STD, decode_image, to_array, to_batch

REPO = Path(__file__).resolve().parents[2]


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pixel(decoded, x: int = 0, y: int = 0) -> tuple[int, int, int]:
    return decoded.image.getpixel((x, y))


def test_a_jpeg_photo_decodes_to_rgb_with_its_size_and_format():
    decoded = decode_image(image_bytes(320, 240, fmt="JPEG"))

    assert (decoded.image.mode, decoded.image.size) == ("RGB", (320, 240))
    assert (decoded.format, decoded.mode, decoded.width, decoded.height, decoded.frames) == ("JPEG", "RGB", 320, 240, 1)


@pytest.mark.parametrize(
    ("orientation", "size", "top_left", "bottom_right"),
    [
        (1, (40, 20), "red", "blue"),  # as stored: left half red, right half blue
        (6, (20, 40), "red", "blue"),  # rotate 90° clockwise: the left half ends on top
        (8, (20, 40), "blue", "red"),  # rotate 90° counter-clockwise: the right half ends on top
        (3, (40, 20), "blue", "red"),  # rotate 180°
    ],
)
def test_exif_orientation_is_applied(orientation, size, top_left, bottom_right):
    stored = Image.new("RGB", (40, 20), "blue")
    stored.paste(Image.new("RGB", (20, 20), "red"))
    exif = Image.Exif()
    exif[0x0112] = orientation

    decoded = decode_image(encode(stored, "PNG", exif=exif))

    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    assert decoded.image.size == size
    assert pixel(decoded, 2, 2) == colours[top_left]
    assert pixel(decoded, size[0] - 3, size[1] - 3) == colours[bottom_right]


def palette_image(transparent: bool) -> bytes:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    image.putpixel((0, 0), 1)  # one blue pixel, so the palette has two colours in use
    return encode(image, "PNG", **({"transparency": 0} if transparent else {}))


@pytest.mark.parametrize(
    ("mode", "data", "expected"),
    [
        ("L", encode(Image.new("L", (4, 4), 128), "PNG"), (128, 128, 128)),
        ("LA", encode(Image.new("LA", (4, 4), (100, 255)), "PNG"), (100, 100, 100)),
        ("P", palette_image(transparent=False), (255, 0, 0)),
        ("P", palette_image(transparent=True), (255, 255, 255)),  # index 0 is transparent: white
        ("RGBA", encode(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"), (255, 255, 255)),
        ("CMYK", encode(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), (255, 0, 0)),
        ("CMYK", encode(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), "JPEG"), (255, 255, 255)),
        ("I;16", encode(Image.new("I;16", (4, 4), 65535), "PNG"), (255, 255, 255)),
        ("I;16", encode(Image.new("I;16", (4, 4), 32896), "TIFF"), (128, 128, 128)),
        ("I", encode(Image.new("I", (4, 4), 200), "TIFF"), (200, 200, 200)),
        ("I", encode(Image.new("I", (4, 4), 65535), "TIFF"), (255, 255, 255)),
        ("F", encode(Image.new("F", (4, 4), 0.5), "TIFF"), (128, 128, 128)),
        ("F", encode(Image.new("F", (4, 4), 64.0), "TIFF"), (64, 64, 64)),
        ("1", encode(Image.new("1", (4, 4), 1), "PNG"), (255, 255, 255)),
    ],
)
def test_every_pillow_mode_becomes_8_bit_rgb(mode, data, expected):
    decoded = decode_image(data)

    assert decoded.mode == mode, "the file should really have been stored in this mode"
    assert decoded.image.mode == "RGB"
    assert pixel(decoded, 2, 2) == expected


def test_a_16_bit_gradient_keeps_its_shades_instead_of_turning_white():
    gradient = Image.fromarray(np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16))
    assert gradient.mode == "I;16"

    grey = np.asarray(decode_image(encode(gradient, "PNG")).image)[..., 0]

    assert grey.min() == 0 and grey.max() == 255
    assert len(np.unique(grey)) > 200


def test_partly_transparent_pixels_are_blended_onto_white():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    image.putpixel((1, 1), (255, 0, 0, 128))
    image.putpixel((2, 2), (0, 0, 0, 0))

    decoded = decode_image(encode(image, "PNG"))

    assert pixel(decoded, 0, 0) == (255, 0, 0)
    assert pixel(decoded, 1, 1) == pytest.approx((255, 127, 127), abs=1)
    assert pixel(decoded, 2, 2) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_give_their_first_frame(fmt):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)

    decoded = decode_image(data)

    assert decoded.frames == 3
    assert pixel(decoded, 16, 16) == (255, 0, 0)


def test_files_and_paths_decode_like_bytes(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes(64, 48, fmt="PNG"))

    from_path = decode_image(path)
    from_file = decode_image(io.BytesIO(path.read_bytes()))

    assert np.array_equal(np.asarray(from_path.image), np.asarray(from_file.image))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"these are not the pixels you are looking for", "not an image in a format we can read"),
        (b"%PDF-1.7\n" + bytes(200), "not an image in a format we can read"),
        (image_bytes(320, 240, fmt="JPEG")[:600], "damaged or truncated"),
        (image_bytes(320, 240, fmt="PNG")[:400], "damaged or truncated"),
    ],
    ids=["empty", "text", "pdf", "truncated-jpeg", "truncated-png"],
)
def test_unreadable_bytes_are_refused_with_the_reason(data, message):
    with pytest.raises(UnreadableImageError, match=message):
        decode_image(data)
    with pytest.raises(UnreadableImageError, match=message):
        decode_image(data, check_only=True)


@pytest.mark.parametrize(("orientation", "upright"), [(1, (1600, 1200)), (6, (1200, 1600)), (8, (1200, 1600))])
def test_checking_a_jpeg_decodes_it_small_and_gives_the_full_upright_size(orientation, upright):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(picture(1600, 1200), "JPEG", exif=exif, quality=90)

    checked = decode_image(data, check_only=True)

    assert (checked.width, checked.height) == upright == decode_image(data).image.size
    assert max(checked.image.size) == 200  # an eighth of the size: libjpeg's scaled decoding
    with pytest.raises(UnreadableImageError, match="truncated"):
        decode_image(data[: len(data) - 2000], check_only=True)  # the damage is at the end: still read


def test_images_above_the_pixel_limit_are_refused():
    with pytest.raises(UnreadableImageError, match=r"320 × 240 pixels .*up to 0.05 megapixels"):
        decode_image(image_bytes(320, 240, fmt="PNG"), max_pixels=50_000)
    assert decode_image(image_bytes(200, 200, fmt="PNG"), max_pixels=50_000).width == 200


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its header claiming another size (a "pixel bomb": tiny file, huge declared image)."""
    header = struct.pack(">II", width, height) + png[24:29]
    return png[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + png[33:]


def test_a_pixel_bomb_is_refused_before_it_is_decoded():
    bomb = with_declared_size(image_bytes(32, 32, fmt="PNG"), 60_000, 60_000)

    with pytest.raises(UnreadableImageError, match="pixels"):
        decode_image(bomb)


def test_the_tensor_is_the_whole_image_resized_and_imagenet_normalised():
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste(Image.new("RGB", (150, 100), (0, 0, 255)), (150, 0))

    array = to_array(image, 64)

    assert array.shape == (3, 64, 64) and array.dtype == np.float32
    red = (np.array([1.0, 0.0, 0.0]) - IMAGENET_MEAN) / IMAGENET_STD
    blue = (np.array([0.0, 0.0, 1.0]) - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(array[:, 32, 2], red, atol=1e-5)  # left edge: nothing was cropped away
    assert np.allclose(array[:, 32, 61], blue, atol=1e-5)


def test_a_batch_stacks_images_of_any_size():
    batch = to_batch([picture(320, 240), picture(100, 300, seed=1)], 224)

    assert tuple(batch.shape) == (2, 3, 224, 224)


def test_decoding_does_not_import_torch(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes(64, 48, fmt="PNG"))
    code = (
        "import sys; from ml.preprocessing import decode_image; "
        "decoded = decode_image(open(sys.argv[1], 'rb').read()); print(decoded.width, 'torch' in sys.modules)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["64", "False"]
