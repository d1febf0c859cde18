"""Stability under re-encoding: the variants are the re-encodings they claim, the rule, and the variants scored in
the analysis's own batch, at the faces found once."""

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import photo_with_faces, picture
from ml.analysis import FACES, IMAGE, analyze_picture
from ml.detector import Detector
from ml.faces import FRAMING, Face, FaceFinder, crop_face
from ml.preprocessing import model_view
from ml.stability import MAX_SPREAD, VARIANTS, face_in_variant, reencode, stability_of, variant_crops

BY_NAME = {variant.name: variant for variant in VARIANTS}

# The IJG quantisation tables (JPEG standard, Annex K) that libjpeg scales by the quality.
LUMINANCE = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17,
             22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78,
             87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]  # fmt: skip
CHROMINANCE = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66] + [99] * 4 + [24, 26, 56] + [99] * 5 + [47, 66]
CHROMINANCE += [99] * (64 - len(CHROMINANCE))


def ijg_table(base: list[int], quality: int) -> list[int]:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (value * scale + 50) // 100)) for value in base]


@pytest.fixture(scope="module")
def detector(resnet18):
    return Detector(resnet18, architecture="resnet18", input_size=64, backend="torch", precision="fp32")


@pytest.fixture(scope="module")
def finder():
    return FaceFinder()


# --- The variants -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, quality", [("jpeg85", 85), ("jpeg70", 70)])
def test_the_jpeg_variants_are_saved_at_their_quality(name, quality):
    changed = reencode(picture(320, 240), BY_NAME[name])

    assert changed.format == "JPEG" and changed.size == (320, 240) and changed.mode == "RGB"
    tables = changed.quantization
    # Order-free comparison: Pillow has reported the tables in zigzag and in natural order over its versions.
    assert sorted(tables[0]) == sorted(ijg_table(LUMINANCE, quality))
    assert sorted(tables[1]) == sorted(ijg_table(CHROMINANCE, quality))


def test_the_resize_variant_is_three_quarters_the_size_and_the_crop_cuts_4_percent_off_each_side():
    image = picture(320, 240)

    resized, cropped = reencode(image, BY_NAME["resize75"]), reencode(image, BY_NAME["crop4"])

    assert resized.size == (240, 180)
    assert cropped.size == (320 - 2 * 13, 240 - 2 * 10)  # 4 % of 320 is 12.8 px, of 240 9.6 px
    assert np.array_equal(np.asarray(cropped), np.asarray(image.crop((13, 10, 307, 230))))
    assert set(BY_NAME) == {"jpeg85", "jpeg70", "resize75", "crop4"}


def test_a_face_box_follows_the_picture_into_each_variant():
    face = Face(box=(100.0, 60.0, 180.0, 140.0), score=0.99, landmarks=((120.0, 90.0),))
    size = (320, 240)

    assert face_in_variant(face, size, BY_NAME["jpeg70"]) == face
    assert face_in_variant(face, size, BY_NAME["resize75"]).box == (75.0, 45.0, 135.0, 105.0)
    moved = face_in_variant(face, size, BY_NAME["crop4"])
    assert moved.box == (87.0, 50.0, 167.0, 130.0) and moved.landmarks == ((107.0, 80.0),)
    # Cropping only shifts the picture: the face's crop is the very same pixels.
    image = picture(320, 240, seed=4)
    assert np.array_equal(
        np.asarray(crop_face(reencode(image, BY_NAME["crop4"]), moved)), np.asarray(crop_face(image, face))
    )


def test_the_faces_crops_come_out_as_from_the_whole_re_encoded_picture_though_only_their_region_is_re_encoded():
    # Odd sizes (the resize is not exactly 3/4 then), faces at the edges and off the block grid.
    photo = photo_with_faces([(0, 20, 200), (507, 301, 150), (830, 500, 160)], width=1001, height=663)
    faces = [
        Face((5.0, 30.0, 180.0, 210.0), 1.0, ()),
        Face((520.3, 310.7, 640.1, 440.9), 1.0, ()),
        Face((850.0, 520.0, 990.0, 662.0), 1.0, ()),
    ]

    for variant in VARIANTS:
        whole = reencode(photo, variant)
        expected = [crop_face(whole, face_in_variant(face, photo.size, variant)) for face in faces]
        crops = variant_crops(photo, faces, variant, framing=FRAMING)
        for crop, wanted in zip(crops, expected, strict=True):
            assert np.array_equal(np.asarray(crop), np.asarray(wanted)), variant.name


# --- The rule -----------------------------------------------------------------------------------------------------


def test_close_probabilities_on_the_same_side_are_stable():
    result = stability_of(0.80, {"jpeg85": 0.78, "jpeg70": 0.74, "resize75": 0.81, "crop4": 0.79}, threshold=0.5)

    assert result["stable"] is True and result["flips"] == []
    assert result["spread"] == pytest.approx(0.07)
    assert result["variants"] == {"jpeg85": 0.78, "jpeg70": 0.74, "resize75": 0.81, "crop4": 0.79}


def test_a_variant_across_the_threshold_is_a_flip_and_makes_it_unstable():
    result = stability_of(0.56, {"jpeg85": 0.55, "jpeg70": 0.45, "resize75": 0.57, "crop4": 0.56}, threshold=0.5)

    assert result["stable"] is False and result["flips"] == ["jpeg70"]
    assert result["spread"] == pytest.approx(0.12)  # within MAX_SPREAD: the flip alone decides


