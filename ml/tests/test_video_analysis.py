"""A video's frames analysed in batches, faces followed across frames, and the video's verdict rule."""

import numpy as np
import pytest

from conftest import faceless_photo, photo_with_faces
from ml.analysis import analyze_picture, analyze_pictures
from ml.detector import Detector
from ml.errors import UnreadableVideoError
from ml.faces import FRAMING, FaceFinder
from ml.video import VideoFrame
from ml.video_analysis import FaceTracker, iou, video_frames_analyze, video_verdict


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


@pytest.fixture(scope="module")
def detector(resnet18):
    return Detector(resnet18, architecture="resnet18", input_size=64, backend="torch", precision="fp32")


def frames_of(pictures):
    return [VideoFrame(index=i, timestamp_s=float(i), image=picture) for i, picture in enumerate(pictures)]


def test_frames_analysed_together_give_what_each_gives_alone(detector, finder):
    pictures = [
        photo_with_faces([(80, 120, 240)]),
        faceless_photo(),
        photo_with_faces([(80, 120, 240), (620, 260, 150)]),
    ]

    together = analyze_pictures(detector, pictures, finder=finder, framing=FRAMING)
    alone = [analyze_picture(detector, picture, finder=finder, framing=FRAMING) for picture in pictures]

    for batched, single in zip(together, alone, strict=True):
        assert batched.scope == single.scope and len(batched.faces) == len(single.faces)
        assert batched.probability_fake == pytest.approx(single.probability_fake, abs=1e-5)
        assert np.allclose(batched.heatmap, single.heatmap, atol=1e-4)


def test_a_face_keeps_its_track_while_it_moves_and_a_new_face_gets_a_new_one():
    tracker = FaceTracker()

    assert tracker.assign(0, [(100, 100, 200, 200)]) == [1]
    assert tracker.assign(1, [(400, 100, 500, 200), (120, 110, 220, 210)]) == [2, 1]
    assert tracker.assign(2, []) == []
    assert tracker.assign(3, [(130, 110, 230, 210)]) == [1]  # back after a frame without it
    assert tracker.assign(7, [(130, 110, 230, 210)]) == [3]  # gone too long: a new track
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3) and iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0


def test_the_verdict_is_the_mean_of_the_most_suspicious_fifth_of_frames_at_least_three():
    one_bad_frame = [0.1] * 19 + [0.99]
    verdict = video_verdict(one_bad_frame, threshold=0.5)
    assert verdict.rule["k"] == 4 and verdict.probability_fake == pytest.approx((0.99 + 0.3) / 4)
    assert verdict.label == "real"

    a_fifth_fake = [0.1] * 16 + [0.95] * 4
    assert video_verdict(a_fifth_fake, threshold=0.5).label == "fake"
    assert video_verdict([0.2, 0.8], threshold=0.5).rule["k"] == 2  # fewer frames than the minimum: all of them
    with pytest.raises(ValueError):
        video_verdict([], threshold=0.5)


def test_frames_come_out_in_batches_and_those_before_a_decoding_error_still_count(detector):
    def decoded():
        yield from frames_of([faceless_photo(320, 240)] * 5)
        raise UnreadableVideoError("cut short")

    batches = video_frames_analyze(detector, decoded(), finder=None, framing=None, batch_frames=2)

    assert [len(next(batches)) for _ in range(3)] == [2, 2, 1]
    with pytest.raises(UnreadableVideoError):
        next(batches)
