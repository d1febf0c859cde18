"""Training augmentations and robustness degradations on real pictures."""

import pickle
import random

import numpy as np
import pytest
from PIL import Image

from conftest import picture
from ml.augment import DEGRADATIONS, Augment, AugmentConfig, downscale, gaussian_blur, jpeg_recompress


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def high_frequency_energy(image: Image.Image) -> float:
    """Mean squared difference between horizontal neighbours: fine detail and noise."""
    return float((np.diff(pixels(image), axis=1) ** 2).mean())


@pytest.fixture
def photo():
    return picture(96, 64, seed=3)


def test_jpeg_recompression_keeps_size_and_mode_and_loses_more_at_lower_quality(photo):
    q95, q30 = jpeg_recompress(photo, 95), jpeg_recompress(photo, 30)

    assert (q95.size, q95.mode, q30.size, q30.mode) == (photo.size, "RGB", photo.size, "RGB")
    error95 = np.abs(pixels(q95) - pixels(photo)).mean()
    error30 = np.abs(pixels(q30) - pixels(photo)).mean()
    assert 0 < error95 < error30


def test_blur_removes_fine_detail_and_sigma_zero_changes_nothing(photo):
    assert gaussian_blur(photo, 0) is photo
    assert high_frequency_energy(gaussian_blur(photo, 2.0)) < 0.2 * high_frequency_energy(photo)


def test_downscale_halves_each_side(photo):
    assert downscale(photo, 0.5).size == (48, 32)
    assert downscale(Image.new("RGB", (1, 1)), 0.5).size == (1, 1)


def test_the_default_recipe_crops_and_varies_from_draw_to_draw(photo):
    augment = Augment()
    random.seed(0)
    outputs = [augment(photo) for _ in range(12)]

    assert {image.size for image in outputs} == {(84, 56)}  # 0.875 of each side
    assert len({pixels(image).tobytes() for image in outputs}) == 12


def test_each_step_can_be_switched_off(photo):
    nothing = Augment(AugmentConfig(blur_prob=0, jpeg_prob=0, crop_scale=1.0, flip=False))
    assert all(nothing(photo) is photo for _ in range(5))


def test_flips_happen_about_half_the_time_and_are_mirror_images(photo):
    flip_only = Augment(AugmentConfig(blur_prob=0, jpeg_prob=0, crop_scale=1.0, flip=True))
    mirror = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    random.seed(1)

    outputs = [flip_only(photo) for _ in range(200)]

    flipped = sum(pixels(image).tobytes() == pixels(mirror).tobytes() for image in outputs)
    unchanged = sum(image is photo for image in outputs)
    assert flipped + unchanged == 200
    assert 70 < flipped < 130


def test_blur_and_jpeg_are_applied_as_configured(photo):
    blur_only = Augment(AugmentConfig(blur_prob=1, blur_sigma=(1.5, 1.5), jpeg_prob=0, crop_scale=1.0, flip=False))
    jpeg_only = Augment(AugmentConfig(blur_prob=0, jpeg_prob=1, jpeg_quality=(60, 60), crop_scale=1.0, flip=False))

    assert pixels(blur_only(photo)).tobytes() == pixels(gaussian_blur(photo, 1.5)).tobytes()
    assert pixels(jpeg_only(photo)).tobytes() == pixels(jpeg_recompress(photo, 60)).tobytes()
    assert high_frequency_energy(blur_only(photo)) < 0.5 * high_frequency_energy(photo)


def test_the_same_seed_gives_the_same_augmentations(photo):
    augment = Augment()
    random.seed(42)
    first = [pixels(augment(photo)).tobytes() for _ in range(4)]
    random.seed(42)
    second = [pixels(augment(photo)).tobytes() for _ in range(4)]

    assert first == second


def test_the_robustness_conditions_degrade_and_can_go_to_worker_processes(photo):
    assert set(DEGRADATIONS) == {"jpeg_q95", "jpeg_q75", "jpeg_q50", "downscale_0.5x"}
    for name, degrade in DEGRADATIONS.items():
        degraded = pickle.loads(pickle.dumps(degrade))(photo)  # noqa: S301 (our own bytes, as DataLoader does)
        assert degraded.size == ((48, 32) if name == "downscale_0.5x" else photo.size), name
        if name != "downscale_0.5x":
            assert np.abs(pixels(degraded) - pixels(photo)).mean() > 0, name


def test_random_downscaling_draws_sizes_between_the_minimum_and_the_pictures_own():
    photo = picture(200, 160, seed=4)
    augment = Augment(
        AugmentConfig(downscale_prob=1.0, downscale_min_side=40, blur_prob=0, jpeg_prob=0, crop_scale=1.0, flip=False)
    )
    random.seed(1)

    sizes = [augment(photo).size for _ in range(40)]

    shorter = [min(size) for size in sizes]
    assert min(shorter) >= 40 and max(shorter) <= 160 and len(set(shorter)) > 20
    assert all(abs(w / h - 200 / 160) < 0.05 for w, h in sizes)  # the aspect ratio is kept
    # Never enlarged, and off by default: the default recipe keeps the picture's resolution.
    assert Augment(AugmentConfig(downscale_prob=1.0, downscale_min_side=400))(photo).size == (175, 140)
    assert AugmentConfig().downscale_prob == 0.0