def test_a_spread_beyond_the_limit_is_unstable_without_any_flip():
    result = stability_of(0.95, {"jpeg85": 0.9, "jpeg70": 0.75, "resize75": 0.93, "crop4": 0.95}, threshold=0.5)

    assert result["flips"] == [] and result["spread"] == pytest.approx(0.2) and MAX_SPREAD < 0.2
    assert result["stable"] is False


def test_labels_are_compared_at_the_models_threshold_not_at_one_half():
    variants = {"jpeg85": 0.75, "jpeg70": 0.72, "resize75": 0.76, "crop4": 0.74}

    assert stability_of(0.76, variants, threshold=0.74)["flips"] == ["jpeg70"]
    assert stability_of(0.76, variants, threshold=0.5)["flips"] == []
    # At the threshold itself a probability is fake, as the model labels it.
    assert stability_of(0.74, {"crop4": 0.74}, threshold=0.74)["flips"] == []


# --- In the analysis ----------------------------------------------------------------------------------------------


class Counting:
    """Wraps an object and counts the calls of one of its methods, with what they were given."""

    def __init__(self, wrapped, method: str):
        self.wrapped, self.method, self.calls = wrapped, method, []

    def __getattr__(self, name):
        target = getattr(self.wrapped, name)
        if name != self.method:
            return target

        def counted(*args, **kwargs):
            self.calls.append(args)
            return target(*args, **kwargs)

        return counted


def test_a_whole_image_model_scores_each_whole_variant_in_the_analysis_batch(detector):
    image = picture(320, 240, seed=2)
    counting = Counting(detector, "analyze")

    result = analyze_picture(counting, image, finder=None, framing=None, stability=True)

    plain = analyze_picture(detector, image, finder=None, framing=None)
    assert result.scope == IMAGE and result.probability_fake == pytest.approx(plain.probability_fake, abs=1e-5)
    (call,) = counting.calls
    assert len(call[0]) == 1 + len(VARIANTS)  # the picture and its variants, one batch
    for variant in VARIANTS:
        (alone,) = detector.predict([reencode(image, variant)])
        assert result.stability["variants"][variant.name] == pytest.approx(alone.probability_fake, abs=1e-5)
    assert plain.stability is None
    assert result.inference_ms > plain.inference_ms * 0.5  # the variants' share is counted in


def test_the_face_path_finds_faces_once_and_cuts_every_variant_at_those_faces(detector, finder):
    photo = photo_with_faces([(80, 120, 240), (620, 260, 150)])
    counting_finder, counting_detector = Counting(finder, "find_all"), Counting(detector, "analyze")

    result = analyze_picture(counting_detector, photo, finder=counting_finder, framing=FRAMING, stability=True)

    assert result.scope == FACES and len(result.faces) == 2
    assert len(counting_finder.calls) == 1
    (call,) = counting_detector.calls
    assert len(call[0]) == 2 * (1 + len(VARIANTS))
    for variant in VARIANTS:
        changed = reencode(photo, variant)
        crops = [crop_face(changed, face_in_variant(face.face, photo.size, variant)) for face in result.faces]
        # The picture's rule holds for each variant too: its most suspicious face decides.
        expected = max(prediction.probability_fake for prediction in detector.predict(crops))
        assert result.stability["variants"][variant.name] == pytest.approx(expected, abs=1e-5)


# --- A verdict that JPEG flips --------------------------------------------------------------------------------

ENERGY_CUTOFF = 7.5  # mean |Δ| between neighbouring grey pixels: the noisy picture has 9, after JPEG 70 under 6


def high_frequency_energy(image: Image.Image) -> float:
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    return float(np.abs(np.diff(grey, axis=1)).mean())


class HighFrequencyDetector:
    """A detector that keys on fine detail, which JPEG 70 smooths away: P(fake) rises with the high-frequency energy
    of what the model sees (the picture at its input size), one half at ENERGY_CUTOFF. Heatmaps and timings are the
    wrapped detector's."""

    def __init__(self, detector):
        self.detector = detector

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def analyze(self, images):
        predictions = self.detector.analyze(images)
        energies = [high_frequency_energy(model_view(image, self.detector.input_size)) for image in images]
        probabilities = [1 / (1 + math.exp(ENERGY_CUTOFF - energy)) for energy in energies]
        return [
            replace(prediction, probability_fake=p, label=self.detector.label_of(p))
            for prediction, p in zip(predictions, probabilities, strict=True)
        ]


def noisy_picture(side: int) -> Image.Image:
    """A smooth gradient under fine pixel noise, side × side (the model's input size, so the model sees every pixel):
    lossless it is full of detail, JPEG 70 removes most of it."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    base = 100 + 60 * x / side + 30 * y / side
    return Image.fromarray(np.clip(base[..., None] + rng.normal(0, 12, (side, side, 3)), 0, 255).astype(np.uint8))


def test_a_verdict_that_rests_on_what_jpeg_removes_is_unstable_and_says_which_re_encoding_flips_it(resnet18):
    detector = Detector(resnet18, architecture="resnet18", input_size=224, backend="torch", precision="fp32")
    image = noisy_picture(224)
    assert high_frequency_energy(image) > ENERGY_CUTOFF > high_frequency_energy(reencode(image, BY_NAME["jpeg70"]))

    result = analyze_picture(HighFrequencyDetector(detector), image, finder=None, framing=None, stability=True)

    assert result.label == "fake" and result.stability["stable"] is False
    assert "jpeg70" in result.stability["flips"] and "jpeg85" not in result.stability["flips"]
    assert result.stability["variants"]["jpeg70"] < 0.5 < result.probability_fake
