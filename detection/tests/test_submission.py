"""Submitting an image: what is accepted, what is refused and why, and that a refusal keeps nothing."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from detection import services
from detection.errors import (
    CorruptImage,
    EmptyFile,
    FileTooLarge,
    ImageTooLarge,
    MissingFile,
    NoActiveModel,
    StorageUnavailable,
    UnsupportedMediaType,
)
from detection.models import Analysis

pytestmark = pytest.mark.django_db


def stored_files(media) -> list[str]:
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file() and "models" not in p.parts)


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_an_accepted_image_is_stored_and_queued(user, active_model, upload, fmt, media_type, _media_in_tmp):
    submission = services.analysis_create(
        user=user, file=upload("holiday." + fmt.lower(), fmt=fmt, width=300, height=200), source="web"
    )

    analysis = Analysis.objects.get()
    assert submission.analysis == analysis and not submission.reused
    assert analysis.status == Analysis.Status.QUEUED
    assert (analysis.media_type, analysis.width, analysis.height) == (media_type, 300, 200)
    assert analysis.original_name == "holiday." + fmt.lower()
    assert len(analysis.sha256) == 64
    assert default_storage.exists(analysis.original.name)
    # The stored name is derived from the public ID, never from what the user called the file.
    assert "holiday" not in analysis.original.name and str(analysis.public_id) in analysis.original.name


def test_exif_rotated_images_report_their_upright_size(user, active_model, upload, make_image_bytes):
    image = Image.open(io.BytesIO(make_image_bytes(300, 200)))
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)

    services.analysis_create(user=user, file=upload("phone.jpg", data=buffer.getvalue()), source="web")

    assert Analysis.objects.values_list("width", "height").get() == (200, 300)


def jpeg_truncated(make_image_bytes) -> bytes:
    data = make_image_bytes(400, 300)
    return data[: len(data) // 2]


def gif(make_image_bytes) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_image_bytes())).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "error", "status", "message"),
    [
        (lambda make: b"", EmptyFile, 400, "“upload.jpg” is empty (0 bytes)."),
        (lambda make: b"hello, I am text", UnsupportedMediaType, 415, "is neither an image"),
        (gif, UnsupportedMediaType, 415, "is a GIF image; only JPEG, PNG or WebP images are accepted."),
        (jpeg_truncated, CorruptImage, 400, "cannot be used: The image is damaged or truncated"),
    ],
)
def test_bad_files_are_refused_with_a_reason_and_nothing_is_kept(
    user, active_model, upload, make_image_bytes, content, error, status, message, _media_in_tmp
):
    with pytest.raises(error) as refused:
        services.analysis_create(user=user, file=upload("upload.jpg", data=content(make_image_bytes)), source="api")

    assert refused.value.status == status
    assert message in refused.value.message
    assert refused.value.field == "file"
    assert not Analysis.objects.exists()
    assert stored_files(_media_in_tmp) == []


def test_too_large_files_are_refused_before_decoding(user, active_model, upload, settings):
    settings.MAX_FILE_SIZE_MB = 1
    settings.MAX_FILE_SIZE = 1024 * 1024

    with pytest.raises(FileTooLarge, match=r"“big.png” is 1\.\d MB; images up to 1 MB are accepted\.") as refused:
        services.analysis_create(user=user, file=upload("big.png", data=b"\x89PNG" + b"0" * 1024 * 1024), source="web")

    assert refused.value.status == 413


def test_images_with_too_many_pixels_are_refused(user, active_model, upload, settings):
    settings.MAX_IMAGE_MEGAPIXELS = 1

    with pytest.raises(ImageTooLarge, match="images up to 1 megapixels are accepted") as refused:
        services.analysis_create(user=user, file=upload("wide.png", fmt="PNG", width=1500, height=800), source="web")

    assert (refused.value.code, refused.value.status) == ("image_too_large", 400)


def test_a_decompression_bomb_is_refused_as_too_large_not_as_a_crash(user, active_model, upload):
    from conftest import png_bomb

    with pytest.raises(ImageTooLarge, match="more pixels than can be analysed safely"):
        services.analysis_create(user=user, file=upload("bomb.png", data=png_bomb()), source="web")

    assert not Analysis.objects.exists()


def test_no_file_at_all(user, active_model):
    with pytest.raises(MissingFile, match="No file was sent"):
        services.analysis_create(user=user, file=None, source="api")


def test_without_an_active_model_uploads_are_refused(user, upload):
    with pytest.raises(NoActiveModel) as refused:
        services.analysis_create(user=user, file=upload(), source="web")

    assert refused.value.status == 503
    assert not Analysis.objects.exists()


class BrokenStorage:
    """A storage whose disk is full."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def save(self, *args, **kwargs):
        raise OSError(28, "No space left on device")


def test_storage_failure_refuses_the_upload_and_keeps_nothing(user, active_model, upload, monkeypatch, _media_in_tmp):
    field = Analysis._meta.get_field("original")
    monkeypatch.setattr(field, "storage", BrokenStorage(field.storage))

    with pytest.raises(StorageUnavailable, match=r"could not be stored \(OSError\)\. Nothing was saved") as refused:
        services.analysis_create(user=user, file=upload(), source="web")

    assert refused.value.status == 503
    assert not Analysis.objects.exists()
    assert stored_files(_media_in_tmp) == []


def test_the_same_image_again_returns_the_earlier_analysis(user, other_user, active_model, upload):
    first = services.analysis_create(user=user, file=upload("a.jpg", seed=3), source="web").analysis

    again = services.analysis_create(user=user, file=upload("b.jpg", seed=3), source="api")
    different = services.analysis_create(user=user, file=upload("c.jpg", seed=4), source="web")
    someone_else = services.analysis_create(user=other_user, file=upload("a.jpg", seed=3), source="web")

    assert again.reused and again.analysis == first
    assert not different.reused and not someone_else.reused
    assert Analysis.objects.count() == 3
