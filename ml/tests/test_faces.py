"""Faces: found by RetinaFace in real photos, framed as training frames them, analysed face by face."""

import numpy as np
import pytest
from PIL import Image

from conftest import astronaut_face, faceless_photo, photo_with_faces
from ml.analysis import FACES, IMAGE, NO_FACE, analyze_picture, place_heatmaps
from ml.detector import Detector
from ml.faces import FRAMING, Face, FaceFinder, crop_face, frame_box, main_face_crop


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


@pytest.fixture(scope="module")
def detector(resnet18):
    return Detector(resnet18, architecture="resnet18", input_size=64, backend="torch", precision="fp32")


def inside(face: Face, left: int, top: int, side: int) -> bool:
    x0, y0, x1, y1 = face.box
    return left <= (x0 + x1) / 2 <= left + side and top <= (y0 + y1) / 2 <= top + side


def test_two_pasted_faces_are_found_largest_first_and_a_faceless_photo_has_none(finder):
    photo = photo_with_faces([(620, 260, 150), (80, 120, 240)])

    faces = finder.find(photo)

    assert len(faces) == 2
    assert inside(faces[0], 80, 120, 240) and inside(faces[1], 620, 260, 150)
    assert faces[0].side > faces[1].side
    assert all(face.score >= 0.9 and len(face.landmarks) == 5 for face in faces)
    assert finder.find(faceless_photo()) == []


def test_large_photos_are_searched_scaled_down_and_boxes_come_back_in_their_pixels(finder):
    photo = photo_with_faces([(400, 300, 600)], width=3000, height=2000)

    (face,) = finder.find(photo)

    assert inside(face, 400, 300, 600)
    assert face.side > 300  # in the 3000 px photo's pixels, not the 1024 px copy's


def test_faces_under_the_minimum_size_are_not_judged():
    finder = FaceFinder(min_face_side=45)
    photo = photo_with_faces([(80, 120, 240), (700, 300, 56)])  # the small face's box is about 34 px

    everything, judged = finder.find_all(photo), finder.find(photo)

    assert len(everything) == 2 and len(judged) == 1
    assert everything[1].side < finder.min_face_side <= judged[0].side


def test_the_frame_is_a_square_of_framing_times_the_face_centred_and_kept_inside():
    face = Face(box=(100.0, 100.0, 180.0, 200.0), score=1.0, landmarks=())

    assert frame_box(face, (1000, 800)) == (78, 88, 203, 213)  # side 1.25 × 100, centred on (140, 150)
    # Near the left edge the square moves right rather than leave the picture.
    near_edge = Face(box=(0.0, 100.0, 80.0, 200.0), score=1.0, landmarks=())
    assert frame_box(near_edge, (1000, 800)) == (0, 88, 125, 213)
    # Larger than the picture: centred, and the part outside is black.
    crop = crop_face(Image.new("RGB", (100, 100), "white"), Face((10.0, 10.0, 90.0, 90.0), 1.0, ()), framing=2.0)
    assert crop.size == (160, 160)
    assert crop.getpixel((0, 0)) == (0, 0, 0) and crop.getpixel((80, 80)) == (255, 255, 255)


def test_a_picture_that_is_already_one_framed_face_stays_one_face(finder):
    framed = main_face_crop(astronaut_face(256))

    faces = finder.find(framed)

    assert len(faces) == 1
    assert framed.width == framed.height
    assert faces[0].side * FRAMING == pytest.approx(framed.width, rel=0.1)


def test_each_face_is_analysed_in_one_batch_and_the_most_suspicious_decides(finder, detector):
    photo = photo_with_faces([(80, 120, 240), (620, 260, 150)])

    result = analyze_picture(detector, photo, finder=finder, framing=FRAMING)

    assert result.scope == FACES and len(result.faces) == 2
    assert result.probability_fake == max(face.prediction.probability_fake for face in result.faces)
    # Each face is what the model alone says of its framed crop.
    for face in result.faces:
        (alone,) = detector.predict([crop_face(photo, face.face)])
        assert face.prediction.probability_fake == pytest.approx(alone.probability_fake, abs=1e-5)
        assert face.crop.size == (face.frame[2] - face.frame[0],) * 2
    assert result.heatmap.shape == (660, 1000)


def test_without_a_face_a_face_model_looks_at_the_whole_picture_and_says_so(finder, detector):
    photo = faceless_photo()

    result = analyze_picture(detector, photo, finder=finder, framing=FRAMING)

    (whole,) = detector.predict([photo])
    assert result.scope == NO_FACE and result.faces == []
    assert result.probability_fake == pytest.approx(whole.probability_fake, abs=1e-5)


def test_a_whole_image_model_never_looks_for_faces(detector):
    result = analyze_picture(detector, photo_with_faces([(80, 120, 240)]), finder=None, framing=None)

    assert result.scope == IMAGE and result.faces == [] and result.faces_ms < 1


def test_each_faces_heatmap_lands_on_its_frame_and_nowhere_else(finder, detector):
    photo = photo_with_faces([(80, 120, 240), (620, 260, 150)])
    result = analyze_picture(detector, photo, finder=finder, framing=FRAMING)

    canvas = place_heatmaps(result.faces, photo.size, max_side=500)

    assert canvas.shape == (330, 500)
    covered = np.zeros_like(canvas, dtype=bool)
    for face in result.faces:
        x0, y0, x1, y1 = (round(v / 2) for v in face.frame)
        covered[max(y0, 0) : y1, max(x0, 0) : x1] = True
        assert canvas[max(y0, 0) : y1, max(x0, 0) : x1].max() > 0.5
    assert canvas[~covered].max() == 0.0
