"""Stand-in kinds of manipulation for cross-kind evaluation: classic face swaps and self-blends of held-out faces."""

import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import photo_with_faces
from ml.data import scan_folder, stratified_split
from ml.faces import Face, FaceFinder
from ml.kinds import alignment, face_swap, make_unseen_kinds


@pytest.fixture(scope="module")
def target_and_donor():
    """A face to replace, and a donor photo with a face of another size and place, its colours shifted."""
    target = photo_with_faces([(300, 150, 300)])
    donor = photo_with_faces([(560, 260, 240)])
    donor = Image.fromarray((np.asarray(donor, np.float32) * (0.8, 1.0, 1.15)).clip(0, 255).astype(np.uint8))
    finder = FaceFinder()
    return target, finder.find(target)[0], donor, finder.find(donor)[0]


def test_alignment_fits_the_same_face_elsewhere_and_refuses_to_enlarge_much(target_and_donor):
    _target, target_face, _donor, donor_face = target_and_donor
    tiny = donor_face.scaled(0.5)

    _matrix, error = alignment(donor_face, target_face)

    assert error < 0.03  # the same face, moved and scaled: its landmarks fit
    assert alignment(tiny, target_face)[1] == float("inf")  # 2.5× enlarged would be a blur, not a swap


@pytest.mark.parametrize("poisson", [False, True])
def test_a_swap_changes_the_face_and_leaves_the_rest_of_the_photo(target_and_donor, poisson):
    target, face, donor, donor_face = target_and_donor
    left, top, right, bottom = face.box

    swapped = face_swap(target, face, donor, donor_face, poisson=poisson)

    changed = np.abs(np.asarray(swapped, np.int16) - np.asarray(target, np.int16)).max(axis=2)
    margin = round(0.3 * face.side)
    outside = np.ones_like(changed, dtype=bool)
    outside[
        max(0, round(top) - margin) : round(bottom) + margin, max(0, round(left) - margin) : round(right) + margin
    ] = 0
    assert changed[outside].max() == 0
    centre = changed[round(top + 0.3 * face.side) : round(bottom - 0.3 * face.side), round(left + 0.3 * face.side) :]
    assert centre.mean() > 1.0  # the donor's face (it was moved, scaled and tinted; the tint was matched away)


def test_a_swap_without_landmarks_to_align_is_refused(target_and_donor):
    target, face, donor, _donor_face = target_and_donor
    faceless = Face(box=(0, 0, 10, 10), score=1.0, landmarks=((1, 1),) * 5)

    assert face_swap(target, face, donor, faceless, poisson=False) is None


def test_the_folders_hold_the_held_out_real_faces_and_a_fake_made_from_each(tmp_path):
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    for number, place in enumerate([(100, 80, 220), (400, 150, 260), (600, 200, 240), (250, 100, 300)] * 2):
        photo = photo_with_faces([place], width=900, height=600)
        photo = ImageOps.mirror(photo) if number >= 4 else photo
        photo.save(data / "real" / f"face-{number}.jpg", quality=80 + number)
    folder = scan_folder(data, need_fakes=False)
    held_out = {s.path.name for s in stratified_split(folder.samples, val_fraction=0.5, seed=3)[1]}

    folders = make_unseen_kinds(data, tmp_path / "kinds", seed=3, val_fraction=0.5)

    assert sorted(folders) == ["face-swap", "self-blended"]
    for kind_folder in folders.values():
        reals = sorted(path.name for path in (kind_folder / "real").iterdir())
        assert set(reals) == held_out and all((kind_folder / "real" / name).is_symlink() for name in reals)
        assert sorted(os.listdir(kind_folder / "fake")) == reals  # every face found and swapped or blended
        for name in reals:
            original, fake = Image.open(data / "real" / name), Image.open(kind_folder / "fake" / name)
            assert fake.size == original.size and fake.quantization == original.quantization  # same compression
            assert np.abs(np.asarray(fake, np.int16) - np.asarray(original, np.int16)).max() > 30
