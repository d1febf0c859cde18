"""The starter model's generated data: a held-out split that shares no pixels, and fakes that carry generator traces."""

import numpy as np
import pytest
import torch
from PIL import Image

from ml.synthetic import (
    PROCEDURAL_SHARE,
    TEST_REGION,
    TRAIN_REGION,
    GeneratorSpec,
    SimulatedGenerator,
    generate_pairs,
    largest_crop_side,
    natural_photos,
    photo_crop,
    region_boxes,
    write_dataset,
)


def two_region_photo(width: int = 400, height: int = 300) -> Image.Image:
    """Noise in the red channel over the training region, in the green channel over the test region."""
    rng = np.random.default_rng(0)
    array = np.zeros((height, width, 3), dtype=np.uint8)
    test = np.zeros((height, width), dtype=bool)
    for left, top, right, bottom in region_boxes(Image.new("RGB", (width, height)), TEST_REGION):
        test[top:bottom, left:right] = True
    noise = rng.integers(40, 256, (height, width))
    array[..., 0] = np.where(test, 0, noise)
    array[..., 1] = np.where(test, noise, 0)
    return Image.fromarray(array)


def test_the_test_region_is_the_bottom_right_quarter_and_training_has_the_rest():
    photo = two_region_photo(400, 300)
    assert region_boxes(photo, TEST_REGION) == [(200, 150, 400, 300)]
    assert region_boxes(photo, TRAIN_REGION) == [(0, 0, 200, 300), (200, 0, 400, 150)]


def test_crops_come_only_from_their_own_region_of_the_photo():
    photo, rng = two_region_photo(), np.random.default_rng(1)
    for _ in range(100):
        train_crop = np.asarray(photo_crop(photo, 32, rng, TRAIN_REGION))
        test_crop = np.asarray(photo_crop(photo, 32, rng, TEST_REGION))
        assert train_crop[..., 1].max() == 0 and train_crop[..., 0].max() > 0
        assert test_crop[..., 0].max() == 0 and test_crop[..., 1].max() > 0


def test_crops_of_both_regions_are_cut_at_the_same_range_of_sides():
    """Otherwise the test set would hold less-shrunk, softer crops than training, or the other way round."""
    photo, rng = two_region_photo(width=800, height=600), np.random.default_rng(2)
    assert largest_crop_side(photo) == 300  # the test quarter's height: every rectangle holds a 300-pixel square
    assert largest_crop_side(two_region_photo(width=300, height=800)) == 150  # its width, for a tall photo
    sides = {TRAIN_REGION: [], TEST_REGION: []}
    cut = photo.crop

    def spy(box):
        sides[region].append(box[2] - box[0])
        return cut(box)

    photo.crop = spy
    for region in sides:
        for _ in range(200):
            photo_crop(photo, 32, rng, region)
    for region, drawn in sides.items():
        assert min(drawn) >= 32 and max(drawn) <= 300, region
        assert max(drawn) > 220, region  # the whole range is used, in both regions


def test_flat_crops_are_refused_and_their_turn_goes_to_another_photo():
    flat = Image.new("RGB", (400, 300), (120, 130, 140))
    assert photo_crop(flat, 32, np.random.default_rng(0), TEST_REGION, min_texture=4.0) is None
    textured = two_region_photo()
    _, _, description = generate_pairs(
        10, size=32, seed=1, generators=4, photos=[("flat", flat), ("textured", textured)], region=TEST_REGION
    )
    assert "flat" not in description["sources"]
    assert description["sources"]["textured"] == description["photo_crops"] == 10 - round(10 * PROCEDURAL_SHARE)


def test_the_packaged_photographs_are_found():
    names = [name for name, _ in natural_photos()]
    for expected in ("skimage.astronaut", "skimage.motorcycle_left", "matplotlib.grace_hopper", "sklearn.china"):
        assert expected in names
    assert len(names) == len(set(names)) >= 19
    assert all(photo.mode == "RGB" and min(photo.size) >= 256 for _, photo in natural_photos())


def test_generation_is_deterministic_per_seed_and_fakes_keep_the_colours_of_their_reals():
    reals, fakes, description = generate_pairs(24, size=64, seed=5, generators=24)
    again, _, _ = generate_pairs(24, size=64, seed=5, generators=24)
    other, _, _ = generate_pairs(24, size=64, seed=6, generators=24)
    assert [r.tobytes() for r in reals] == [r.tobytes() for r in again]
    assert [r.tobytes() for r in reals] != [r.tobytes() for r in other]
    assert description["procedural"] + description["photo_crops"] == 24
    colour_shifts = []
    for real, fake in zip(reals, fakes, strict=True):
        real_array, fake_array = np.asarray(real, dtype=np.float32), np.asarray(fake, dtype=np.float32)
        assert fake.size == real.size == (64, 64)
        assert np.abs(real_array - fake_array).mean() > 0.5  # changed, not copied
        colour_shifts.append(np.abs(real_array.mean(axis=(0, 1)) - fake_array.mean(axis=(0, 1))).max())
    # The generators keep each channel's mean; only clipping at black and white moves it, in a few pictures.
    assert np.median(colour_shifts) < 1.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_transposed_convolution_generator_leaves_a_checkerboard_on_a_flat_picture(seed):
    flat = torch.full((1, 3, 32, 32), 0.5)
    output = SimulatedGenerator(GeneratorSpec("transposed", levels=1, noise=0.2, seed=seed))(flat)[0, 0]
    inner = output[4:-4, 4:-4]  # away from the replicated borders
    phases = torch.stack([inner[i::2, j::2].mean() for i in (0, 1) for j in (0, 1)])
    assert phases.max() - phases.min() > 1e-3  # the four pixel phases differ: a period-2 pattern
    assert torch.allclose(inner[0::2, 0::2], inner[0, 0].expand_as(inner[0::2, 0::2]), atol=1e-5)  # and only that


def test_a_nearest_generator_without_perturbation_repeats_each_pixel_in_two_by_two_blocks():
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    generator = SimulatedGenerator(GeneratorSpec("nearest", levels=1, noise=0.0, seed=0))
    generator.up = [torch.eye(3)[:, :, None, None] * torch.nn.functional.pad(torch.ones(1, 1), (1, 1, 1, 1))]
    output = generator(image)[0]
    assert torch.equal(output[:, 0::2, 0::2], output[:, 1::2, 1::2])


def test_written_pairs_share_their_names(tmp_path):
    description = write_dataset(tmp_path, 6, size=32, seed=2)
    reals = sorted(path.stem for path in (tmp_path / "real").iterdir())
    fakes = sorted(path.stem for path in (tmp_path / "fake").iterdir())
    assert reals == fakes and len(reals) == 6
    assert description["per_class"] == 6 and description["region"] == [list(box) for box in TRAIN_REGION]
