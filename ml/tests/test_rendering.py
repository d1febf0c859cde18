"""Heatmap pictures: where the heat lands, the original aspect ratio, a bounded size, opacity, PNG and WebP."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import picture
from ml.rendering import bounded_size, colorize, encode, overlay, thumbnail


def corner_heatmap(size: int = 56) -> np.ndarray:
    """Hot (1.0) in the top-left quarter, cold (0.0) elsewhere."""
    heatmap = np.zeros((size, size), dtype=np.float32)
    heatmap[: size // 2, : size // 2] = 1.0
    return heatmap


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((4000, 3000), 1024, (1024, 768)),
        ((1000, 3000), 600, (200, 600)),
        ((5000, 10), 1000, (1000, 2)),
        ((10, 5000), 100, (1, 100)),  # never rounds a side down to nothing
        ((300, 200), 1024, (300, 200)),  # never upscales
    ],
)
def test_bounded_size_keeps_the_aspect_ratio(size, max_side, expected):
    assert bounded_size(*size, max_side) == expected


def test_the_overlay_has_the_originals_aspect_ratio_within_the_bound():
    image = picture(1500, 500)

    result = overlay(image, corner_heatmap(), max_side=600)

    assert (result.mode, result.size) == ("RGB", (600, 200))


def test_a_small_image_keeps_its_size():
    assert overlay(picture(120, 90), corner_heatmap()).size == (120, 90)


def test_the_heat_lands_on_the_same_part_of_a_non_square_image():
    grey = Image.new("RGB", (400, 100), (128, 128, 128))

    result = np.asarray(overlay(grey, corner_heatmap(), opacity=1.0)).astype(int)

    hot, cold = result[10, 20], result[90, 380]  # inside the top-left quarter; inside the bottom-right one
    assert hot[0] > 100 and hot[2] < 50, "jet's top is red"
    assert cold[2] > 100 and cold[0] < 50, "jet's bottom is blue"
    assert result[10, 220][2] > 100, "the heatmap's right half maps onto the image's right half, not stretched"


def test_opacity_blends_the_image_and_the_heatmap():
    image = picture(160, 120)
    heatmap = corner_heatmap()
    coloured = np.asarray(colorize(heatmap, image.size)).astype(float)
    original = np.asarray(image).astype(float)

    for opacity in (0.0, 0.3, 1.0):
        blended = np.asarray(overlay(image, heatmap, opacity=opacity)).astype(float)
        assert np.abs(blended - ((1 - opacity) * original + opacity * coloured)).max() <= 1.0


@pytest.mark.parametrize("opacity", [-0.1, 1.5])
def test_opacity_out_of_range_is_refused(opacity):
    with pytest.raises(ValueError, match="opacity must be between 0 and 1"):
        overlay(picture(64, 64), corner_heatmap(), opacity=opacity)


@pytest.mark.parametrize("colormap", ["jet", "turbo", "inferno"])
def test_colormaps_go_from_cold_to_hot(colormap):
    ramp = np.linspace(0, 1, 64, dtype=np.float32)[None, :].repeat(4, axis=0)

    colours = np.asarray(colorize(ramp, (64, 4), colormap=colormap)).astype(int)

    assert colours.shape == (4, 64, 3)
    assert not np.array_equal(colours[0, 0], colours[0, -1])


def test_an_unknown_colormap_is_refused():
    with pytest.raises(ValueError, match="colormap must be one of jet, turbo, inferno, not 'rainbow'"):
        colorize(corner_heatmap(), (10, 10), colormap="rainbow")


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("webp", "WEBP"), ("PNG", "PNG")])
def test_encoded_pictures_decode_to_the_same_size(fmt, pil_format):
    result = overlay(picture(300, 200), corner_heatmap())

    data = encode(result, fmt)

    decoded = Image.open(io.BytesIO(data))
    assert (decoded.format, decoded.size) == (pil_format, (300, 200))
    if pil_format == "PNG":  # lossless
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(result))


def test_webp_quality_trades_size():
    result = overlay(picture(400, 300), corner_heatmap())

    assert len(encode(result, "webp", quality=30)) < len(encode(result, "webp", quality=95))


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format must be one of png, webp, jpeg, not 'gif'"):
        encode(Image.new("RGB", (10, 10)), "gif")


def test_thumbnails_are_bounded_rgb_copies():
    image = picture(800, 200).convert("RGBA")

    small, same = thumbnail(image, max_side=256), thumbnail(picture(100, 50), max_side=256)

    assert (small.mode, small.size) == ("RGB", (256, 64))
    assert same.size == (100, 50)
