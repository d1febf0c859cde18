"""Self-blended pseudo-fakes: the blend lies on the face, leaves everything else untouched, and is reproducible."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import faceless_photo, photo_with_faces
from ml.blend import BlendConfig, face_mask, self_blend
from ml.data import FAKE, REAL, ImageDataset, Sample, self_blended
from ml.faces import Face, FaceFinder


@pytest.fixture(scope="module")
def photo_and_face():
    photo = photo_with_faces([(300, 150, 300)])
    (face,) = FaceFinder().find(photo)
    return photo, face


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_a_seed_gives_the_same_blend_and_another_seed_another(photo_and_face):
    photo, face = photo_and_face

    first = self_blend(photo, face, rng=np.random.default_rng(7))
    again = self_blend(photo, face, rng=np.random.default_rng(7))
    other = self_blend(photo, face, rng=np.random.default_rng(8))

    assert np.array_equal(pixels(first.image), pixels(again.image)) and first.ratio == again.ratio
    assert not np.array_equal(pixels(first.image), pixels(other.image))


@pytest.mark.parametrize("seed", range(6))
def test_the_blend_lies_on_the_face_and_outside_it_nothing_changes(photo_and_face, seed):
    photo, face = photo_and_face
    left, top, right, bottom = face.box
    side = face.side

    blend = self_blend(photo, face, rng=np.random.default_rng(seed))

    weight, changed = blend.mask, np.abs(pixels(blend.image) - pixels(photo)).max(axis=2)
    ys, xs = np.nonzero(weight > 0.05)
    # The mask grows, warps and blurs, but stays on the face: within a fifth of its side around its box.
    assert xs.min() >= left - 0.2 * side and xs.max() <= right + 0.2 * side
    assert ys.min() >= top - 0.2 * side and ys.max() <= bottom + 0.2 * side
    assert weight[round((top + bottom) / 2), round((left + right) / 2)] == pytest.approx(blend.ratio, abs=0.05)
    # Where the mask is zero the picture is exactly the original.
    assert changed[weight == 0].max() == 0
    # Inside, it differs, within what the source's alterations allow.
    inside = changed[weight > 0.5 * blend.ratio]
    assert inside.mean() > 1.0 and np.percentile(inside, 50) < 60


def test_the_mask_is_an_ellipse_between_eyes_and_mouth_tilted_with_the_eyes():
    upright = Face((100, 100, 200, 220), 1.0, ((130, 150), (170, 150), (150, 175), (135, 195), (165, 195)))
    turned = Face((100, 100, 200, 220), 1.0, ((130, 140), (170, 160), (150, 175), (130, 190), (160, 205)))

    straight, tilted = face_mask(upright, (300, 300)), face_mask(turned, (300, 300))

    ys, xs = np.nonzero(straight)
    assert abs(xs.mean() - 150) < 1 and abs(ys.mean() - 172.5) < 1  # centred between eyes (150) and mouth (195)
    assert xs.min() >= 100 and xs.max() <= 200 and ys.min() >= 100 and ys.max() <= 235
    assert ys.max() - ys.min() > xs.max() - xs.min()  # taller than wide, as a face
    ty, tx = np.nonzero(tilted)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(np.stack([tx, ty])))
    vx, vy = eigenvectors[:, np.argmax(eigenvalues)] * np.sign(eigenvectors[1, np.argmax(eigenvalues)])
    # The long axis (brow to chin) turns with the eyes, which slope down by 26.6° here.
    assert np.degrees(np.arctan2(-vx, vy)) == pytest.approx(26.6, abs=2)


def test_without_landmarks_the_mask_is_an_upright_ellipse_in_the_box():
    mask = face_mask(Face((40, 40, 120, 140), 0.0, ()), (200, 200))

    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 80) < 1 and abs(ys.mean() - 90) < 1


def test_pseudo_fakes_come_from_the_real_samples_and_validation_blends_are_fixed(tmp_path):
    for name, picture in (("a.png", photo_with_faces([(300, 150, 300)])), ("b.png", faceless_photo(400, 300))):
        picture.save(tmp_path / name)
    reals = [Sample(tmp_path / "a.png", REAL), Sample(tmp_path / "b.png", REAL), Sample(tmp_path / "x.png", FAKE)]

    fakes = self_blended(reals, 1.0)
    dataset = ImageDataset(reals[:2] + fakes, 96, faces=True, blend_seed=3)

    assert [(s.path.name, s.label, s.blended) for s in fakes] == [("a.png", FAKE, True), ("b.png", FAKE, True)]
    assert [(s.path.name) for s in self_blended(reals, 0.5)] == ["a.png"]
    real_face, real_label = dataset[0]
    blended_face, blended_label = dataset[2]
    assert (real_label.item(), blended_label.item()) == (0.0, 1.0)
    assert not torch.equal(real_face, blended_face)
    assert torch.equal(blended_face, dataset[2][0])  # the same blend every time it is read
    assert dataset[3][0].shape == (3, 96, 96)  # a picture without a face is blended around its middle


def test_the_default_recipe_is_recorded_as_plain_data():
    recipe = BlendConfig().as_dict()

    assert recipe["blend_ratios"] == (0.25, 0.5, 0.75, 1.0, 1.0, 1.0) and 0 < recipe["shift"] < 0.1
